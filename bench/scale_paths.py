#!/usr/bin/env python3
"""Request paths for the scale scenarios of bench/scale.sh, one per line.

Asks the running service which list API it has: a response with a
`next_cursor` field pages by cursor; one without (the list before cursors
existed) pages by offset only. Then writes, into OUT_DIR:

    first.txt   the first page
    deep.txt    pages DEPTH-99 .. DEPTH of the default order: reached by
                walking the cursor chain from the first page (every page on
                the way is requested once, here, not during the load run), or
                by `offset` when the service has no cursor
    search.txt  the first page of a search for each fragment
    sort.txt    for each sort key, its first page and every tenth page down
                to SORT_DEPTH, by cursor (by offset without cursors; a service
                that has no `sort` ignores it and answers the default order)
    mix.txt     the four kinds interleaved, a quarter each

Standard library only; only 127.0.0.1 is ever contacted. A page that does not
answer 200 stops the script with an error: the load runs must start from
paths that work.

Last line of output (parsed by bench/scale.sh):
    PATHS mode=<cursor|offset> deep_page=<n> first=<n> deep=<n> search=<n> sort=<n> mix=<n> walked=<n> walk_s=<n>
"""

import argparse
import http.client
import itertools
import json
import os
import sys
import time
import urllib.parse

COLLECTION = "/api/v1/students"
LIMIT = 20
SORT_KEYS = ["name", "-name", "gpa", "-gpa", "created", "-created", "-id"]
# Name and email fragments of three characters or more, as a user types them
# into a search box, and how many of the 1,000,000 rows bench/scale.sh loads
# each one matches (50 first names, 60 last names, a number in each email,
# four mail domains): from none to a quarter of the table.
FRAGMENTS = [
    "garc",  # Garcia: 16,699
    "nguyen",  # 16,700
    "kowal",  # Kowalski: 16,700
    "eliza",  # Elizabeth: 20,000
    "moham",  # Mohammed: 20,000
    "sson",  # Johansson, Andersson, Larsson: 50,100
    "ana.kow",  # a first and a last name in the email: 334
    "48213",  # a number inside the emails: 20
    "students.example",  # one of the four mail domains: 250,001
    "qzxv",  # a typo: none
]


class Api:
    def __init__(self, port):
        self.port = port
        self.conn = None
        self.requests = 0

    def get(self, path):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.conn.request("GET", path)
                response = self.conn.getresponse()
                body = response.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        self.requests += 1
        if response.status != 200:
            sys.exit(f"GET {path}: {response.status} {body[:300]!r}")
        return json.loads(body)


def path(**params):
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return f"{COLLECTION}?{query}"


def walk(api, pages, sort=None):
    """Follows next_cursor from the first page; yields (page number, path)."""
    current = path(limit=LIMIT, sort=sort)
    for number in range(1, pages + 1):
        yield number, current
        if number == pages:
            return
        body = api.get(current)
        cursor = body.get("next_cursor")
        if not body.get("has_more") or not cursor:
            sys.exit(f"the chain of sort={sort or 'id'} ended at page {number}")
        current = path(limit=LIMIT, sort=sort, cursor=cursor)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("out_dir")
    parser.add_argument("--deep-page", type=int, default=5000)
    parser.add_argument("--sort-depth", type=int, default=100)
    args = parser.parse_args()
    api = Api(args.port)
    started = time.monotonic()

    probe = api.get(path(limit=1))
    mode = "cursor" if "next_cursor" in probe else "offset"
    deep_pages = range(max(1, args.deep_page - 99), args.deep_page + 1)
    sort_pages = [1, *range(10, args.sort_depth + 1, 10)]

    first = [path(limit=LIMIT)]
    search = [path(limit=LIMIT, q=fragment) for fragment in FRAGMENTS]
    if mode == "cursor":
        deep = [p for n, p in walk(api, args.deep_page) if n in deep_pages]
        sort = [
            p
            for key in SORT_KEYS
            for n, p in walk(api, args.sort_depth, sort=key)
            if n in sort_pages
        ]
    else:
        deep = [path(limit=LIMIT, offset=(n - 1) * LIMIT) for n in deep_pages]
        sort = [
            path(limit=LIMIT, sort=key, offset=(n - 1) * LIMIT or None)
            for key in SORT_KEYS
            for n in sort_pages
        ]
    # Every path answers before it is used under load.
    for p in [*first, *search, deep[-1], *sort[:: len(sort_pages)]]:
        api.get(p)

    lists = [first, deep, search, sort]
    length = 4 * max(len(kind) for kind in lists)
    cycles = [itertools.cycle(kind) for kind in lists]
    mix = [next(cycles[i % 4]) for i in range(length)]

    os.makedirs(args.out_dir, exist_ok=True)
    for name, paths in [("first", first), ("deep", deep), ("search", search), ("sort", sort), ("mix", mix)]:
        with open(os.path.join(args.out_dir, f"{name}.txt"), "w", encoding="ascii") as f:
            f.write("".join(p + "\n" for p in paths))
    print(
        f"PATHS mode={mode} deep_page={args.deep_page} first={len(first)} deep={len(deep)} "
        f"search={len(search)} sort={len(sort)} mix={len(mix)} walked={api.requests} "
        f"walk_s={time.monotonic() - started:.1f}"
    )


if __name__ == "__main__":
    main()
