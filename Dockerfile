# Container image of student-api: a release build on the official Rust image,
# copied onto distroless/cc (glibc, libgcc, CA certificates; no shell, no
# package manager) and run as UID 65532.
#
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     -t student-api:0.1.0 .
#
# docs/container.md describes the image; tests/image/run.sh checks this file
# offline (hadolint, checkov) and builds its FROM scratch twin,
# tests/image/Dockerfile.scratch, which must keep the same runtime settings.
#
# Base images are pinned by digest: a tag moves, a digest names exact bytes.
# Both stages are Debian 13 (trixie, glibc 2.41), so the binary needs no newer
# glibc than the runtime has; tests/image/image.py fails when the two name
# different Debian releases. Each FROM says where its digest comes from;
# refresh with `docker buildx imagetools inspect <image>:<tag>`.

# 1.99.0: the newest stable Rust docker-library/official-images publishes that
# could be confirmed. Multi-arch index digest of rust:1.99.0-trixie, recorded
# as resolved from Docker Hub on 2026-10-06 and pinned so by public projects
# (ThreatFlux/rust-cicd-template among them, with the runtime digest below).
FROM rust:1.99.0-trixie@sha256:3745c050d12adc738eff16ebfc81ed044bfb2cc27c6828850ff1666beb1c7a49 AS builder

WORKDIR /src

# Dependencies first, from the manifests and stub sources: this layer is
# rebuilt when Cargo.toml or Cargo.lock change, not on every source edit.
# The stub binary exits 1, so the check after the real build below would
# fail if the stub were ever shipped.
COPY Cargo.toml Cargo.lock ./
COPY crates/student-api/Cargo.toml crates/student-api/Cargo.toml
RUN mkdir crates/student-api/src \
    && echo 'fn main() { std::process::exit(1) }' > crates/student-api/src/main.rs \
    && touch crates/student-api/src/lib.rs \
    && cargo build --release --locked -p student-api \
    && rm -r crates/student-api/src

# The service itself. COPY keeps the sources' timestamps, which can be older
# than the stub build: touching the crate roots makes cargo rebuild them.
COPY crates/student-api/migrations crates/student-api/migrations
COPY crates/student-api/src crates/student-api/src
RUN touch crates/student-api/src/main.rs crates/student-api/src/lib.rs \
    && cargo build --release --locked -p student-api \
    && target/release/student-api --version \
    && mkdir /out /out/data

# cc-debian13: the debian12 images are no longer built since 2026-09-01
# (GoogleContainerTools/distroless#2129). Multi-arch index digest of the
# nonroot tag, confirmed current on 2026-09-29 and pinned by public projects
# on 2026-10-02 (portalshq/portals-cloud: no HIGH or CRITICAL finding).
FROM gcr.io/distroless/cc-debian13:nonroot@sha256:e792ab3d241a468a4fd7519ddbbebe66b49b5f365771716ea688ad40b6c6f1c2 AS runtime

# Root-owned and read-only to the service: the process cannot replace its binary.
COPY --from=builder /src/target/release/student-api /usr/local/bin/student-api
# Where the default SQLite database goes (./data under the working directory),
# owned by the service. A new named volume mounted here starts with this
# owner, so SQLite works with a read-only root filesystem too.
COPY --from=builder --chown=65532:65532 /out/data /home/nonroot/data

# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
# The home of the image's nonroot user (mode 0700, owned by 65532); the
# default SQLite database is ./data/students.db under it.
WORKDIR /home/nonroot
ENV LISTEN_ADDR=0.0.0.0:8080 \
    LOG_FORMAT=json
EXPOSE 8080

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="student-api" \
      org.opencontainers.image.description="REST API for student records, with PostgreSQL or embedded SQLite storage" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/student-api/student-api" \
      org.opencontainers.image.licenses="MIT"

# The binary probes itself: there is no shell or HTTP client in the image.
# Kubernetes ignores HEALTHCHECK and uses the chart's probes instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/student-api", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/student-api"]
CMD ["serve"]
