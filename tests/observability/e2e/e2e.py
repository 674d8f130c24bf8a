#!/usr/bin/env python3
"""Runtime helpers of the live observability test (run.sh): the webhook
receiver that records what Alertmanager delivers, a sink for the
service's OTLP traces, the traffic, the drill's fault switch, and the
checks of what Prometheus and Alertmanager report.

Everything talks to 127.0.0.1 only and bypasses proxies. The only
long-lived processes are `receiver`, `otlp-sink`, `outage-traffic`,
`clean-traffic` and `watch`, which run.sh starts and stops by PID. No
secret passes through this file.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from configs import fail, inhibits, say, write_json  # noqa: E402

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# The alerts the plan (configs.py) names, by role.
ALERT_KEYS = ("db_down", "readiness", "fast_burn", "slow_burn")


def read_json(path: str | Path, default: object = None) -> object:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return default


def get_json(url: str) -> object:
    with OPENER.open(url, timeout=5) as response:
        return json.loads(response.read())


def prom_query(prom: str, query: str) -> list:
    body = get_json(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    if body.get("status") != "success":
        raise RuntimeError(f"query {query!r} failed: {body}")
    return body["data"]["result"]


def firing_alerts(prom: str) -> list[dict]:
    return [a for a in get_json(f"{prom}/api/v1/alerts")["data"]["alerts"] if a["state"] == "firing"]


# ------------------------------------------------------------------ marks
# The timeline: run.sh and these helpers append `EPOCH TEXT` lines.


def marks_read(path: str) -> list[tuple[float, str]]:
    out = []
    for line in Path(path).read_text().splitlines():
        epoch, _, text = line.partition(" ")
        out.append((float(epoch), text))
    return out


def mark_time(path: str, text: str) -> float:
    times = [t for t, label in marks_read(path) if label == text]
    if not times:
        fail(f"no mark {text!r}")
    return times[-1]


def mark(path: str, text: str, at: float | None = None) -> None:
    with open(path, "a") as handle:
        handle.write(f"{time.time() if at is None else at:.3f} {text}\n")


# --------------------------------------------------------------- receiver


class Receiver(http.server.BaseHTTPRequestHandler):
    events_path: Path
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        received = time.time()
        try:
            payload = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        event = {
            "received_at": received,
            "path": self.path,
            "receiver": payload.get("receiver"),
            "status": payload.get("status"),
            "group_labels": payload.get("groupLabels"),
            "alerts": [
                {"alertname": a.get("labels", {}).get("alertname"), "status": a.get("status"),
                 "labels": a.get("labels", {}), "startsAt": a.get("startsAt"), "endsAt": a.get("endsAt")}
                for a in payload.get("alerts", [])
            ],
        }
        with self.lock:
            events = read_json(self.events_path, [])
            events.append(event)
            write_json(self.events_path, events)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, fmt: str, *args: object) -> None:
        pass


def cmd_receiver(args: argparse.Namespace) -> None:
    Receiver.events_path = Path(args.events)
    write_json(Receiver.events_path, [])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    Path(args.port_file).write_text(f"{server.server_address[1]}\n")
    server.serve_forever()


# ------------------------------------------------------------ OTLP sink


class OtlpSink(http.server.BaseHTTPRequestHandler):
    """Takes the service's OTLP/HTTP exports and drops them, counting
    them: no collector or Tempo is installable here; the Rust tests decode
    the spans, this run needs only somewhere to send them."""

    count_path: Path
    lock = threading.Lock()
    exports = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        ok = self.path == "/v1/traces" and self.headers.get("content-type") == "application/x-protobuf"
        with self.lock:
            if ok:
                OtlpSink.exports += 1
                self.count_path.write_text(f"{OtlpSink.exports}\n")
        # An empty body is an empty ExportTraceServiceResponse: all taken.
        self.send_response(200 if ok else 415)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, fmt: str, *args: object) -> None:
        pass


def cmd_otlp_sink(args: argparse.Namespace) -> None:
    OtlpSink.count_path = Path(args.count_file)
    OtlpSink.count_path.write_text("0\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OtlpSink)
    Path(args.port_file).write_text(f"{server.server_address[1]}\n")
    server.serve_forever()


def deliveries(events_path: str) -> list[dict]:
    """One entry per alert per notification, in order of arrival."""
    return [
        {"at": e["received_at"], "receiver": e["receiver"], **a}
        for e in read_json(events_path, []) for a in e["alerts"]
    ]


# ---------------------------------------------------------------- traffic


class Client:
    """Keep-alive HTTP/1.1 to the service, reconnecting after errors."""

    def __init__(self, base: str) -> None:
        host, port = urllib.parse.urlsplit(base).netloc.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def send(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        headers, data = {}, None
        if body is not None:
            data, headers["content-type"] = json.dumps(body).encode(), "application/json"
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            return 0, b""


def cmd_traffic(args: argparse.Namespace) -> None:
    """Requests of every kind the API answers, 404s (unknown student,
    unknown path) and 422s (invalid bodies) included."""
    client = Client(args.base)
    counts: dict[int, int] = {}
    run = os.urandom(4).hex()
    ids: list[int] = []

    def send(method: str, path: str, body: object = None) -> tuple[int, bytes]:
        status, data = client.send(method, path, body)
        counts[status] = counts.get(status, 0) + 1
        return status, data

    rounds = max(1, args.requests // 20)
    started = time.monotonic()
    for i in range(rounds):
        # Spread over a few scrapes: a series born with all its requests
        # already counted would show no increase to rate().
        time.sleep(max(0.0, started + i * args.seconds / rounds - time.monotonic()))
        student = {"name": f"Student {i}", "email": f"s{i}.{run}@example.org", "domain": "Mathematics", "gpa": 7.5}
        status, data = send("POST", "/api/v1/students", student)
        if status == 201:
            ids.append(json.loads(data)["id"])
        send("POST", "/api/v1/students", {"name": "", "email": "not-an-email", "domain": "x", "gpa": 42})
        for _ in range(6):
            send("GET", f"/api/v1/students?limit=5&offset={i % 3}")
        send("GET", "/api/v1/students?q=student&limit=10")
        if ids:
            for _ in range(4):
                send("GET", f"/api/v1/students/{ids[-1]}")
            send("PATCH", f"/api/v1/students/{ids[-1]}", {"gpa": 8.0})
        send("GET", "/api/v1/students/987654321")
        send("GET", f"/no/such/path/{i}")
        send("GET", "/healthcheck")
        send("GET", "/ready")
        if len(ids) > 1 and i % 4 == 0:
            send("DELETE", f"/api/v1/students/{ids.pop(0)}")
    say(f"traffic: {sum(counts.values())} requests in {time.monotonic() - started:.1f}s; by status: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    for wanted in (200, 201, 404, 422):
        if not counts.get(wanted):
            fail(f"the traffic produced no {wanted}")


def cmd_outage_traffic(args: argparse.Namespace) -> None:
    """Steady API requests (503s while the database is down) until the stop
    file appears; the status counts are printed at the end."""
    client = Client(args.base)
    counts: dict[int, int] = {}
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline and not Path(args.stop_file).exists():
        status, _ = client.send("GET", "/api/v1/students?limit=5")
        counts[status] = counts.get(status, 0) + 1
        time.sleep(args.pause)
    say("outage traffic by status: " + ", ".join(f"{k or 'no answer'}: {v}" for k, v in sorted(counts.items())))


# ---------------------------------------------------------------- drill


def cmd_fault(args: argparse.Namespace) -> None:
    """Sets (PUT) or clears (DELETE) the service's fault on its metrics
    address, as an operator does in a drill."""
    url = f"{args.metrics}/admin/fault"
    data = None if args.clear else args.set.encode()
    request = urllib.request.Request(url, data=data, method="DELETE" if args.clear else "PUT",
                                     headers={"content-type": "application/json"})
    try:
        with OPENER.open(request, timeout=10) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as err:
        fail(f"{request.method} {url}: {err.code} {err.read()[:300]!r}")
    say(f"fault {'cleared' if args.clear else 'set'}: {json.dumps(answer)}")
    if answer.get("active") != (not args.clear):
        fail(f"the service reports the fault {'active' if answer.get('active') else 'inactive'}")


def cmd_drill_errors(args: argparse.Namespace) -> None:
    """With the fault on: one failing request, a pause of `settle` seconds
    so that Prometheus scrapes the new 5xx series once (a series born with
    all its requests already counted shows no increase to rate()), then a
    burst of `burst` failing requests. Every one must be a 5xx."""
    client = Client(args.base)
    statuses = [client.send("GET", "/api/v1/students?limit=1")[0]]
    time.sleep(args.settle)
    statuses += [client.send("GET", "/api/v1/students?limit=1")[0] for _ in range(args.burst)]
    if not all(500 <= s < 600 for s in statuses):
        fail(f"the fault did not fail every request: {statuses}")
    say(f"drill: {len(statuses)} requests failed on purpose ({statuses[0]})")


def cmd_clean_traffic(args: argparse.Namespace) -> None:
    """API requests as fast as `threads` keep-alive connections go, until
    the stop file appears: they dilute the drill's errors in every window
    of the SLO, which is how its alerts resolve without waiting the
    windows out. None may fail."""
    counts: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + args.max_seconds
    started = time.monotonic()

    def run() -> None:
        client = Client(args.base)
        mine: dict[int, int] = {}
        while time.monotonic() < deadline and not Path(args.stop_file).exists():
            for _ in range(50):
                status, _ = client.send("GET", "/api/v1/students?limit=1")
                mine[status] = mine.get(status, 0) + 1
        with lock:
            for status, n in mine.items():
                counts[status] = counts.get(status, 0) + n

    threads = [threading.Thread(target=run) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = sum(counts.values())
    say(f"clean traffic: {total} requests in {time.monotonic() - started:.1f}s; by status: "
        + ", ".join(f"{k or 'no answer'}: {v}" for k, v in sorted(counts.items())))
    if set(counts) != {200}:
        fail("clean traffic got answers other than 200")


# ----------------------------------------------------------------- checks


def cmd_check_targets(args: argparse.Namespace) -> None:
    deadline = time.monotonic() + args.timeout
    while True:
        targets = get_json(f"{args.prom}/api/v1/targets?state=active")["data"]["activeTargets"]
        down = [t for t in targets if t["health"] != "up"]
        if targets and not down:
            break
        if time.monotonic() > deadline:
            for t in down:
                say(f"  {t['health']:<7} {t['scrapePool']}: {t.get('lastError', '')}")
            fail(f"{len(down)} of {len(targets)} targets not up after {args.timeout:.0f}s")
        time.sleep(0.5)
    say(f"targets: all {len(targets)} up")
    shown = ("job", "namespace", "service", "target", "instance")
    for t in sorted(targets, key=lambda t: t["scrapePool"]):
        labels = " ".join(f'{k}="{t["labels"][k]}"' for k in shown if k in t["labels"])
        say(f"  up  {t['scrapePool']}  {labels}")


def cmd_check_rules_health(args: argparse.Namespace) -> None:
    groups = get_json(f"{args.prom}/api/v1/rules")["data"]["groups"]
    bad = [f"{g['name']}/{r['name']}: {r.get('lastError')}" for g in groups for r in g["rules"]
           if r.get("health") == "err"]
    if bad:
        fail("rules failing to evaluate:\n  " + "\n  ".join(bad))
    say(f"rules: {sum(len(g['rules']) for g in groups)} loaded in {len(groups)} groups, none failing to evaluate")


def recording_samples(prom: str, record: str) -> tuple[int, int, float | None]:
    """Stored samples, series, and the largest latest value that is a
    number (a quantile of a route without requests in the window is NaN)."""
    samples = prom_query(prom, f"sum(count_over_time({record}[1h]))")
    latest = prom_query(prom, f"last_over_time({record}[1h])")
    numbers = [v for v in (float(s["value"][1]) for s in latest) if v == v]
    return (int(float(samples[0]["value"][1])) if samples else 0), len(latest), max(numbers, default=None)


def cmd_check_recording(args: argparse.Namespace) -> None:
    """Every recording rule has stored samples, and the latest of at least
    one of its series is a number: the traffic has reached it (a ratio or a
    quantile is NaN while its window holds no request)."""
    records = read_json(args.plan)["recording"]
    if not records:
        fail("the rules define no recording rule")
    deadline = time.monotonic() + args.timeout
    while True:
        results = {r: recording_samples(args.prom, r) for r in records}
        missing = [r for r, (n, _, value) in results.items() if n == 0 or value is None]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    width = max(map(len, records))
    say("recording rules: samples stored, series, largest latest value")
    for record in records:
        n, series, value = results[record]
        shown = "-" if value is None else f"{value:.4g}"
        say(f"  {'NONE' if record in missing else 'ok  '} {record:<{width}}  samples={n:<4} series={series:<3} value={shown}")
    if missing:
        fail(f"recording rules without a sample that is a number: {', '.join(missing)}")


def cmd_wait_delivery(args: argparse.Namespace) -> None:
    """The alert reaches the receiver with the status within the bound:
    for firing, the alert's (scaled) `for` plus the slack; for resolved,
    the slack."""
    plan = read_json(args.plan)
    alert = plan[args.alert]["alert"]
    since = mark_time(args.marks, args.since)
    bound = args.slack + (plan["for_seconds"][alert] if args.status == "firing" else 0)
    deadline = since + bound
    while True:
        for d in deliveries(args.events):
            if d["alertname"] == alert and d["status"] == args.status and d["at"] >= since:
                say(f"{alert} reached receiver {d['receiver']} {args.status} {d['at'] - since:.1f}s after "
                    f"'{args.since}' (bound {bound:.0f}s)")
                return
        if time.time() > deadline:
            fail(f"{alert} did not reach the receiver {args.status} within {bound:.0f}s of '{args.since}'")
        time.sleep(0.2)


def cmd_wait_inactive(args: argparse.Namespace) -> None:
    """Waits until the alert is neither pending nor firing in Prometheus."""
    alert = read_json(args.plan)[args.alert]["alert"]
    deadline = time.monotonic() + args.timeout
    while any(a["labels"].get("alertname") == alert for a in get_json(f"{args.prom}/api/v1/alerts")["data"]["alerts"]):
        if time.monotonic() > deadline:
            fail(f"{alert} still active after {args.timeout:.0f}s")
        time.sleep(0.5)


def cmd_wait_quiet(args: argparse.Namespace) -> None:
    """Waits until none of the alerts is pending or firing in Prometheus,
    nor active in Alertmanager, and each one the receiver got firing has
    reached it resolved: what the drill fired is over, so no notification
    of it can land in a later phase."""
    plan = read_json(args.plan)
    names = {plan[key]["alert"] for key in args.alert} | set(plan["expect_inhibited"] if args.and_inhibited else [])
    deadline = time.monotonic() + args.timeout
    while True:
        in_prom = {a["labels"].get("alertname") for a in get_json(f"{args.prom}/api/v1/alerts")["data"]["alerts"]}
        in_am = {a["labels"].get("alertname") for a in get_json(f"{args.am}/api/v2/alerts?active=true")}
        last = {d["alertname"]: d["status"] for d in deliveries(args.events)}
        unresolved = {name for name in names if last.get(name, "resolved") != "resolved"}
        active = sorted(names & (in_prom | in_am | unresolved))
        if not active:
            break
        if time.monotonic() > deadline:
            fail(f"still active after {args.timeout:.0f}s: {', '.join(active)}")
        time.sleep(0.5)
    say(f"none active: {', '.join(sorted(names))}")


def cmd_check_exemplars(args: argparse.Namespace) -> None:
    """The latency histogram's exemplars reach Prometheus (scraped as
    OpenMetrics) and name traces the service exported and logged: a slow
    bucket opens a trace, and that trace's log lines."""
    logged = set()
    for line in Path(args.log).read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("message") == "request completed" and entry.get("trace_id"):
            logged.add(entry["trace_id"])
    if not logged:
        fail("no access-log line carries a trace_id")
    exports = int(Path(args.count_file).read_text())
    deadline = time.monotonic() + args.timeout
    while True:
        now = time.time()
        query = urllib.parse.urlencode({
            "query": 'http_request_duration_seconds_bucket{namespace="student-api"}',
            "start": f"{now - 600:.3f}", "end": f"{now:.3f}",
        })
        found = {e["labels"].get("trace_id")
                 for series in get_json(f"{args.prom}/api/v1/query_exemplars?{query}")["data"]
                 for e in series["exemplars"]}
        linked = found & logged
        exports = int(Path(args.count_file).read_text())
        if linked and exports:
            break
        if time.monotonic() > deadline:
            fail(f"after {args.timeout:.0f}s: {len(found)} exemplars in Prometheus, {len(linked)} naming a "
                 f"logged trace; {exports} OTLP exports received")
        time.sleep(1)
    say(f"exemplars: {len(found)} trace ids on http_request_duration_seconds in Prometheus, "
        f"{len(linked)} of them in the access log; {exports} OTLP exports received")


