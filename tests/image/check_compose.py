"""The rules compose.yaml must keep, beyond the Compose schema (which
tests/image/run.sh checks with check-jsonschema before this):

- exactly the services postgres-password, postgres, migrate and student-api;
- every service: read-only root filesystem, cap_drop ALL, no-new-privileges;
- images: external ones pinned by digest, ours tagged with the crate's
  version (never `latest`), one PostgreSQL image for both its services;
- the start order: password, then PostgreSQL healthy (pg_isready), then
  `migrate --wait` completed successfully, then the service;
- published ports bound to 127.0.0.1 only;
- no secret in the file: variables named like a password, token or secret
  are `_FILE` paths, no DATABASE_URL, and no `$` interpolation at all (so the
  file renders the same with any environment).

Usage: check_compose.py [compose.yaml]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"postgres-password", "postgres", "migrate", "student-api"}
DIGEST = re.compile(r"^[a-z0-9./_-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|PASSPHRASE|PRIVATE_KEY", re.IGNORECASE)


def crate_version() -> str:
    manifest = REPO_ROOT / "crates" / "student-api" / "Cargo.toml"
    return tomllib.loads(manifest.read_text())["package"]["version"]


def check(path: Path) -> list[str]:
    text = path.read_text()
    problems: list[str] = []

    # `$$` is a literal dollar; any other `$` would be interpolated.
    for number, line in enumerate(text.splitlines(), 1):
        if "$" in line.replace("$$", "") and not line.lstrip().startswith("#"):
            problems.append(f"line {number}: `$` interpolation makes the file depend on the environment")

    doc = yaml.safe_load(text)
    services = doc.get("services") or {}
    if set(services) != SERVICES:
        problems.append(f"services are {sorted(services)}, want {sorted(SERVICES)}")
    version = crate_version()

    for name, svc in services.items():
        where = f"services.{name}"
        if svc.get("read_only") is not True:
            problems.append(f"{where}: read_only must be true")
        if svc.get("cap_drop") != ["ALL"]:
            problems.append(f"{where}: cap_drop must be [ALL]")
        if "no-new-privileges:true" not in (svc.get("security_opt") or []):
            problems.append(f"{where}: security_opt must hold no-new-privileges:true")
        if svc.get("privileged"):
            problems.append(f"{where}: privileged")

        image = str(svc.get("image", ""))
        if "build" in svc:
            if image != f"student-api:{version}":
                problems.append(f"{where}: built image must be tagged student-api:{version}, not {image!r}")
            if (svc["build"].get("args") or {}).get("VERSION") != version:
                problems.append(f"{where}: build arg VERSION must be {version}")
        elif not DIGEST.match(image):
            problems.append(f"{where}: image {image!r} is not pinned by tag and digest")
        if image.endswith(":latest") or ":latest@" in image:
            problems.append(f"{where}: image uses the latest tag")

        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
        for key, value in env.items():
            if key == "DATABASE_URL" or (SECRET_NAME.search(key) and not key.endswith("_FILE")):
                problems.append(f"{where}: environment {key} would hold a secret; use a _FILE variable")
            if key.endswith("_FILE") and not str(value).startswith("/run/secrets/"):
                problems.append(f"{where}: {key} should point below /run/secrets/")

        for port in svc.get("ports") or []:
            if isinstance(port, dict):
                host_ip = port.get("host_ip")
            else:
                parts = str(port).split(":")
                host_ip = parts[0] if len(parts) == 3 else None
            if host_ip != "127.0.0.1":
                problems.append(f"{where}: port {port!r} must be published on 127.0.0.1 only")

    def condition(service: str, on: str) -> str | None:
        depends = (services.get(service) or {}).get("depends_on") or {}
        return (depends.get(on) or {}).get("condition") if isinstance(depends, dict) else None

    order = [
        ("postgres", "postgres-password", "service_completed_successfully"),
        ("migrate", "postgres", "service_healthy"),
        ("student-api", "migrate", "service_completed_successfully"),
    ]
    for service, on, want in order:
        if condition(service, on) != want:
            problems.append(f"services.{service}: must depend on {on} with condition {want}")

    postgres = services.get("postgres") or {}
    test = (postgres.get("healthcheck") or {}).get("test") or []
    if "pg_isready" not in test:
        problems.append("services.postgres: healthcheck must run pg_isready")
    if (services.get("postgres-password") or {}).get("image") != postgres.get("image"):
        problems.append("services.postgres-password: must use the postgres service's image")

    migrate_cmd = (services.get("migrate") or {}).get("command") or []
    if migrate_cmd[:2] != ["migrate", "--wait"] or len(migrate_cmd) != 3:
        problems.append("services.migrate: command must be [migrate, --wait, DURATION]")
    if (services.get("student-api") or {}).get("command") != ["serve"]:
        problems.append("services.student-api: command must be [serve]")
    return problems


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT / "compose.yaml"
    problems = check(path)
    if problems:
        print(f"{path}:\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"{path.name}: services, hardening, pins, start order, ports and secrets as required", file=sys.stderr)


if __name__ == "__main__":
    main()
