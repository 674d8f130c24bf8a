#!/usr/bin/env python3
"""Initialise, unseal and configure the platform's OpenBao, as code.

Usage: bootstrap.py {init|unseal|configure|all}

  init       initialise an uninitialised server with Shamir key shares and
             store the unseal keys and the root token in the init file or in
             a Kubernetes Secret (never on stdout or in a log)
  unseal     submit unseal keys from that file or Secret until unsealed
  configure  audit device check, KV v2 at secret/, policies, KV seeds,
             Kubernetes auth and its roles, database secrets engine
  all        init, unseal, configure; configure is reported "skipped" (not
             failed) when there is no token for it: no VAULT_TOKEN and the
             root token revoked and removed from the init material

Runs locally against a port-forward and in the cluster as a Job. It needs
only the Python 3.11+ standard library and talks to the OpenBao HTTP API
(the Vault API) and, for the init Secret, to the Kubernetes API.

Every step reads the current state first and writes only what differs, so a
re-run changes nothing. Each item is reported as "unchanged", "created",
"updated" or "skipped", and the last line is "changes: N" (created plus
updated). Nothing is ever deleted.
No unseal key, token or password is printed: errors name the API path and
quote the server's error text only.

Environment (the defaults suit the Job in the cluster):
  VAULT_ADDR            OpenBao address [http://openbao.openbao.svc:8200]
  VAULT_CACERT          CA bundle for an https VAULT_ADDR [system CAs]
  VAULT_TOKEN           token for configure [the root token of the init material]
  BOOTSTRAP_WAIT        seconds to wait for OpenBao to answer and become active [300]
  BOOTSTRAP_KEY_SHARES / BOOTSTRAP_KEY_THRESHOLD   Shamir split for init [5 / 3]
  Init material (unseal keys and root token), exactly one of:
  BOOTSTRAP_INIT_FILE   JSON file, created with mode 0600 and never overwritten
  BOOTSTRAP_INIT_SECRET name of a Kubernetes Secret (key "init.json")
    BOOTSTRAP_INIT_SECRET_NAMESPACE  [the Job's own namespace, else openbao]
    BOOTSTRAP_INIT_SECRET_API        Kubernetes API URL
                                     [https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT]
    BOOTSTRAP_INIT_SECRET_SA_DIR     service-account token, ca.crt and namespace
                                     [/var/run/secrets/kubernetes.io/serviceaccount]
  BOOTSTRAP_POLICY_DIR  directory of <policy-name>.hcl files [policies/ next to this file]
  BOOTSTRAP_AUDIT_FILE_PATH  file_path of a file audit device created through
                        the API, only when the server allows that [/openbao/audit/audit.log]
  BOOTSTRAP_DB_HOST     PostgreSQL host for the database engine [postgres.database.svc.cluster.local]
  BOOTSTRAP_DB_PORT / BOOTSTRAP_DB_NAME   [5432 / student_api]
  BOOTSTRAP_DB_SSLMODE  [prefer: TLS whenever the server offers it; Vault logs in
                        with SCRAM and sends issued passwords hashed, so no
                        password crosses the wire in clear either way. Use
                        verify-full once PostgreSQL has a certificate.]
  BOOTSTRAP_DB_WAIT     seconds to retry the connection while PostgreSQL is not
                        ready or does not know the vault user yet [300]
  BOOTSTRAP_DB_DEFAULT_TTL / BOOTSTRAP_DB_MAX_TTL   lease of issued users [1h / 24h]
  BOOTSTRAP_K8S_HOST    API server OpenBao sends TokenReviews to [https://kubernetes.default.svc]
  BOOTSTRAP_K8S_CA_CERT PEM file of that API server's CA [unset: OpenBao's pod CA]
  BOOTSTRAP_K8S_DISABLE_LOCAL_CA_JWT  true when OpenBao runs outside the cluster [false]
  BOOTSTRAP_K8S_AUDIENCE  audience the service-account tokens must carry [vault];
                        empty disables the check
  BOOTSTRAP_K8S_TOKEN_TTL / BOOTSTRAP_K8S_TOKEN_MAX_TTL  tokens of the auth roles [1h / 24h]
Durations are seconds or a number with s, m or h (e.g. 90s, 10m, 1h).

Server configuration this expects: OpenBao 2.x refuses to create audit
devices through the API unless `unsafe_allow_api_audit_creation = true`, so
the file audit device is declared in the server's HCL and configure only
checks that one exists:

  audit "file" "file" {
    options { file_path = "/openbao/audit/audit.log" }
  }

Exit codes:
  0  done (also when nothing had to change)
  1  an API call failed or the server is in an unexpected state
  2  invalid usage or configuration (the message names the variable)
  3  the server is uninitialised or sealed and this mode cannot fix that
  4  init material missing, unreadable, unsafe or in conflict
  5  timed out waiting for OpenBao or PostgreSQL
  6  the server was initialised but its init material could not be stored
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import ssl
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_SEALED = 3
EXIT_MATERIAL = 4
EXIT_TIMEOUT = 5
EXIT_MATERIAL_LOST = 6

MODES = ("init", "unseal", "configure", "all")
HTTP_TIMEOUT = 30

KV_MOUNT = "secret"
DB_MOUNT = "database"
DB_CONNECTION = "postgres"
DB_ROLE = "student-api"
K8S_MOUNT = "kubernetes"
SEED_VAULT_DB = "postgres/vault"
# Set on the metadata of the vault user's seed once Vault has rotated that
# password, so a crash between creating the connection and rotating it is
# finished on the next run, and so the stale KV copy explains itself.
ROTATED_MARKER = "rotated-by-vault"

# Creation and revocation of the users database/creds/student-api issues.
# They are members of student_api_owner and their sessions SET ROLE to it,
# so what they create belongs to the group and dropping them never fails on
# owned objects; revocation ends their sessions first (pg_signal_backend).
DB_CREATION_STATEMENTS = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
    "VALID UNTIL '{{expiration}}' IN ROLE student_api_owner;",
    "ALTER ROLE \"{{name}}\" SET role = 'student_api_owner';",
]
DB_REVOCATION_STATEMENTS = [
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';",
    'DROP ROLE IF EXISTS "{{name}}";',
]


@dataclass(frozen=True)
class Seed:
    """A KV v2 secret created once with a generated password, never overwritten."""

    path: str
    fixed: Mapping[str, str]
    secret_key: str


SEEDS = (
    Seed("student-api/db", {"username": "student_api"}, "password"),
    Seed("postgres/superuser", {"username": "postgres"}, "password"),
    Seed(SEED_VAULT_DB, {"username": "vault"}, "password"),
    Seed("observability/postgres-exporter", {"username": "postgres_exporter"}, "password"),
    Seed("observability/grafana", {"admin-user": "admin"}, "admin-password"),
)


@dataclass(frozen=True)
class K8sRole:
    """A Kubernetes auth role: one service account in one namespace, one policy."""

    name: str
    service_account: str
    namespace: str
    policy: str


K8S_ROLES = (
    K8sRole("student-api", "student-api", "student-api", "student-api"),
    K8sRole("external-secrets", "external-secrets", "external-secrets", "external-secrets"),
)


class BootstrapError(Exception):
    """A failure with a message fit for an operator and the exit code to use."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


