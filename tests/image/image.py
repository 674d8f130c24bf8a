"""Helpers of tests/image/run.sh for the FROM scratch image proof.

Subcommands:
  stage-base BINARY TAR         write the base layer of Dockerfile.scratch: the
                                shared libraries BINARY links (as ldd lists
                                them) with the dynamic loader, CA certificates,
                                /etc/passwd and /etc/group with nonroot (65532),
                                /tmp and /home/nonroot
  check-dockerfiles REAL TWIN   the twin's final stage matches the real one's
                                from the binary's COPY on, and ARG VERSION
                                defaults to the crate version; every base
                                image of REAL is pinned by tag and digest and
                                all are the same Debian release (builder and
                                runtime share one glibc)
  check-image INSPECT_JSON      the built image's config (`podman image
                                inspect`): numeric non-root user, labels, env,
                                entrypoint, command, port, working directory
  check-rootfs ROOTFS           owners and modes in the image's filesystem:
                                a root-owned binary, the nonroot home and data
                                directory, /tmp; no shell
  exec ROOTFS INSPECT_JSON -- [ARG...]
                                run the image's entrypoint in ROOTFS as the
                                image's user, like a container runtime would:
                                chroot, working directory, environment of the
                                image only, no supplementary groups, no
                                capabilities, no_new_privs; --read-only and
                                --volume HOST:PATH as in `docker run`. Needs
                                root and a private mount namespace (run it
                                under `unshare --mount`); it execs, so the
                                caller's PID is the service's.

Expected values come from the workspace's Cargo.toml, so a version bump or
a new repository URL cannot leave the image behind.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CRATE_MANIFEST = REPO_ROOT / "crates" / "student-api" / "Cargo.toml"
WORKSPACE_MANIFEST = REPO_ROOT / "Cargo.toml"

NONROOT_UID = 65532
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = "root:x:0:\nnonroot:x:65532:\n"
PR_SET_NO_NEW_PRIVS = 38
# Debian releases by codename, as Docker tags name them (rust:X.Y.Z-trixie);
# distroless names the number instead (cc-debian13).
DEBIAN_CODENAMES = {"bookworm": "12", "trixie": "13", "forky": "14"}
PINNED_IMAGE = re.compile(r"^(?P<name>[a-z0-9./_-]+):(?P<tag>[A-Za-z0-9._-]+)@sha256:[0-9a-f]{64}$")


def fail(message: str) -> None:
    print(f"image.py: {message}", file=sys.stderr)
    sys.exit(1)


def crate_facts() -> dict[str, str]:
    """Version, description, licence and repository the image must carry."""
    crate = tomllib.loads(CRATE_MANIFEST.read_text())["package"]
    workspace = tomllib.loads(WORKSPACE_MANIFEST.read_text())["workspace"]["package"]

    def field(name: str) -> str:
        value = crate.get(name)
        if isinstance(value, dict) and value.get("workspace"):
            value = workspace[name]
        if not isinstance(value, str):
            fail(f"Cargo.toml has no {name}")
        return value

    return {
        "name": crate["name"],
        "version": field("version"),
        "description": field("description"),
        "license": field("license"),
        "repository": field("repository"),
    }


# ---------------------------------------------------------------- stage-base


def linked_libraries(binary: Path) -> list[Path]:
    """Absolute paths of the shared objects ldd lists, loader included."""
    out = subprocess.run(["ldd", str(binary)], check=True, capture_output=True, text=True).stdout
    paths = []
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].split("(", 1)[0].strip()
        else:
            target = line.split("(", 1)[0].strip()
        if target.startswith("/"):
            paths.append(Path(target))
        elif "not found" in line:
            fail(f"{binary}: {line}")
    if not any("ld-linux" in p.name for p in paths):
        fail(f"{binary}: ldd lists no dynamic loader; is it a dynamic glibc binary?")
    return paths


def stage_base(binary: Path, out: Path) -> None:
    entries: dict[str, tarfile.TarInfo] = {}
    payloads: dict[str, bytes] = {}

    def add_dir(path: str, mode: int = 0o755, uid: int = 0) -> None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in entries:
                add_dir(parent)
        info = tarfile.TarInfo(path.strip("/"))
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, uid
        entries[info.name] = info

    def add_file(path: str, data: bytes, mode: int) -> None:
        add_dir(os.path.dirname(path.strip("/")))
        info = tarfile.TarInfo(path.strip("/"))
        info.size, info.mode = len(data), mode
        entries[info.name], payloads[info.name] = info, data

    for lib in linked_libraries(binary):
        # Stored where ldd found it, as a regular file (symlinks resolved).
        add_file(str(lib), lib.resolve().read_bytes(), 0o755)
    add_file(str(CA_BUNDLE), CA_BUNDLE.read_bytes(), 0o644)
    add_file("/etc/passwd", PASSWD.encode(), 0o644)
    add_file("/etc/group", GROUP.encode(), 0o644)
    add_dir("/tmp", 0o1777)
    add_dir("/home/nonroot", 0o700, NONROOT_UID)
    add_dir("/usr/local/bin")

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            info = entries[name]
            info.mtime, info.uname, info.gname = 0, "", ""
            tar.addfile(info, io.BytesIO(payloads[name]) if name in payloads else None)
    # ldd resolved the libraries as this process's loader does, so this is
    # the glibc staged: the test host's, which docs/container.md explains.
    glibc = os.confstr("CS_GNU_LIBC_VERSION") or "glibc of unknown version"
    print(f"{out}: {len(entries)} entries; libraries from this host ({glibc})", file=sys.stderr)


# --------------------------------------------------------- check-dockerfiles


def final_stage(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, value) of the last stage, comments dropped, spaces folded."""
    from dockerfile_parse import DockerfileParser

    stage: list[tuple[str, str]] = []
    # fileobj: given a path, the parser wants a file named Dockerfile.
    with path.open("rb") as handle:
        structure = DockerfileParser(fileobj=handle).structure
    for item in structure:
        instruction = item["instruction"]
        if instruction == "FROM":
            stage = []
        elif instruction != "COMMENT":
            stage.append((instruction, " ".join(item["value"].split())))
    return stage