def cmd_watch(args: argparse.Namespace) -> None:
    """Samples, until the stop file appears, which alerts Prometheus fires
    and which of them Alertmanager holds as inhibited; keeps the first and
    last time of each for the checks."""
    seen: dict[str, dict] = {}
    while not Path(args.stop_file).exists():
        now = time.time()
        try:
            firing = firing_alerts(args.prom)
            held = get_json(f"{args.am}/api/v2/alerts?active=true&inhibited=true&silenced=true&unprocessed=true")
        except (OSError, ValueError):
            time.sleep(0.5)
            continue
        for alert in firing:
            entry = seen.setdefault(json.dumps(alert["labels"], sort_keys=True),
                                    {"labels": alert["labels"], "firing_from": now, "inhibited_from": None})
            entry["firing_until"] = now
        for alert in held:
            # Alertmanager adds the external labels Prometheus sends.
            labels = {k: v for k, v in alert["labels"].items() if k not in ("prometheus", "prometheus_replica")}
            entry = seen.get(json.dumps(labels, sort_keys=True))
            if entry and alert["status"]["state"] == "suppressed" and alert["status"].get("inhibitedBy"):
                entry["inhibited_from"] = entry["inhibited_from"] or now
                entry["inhibited_until"] = now
        write_json(Path(args.out), list(seen.values()))
        time.sleep(0.5)