class Unreachable(BootstrapError):
    """A request got no HTTP answer (refused, timed out, TLS failure)."""


class ApiError(BootstrapError):
    """An API answered with an unexpected status; carries that status and its error text."""

    def __init__(self, method: str, where: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {where}: HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


# --------------------------------------------------------------------------
# Settings


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    """The variable's value, or the default when unset or empty."""
    value = env.get(name, "").strip()
    return value or default


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    """An integer variable; a bad value is a usage error naming the variable."""
    raw = env_str(env, name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise BootstrapError(f"{name}: expected an integer, got {raw!r}", EXIT_USAGE) from None
    if value < minimum:
        raise BootstrapError(f"{name}: must be at least {minimum}, got {value}", EXIT_USAGE)
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A true/false variable (true, false, 1, 0, yes, no)."""
    raw = env_str(env, name, "true" if default else "false").lower()
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise BootstrapError(f"{name}: expected true or false, got {raw!r}", EXIT_USAGE)


def env_duration(env: Mapping[str, str], name: str, default: str) -> int:
    """A duration variable (seconds, or a number with s, m or h) in seconds."""
    raw = env_str(env, name, default)
    match = re.fullmatch(r"(\d+)([smh]?)", raw)
    if not match or int(match.group(1)) == 0:
        raise BootstrapError(f"{name}: expected a positive duration like 90s, 10m or 1h, got {raw!r}", EXIT_USAGE)
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@dataclass(frozen=True)
class Settings:
    """Everything the bootstrap reads from the environment, validated once."""

    vault_addr: str
    vault_cacert: str | None
    vault_token: str | None = field(repr=False)
    wait: int
    key_shares: int
    key_threshold: int
    init_file: str | None
    init_secret: str | None
    init_secret_namespace: str
    init_secret_api: str | None
    init_secret_sa_dir: str
    policy_dir: Path
    audit_file_path: str
    db_host: str
    db_port: int
    db_name: str
    db_sslmode: str
    db_wait: int
    db_default_ttl: int
    db_max_ttl: int
    k8s_host: str
    k8s_ca_cert: str | None
    k8s_disable_local_ca_jwt: bool
    k8s_audience: str
    k8s_token_ttl: int
    k8s_token_max_ttl: int


def load_settings(env: Mapping[str, str]) -> Settings:
    """Reads and validates the environment; fails fast naming the bad variable."""
    shares = env_int(env, "BOOTSTRAP_KEY_SHARES", 5, minimum=1)
    threshold = env_int(env, "BOOTSTRAP_KEY_THRESHOLD", 3, minimum=1)
    if threshold > shares:
        raise BootstrapError("BOOTSTRAP_KEY_THRESHOLD must not exceed BOOTSTRAP_KEY_SHARES", EXIT_USAGE)
    init_file = env.get("BOOTSTRAP_INIT_FILE") or None
    init_secret = env.get("BOOTSTRAP_INIT_SECRET") or None
    if init_file and init_secret:
        raise BootstrapError("set only one of BOOTSTRAP_INIT_FILE and BOOTSTRAP_INIT_SECRET", EXIT_USAGE)
    sa_dir = env_str(env, "BOOTSTRAP_INIT_SECRET_SA_DIR", "/var/run/secrets/kubernetes.io/serviceaccount")
    sslmode = env_str(env, "BOOTSTRAP_DB_SSLMODE", "prefer")
    if sslmode not in ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"):
        raise BootstrapError(f"BOOTSTRAP_DB_SSLMODE: unknown sslmode {sslmode!r}", EXIT_USAGE)
    db_default_ttl = env_duration(env, "BOOTSTRAP_DB_DEFAULT_TTL", "1h")
    db_max_ttl = env_duration(env, "BOOTSTRAP_DB_MAX_TTL", "24h")
    if db_default_ttl > db_max_ttl:
        raise BootstrapError("BOOTSTRAP_DB_DEFAULT_TTL must not exceed BOOTSTRAP_DB_MAX_TTL", EXIT_USAGE)
    k8s_ca_file = env.get("BOOTSTRAP_K8S_CA_CERT") or None
    return Settings(
        vault_addr=env_str(env, "VAULT_ADDR", "http://openbao.openbao.svc:8200").rstrip("/"),
        vault_cacert=env.get("VAULT_CACERT") or None,
        vault_token=env.get("VAULT_TOKEN") or None,
        wait=env_int(env, "BOOTSTRAP_WAIT", 300),
        key_shares=shares,
        key_threshold=threshold,
        init_file=init_file,
        init_secret=init_secret,
        init_secret_namespace=env_str(env, "BOOTSTRAP_INIT_SECRET_NAMESPACE", own_namespace(sa_dir)),
        init_secret_api=env.get("BOOTSTRAP_INIT_SECRET_API") or in_cluster_api(env),
        init_secret_sa_dir=sa_dir,
        policy_dir=Path(env_str(env, "BOOTSTRAP_POLICY_DIR", str(Path(__file__).resolve().parent / "policies"))),
        audit_file_path=env_str(env, "BOOTSTRAP_AUDIT_FILE_PATH", "/openbao/audit/audit.log"),
        db_host=env_str(env, "BOOTSTRAP_DB_HOST", "postgres.database.svc.cluster.local"),
        db_port=env_int(env, "BOOTSTRAP_DB_PORT", 5432, minimum=1),
        db_name=env_str(env, "BOOTSTRAP_DB_NAME", "student_api"),
        db_sslmode=sslmode,
        db_wait=env_int(env, "BOOTSTRAP_DB_WAIT", 300),
        db_default_ttl=db_default_ttl,
        db_max_ttl=db_max_ttl,
        k8s_host=env_str(env, "BOOTSTRAP_K8S_HOST", "https://kubernetes.default.svc"),
        k8s_ca_cert=read_text_file(k8s_ca_file, "BOOTSTRAP_K8S_CA_CERT") if k8s_ca_file else None,
        k8s_disable_local_ca_jwt=env_bool(env, "BOOTSTRAP_K8S_DISABLE_LOCAL_CA_JWT", False),
        k8s_audience=env.get("BOOTSTRAP_K8S_AUDIENCE", "vault").strip(),
        k8s_token_ttl=env_duration(env, "BOOTSTRAP_K8S_TOKEN_TTL", "1h"),
        k8s_token_max_ttl=env_duration(env, "BOOTSTRAP_K8S_TOKEN_MAX_TTL", "24h"),
    )


def own_namespace(sa_dir: str) -> str:
    """The namespace the Job runs in, from its service-account mount; openbao elsewhere."""
    try:
        return Path(sa_dir, "namespace").read_text(encoding="utf-8").strip() or "openbao"
    except OSError:
        return "openbao"


def in_cluster_api(env: Mapping[str, str]) -> str | None:
    """The API server URL Kubernetes advertises to every pod, if any."""
    host = env.get("KUBERNETES_SERVICE_HOST")
    if not host:
        return None
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"https://{host}:{env.get('KUBERNETES_SERVICE_PORT', '443')}"


def read_text_file(path: str, variable: str) -> str:
    """The content of a file a variable names; unreadable is a usage error."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise BootstrapError(f"{variable}: cannot read {path}: {err.strerror}", EXIT_USAGE) from None


# --------------------------------------------------------------------------
# HTTP


def http_opener(cafile: str | None) -> urllib.request.OpenerDirector:
    """An opener that verifies TLS and ignores proxy variables.

    Proxies are ignored so that tokens and keys only ever travel to the
    address configured here.
    """
    context = ssl.create_default_context(cafile=cafile)
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=context),
    )