def runtime_part(stage: list[tuple[str, str]], binary: str) -> list[tuple[str, str]]:
    """The stage from the COPY of the binary on, each COPY reduced to its
    flags and target: the sources differ (a builder stage, a staged context)."""

    def reduced(instruction: str, value: str) -> tuple[str, str]:
        if instruction != "COPY":
            return instruction, value
        words = value.split()
        flags = [w for w in words[:-1] if w.startswith("--") and not w.startswith("--from=")]
        return instruction, " ".join(flags + words[-1:])

    for i, (instruction, value) in enumerate(stage):
        if instruction == "COPY" and value.split()[-1] == binary:
            return [reduced(*item) for item in stage[i:]]
    fail(f"no COPY of {binary} in the final stage")
    return []


def base_images(path: Path) -> list[str]:
    """The image of every FROM that names one (not an earlier stage)."""
    from dockerfile_parse import DockerfileParser

    with path.open("rb") as handle:
        structure = DockerfileParser(fileobj=handle).structure
    images, stages = [], set()
    for item in structure:
        if item["instruction"] != "FROM":
            continue
        words = [w for w in item["value"].split() if not w.startswith("--")]
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2].lower())
        if words[0].lower() not in stages and words[0] != "scratch":
            images.append(words[0])
    return images


def debian_release(image: str) -> str | None:
    """The Debian release a pinned image names: -<codename> ending its tag,
    or -debian<N> ending its name."""
    match = PINNED_IMAGE.match(image)
    if not match:
        return None
    codename = match["tag"].rsplit("-", 1)[-1]
    if codename in DEBIAN_CODENAMES:
        return DEBIAN_CODENAMES[codename]
    number = re.search(r"-debian(\d+)$", match["name"])
    return number.group(1) if number else None


