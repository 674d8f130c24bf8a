#!/usr/bin/env python3
"""Time from spawning student-api on SQLite until GET /ready answers 200.

Runs the binary RUNS times on a fresh database file (creation + migrations
included) and RUNS times on an already migrated one, and prints the medians.
Standard library only. Every process it starts is stopped before the next
run; only 127.0.0.1 is ever contacted.

Last line of output (parsed by bench/run.sh):
    STARTUP fresh_median_ms=<n> existing_median_ms=<n> rss_mb=<n>
"""

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

POLL_INTERVAL_S = 0.0005
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/ready")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def rss_mb(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_once(binary, db_path, log):
    """Returns (ms until ready, idle RSS in MB after ready)."""
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=f"sqlite://{db_path}",
        LISTEN_ADDR=f"127.0.0.1:{port}",
        LOG_FORMAT="json",
        RUST_LOG="warn",
    )
    start = time.perf_counter()
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=log)
    try:
        deadline = start + READY_TIMEOUT_S
        while not ready(port):
            if proc.poll() is not None:
                raise RuntimeError(f"student-api exited with {proc.returncode} before ready")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f} s")
            time.sleep(POLL_INTERVAL_S)
        elapsed_ms = (time.perf_counter() - start) * 1000
        time.sleep(0.5)
        return elapsed_ms, rss_mb(proc.pid)
    finally:
        stop(proc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("binary", help="path to the student-api binary")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", help="where database files go (default: a temporary directory)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="student-api-startup-", dir=args.workdir) as tmp, \
            open(os.path.join(tmp, "service.log"), "ab") as log:
        try:
            fresh = []
            for i in range(args.runs):
                ms, _ = start_once(args.binary, os.path.join(tmp, f"fresh-{i}.db"), log)
                fresh.append(ms)

            existing_db = os.path.join(tmp, "existing.db")
            start_once(args.binary, existing_db, log)  # creates and migrates it
            existing, rss = [], []
            for _ in range(args.runs):
                ms, mb = start_once(args.binary, existing_db, log)
                existing.append(ms)
                rss.append(mb)
        except RuntimeError as err:
            log.flush()
            with open(os.path.join(tmp, "service.log"), encoding="utf-8", errors="replace") as f:
                sys.stderr.write(f.read()[-4000:])
            sys.exit(f"startup.py: {err}")

    fmt = lambda xs: " ".join(f"{x:.1f}" for x in xs)  # noqa: E731
    print(f"fresh database runs (ms):    {fmt(fresh)}")
    print(f"existing database runs (ms): {fmt(existing)}")
    print(
        f"STARTUP fresh_median_ms={statistics.median(fresh):.1f} "
        f"existing_median_ms={statistics.median(existing):.1f} "
        f"rss_mb={statistics.median(rss):.1f}"
    )


if __name__ == "__main__":
    main()