def decode_body(raw: bytes) -> Any:
    """The JSON body of a response, or its text when it is not JSON."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def http_json(
    opener: urllib.request.OpenerDirector,
    method: str,
    url: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    """Sends one request with an optional JSON body; returns (status, decoded body).

    Transport failures raise OSError (URLError is one); HTTP error statuses
    are returned, not raised, so callers decide what is expected.
    """
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with opener.open(request, timeout=HTTP_TIMEOUT) as response:
            return response.status, decode_body(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, decode_body(err.read())


def error_text(body: Any) -> str:
    """The error text of an API answer (Vault's "errors" or Kubernetes' "message")."""
    if isinstance(body, dict):
        if body.get("errors"):
            return "; ".join(" ".join(str(e).split()) for e in body["errors"])
        if body.get("message"):
            return str(body["message"])
    text = " ".join(str(body or "").split())
    return text[:300] or "(no error text)"


class Vault:
    """A minimal client of the OpenBao/Vault HTTP API."""

    def __init__(self, addr: str, cacert: str | None) -> None:
        self.addr = addr
        self.token: str | None = None
        self._opener = http_opener(cacert)

    def request(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 204)) -> tuple[int, Any]:
        """Calls /v1/<path>; returns (status, body) when the status is in ok, else raises ApiError."""
        headers = {"X-Vault-Request": "true"}
        if self.token:
            headers["X-Vault-Token"] = self.token
        try:
            status, answer = http_json(self._opener, method, f"{self.addr}/v1/{path}", body, headers)
        except OSError as err:
            raise Unreachable(f"{method} {self.addr}/v1/{path}: {transport_reason(err)}") from None
        if status not in ok:
            raise ApiError(method, f"/v1/{path}", status, error_text(answer))
        return status, answer

    def read(self, path: str) -> dict | None:
        """The "data" of GET <path>, or None when the path does not exist."""
        status, answer = self.request("GET", path, ok=(200, 404))
        if status == 404:
            return None
        return (answer or {}).get("data") or {}

    def write(self, path: str, body: Any) -> dict | None:
        """POST <path>; returns the answer's "data", if any."""
        _, answer = self.request("POST", path, body)
        return (answer or {}).get("data") if isinstance(answer, dict) else None