def check_base_images(real: Path) -> None:
    """Pinned by tag and digest, all on one Debian release: the binary is
    linked against the builder's glibc and runs on the runtime's."""
    images = base_images(real)
    problems = [f"{image}: want name:tag@sha256:<64 hex digits>" for image in images if not PINNED_IMAGE.match(image)]
    releases = {image: debian_release(image) for image in images if PINNED_IMAGE.match(image)}
    problems += [f"{image}: names no Debian release (a -<codename> tag or a -debian<N> image)"
                 for image, release in releases.items() if release is None]
    if len({r for r in releases.values() if r}) > 1:
        problems.append("the stages are on different Debian releases: "
                        + ", ".join(f"{image.split('@')[0]} is Debian {r}" for image, r in releases.items()))
    if not images:
        problems.append("no base image")
    if problems:
        fail(f"{real} base images:\n  " + "\n  ".join(problems))
    release = next(iter(releases.values()))
    print(f"{real.name}: {len(images)} base images, pinned by digest, all Debian {release}", file=sys.stderr)


def check_dockerfiles(real: Path, twin: Path) -> None:
    facts = crate_facts()
    check_base_images(real)
    binary = f"/usr/local/bin/{facts['name']}"
    ours, theirs = runtime_part(final_stage(real), binary), runtime_part(final_stage(twin), binary)
    if ours != theirs:
        diff = [f"  {real.name}: {a}\n  {twin.name}: {b}" for a, b in zip(ours, theirs) if a != b]
        if len(ours) != len(theirs):
            diff.append(f"  {len(ours)} instructions against {len(theirs)}")
        fail(f"{twin} drifted from {real}:\n" + "\n".join(diff))
    for path in (real, twin):
        stage = final_stage(path)
        if ("ARG", f"VERSION={facts['version']}") not in stage:
            fail(f"{path}: ARG VERSION must default to the crate version {facts['version']}")
    print(f"{twin.name} matches {real.name} from the binary on ({len(ours)} instructions)", file=sys.stderr)


# --------------------------------------------------------------- check-image


def image_config(inspect_json: Path) -> dict:
    data = json.loads(inspect_json.read_text())
    if isinstance(data, list):
        data = data[0]
    return data["Config"]


def check_image(inspect_json: Path, revision: str) -> None:
    facts = crate_facts()
    config = image_config(inspect_json)
    problems = []

    user = config.get("User", "")
    if not re.fullmatch(r"[0-9]+(:[0-9]+)?", user) or int(user.split(":")[0]) == 0:
        problems.append(f"User is {user!r}: want a numeric, non-root UID[:GID]")
    elif user != f"{NONROOT_UID}:{NONROOT_UID}":
        problems.append(f"User is {user!r}: want {NONROOT_UID}:{NONROOT_UID}")

    want_labels = {
        "org.opencontainers.image.title": facts["name"],
        "org.opencontainers.image.description": facts["description"],
        "org.opencontainers.image.version": facts["version"],
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.source": facts["repository"],
        "org.opencontainers.image.licenses": facts["license"],
    }
    labels = config.get("Labels") or {}
    for key, want in want_labels.items():
        if labels.get(key) != want:
            problems.append(f"label {key} is {labels.get(key)!r}, want {want!r}")

    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    for key, want in {"LISTEN_ADDR": "0.0.0.0:8080", "LOG_FORMAT": "json"}.items():
        if env.get(key) != want:
            problems.append(f"env {key} is {env.get(key)!r}, want {want!r}")
    checks = {
        "Entrypoint": (config.get("Entrypoint"), [f"/usr/local/bin/{facts['name']}"]),
        "Cmd": (config.get("Cmd"), ["serve"]),
        "ExposedPorts": (sorted(config.get("ExposedPorts") or {}), ["8080/tcp"]),
        "WorkingDir": (config.get("WorkingDir"), "/home/nonroot"),
    }
    for key, (have, want) in checks.items():
        if have != want:
            problems.append(f"{key} is {have!r}, want {want!r}")
    if problems:
        fail("image config:\n  " + "\n  ".join(problems))
    print(f"image config: user {user}, {len(want_labels)} labels, env, entrypoint, port, workdir as expected", file=sys.stderr)


# -------------------------------------------------------------- check-rootfs