def cmd_wait_inhibited(args: argparse.Namespace) -> None:
    """Keeps the database down until every alert that must be inhibited has
    fired, and been held as inhibited, for `settle` seconds: long enough
    for Alertmanager to have delivered it were it not inhibited."""
    plan = read_json(args.plan)
    expected = plan["expect_inhibited"]
    bound = max([plan["for_seconds"][a] for a in expected] + [0]) + args.slack
    since = mark_time(args.marks, args.since)
    while expected:
        observed = read_json(args.observed, [])
        ripe = {o["labels"]["alertname"] for o in observed
                if o.get("inhibited_from") and o["inhibited_until"] - o["inhibited_from"] >= args.settle}
        if all(name in ripe for name in expected):
            break
        if time.time() > since + bound:
            missing = [n for n in expected if n not in ripe]
            fail(f"within {bound:.0f}s of '{args.since}', these did not fire and stay inhibited for "
                 f"{args.settle:.0f}s: {', '.join(missing)}")
        time.sleep(0.5)
    for o in read_json(args.observed, []):
        if o["labels"]["alertname"] in expected and o.get("inhibited_from"):
            mark(args.marks, f"alertmanager holds {o['labels']['alertname']} inhibited "
                 f"(firing in Prometheus {o['firing_from'] - since:.1f}s after '{args.since}')", o["inhibited_from"])
    say(f"inhibition: {', '.join(expected) or 'nothing'} fired and held inhibited by {plan['db_down']['alert']}")