def transport_reason(err: OSError) -> str:
    """A short reason for a transport failure (refused, timeout, TLS error)."""
    reason = getattr(err, "reason", None) or err
    return str(reason)


# --------------------------------------------------------------------------
# Init material: the unseal keys and the root token


def validate_material(material: Any, where: str) -> dict:
    """Checks the init material's shape.

    unseal_keys_b64 (Shamir seal) or recovery_keys_b64 (auto-unseal): a
    non-empty list of strings; root_token: a string, or absent once revoked.
    """
    if not isinstance(material, dict):
        raise BootstrapError(f"{where}: init material is not a JSON object", EXIT_MATERIAL)
    keys = material.get("unseal_keys_b64", material.get("recovery_keys_b64"))
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise BootstrapError(f"{where}: init material has no unseal_keys_b64 or recovery_keys_b64 list", EXIT_MATERIAL)
    token = material.get("root_token")
    if token is not None and not isinstance(token, str):
        raise BootstrapError(f"{where}: init material has an invalid root_token", EXIT_MATERIAL)
    return material


class FileStore:
    """Init material in a local JSON file, mode 0600, never overwritten.

    reserve() creates the file before the server is initialised, so a path
    that cannot be written fails while nothing is lost yet.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def describe(self) -> str:
        return f"file {self.path}"

    def reserve(self) -> None:
        """Creates the empty file exclusively, with mode 0600 from the first instant."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            self._fd = os.open(self.path, flags, 0o600)
        except FileExistsError:
            raise BootstrapError(
                f"{self.describe()} already exists but the server is uninitialised; "
                "refusing to overwrite it (it may hold the keys of another server or a snapshot)",
                EXIT_MATERIAL,
            ) from None
        except OSError as err:
            raise BootstrapError(f"cannot create {self.describe()}: {err.strerror}", EXIT_MATERIAL) from None
        os.fchmod(self._fd, 0o600)  # exact, whatever the umask

    def save(self, material: dict) -> None:
        """Writes the material into the reserved file and flushes it to disk."""
        assert self._fd is not None, "reserve() first"
        data = json.dumps(material, indent=2).encode() + b"\n"
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None

    def abandon(self) -> None:
        """Removes the reserved, still empty file after a failed init."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            os.unlink(self.path)

    def load(self) -> dict:
        """Reads the material; refuses a file that others can read."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise BootstrapError(f"{self.describe()} does not exist (run init first)", EXIT_MATERIAL) from None
        except OSError as err:
            raise BootstrapError(f"cannot open {self.describe()}: {err.strerror}", EXIT_MATERIAL) from None
        with os.fdopen(fd, "rb") as handle:
            if stat.S_IMODE(os.fstat(handle.fileno()).st_mode) & 0o077:
                raise BootstrapError(f"{self.describe()} is accessible to others; chmod 600 it", EXIT_MATERIAL)
            raw = handle.read()
        try:
            return validate_material(json.loads(raw), self.describe())
        except ValueError:
            raise BootstrapError(f"{self.describe()} is not valid JSON", EXIT_MATERIAL) from None


class SecretStore:
    """Init material in a Kubernetes Secret (key init.json), written through the API.

    reserve() creates the Secret empty before the server is initialised (or
    reuses an empty one), so missing permissions fail while nothing is lost
    yet; save() then fills it with an update bound to that resourceVersion.
    Needs get, create and update on this one Secret, nothing else.
    """

    KEY = "init.json"

    def __init__(self, api: str | None, namespace: str, name: str, sa_dir: str) -> None:
        if not api:
            raise BootstrapError(
                "BOOTSTRAP_INIT_SECRET needs the Kubernetes API: run in a pod or set BOOTSTRAP_INIT_SECRET_API",
                EXIT_USAGE,
            )
        self.api = api.rstrip("/")
        self.namespace = namespace
        self.name = name
        self.sa_dir = Path(sa_dir)
        ca = self.sa_dir / "ca.crt"
        self._opener = http_opener(str(ca) if self.api.startswith("https:") and ca.exists() else None)
        self._resource_version: str | None = None

    def describe(self) -> str:
        return f"Secret {self.namespace}/{self.name}"

    def _url(self, name: str | None = None) -> str:
        base = f"{self.api}/api/v1/namespaces/{urllib.parse.quote(self.namespace)}/secrets"
        return f"{base}/{urllib.parse.quote(name)}" if name else base

    def _call(self, method: str, url: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> tuple[int, Any]:
        """One Kubernetes API call authenticated with the pod's service-account token."""
        try:
            token = (self.sa_dir / "token").read_text(encoding="utf-8").strip()
        except OSError as err:
            raise BootstrapError(
                f"cannot read the service-account token in {self.sa_dir}: {err.strerror}", EXIT_USAGE
            ) from None
        try:
            status, answer = http_json(self._opener, method, url, body, {"Authorization": f"Bearer {token}"})
        except OSError as err:
            raise BootstrapError(f"{method} {url}: {transport_reason(err)}", EXIT_MATERIAL) from None
        if status not in ok:
            raise ApiError(method, url, status, error_text(answer))
        return status, answer

    def _get(self) -> dict | None:
        status, answer = self._call("GET", self._url(self.name), ok=(200, 404))
        return answer if status == 200 else None

    def _manifest(self, data: Mapping[str, str] | None, resource_version: str | None = None) -> dict:
        """The Secret object as written: labelled, annotated, optionally bound to a version."""
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/name": "openbao", "app.kubernetes.io/component": "bootstrap"},
            "annotations": {"openbao.org/contents": f"unseal keys and root token ({self.KEY})"},
        }
        if resource_version:
            metadata["resourceVersion"] = resource_version
        manifest: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata}
        if data is not None:
            manifest["data"] = dict(data)
        return manifest

    def reserve(self) -> None:
        """Makes sure an empty Secret exists and remembers its resourceVersion."""
        current = self._get()
        if current is None:
            _, current = self._call("POST", self._url(), self._manifest(None), ok=(201,))
        elif (current.get("data") or {}).get(self.KEY):
            raise BootstrapError(
                f"{self.describe()} already holds init material but the server is uninitialised; "
                "refusing to overwrite it (it may hold the keys of another server or a snapshot)",
                EXIT_MATERIAL,
            )
        self._resource_version = current["metadata"]["resourceVersion"]

    def save(self, material: dict) -> None:
        """Stores the material in the reserved Secret; the update fails if it changed meanwhile."""
        encoded = base64.b64encode(json.dumps(material, indent=2).encode()).decode()
        self._call("PUT", self._url(self.name), self._manifest({self.KEY: encoded}, self._resource_version))

    def abandon(self) -> None:
        """Nothing to undo: an empty Secret is reused by the next run."""

    def load(self) -> dict:
        """Reads and decodes the material from the Secret."""
        current = self._get()
        encoded = ((current or {}).get("data") or {}).get(self.KEY)
        if not encoded:
            raise BootstrapError(f"{self.describe()} holds no {self.KEY} (run init first)", EXIT_MATERIAL)
        try:
            return validate_material(json.loads(base64.b64decode(encoded)), self.describe())
        except ValueError:
            raise BootstrapError(f"{self.describe()}: {self.KEY} is not valid JSON", EXIT_MATERIAL) from None


