#!/usr/bin/env python3
"""Plans of each list query shape, for bench/scale.sh, taken from the
statements the running service really sends.

For each shape (first page, counts, deep page by cursor, a page by offset,
searches, a search's second page, each sort key's first and a later page) it
sends the request to the service and prints what the database did:

- postgres: the server runs auto_explain (scale.sh turns it on for this
  pass), so its log holds EXPLAIN (ANALYZE, BUFFERS) of every statement with
  the parameters really bound. Each request is sent six times first, so that
  the plan printed is the one a prepared statement settles on (PostgreSQL may
  switch to a generic plan after five executions), then once more, and the
  plans logged during that last one are printed.
- sqlite: the service logs each statement's text and time (sqlx, at debug);
  EXPLAIN QUERY PLAN of that text is asked of the same database file, read
  only, through Python's sqlite3 (the system SQLite, not necessarily the
  version built into the service). Parameters are left unbound: SQLite plans
  without looking at their values.

Standard library only; only 127.0.0.1 and local files are touched.
"""

import argparse
import http.client
import json
import os
import re
import sqlite3
import sys
import time
import urllib.parse

COLLECTION = "/api/v1/students"
WARM_REPEATS = 6


def get(port, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        started = time.monotonic()
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        elapsed = (time.monotonic() - started) * 1000
        return response.status, dict(response.getheaders()), body, elapsed
    finally:
        conn.close()


def lines(path):
    with open(path, encoding="ascii") as f:
        return [line.strip() for line in f if line.strip()]


def shapes(paths_dir, port):
    """(label, path, headers) of every list query shape worth a plan."""
    deep = lines(os.path.join(paths_dir, "deep.txt"))
    sort = lines(os.path.join(paths_dir, "sort.txt"))
    cursor_mode = any("cursor=" in p for p in deep)
    out = [
        ("first page", f"{COLLECTION}?limit=20", {}),
        ("first page, Prefer: count=exact", f"{COLLECTION}?limit=20", {"Prefer": "count=exact"}),
        ("first page, Prefer: count=planned", f"{COLLECTION}?limit=20", {"Prefer": "count=planned"}),
        ("first page, Prefer: count=estimated", f"{COLLECTION}?limit=20", {"Prefer": "count=estimated"}),
        ("deep page" + (" by cursor" if cursor_mode else " by offset"), deep[-1], {}),
        ("page by offset=10000 (the largest accepted)", f"{COLLECTION}?limit=20&offset=10000", {}),
    ]
    for fragment, what in [
        ("garc", "16,699 rows"),
        ("48213", "20 rows"),
        ("students.example", "250,001 rows"),
        ("qzxv", "no row"),
    ]:
        out.append((f"search q={fragment} ({what})", f"{COLLECTION}?limit=20&q={urllib.parse.quote(fragment)}", {}))
    out.append(
        ("search q=garc, Prefer: count=exact", f"{COLLECTION}?limit=20&q=garc", {"Prefer": "count=exact"})
    )
    # The second page of a search, by its own cursor.
    status, _, body, _ = get(port, f"{COLLECTION}?limit=20&q=garc")
    if status == 200 and json.loads(body).get("next_cursor"):
        cursor = json.loads(body)["next_cursor"]
        out.append(
            (
                "search q=garc, second page by cursor",
                f"{COLLECTION}?limit=20&q=garc&cursor={urllib.parse.quote(cursor, safe='')}",
                {},
            )
        )
    out.append(("search q=garc sorted by -gpa", f"{COLLECTION}?limit=20&q=garc&sort=-gpa", {}))
    seen = set()
    for path in sort:
        key = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)["sort"][0]
        if key not in seen:
            seen.add(key)
            out.append((f"sort={key}, first page", path, {}))
    last = {}
    for path in sort:
        last[urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)["sort"][0]] = path
    for key, path in last.items():
        out.append((f"sort={key}, a later page" + (" by cursor" if "cursor=" in path else " by offset"), path, {}))
    return out


def describe(label, path, headers, status, response_headers, body, elapsed):
    print(f"\n=== {label}")
    shown = path if len(path) < 110 else path[:100] + "..."
    print(f"GET {shown}" + "".join(f"  [{k}: {v}]" for k, v in headers.items()))
    summary = f"-> {status}, {elapsed:.1f} ms at the client"
    if status == 200:
        page = json.loads(body)
        summary += f", {len(page['data'])} rows, total={page.get('total')}, has_more={page.get('has_more')}"
        applied = {k.lower(): v for k, v in response_headers.items()}.get("preference-applied")
        if applied:
            summary += f", Preference-Applied: {applied}"
    print(summary)


def postgres(args, port):
    for label, path, headers in shapes(args.paths_dir, port):
        for _ in range(WARM_REPEATS):
            get(port, path, headers)
        start = os.path.getsize(args.pg_log)
        status, response_headers, body, elapsed = get(port, path, headers)
        time.sleep(0.05)  # the server writes its log line before it answers; be safe
        with open(args.pg_log, encoding="utf-8", errors="replace") as f:
            f.seek(start)
            log = f.read()
        describe(label, path, headers, status, response_headers, body, elapsed)
        for plan in pg_plans(log):
            if "students" in plan:
                print(plan)


def pg_plans(log):
    """auto_explain entries: the 'duration: .. plan:' line and its tab-indented lines."""
    plans, current = [], None
    for line in log.splitlines():
        marker = re.search(r"LOG:\s+duration: ([0-9.]+ ms)\s+plan:", line)
        if marker:
            if current:
                plans.append("\n".join(current))
            current = [f"  (duration {marker.group(1)})"]
        elif current is not None and line.startswith("\t"):
            current.append("  " + line[1:])
        elif current is not None:
            plans.append("\n".join(current))
            current = None
    if current:
        plans.append("\n".join(current))
    return plans


def sqlite(args, port):
    db = sqlite3.connect(f"file:{args.sqlite_db}?mode=ro", uri=True)
    for label, path, headers in shapes(args.paths_dir, port):
        get(port, path, headers)  # prepared and cached, as under load
        start = os.path.getsize(args.service_log)
        status, response_headers, body, elapsed = get(port, path, headers)
        time.sleep(0.05)
        with open(args.service_log, encoding="utf-8", errors="replace") as f:
            f.seek(start)
            log = f.read()
        describe(label, path, headers, status, response_headers, body, elapsed)
        for line in log.splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            statement = event.get("db.statement")
            if event.get("target") != "sqlx::query" or not statement or "students" not in statement:
                continue
            statement = " ".join(statement.split())
            print(f"  ({event.get('elapsed')}, {event.get('rows_returned')} rows) {statement}")
            numbered = [int(n) for n in re.findall(r"\?(\d+)", statement)]
            count = max(numbered) if numbered else statement.count("?")
            try:
                for row in db.execute("explain query plan " + statement, [None] * count):
                    print(f"    {row[3]}  (id {row[0]}, parent {row[1]})")
            except sqlite3.Error as e:
                print(f"    EXPLAIN QUERY PLAN failed: {e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("backend", choices=["postgres", "sqlite"])
    parser.add_argument("port", type=int)
    parser.add_argument("paths_dir")
    parser.add_argument("--pg-log")
    parser.add_argument("--service-log")
    parser.add_argument("--sqlite-db")
    args = parser.parse_args()
    if args.backend == "postgres":
        if not args.pg_log:
            sys.exit("--pg-log is required for postgres")
        postgres(args, args.port)
    else:
        if not (args.service_log and args.sqlite_db):
            sys.exit("--service-log and --sqlite-db are required for sqlite")
        sqlite(args, args.port)


if __name__ == "__main__":
    main()