def check_rootfs(rootfs: Path) -> None:
    """Owners and modes that the service's safety depends on."""
    facts = crate_facts()
    want = {
        f"usr/local/bin/{facts['name']}": (0, 0, 0o755),
        "home/nonroot": (NONROOT_UID, NONROOT_UID, 0o700),
        "home/nonroot/data": (NONROOT_UID, NONROOT_UID, None),
        "tmp": (0, 0, 0o1777),
        "etc/passwd": (0, 0, 0o644),
        str(CA_BUNDLE).lstrip("/"): (0, 0, 0o644),
    }
    problems = []
    for path, (uid, gid, mode) in want.items():
        try:
            st = (rootfs / path).lstat()
        except FileNotFoundError:
            problems.append(f"/{path} is missing")
            continue
        have_mode = st.st_mode & 0o7777
        if (st.st_uid, st.st_gid) != (uid, gid) or (mode is not None and have_mode != mode):
            shown = f"{mode:04o}" if mode is not None else "any mode"
            problems.append(f"/{path} is {st.st_uid}:{st.st_gid} {have_mode:04o}, want {uid}:{gid} {shown}")
    for shell in ("bin/sh", "bin/bash", "usr/bin/sh"):
        if (rootfs / shell).exists():
            problems.append(f"/{shell} exists: the image must have no shell")
    if problems:
        fail("image filesystem:\n  " + "\n  ".join(problems))
    print("image filesystem: owners and modes as expected, no shell", file=sys.stderr)


# ---------------------------------------------------------------------- exec


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def home_of(rootfs: Path, uid: int) -> str:
    for line in (rootfs / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[2] == str(uid):
            return fields[5]
    return "/"


def exec_in_rootfs(args: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        fail("exec needs root (chroot, mounts)")
    rootfs = Path(args.rootfs).resolve()
    config = image_config(Path(args.inspect))
    uid, _, gid = config["User"].partition(":")
    uid, gid = int(uid), int(gid or uid)

    # A private bind of the root first, so that the mounts below sit on it
    # and the read-only remount touches the root alone, not the volumes.
    mount("--bind", str(rootfs), str(rootfs))
    for volume in args.volume:
        host, _, target = volume.partition(":")
        where = rootfs / target.lstrip("/")
        where.mkdir(parents=True, exist_ok=True)
        mount("--bind", host, str(where))
    (rootfs / "proc").mkdir(exist_ok=True)
    mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", str(rootfs / "proc"))
    if args.read_only:
        mount("-o", "remount,bind,ro", str(rootfs))

    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    env.setdefault("HOME", home_of(rootfs, uid))
    env.update(item.split("=", 1) for item in args.env)
    argv = (config.get("Entrypoint") or []) + (args.args if args.args else config.get("Cmd") or [])
    print(f"exec as {uid}:{gid} in {rootfs}: {shlex.join(argv)}", file=sys.stderr)

    os.chroot(rootfs)
    os.chdir(config.get("WorkingDir") or "/")
    os.setgroups([])
    os.setgid(gid)
    # From root to a non-zero UID the kernel clears every capability.
    os.setuid(uid)
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        fail("prctl(PR_SET_NO_NEW_PRIVS) failed")
    os.execve(argv[0], argv, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stage-base")
    p.add_argument("binary", type=Path)
    p.add_argument("tar", type=Path)
    p = sub.add_parser("check-dockerfiles")
    p.add_argument("real", type=Path)
    p.add_argument("twin", type=Path)
    p = sub.add_parser("check-image")
    p.add_argument("inspect", type=Path)
    p.add_argument("--revision", required=True)
    p = sub.add_parser("check-rootfs")
    p.add_argument("rootfs", type=Path)
    p = sub.add_parser("exec")
    p.add_argument("rootfs")
    p.add_argument("inspect")
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--volume", action="append", default=[], metavar="HOST:PATH")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    # After `--`, the arguments that replace the image's CMD (split off by
    # hand: argparse does not pass `--` through to a subcommand).
    argv = sys.argv[1:]
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: len(argv) - len(rest) - (1 if rest or "--" in argv else 0)])
    args.args = rest

    if args.command == "stage-base":
        stage_base(args.binary, args.tar)
    elif args.command == "check-dockerfiles":
        check_dockerfiles(args.real, args.twin)
    elif args.command == "check-image":
        check_image(args.inspect, args.revision)
    elif args.command == "check-rootfs":
        check_rootfs(args.rootfs)
    else:
        exec_in_rootfs(args)


if __name__ == "__main__":
    main()
