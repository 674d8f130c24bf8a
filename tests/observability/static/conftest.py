"""Fixtures: the Prometheus tools, and live processes on loopback whose
/metrics tell which metric names really exist.

Owns: starting and stopping the service (on SQLite), postgres_exporter,
blackbox_exporter, node_exporter and small HTTP(S) servers on 127.0.0.1,
each on a free port, and their scrapes. Must not: reach anything but
loopback, or leave a process behind.

PostgreSQL itself is started by run.sh (scripts/lib/postgres.sh, plus a
streaming replica), which exports OBS_PG_* for these fixtures. Without
them the tests that need PostgreSQL are skipped, unless
OBS_REQUIRE_LIVE=1 (set by run.sh) makes that an error.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import yaml

import obs

# Every server here is on loopback: never go through a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with _OPENER.open(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def http_post_json(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with _OPENER.open(request, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def wait_http(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before {url} answered")
        try:
            if http_get(url, timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s")


def metric_names_of(exposition: str) -> set[str]:
    """Names of the samples in a Prometheus text exposition."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} not found: run tests/observability/static/run.sh, which installs it")
    return path


def live_required(reason: str) -> None:
    if os.environ.get("OBS_REQUIRE_LIVE") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


class Processes:
    """Background processes, each stopped (TERM, then KILL) at teardown."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.items: list[tuple[subprocess.Popen, object]] = []

    def start(self, name: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # closed in stop_all
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.logs)
        self.items.append((process, log))
        return process

    def stop_all(self) -> None:
        for process, log in reversed(self.items):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log.close()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="obs-static.") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def processes(workdir: Path) -> Iterator[Processes]:
    procs = Processes(workdir)
    yield procs
    procs.stop_all()


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return tool("amtool")


# ------------------------------------------------------------- the service
class _OtlpSink(http.server.BaseHTTPRequestHandler):
    """Takes OTLP/HTTP trace exports and drops them (an empty body is an
    empty ExportTraceServiceResponse): somewhere for the service's spans to
    go, as Alloy's receiver is in the cluster."""

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def service(processes: Processes, workdir: Path) -> Iterator[dict]:
    """The real binary on SQLite, metrics on their own address and traces
    sent over OTLP as in the chart, after a few requests so that every
    series has samples."""
    binary = Path(os.environ.get("STUDENT_API_BIN", obs.REPO / "target" / "debug" / "student-api"))
    if not binary.is_file():
        live_required(f"{binary} not built (run.sh builds it with cargo)")
    api, metrics = free_port(), free_port()
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtlpSink)
    _serve(sink)
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_address[1]}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "LISTEN_ADDR": f"127.0.0.1:{api}",
        "METRICS_ADDR": f"127.0.0.1:{metrics}",
        "DATABASE_URL": f"sqlite://{workdir}/students.db",
        "LOG_FORMAT": "json",
        "RUST_LOG": "info",
    }
    process = processes.start("student-api", [str(binary)], env)
    base = f"http://127.0.0.1:{api}"
    wait_http(f"{base}/healthcheck", process)
    body = b'{"name":"Ada Lovelace","email":"ada@example.org","domain":"Mathematics","gpa":9.4}'
    assert http_post_json(f"{base}/api/v1/students", body) == 201
    assert http_get(f"{base}/api/v1/students/1")[0] == 200
    assert http_get(f"{base}/api/v1/students?limit=5")[0] == 200
    assert http_get(f"{base}/no-such-route")[0] == 404
    assert http_get(f"{base}/ready")[0] == 200
    status, text = http_get(f"http://127.0.0.1:{metrics}/metrics")
    assert status == 200
    yield {"base": base, "metrics_text": text, "names": metric_names_of(text)}
    sink.shutdown()