def cmd_check_inhibition(args: argparse.Namespace) -> None:
    """While the database was down, no alert the database-down alert
    inhibits reached the receiver: neither one the plan expects (by name),
    nor any other the inhibit rules cover given the live labels of both,
    `equal` included. In production the database-down alert has the
    shortest `for`, so it is active before any of them fires; the scaled
    durations keep that order."""
    plan = read_json(args.plan)
    db_down = plan["db_down"]["alert"]
    start = mark_time(args.marks, args.since)
    end = mark_time(args.marks, args.until)
    sources = [o["labels"] for o in read_json(args.observed, []) if o["labels"].get("alertname") == db_down]
    if not sources:
        fail(f"{db_down} was never seen firing during the outage")
    during = [d for d in deliveries(args.events) if start <= d["at"] <= end]
    leaked = sorted({d["alertname"] for d in during if d["alertname"] in plan["expect_inhibited"]
                     or any(inhibits(plan["inhibit_rules"], s, d["labels"]) for s in sources)})
    if leaked:
        fail(f"reached the receiver while {db_down} fired, though its inhibit rules cover them: {', '.join(leaked)}")
    delivered = sorted({f"{d['alertname']} {d['status']}" for d in during})
    say(f"inhibition: in the {end - start:.0f}s of the outage the receiver got only: {', '.join(delivered)}")