def material_store(settings: Settings) -> FileStore | SecretStore:
    """The configured place of the init material."""
    if settings.init_file:
        return FileStore(settings.init_file)
    if settings.init_secret:
        return SecretStore(
            settings.init_secret_api,
            settings.init_secret_namespace,
            settings.init_secret,
            settings.init_secret_sa_dir,
        )
    raise BootstrapError("set BOOTSTRAP_INIT_FILE or BOOTSTRAP_INIT_SECRET (where the init material lives)", EXIT_USAGE)


# --------------------------------------------------------------------------
# Reporting


class Report:
    """One line per item (unchanged, created, updated, skipped) and the count of changes."""

    def __init__(self) -> None:
        self.changes = 0

    def item(self, status: str, what: str) -> None:
        if status in ("created", "updated"):
            self.changes += 1
        print(f"{status:<10} {what}", flush=True)


def log(message: str) -> None:
    """Progress on stderr (never a secret)."""
    print(f"bootstrap: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Server state


def wait_for(what: str, seconds: int, probe: Callable[[], Any]) -> Any:
    """Calls probe until it returns a value other than None, for at most seconds.

    Unreachable and 5xx answers mean the server is not up yet and are
    retried; any other error is final. The timeout message quotes the last
    failure.
    """
    deadline = time.monotonic() + seconds
    delay, last = 0.2, "not ready"
    while True:
        try:
            result = probe()
            if result is not None:
                return result
            last = "not ready"
        except Unreachable as err:
            last = str(err)
        except ApiError as err:
            if err.status < 500:
                raise
            last = str(err)
        if time.monotonic() + delay > deadline:
            raise BootstrapError(f"timed out after {seconds}s waiting for {what}: {last}", EXIT_TIMEOUT)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def seal_status(vault: Vault, wait: int) -> dict:
    """sys/seal-status (unauthenticated), waiting until the server answers."""
    return wait_for(f"OpenBao at {vault.addr}", wait, lambda: vault.request("GET", "sys/seal-status")[1])


def wait_active(vault: Vault, wait: int) -> None:
    """Waits until the server is unsealed and active (sys/health answers 200).

    Right after unsealing, a Raft node needs a moment to elect itself leader.
    """

    def probe() -> bool | None:
        status, answer = vault.request("GET", "sys/health", ok=(200, 429, 472, 473, 501, 503))
        if status == 501:
            raise BootstrapError("OpenBao is not initialised (run init)", EXIT_SEALED)
        if status == 503:
            raise BootstrapError("OpenBao is sealed (run unseal)", EXIT_SEALED)
        return True if status == 200 else None

    wait_for(f"OpenBao at {vault.addr} to become active", wait, probe)


# --------------------------------------------------------------------------
# init and unseal


def auto_unseal(status: Mapping[str, Any]) -> bool:
    """Whether the server unseals itself (transit or KMS seal) instead of Shamir keys."""
    return status.get("type", "shamir") != "shamir"


def init_request(settings: Settings, auto: bool) -> dict:
    """The sys/init body: unseal key shares, or recovery key shares under auto-unseal."""
    kind = "recovery" if auto else "secret"
    return {f"{kind}_shares": settings.key_shares, f"{kind}_threshold": settings.key_threshold}


def init_material(settings: Settings, answer: Mapping[str, Any], auto: bool) -> dict:
    """What init stores: the key shares of the server's kind and the root token."""
    kind = "recovery" if auto else "unseal"
    return {
        f"{kind}_keys_b64": answer["recovery_keys_base64" if auto else "keys_base64"],
        f"{kind}_shares": settings.key_shares,
        f"{kind}_threshold": settings.key_threshold,
        "root_token": answer["root_token"],
    }


def do_init(settings: Settings, vault: Vault, report: Report) -> None:
    """Initialises an uninitialised server and stores its init material.

    The store is reserved first, so a place that cannot be written fails
    before the keys exist; they are never printed as a fallback.
    """
    status = seal_status(vault, settings.wait)
    if status.get("initialized"):
        report.item("unchanged", "init (server already initialised)")
        return
    auto = auto_unseal(status)
    store = material_store(settings)
    store.reserve()
    try:
        _, answer = vault.request("PUT", "sys/init", init_request(settings, auto))
    except BaseException:
        store.abandon()
        raise
    try:
        store.save(init_material(settings, answer, auto))
    except (BootstrapError, OSError) as err:
        raise BootstrapError(
            f"OpenBao is initialised but its init material could not be stored in {store.describe()}: {err}. "
            "The keys exist nowhere else: wipe the server's storage and run init again.",
            EXIT_MATERIAL_LOST,
        ) from None
    kind = f"recovery key shares, auto-unseal {status.get('type')}" if auto else "key shares"
    report.item(
        "created",
        f"init ({settings.key_shares} {kind}, threshold {settings.key_threshold}) -> {store.describe()}",
    )


def do_unseal(settings: Settings, vault: Vault, report: Report) -> None:
    """Submits unseal keys from the init material until the server is unsealed.

    A server with auto-unseal unseals itself; if it is still sealed, its
    seal (transit server or KMS) is unreachable and keys would not help.
    """
    status = seal_status(vault, settings.wait)
    if not status.get("initialized"):
        raise BootstrapError("OpenBao is not initialised (run init)", EXIT_SEALED)
    if not status.get("sealed"):
        report.item("unchanged", "unseal (server already unsealed)")
        return
    if auto_unseal(status):
        raise BootstrapError(
            f"OpenBao uses auto-unseal ({status.get('type')}) and is still sealed: "
            "check that it can reach its seal (see its log)",
            EXIT_SEALED,
        )
    keys = material_store(settings).load().get("unseal_keys_b64")
    if not keys:
        raise BootstrapError("the init material holds recovery keys, not unseal keys", EXIT_MATERIAL)
    if status.get("progress"):
        # Keys someone else submitted half-way would mix with ours.
        vault.request("PUT", "sys/unseal", {"reset": True})
    for key in keys:
        _, answer = vault.request("PUT", "sys/unseal", {"key": key})
        if not answer.get("sealed"):
            report.item("updated", "unseal (server unsealed)")
            return
    raise BootstrapError(
        "OpenBao is still sealed after every key of the init material was submitted: "
        "the material belongs to another server",
        EXIT_MATERIAL,
    )


# --------------------------------------------------------------------------
# configure


class NoToken(BootstrapError):
    """Neither VAULT_TOKEN nor a root token in the init material."""


def configure_token(settings: Settings) -> str:
    """VAULT_TOKEN if set, else the root token of the init material."""
    if settings.vault_token:
        return settings.vault_token
    if not (settings.init_file or settings.init_secret):
        raise BootstrapError(
            "configure needs VAULT_TOKEN or the init material (BOOTSTRAP_INIT_FILE/_SECRET)", EXIT_USAGE
        )
    token = material_store(settings).load().get("root_token")
    if not token:
        raise NoToken(
            "the init material holds no root token (revoked after bootstrap): "
            "generate one (bao operator generate-root) and pass it as VAULT_TOKEN",
            EXIT_MATERIAL,
        )
    return token


def check_token(vault: Vault) -> None:
    """Fails clearly when the token is unknown or expired, before any change."""
    try:
        vault.request("GET", "auth/token/lookup-self")
    except ApiError as err:
        if err.status != 403:
            raise
        raise BootstrapError(
            "the token for configure is not valid (VAULT_TOKEN, or the root token of the init material)"
        ) from None


def changed_fields(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Names of the wanted fields whose current value differs."""
    return [key for key, value in wanted.items() if current.get(key) != value]


def ensure_audit_device(settings: Settings, vault: Vault, report: Report) -> None:
    """Checks that a file audit device exists; creates one only if the server allows that."""
    devices = vault.read("sys/audit") or {}
    files = sorted(
        path for path, device in devices.items() if isinstance(device, dict) and device.get("type") == "file"
    )
    if files:
        report.item("unchanged", f"audit device {files[0]} (file)")
        return
    body = {"type": "file", "options": {"file_path": settings.audit_file_path}}
    try:
        vault.request("PUT", "sys/audit/file", body)
    except ApiError as err:
        raise BootstrapError(
            f"no file audit device is enabled and the server refuses to create one through the API ({err}). "
            'Declare it in the OpenBao server configuration: audit "file" "file" '
            '{ options { file_path = "/openbao/audit/audit.log" } } and restart or SIGHUP the server.'
        ) from None
    report.item("created", f"audit device file/ (file, {settings.audit_file_path})")


def ensure_mount(vault: Vault, report: Report, path: str, kind: str, options: Mapping[str, str] | None = None) -> None:
    """Mounts a secrets engine when absent; refuses to touch a mount of another kind."""
    mounts = vault.read("sys/mounts") or {}
    current = mounts.get(f"{path}/")
    if current is None:
        body: dict[str, Any] = {"type": kind}
        if options:
            body["options"] = dict(options)
        vault.write(f"sys/mounts/{path}", body)
        report.item("created", f"secrets engine {path}/ ({kind})")
        return
    current_options = current.get("options") or {}
    if current.get("type") != kind or any(current_options.get(k) != v for k, v in (options or {}).items()):
        raise BootstrapError(
            f"sys/mounts/{path}: a {current.get('type')} engine with options {current_options} is mounted there; "
            f"expected {kind} {dict(options or {})}. Move it away by hand; the bootstrap never remounts data."
        )
    report.item("unchanged", f"secrets engine {path}/ ({kind})")


def ensure_auth_method(vault: Vault, report: Report, path: str, kind: str) -> None:
    """Enables an auth method when absent; refuses a method of another kind there."""
    methods = vault.read("sys/auth") or {}
    current = methods.get(f"{path}/")
    if current is None:
        vault.write(f"sys/auth/{path}", {"type": kind})
        report.item("created", f"auth method {path}/ ({kind})")
    elif current.get("type") != kind:
        raise BootstrapError(f"sys/auth/{path}: a {current.get('type')} auth method is enabled there, expected {kind}")
    else:
        report.item("unchanged", f"auth method {path}/ ({kind})")


def policy_files(policy_dir: Path) -> list[Path]:
    """The *.hcl files of the policy directory (policy name = file stem)."""
    files = sorted(policy_dir.glob("*.hcl"))
    if not files:
        raise BootstrapError(f"BOOTSTRAP_POLICY_DIR: no *.hcl policy in {policy_dir}", EXIT_USAGE)
    return files


def ensure_policies(settings: Settings, vault: Vault, report: Report) -> None:
    """Writes each policy file whose text differs from the stored policy."""
    for file in policy_files(settings.policy_dir):
        name, text = file.stem, file.read_text(encoding="utf-8")
        current = vault.read(f"sys/policies/acl/{name}")
        if current is not None and current.get("policy") == text:
            report.item("unchanged", f"policy {name}")
            continue
        vault.request("PUT", f"sys/policies/acl/{name}", {"policy": text})
        report.item("created" if current is None else "updated", f"policy {name}")


def ensure_seed(vault: Vault, report: Report, seed: Seed) -> None:
    """Creates a KV seed with a generated password when absent; never overwrites one.

    Creation uses check-and-set 0, so two concurrent runs cannot both write.
    An existing seed is only checked for the keys that consumers need.
    """
    where = f"{KV_MOUNT}/{seed.path}"
    metadata = vault.read(f"{KV_MOUNT}/metadata/{seed.path}")
    if metadata is None:
        data = {**seed.fixed, seed.secret_key: secrets.token_urlsafe(32)}
        try:
            vault.write(f"{KV_MOUNT}/data/{seed.path}", {"data": data, "options": {"cas": 0}})
        except ApiError as err:
            if "check-and-set" not in err.detail:
                raise
            report.item("unchanged", f"kv seed {where} (created concurrently)")
            return
        report.item("created", f"kv seed {where}")
        return
    version = str(metadata.get("current_version"))
    state = (metadata.get("versions") or {}).get(version) or {}
    if state.get("deletion_time") or state.get("destroyed"):
        raise BootstrapError(
            f"{where}: the current version {version} is deleted or destroyed; undelete it or write a new one by hand "
            "(the bootstrap never overwrites a seed)"
        )
    current = (vault.read(f"{KV_MOUNT}/data/{seed.path}") or {}).get("data") or {}
    missing = [key for key in (*seed.fixed, seed.secret_key) if not current.get(key)]
    if missing:
        raise BootstrapError(f"{where}: existing seed lacks {', '.join(missing)}; fix it by hand")
    report.item("unchanged", f"kv seed {where}")


def ensure_kubernetes_auth(settings: Settings, vault: Vault, report: Report) -> None:
    """Configures the TokenReview target of the Kubernetes auth method and its roles."""
    wanted: dict[str, Any] = {
        "kubernetes_host": settings.k8s_host,
        "disable_local_ca_jwt": settings.k8s_disable_local_ca_jwt,
    }
    # Without a CA file OpenBao falls back to its pod's CA and the value a
    # read returns is not ours to compare: it would report a change forever.
    if settings.k8s_ca_cert is not None:
        wanted["kubernetes_ca_cert"] = settings.k8s_ca_cert
    path = f"auth/{K8S_MOUNT}/config"
    current = vault.read(path)
    if current is None or changed_fields(current, wanted):
        vault.write(path, wanted)
        report.item("created" if current is None else "updated", f"{path} ({settings.k8s_host})")
    else:
        report.item("unchanged", f"{path} ({settings.k8s_host})")
    for role in K8S_ROLES:
        ensure_kubernetes_role(settings, vault, report, role)


def ensure_kubernetes_role(settings: Settings, vault: Vault, report: Report, role: K8sRole) -> None:
    """Writes one Kubernetes auth role when it differs."""
    wanted = {
        "bound_service_account_names": [role.service_account],
        "bound_service_account_namespaces": [role.namespace],
        "token_policies": [role.policy],
        "token_ttl": settings.k8s_token_ttl,
        "token_max_ttl": settings.k8s_token_max_ttl,
        "audience": settings.k8s_audience,
    }
    path = f"auth/{K8S_MOUNT}/role/{role.name}"
    current = vault.read(path)
    if current is not None and not changed_fields(current, wanted):
        report.item("unchanged", f"{path}")
        return
    vault.write(path, wanted)
    report.item("created" if current is None else "updated", f"{path}")


def db_connection_url(settings: Settings) -> str:
    """The connection URL template; Vault fills in its own user and password."""
    host = f"[{settings.db_host}]" if ":" in settings.db_host else settings.db_host
    return (
        f"postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{settings.db_port}/"
        f"{urllib.parse.quote(settings.db_name)}?sslmode={settings.db_sslmode}"
    )


def ensure_db_connection(settings: Settings, vault: Vault, report: Report) -> None:
    """Creates the postgres connection once, with the vault user's seeded password.

    An existing connection keeps its stored password (only Vault knows it
    after rotation); its other fields are updated when they differ.
    """
    path = f"{DB_MOUNT}/config/{DB_CONNECTION}"
    wanted = {
        "plugin_name": "postgresql-database-plugin",
        "connection_url": db_connection_url(settings),
        "username": "vault",
        "allowed_roles": [DB_ROLE],
        # Vault hashes the passwords of the users it creates before sending
        # them, so they never appear in clear on the wire or in server logs.
        "password_authentication": "scram-sha-256",
    }
    current = vault.read(path)
    if current is None:
        seed = (vault.read(f"{KV_MOUNT}/data/{SEED_VAULT_DB}") or {}).get("data") or {}
        write_connection(settings, vault, path, {**wanted, "password": seed["password"]})
        report.item("created", f"{path} ({settings.db_host}:{settings.db_port}/{settings.db_name})")
        return
    flat = {**current, **(current.get("connection_details") or {})}
    diff = changed_fields(flat, wanted)
    if diff:
        write_connection(settings, vault, path, wanted)
        report.item("updated", f"{path} ({', '.join(diff)})")
    else:
        report.item("unchanged", f"{path} ({settings.db_host}:{settings.db_port}/{settings.db_name})")


def write_connection(settings: Settings, vault: Vault, path: str, body: Mapping[str, Any]) -> None:
    """Writes the connection, retrying while PostgreSQL refuses Vault's login.

    In the cluster PostgreSQL may still be starting, or may not know the
    vault user yet: it gets that password through External Secrets from the
    seed this run has just written. Vault verifies the login on every write.
    """
    deadline = time.monotonic() + settings.db_wait
    delay = 0.5
    while True:
        try:
            vault.write(path, body)
            return
        except ApiError as err:
            if "verifying connection" not in err.detail:
                raise
            if time.monotonic() + delay > deadline:
                raise BootstrapError(
                    f"PostgreSQL at {settings.db_host}:{settings.db_port} did not accept the vault user within "
                    f"{settings.db_wait}s (BOOTSTRAP_DB_WAIT); last error: {err.detail}",
                    EXIT_TIMEOUT,
                ) from None
            log(f"waiting for PostgreSQL at {settings.db_host}:{settings.db_port}: {err.detail}")
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def ensure_root_rotated(vault: Vault, report: Report) -> None:
    """Rotates the vault user's password once, so that only Vault knows it.

    The KV copy in secret/postgres/vault is stale from then on, on purpose;
    a marker in that seed's custom metadata records the rotation.
    """
    metadata_path = f"{KV_MOUNT}/metadata/{SEED_VAULT_DB}"
    custom = (vault.read(metadata_path) or {}).get("custom_metadata") or {}
    what = f"{DB_MOUNT}/rotate-root/{DB_CONNECTION} (password of the vault user)"
    if custom.get(ROTATED_MARKER):
        report.item("unchanged", what)
        return
    vault.write(f"{DB_MOUNT}/rotate-root/{DB_CONNECTION}", {})
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    marker = f"{stamp}: only Vault knows the current password; this copy is stale"
    vault.write(metadata_path, {"custom_metadata": {**custom, ROTATED_MARKER: marker}})
    report.item("updated", what)


def ensure_db_role(settings: Settings, vault: Vault, report: Report) -> None:
    """Writes the student-api role of the database engine when it differs."""
    wanted = {
        "db_name": DB_CONNECTION,
        "default_ttl": settings.db_default_ttl,
        "max_ttl": settings.db_max_ttl,
        "creation_statements": DB_CREATION_STATEMENTS,
        "revocation_statements": DB_REVOCATION_STATEMENTS,
    }
    path = f"{DB_MOUNT}/roles/{DB_ROLE}"
    current = vault.read(path)
    if current is not None and not changed_fields(current, wanted):
        report.item("unchanged", path)
        return
    vault.write(path, wanted)
    report.item("created" if current is None else "updated", path)


def do_configure(settings: Settings, vault: Vault, report: Report) -> None:
    """Brings the server's configuration to the state this file describes.

    Order matters in the cluster: the seeds and the Kubernetes auth roles
    come before the database engine, so External Secrets can already sync
    the vault user's password to PostgreSQL while the connection waits.
    """
    seal_status(vault, settings.wait)
    vault.token = configure_token(settings)
    wait_active(vault, settings.wait)
    check_token(vault)
    ensure_audit_device(settings, vault, report)
    ensure_mount(vault, report, KV_MOUNT, "kv", {"version": "2"})
    ensure_mount(vault, report, DB_MOUNT, "database")
    ensure_auth_method(vault, report, K8S_MOUNT, "kubernetes")
    ensure_policies(settings, vault, report)
    for seed in SEEDS:
        ensure_seed(vault, report, seed)
    ensure_kubernetes_auth(settings, vault, report)
    ensure_db_connection(settings, vault, report)
    ensure_root_rotated(vault, report)
    ensure_db_role(settings, vault, report)


def do_configure_if_authorised(settings: Settings, vault: Vault, report: Report) -> None:
    """configure, as part of `all`: skipped, not failed, once the root token is gone.

    After bootstrap the root token is revoked and removed from the init
    material; the Job still runs `all` on every sync to initialise or unseal,
    and configuration changes are then applied with a fresh token.
    """
    try:
        do_configure(settings, vault, report)
    except NoToken:
        report.item("skipped", "configure (no root token in the init material and no VAULT_TOKEN)")


STEPS: dict[str, tuple[Callable[[Settings, Vault, Report], None], ...]] = {
    "init": (do_init,),
    "unseal": (do_unseal,),
    "configure": (do_configure,),
    "all": (do_init, do_unseal, do_configure_if_authorised),
}


def main(argv: list[str]) -> int:
    """Runs one mode; prints the report and returns the exit code."""
    if len(argv) != 2 or argv[1] not in MODES:
        print(f"usage: {Path(argv[0]).name} {{{'|'.join(MODES)}}}", file=sys.stderr)
        return EXIT_USAGE
    mode = argv[1]
    report = Report()
    try:
        settings = load_settings(os.environ)
        vault = Vault(settings.vault_addr, settings.vault_cacert)
        for step in STEPS[mode]:
            step(settings, vault, report)
    except BootstrapError as err:
        print(f"bootstrap {mode}: error: {err}", file=sys.stderr, flush=True)
        print(f"changes: {report.changes}", flush=True)
        return err.code
    print(f"changes: {report.changes}", flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv))