# --------------------------------------------------------------- exporters
@pytest.fixture(scope="session")
def postgres_exporter(processes: Processes) -> dict:
    """postgres_exporter against run.sh's throwaway primary (which has a
    streaming replica, so the replication series exist)."""
    need = ("OBS_PG_HOST", "OBS_PG_PORT", "OBS_PG_USER", "OBS_PG_PASSWORD")
    if not all(os.environ.get(k) for k in need):
        live_required("no PostgreSQL for postgres_exporter (run.sh starts one and exports OBS_PG_*)")
    port = free_port()
    env = {
        **os.environ,
        "DATA_SOURCE_URI": f"{os.environ['OBS_PG_HOST']}:{os.environ['OBS_PG_PORT']}/postgres?sslmode=disable",
        "DATA_SOURCE_USER": os.environ["OBS_PG_USER"],
        "DATA_SOURCE_PASS": os.environ["OBS_PG_PASSWORD"],
    }
    process = processes.start("postgres-exporter", [tool("prometheus-postgres-exporter"),
                                                    f"--web.listen-address=127.0.0.1:{port}"], env)
    wait_http(f"http://127.0.0.1:{port}/metrics", process)
    text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
    return {"text": text, "names": metric_names_of(text)}


@pytest.fixture(scope="session")
def node_exporter(processes: Processes) -> dict:
    port = free_port()
    process = processes.start("node-exporter", [tool("prometheus-node-exporter"),
                                                f"--web.listen-address=127.0.0.1:{port}"])
    wait_http(f"http://127.0.0.1:{port}/metrics", process)
    text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
    return {"text": text, "names": metric_names_of(text)}


class _StatusHandler(http.server.BaseHTTPRequestHandler):
    """/status/<code> answers <code>: stands for OpenBao's /v1/sys/health."""

    # As real servers answer; the modules accept HTTP/1.1 and 2 only.
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        parts = self.path.strip("/").split("/")
        code = int(parts[1]) if len(parts) == 2 and parts[0] == "status" and parts[1].isdigit() else 404
        body = b'{"probe":"answer"}'
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(server: http.server.ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="session")
def status_servers(workdir: Path) -> Iterator[dict]:
    """A plain HTTP and an HTTPS server answering any status; the HTTPS one
    has a throwaway self-signed certificate for 127.0.0.1."""
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    subprocess.run(
        [tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    _serve(plain), _serve(tls)
    yield {
        "http": f"http://127.0.0.1:{plain.server_address[1]}",
        "https": f"https://127.0.0.1:{tls.server_address[1]}",
        "ca_file": cert,
    }
    plain.shutdown(), tls.shutdown()
    plain.server_close(), tls.server_close()


@pytest.fixture(scope="session")
def blackbox(processes: Processes, workdir: Path, status_servers: dict) -> dict:
    """blackbox_exporter with the modules of values.yaml and values-prod.yaml
    (the prod CA file pointed at the test certificate)."""
    config = obs.merged_values("prometheus-blackbox-exporter", "prod")["config"]
    tls_module = config["modules"]["openbao_health_tls"]["http"]["tls_config"]
    tls_module["ca_file"] = str(status_servers["ca_file"])
    path = workdir / "blackbox.yml"
    path.write_text(yaml.safe_dump(config))
    binary = tool("prometheus-blackbox-exporter")
    check = subprocess.run([binary, f"--config.file={path}", "--config.check"], capture_output=True, text=True)
    port = free_port()
    process = processes.start("blackbox-exporter", [binary, f"--config.file={path}",
                                                    f"--web.listen-address=127.0.0.1:{port}"])
    wait_http(f"http://127.0.0.1:{port}/-/healthy", process)
    names: set[str] = set()

    def probe(module: str, target: str) -> dict[str, float]:
        query = urllib.parse.urlencode({"module": module, "target": target})
        status, text = http_get(f"http://127.0.0.1:{port}/probe?{query}", timeout=10)
        assert status == 200, text
        names.update(metric_names_of(text))
        return {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in text.splitlines()
            if line and not line.startswith("#") and "{" not in line.split(" ")[0]
        }

    return {"check": check, "probe": probe, "names": names, "config": config}

