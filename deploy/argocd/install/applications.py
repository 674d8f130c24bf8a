#!/usr/bin/env python3
"""Reads `kubectl get applications -o json` and says which Argo CD
Applications are Synced and Healthy; wait.sh calls it once a poll. Nothing
here talks to a cluster.

Usage: applications.py < applications.json

Prints one line per Application, sorted by name, tab-separated:

  NAME  STATE  DETAIL

STATE is "ready" when the Application is Synced and Healthy and no sync
operation of it is still running (the root's runs until its last wave is
healthy), else "waiting". DETAIL is "Synced/Healthy", the sync and health
status, plus, for a waiting Application, the first message Argo CD gives
for it (a condition such as a ComparisonError, the running or failed
operation, or the health message), on one line.

Exit codes: 0 every Application is ready (and there is at least one);
3 some are waiting, or there is none yet; 2 the input is not a list of
Applications. Only the Python 3 standard library is used.
"""

from __future__ import annotations

import json
import sys

EXIT_READY = 0
EXIT_BAD_INPUT = 2
EXIT_WAITING = 3
# Operation phases that mean a sync is still under way.
RUNNING_PHASES = {"Running", "Terminating"}
MESSAGE_LIMIT = 300


def one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def message_of(status: dict) -> str:
    """The first thing Argo CD says about why an Application is not done."""
    for condition in status.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("message"):
            return f"{condition.get('type', 'Condition')}: {one_line(condition['message'])}"
    operation = status.get("operationState") or {}
    if operation.get("message") and operation.get("phase") != "Succeeded":
        return f"sync {str(operation.get('phase', '?')).lower()}: {one_line(operation['message'])}"
    health = status.get("health") or {}
    if health.get("message"):
        return one_line(health["message"])
    return ""


def summarise(app: dict) -> tuple[str, bool, str]:
    status = app.get("status") or {}
    sync = (status.get("sync") or {}).get("status") or "Unknown"
    health = (status.get("health") or {}).get("status") or "Unknown"
    phase = (status.get("operationState") or {}).get("phase")
    ready = sync == "Synced" and health == "Healthy" and phase not in RUNNING_PHASES
    detail = f"{sync}/{health}"
    if not ready and (message := message_of(status)):
        detail += f": {message}"
    elif phase in RUNNING_PHASES:
        detail += f": sync {phase.lower()}"
    return app.get("metadata", {}).get("name", "?"), ready, detail


def main() -> int:
    try:
        doc = json.load(sys.stdin)
    except json.JSONDecodeError as err:
        print(f"applications.py: the input is not JSON: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        print("applications.py: expected a list of Applications (an object with items)", file=sys.stderr)
        return EXIT_BAD_INPUT
    apps = sorted((summarise(a) for a in doc["items"] if isinstance(a, dict)), key=lambda s: s[0])
    for name, ready, detail in apps:
        print(f"{name}\t{'ready' if ready else 'waiting'}\t{detail}")
    return EXIT_READY if apps and all(ready for _, ready, _ in apps) else EXIT_WAITING


if __name__ == "__main__":
    sys.exit(main())