def cmd_check_not_delivered(args: argparse.Namespace) -> None:
    plan = read_json(args.plan)
    alert = plan[args.alert]["alert"]
    since = mark_time(args.marks, args.since)
    if any(d["alertname"] == alert and d["at"] >= since for d in deliveries(args.events)):
        fail(f"{alert} reached the receiver after '{args.since}', though it should not have fired")
    say(f"{alert} did not fire after '{args.since}'")


def cmd_timeline(args: argparse.Namespace) -> None:
    rows = [(t, f"-- {text}") for t, text in marks_read(args.marks)]
    for event in read_json(args.events, []):
        names = ", ".join(f"{a['alertname']}" for a in event["alerts"])
        rows.append((event["received_at"], f"<- {event['receiver']}: {event['status']} {names}"))
    start = min(t for t, _ in rows)
    say("timeline (seconds from the first event; <- is a notification the receiver got):")
    for t, text in sorted(rows):
        say(f"  {t - start:6.1f}  {text}")


# ------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, *options: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name)
        for option in options:
            p.add_argument(f"--{option}", required=True)
        p.set_defaults(func=func)
        return p

    add("receiver", cmd_receiver, "events", "port-file")
    add("otlp-sink", cmd_otlp_sink, "port-file", "count-file")
    p = add("fault", cmd_fault, "metrics")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--set", help="the fault, as PUT /admin/fault takes it")
    group.add_argument("--clear", action="store_true")
    p = add("drill-errors", cmd_drill_errors, "base")
    p.add_argument("--burst", type=int, default=10)
    p.add_argument("--settle", type=float, default=3)
    p = add("clean-traffic", cmd_clean_traffic, "base", "stop-file")
    p.add_argument("--threads", type=int, default=6)
    p.add_argument("--max-seconds", type=float, default=150)
    p = add("traffic", cmd_traffic, "base")
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--seconds", type=float, default=8)
    p = add("outage-traffic", cmd_outage_traffic, "base", "stop-file")
    p.add_argument("--max-seconds", type=float, default=150)
    p.add_argument("--pause", type=float, default=0.05)
    add("check-targets", cmd_check_targets, "prom").add_argument("--timeout", type=float, default=30)
    add("check-rules-health", cmd_check_rules_health, "prom")
    add("check-recording", cmd_check_recording, "prom", "plan").add_argument("--timeout", type=float, default=15)
    p = add("wait-delivery", cmd_wait_delivery, "events", "marks", "plan", "since")
    p.add_argument("--alert", choices=ALERT_KEYS, required=True)
    p.add_argument("--status", choices=("firing", "resolved"), required=True)
    p.add_argument("--slack", type=float, required=True)
    p = add("wait-inactive", cmd_wait_inactive, "prom", "plan")
    p.add_argument("--alert", choices=ALERT_KEYS, required=True)
    p.add_argument("--timeout", type=float, default=30)
    p = add("wait-quiet", cmd_wait_quiet, "prom", "am", "plan", "events")
    p.add_argument("--alert", choices=ALERT_KEYS, action="append", required=True)
    p.add_argument("--and-inhibited", action="store_true",
                   help="also every alert the database-down alert must inhibit")
    p.add_argument("--timeout", type=float, default=30)
    p = add("check-exemplars", cmd_check_exemplars, "prom", "log", "count-file")
    p.add_argument("--timeout", type=float, default=20)
    add("watch", cmd_watch, "prom", "am", "out", "stop-file")
    p = add("wait-inhibited", cmd_wait_inhibited, "observed", "plan", "marks", "since")
    p.add_argument("--slack", type=float, required=True)
    p.add_argument("--settle", type=float, default=5)
    add("check-inhibition", cmd_check_inhibition, "events", "marks", "observed", "plan", "since", "until")
    p = add("check-not-delivered", cmd_check_not_delivered, "events", "marks", "plan", "since")
    p.add_argument("--alert", choices=("db_down", "readiness"), required=True)
    add("timeline", cmd_timeline, "events", "marks")

    args = parser.parse_args()
    try:
        args.func(args)
    except (urllib.error.URLError, ConnectionError) as err:
        fail(f"{args.command}: {err}")


if __name__ == "__main__":
    main()
