"""The service takes its PostgreSQL credentials from Vault or from mounted
files and rotates them under load with zero failed requests.

Everything is real: the student-api binary (STUDENT_API_BIN), the platform's
OpenBao self-initialised from the project's configuration (conftest.py), the
test PostgreSQL. Load comes from threads that keep reading and
writing students while the credentials change underneath; any answer other
than the expected status, or any connection error, is a failed request.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import Platform, Postgres, free_port, wait_until

# Short leases so that a test sees several rotations: a lease is renewed
# every ~6.7 s and a new user is issued every ~13 s (when renewal would no
# longer reach the full 10 s before the 20 s max TTL). Kubernetes-auth
# tokens live 8 s (24 s at most), so the service also renews its token and
# logs in again, which must bring a new user (the old token's leases die
# with it). Applied as a change to deploy/vault's role files would be: the
# Job openbao-config writes them to the running server.
SHORT_LEASES = {
    "database-roles/student-api.json": {"default_ttl": "10s", "max_ttl": "20s"},
    "kubernetes-roles/student-api.json": {"token_ttl": "8s", "token_max_ttl": "24s"},
}

STUDENT_API_BIN = Path(os.environ.get("STUDENT_API_BIN", Path(__file__).resolve().parents[2] / "target/debug/student-api"))
ROTATED = "database credentials rotated"


# --------------------------------------------------------------------------
# The service process


@dataclass
class Service:
    """One student-api process with its JSON log in a file."""

    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def log_file(self) -> Path:
        return self.workdir / f"service-{self.port}.log"

    def start(self, wait_ready: bool = True) -> "Service":
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LISTEN_ADDR": f"127.0.0.1:{self.port}",
            "LOG_FORMAT": "json",
            "RUST_LOG": "info,sqlx=warn",
            **self.env,
        }
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [str(STUDENT_API_BIN), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        if wait_ready:
            try:
                wait_until("the service to become ready", lambda: self._alive() and self.get("/ready")[0] == 200, timeout=30)
            except pytest.fail.Exception:
                pytest.fail(f"the service did not become ready; /ready: {self.get('/ready')}\n{self.log_tail()}")
        return self

    def _alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"student-api exited with {self.process.returncode}:\n{self.log_tail()}")
        return True

    def get(self, path: str) -> tuple[int, dict]:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            conn.close()
        except OSError:
            return 0, {}
        return response.status, json.loads(body) if body else {}

    def stop(self) -> int:
        """SIGTERM; returns the exit code (graceful shutdown exits 0)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def log_lines(self) -> list[dict]:
        lines = []
        for raw in self.log_file.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines

    def messages(self, prefix: str) -> list[dict]:
        """Log lines whose message starts with prefix, oldest first."""
        return [line for line in self.log_lines() if str(line.get("message", "")).startswith(prefix)]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def migrate(env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_FORMAT": "json", **env}
    return subprocess.run([str(STUDENT_API_BIN), "migrate"], env=full, capture_output=True, text=True, timeout=60)


# --------------------------------------------------------------------------
# Load


class Load:
    """Threads that read one student and create-then-delete others, nonstop.

    Each thread keeps one keep-alive connection, as a client behind a load
    balancer does, and opens a new one only after an error.
    """

    def __init__(self, service: Service, readers: int = 2, writers: int = 1) -> None:
        self.service = service
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: list[str] = []
        status, body = self._create_one(self._connection())
        assert status == 201, f"cannot create the student to read: {status} {body}"
        self.student_id = body["id"]
        self.threads = [threading.Thread(target=self._reader, daemon=True) for _ in range(readers)]
        self.threads += [threading.Thread(target=self._writer, daemon=True) for _ in range(writers)]

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        for thread in self.threads:
            thread.join(timeout=15)

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.service.port, timeout=10)

    def _call(self, conn, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"content-type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else {})

    def _create_one(self, conn) -> tuple[int, dict]:
        student = {"name": "Rotation Test", "email": f"rot-{uuid.uuid4().hex}@example.org", "domain": "Physics", "gpa": 7.5}
        return self._call(conn, "POST", "/api/v1/students", student)

    def _record(self, expected: int, status: int, what: str, body: dict) -> None:
        with self.lock:
            if status == expected:
                self.ok += 1
            else:
                self.failures.append(f"{what}: HTTP {status} {body.get('detail', '')}")

    def _loop(self, one_round) -> None:
        conn = self._connection()
        while not self.stop_flag.is_set():
            try:
                one_round(conn)
            except (OSError, http.client.HTTPException) as err:
                with self.lock:
                    self.failures.append(f"connection error: {err!r}")
                conn.close()
                conn = self._connection()
            time.sleep(0.005)
        conn.close()

    def _reader(self) -> None:
        def read(conn) -> None:
            status, body = self._call(conn, "GET", f"/api/v1/students/{self.student_id}")
            self._record(200, status, "GET", body)

        self._loop(read)

    def _writer(self) -> None:
        def write(conn) -> None:
            status, body = self._create_one(conn)
            self._record(201, status, "POST", body)
            if status == 201:
                status, body = self._call(conn, "DELETE", f"/api/v1/students/{body['id']}")
                self._record(204, status, "DELETE", body)

        self._loop(write)

    def assert_no_failures(self, at_least: int) -> None:
        with self.lock:
            failures, ok = list(self.failures), self.ok
        assert not failures, f"{len(failures)} failed requests (of {ok + len(failures)}); first: {failures[:5]}"
        assert ok >= at_least, f"only {ok} requests succeeded"


# --------------------------------------------------------------------------
# Helpers


def database_env(platform: Platform) -> dict[str, str]:
    """Where PostgreSQL is; the credentials come from elsewhere."""
    return {
        "POSTGRES_HOST": platform.db_host,
        "POSTGRES_PORT": str(platform.db_port),
        "POSTGRES_DB": platform.db_name,
        "POSTGRES_SSLMODE": "disable",
    }


def service_sessions(postgres: Postgres) -> list[tuple[str, float]]:
    """(user, backend start as epoch seconds) of the service's open sessions."""
    out = postgres.psql(
        "select usename, extract(epoch from backend_start) from pg_stat_activity "
        "where application_name = 'student-api' and datname = 'student_api'"
    )
    return [(user, float(start)) for user, start in (line.split("|") for line in out.splitlines() if line)]


def dynamic_users(postgres: Postgres) -> set[str]:
    """Roles Vault issued (members of the group role other than the fixed logins)."""
    out = postgres.psql(
        "select m.rolname from pg_auth_members a join pg_roles g on g.oid = a.roleid "
        "join pg_roles m on m.oid = a.member where g.rolname = 'student_api_owner' "
        "and m.rolname not in ('student_api', 'vault')"
    )
    return set(out.split())


def set_password(postgres: Postgres, username: str, password: str) -> None:
    """Changes a login's password in PostgreSQL (open sessions keep working)."""
    postgres.psql(f"alter role {username} password :'pw'", vars={"pw": password})


def align_static_login(platform: Platform, postgres: Postgres) -> None:
    """Sets the static login's password in PostgreSQL to the one in Vault
    (earlier tests of this module rotate it)."""
    seed = platform.kv("student-api/db")
    set_password(postgres, seed["username"], seed["password"])


def dynamic_env(platform: Platform, k8s_api, jwt: Path) -> dict[str, str]:
    """Dynamic users from Vault, logged in through Kubernetes auth as the
    service's service account (its token written to `jwt`)."""
    jwt.write_text(k8s_api.token_for("student-api", "student-api"))
    return {
        **database_env(platform),
        "VAULT_ADDR": platform.vault_addr,
        "VAULT_K8S_ROLE": "student-api",
        "VAULT_K8S_TOKEN_FILE": str(jwt),
        "VAULT_DB_CREDS_PATH": "database/creds/student-api",
    }


def kv_env(platform: Platform, service_token: Path) -> dict[str, str]:
    """The static login from Vault KV, re-read every second."""
    return {
        **database_env(platform),
        "VAULT_ADDR": platform.vault_addr,
        "VAULT_TOKEN_FILE": str(service_token),
        "VAULT_KV_PATH": "secret/student-api/db",
        "VAULT_REFRESH_INTERVAL": "1s",
    }


def assert_sessions_opened_after(postgres: Postgres, moment: float) -> None:
    """Every session the service has open logged in after `moment`."""
    sessions = service_sessions(postgres)
    assert sessions and all(start >= moment for _, start in sessions), sessions


def write_kubelet_secret(directory: Path, files: dict[str, str]) -> None:
    """Publishes files the way kubelet updates a mounted Secret: a new
    timestamped directory, a `..data` symlink swapped atomically by rename,
    and stable per-key symlinks through `..data`."""
    directory.mkdir(parents=True, exist_ok=True)
    version = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{secrets.token_hex(4)}"
    version.mkdir(mode=0o700)
    for name, value in files.items():
        (version / name).write_text(value)
        (version / name).chmod(0o600)
    old = (directory / "..data").resolve() if (directory / "..data").exists() else None
    tmp_link = directory / "..data_tmp"
    tmp_link.symlink_to(version.name)
    os.replace(tmp_link, directory / "..data")
    for name in files:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(Path("..data") / name)
    if old is not None and old != version:
        for child in old.iterdir():
            child.unlink()
        old.rmdir()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service")


@pytest.fixture(scope="module")
def service_token(platform: Platform, workdir: Path) -> Path:
    """A file holding a Vault token with the service's policy (a login of its
    service account), as an agent would write it."""
    path = workdir / "vault-token"
    path.write_text(platform.login("student-api"))
    path.chmod(0o600)
    return path


@pytest.fixture
def short_leases(platform: Platform) -> Iterator[None]:
    """SHORT_LEASES for one test, then the role files as Git holds them."""
    platform.apply_config(SHORT_LEASES)
    yield
    platform.apply_config()


@pytest.fixture
def start_service(workdir: Path) -> Iterator[Callable[[dict[str, str]], Service]]:
    """start_service(env) starts a ready service; any still running at the
    end of the test is stopped, also one that never became ready."""
    started: list[Service] = []

    def start(env: dict[str, str]) -> Service:
        service = Service(env, workdir)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        if service.process is not None and service.process.poll() is None:
            service.stop()


# --------------------------------------------------------------------------
# Tests


@pytest.fixture(scope="module")
def migrated(platform, k8s_api, workdir) -> subprocess.CompletedProcess:
    """`student-api migrate` run once, as the init container runs it: with a
    dynamic user from Vault, logged in through Kubernetes auth."""
    result = migrate(dynamic_env(platform, k8s_api, workdir / "sa-token-migrate"))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_migrations_run_as_a_vault_user_leave_tables_owned_by_the_group_role(migrated, postgres):
    owners = postgres.psql("select distinct tableowner from pg_tables where schemaname = 'public'", db="student_api")
    assert owners.split() == ["student_api_owner"]
    # migrate revokes the user it was issued once it is done.
    assert dynamic_users(postgres) == set()


def test_dynamic_users_rotate_under_load_with_zero_failed_requests(
    platform, postgres, k8s_api, workdir, start_service, migrated, short_leases
):
    service = start_service(dynamic_env(platform, k8s_api, workdir / "sa-token-dynamic"))
    first_user = service.messages("database user issued by Vault")[0]["user"]

    with Load(service) as load:
        rotations = wait_until("two credential re-issues", lambda: len(service.messages(ROTATED)) >= 2 and service.messages(ROTATED), timeout=60)
        wait_until("a new login once the token reached its max TTL", lambda: service.messages("new Vault token obtained"), timeout=40)
        rotations = wait_until("a new user under the new token", lambda: len(service.messages(ROTATED)) > len(rotations) and service.messages(ROTATED), timeout=20)
        # Keep the load on while the second replaced user is drained and revoked.
        wait_until("every replaced user to be revoked", lambda: len(service.messages("previous database user revoked")) >= len(rotations), timeout=30)
    load.assert_no_failures(at_least=500)

    current = rotations[-1]["user"]
    replaced = {first_user} | {r["user"] for r in rotations[:-1]}
    remaining = dynamic_users(postgres)
    assert replaced.isdisjoint(remaining), f"replaced users still in pg_roles: {replaced & remaining}"
    assert {user for user, _ in service_sessions(postgres)} <= {u for u in remaining}
    assert service.get("/ready")[0] == 200

    assert service.stop() == 0
    # At shutdown the service revokes the user it was using.
    wait_until("the last user to be revoked", lambda: current not in dynamic_users(postgres), timeout=10)


def test_a_kv_password_change_is_picked_up_within_the_refresh_interval(platform, postgres, service_token, start_service, migrated):
    align_static_login(platform, postgres)
    service = start_service(kv_env(platform, service_token))
    username = platform.kv("student-api/db")["username"]
    new_password = secrets.token_urlsafe(32)

    with Load(service) as load:
        time.sleep(1)
        # The order an operator follows: PostgreSQL first (open sessions keep
        # working), then Vault, which the service reads on its next refresh.
        set_password(postgres, username, new_password)
        changed_at = time.time()
        body = {"data": {"username": username, "password": new_password}}
        platform.vault("POST", "secret/data/student-api/db", body, token=platform.login("operator"))
        wait_until("the service to switch", lambda: service.messages(ROTATED), timeout=5)
        switched_at = time.time()
        time.sleep(1.5)
    load.assert_no_failures(at_least=200)
    assert switched_at - changed_at < 3, "the switch must come within the 1 s refresh interval (plus a login)"
    # Every session now open logged in after the change, with the new password.
    assert_sessions_opened_after(postgres, changed_at)
    assert service.stop() == 0


def test_a_swapped_secret_file_rotates_the_pool_with_zero_failed_requests(platform, postgres, workdir, start_service, migrated):
    mount = workdir / "secret-mount"
    username = platform.kv("student-api/db")["username"]
    password = secrets.token_urlsafe(32)
    set_password(postgres, username, password)
    write_kubelet_secret(mount, {"POSTGRES_USER": username, "POSTGRES_PASSWORD": password})
    env = {
        **database_env(platform),
        "POSTGRES_USER_FILE": str(mount / "POSTGRES_USER"),
        "POSTGRES_PASSWORD_FILE": str(mount / "POSTGRES_PASSWORD"),
        "SECRET_FILE_POLL_INTERVAL": "500ms",
    }
    service = start_service(env)

    with Load(service) as load:
        time.sleep(1)
        new_password = secrets.token_urlsafe(32)
        set_password(postgres, username, new_password)
        changed_at = time.time()
        write_kubelet_secret(mount, {"POSTGRES_USER": username, "POSTGRES_PASSWORD": new_password})
        wait_until("the service to switch", lambda: service.messages(ROTATED), timeout=5)
        time.sleep(1.5)
    load.assert_no_failures(at_least=200)
    assert_sessions_opened_after(postgres, changed_at)
    assert service.stop() == 0


def test_vault_down_or_sealed_does_not_stop_the_service_and_refresh_recovers_as_openbao_unseals_itself(
    platform, postgres, service_token, start_service, migrated
):
    align_static_login(platform, postgres)
    service = start_service(kv_env(platform, service_token))

    def credentials_check() -> str:
        status, body = service.get("/ready")
        assert status == 200, body
        return body["checks"]["credentials (vault)"]

    with Load(service) as load:
        # Down: the service keeps its pool; readiness names the problem.
        platform.openbao.stop()
        problem = wait_until("readiness to report Vault unreachable", lambda: "cannot reach Vault" in credentials_check() and credentials_check(), timeout=15)
        assert "secret/data/student-api/db" in problem
        # Back: it unseals itself, no one steps in.
        platform.openbao.start()
        wait_until("the refresh to recover after the restart", lambda: credentials_check() == "ok", timeout=15)
        # Sealed on purpose (break-glass), then restarted: unsealed again by itself.
        platform.vault("PUT", "sys/seal", token=platform.login("recovery"))
        wait_until("readiness to report Vault sealed", lambda: "not available" in credentials_check(), timeout=15)
        platform.openbao.restart()
        wait_until("the refresh to recover after the seal", lambda: credentials_check() == "ok", timeout=15)
    load.assert_no_failures(at_least=200)
    assert service.stop() == 0


@pytest.mark.parametrize("auth", ["token", "role"])
def test_the_service_stops_at_start_with_a_clear_error_when_vault_refuses_it(auth, platform, k8s_api, workdir):
    bad_token = "s." + secrets.token_urlsafe(24)
    env = {**database_env(platform), "VAULT_ADDR": platform.vault_addr, "VAULT_DB_CREDS_PATH": "database/creds/student-api"}
    if auth == "token":
        env["VAULT_TOKEN"] = bad_token
        expected = "Vault refused auth/token/lookup-self (HTTP 403)"
    else:
        # A service account the student-api role is not bound to.
        jwt = workdir / "sa-token-wrong"
        jwt.write_text(k8s_api.token_for("student-api", "default"))
        env |= {"VAULT_K8S_ROLE": "student-api", "VAULT_K8S_TOKEN_FILE": str(jwt)}
        expected = "Vault refused auth/kubernetes/login (HTTP 403)"
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_FORMAT": "json", "LISTEN_ADDR": f"127.0.0.1:{free_port()}", **env}
    result = subprocess.run([str(STUDENT_API_BIN), "serve"], env=full, capture_output=True, text=True, timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "cannot get credentials for the database" in output, output
    assert expected in output, output
    assert bad_token not in output
    if auth == "role":
        assert jwt.read_text() not in output
