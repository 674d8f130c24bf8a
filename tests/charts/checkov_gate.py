#!/usr/bin/env python3
"""checkov over every rendered chart × values directory and the Dockerfile,
with zero failed checks, and every skip listed with its justification.

Owns: running checkov once per rendered directory (.tmp/charts/<chart>/
<values-name>/, from index.json) and once on the Dockerfile, a few runs at
a time; reading its JSON report; listing each skip so skips are reviewed
like code; failing on any failed check, any parsing error, and any skip
without a justification.

Skips live only in what is scanned, never on this command line:
  - Kubernetes objects: an annotation on the object's own metadata,
      checkov.io/skip1: CKV_K8S_43=why this check does not apply here
    (checkov.io/skip2, ... for more; one check per annotation; the text after
    "=" is the justification, and must not itself contain "=", which checkov
    cannot parse);
  - the Dockerfile: a comment, # checkov:skip=CKV_DOCKER_3:why

Must not: print checkov's code excerpts (they would quote Secret data) or
contact anything: checkov runs with --skip-download and no update check.

Usage: checkov_gate.py [--index FILE] [--dockerfile FILE] [--checkov BIN] [--jobs N]
Writes the counts to checkov.json beside the index.
Exit status: 0 when every run passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from workloads import POD_TEMPLATE_PATHS
from render import OUT_DIR, REPO

CHECKOV = REPO / ".venv" / "checkov" / "bin" / "checkov"
# Annotation keys checkov reads skips from (checkov/kubernetes/kubernetes_utils.py).
SKIP_ANNOTATION_PREFIXES = ("checkov.io/skip", "bridgecrew.io/skip", "cortex.io/skip")
# What checkov reports as the justification of a skip that has none.
NO_COMMENT = "No comment provided"
# A skip comment in a Dockerfile: "checkov:skip=ID[,ID...][:justification]".
DOCKERFILE_SKIP = re.compile(r"checkov:skip=\s*([A-Za-z0-9_-]+(?:,[A-Za-z0-9_-]+)*)(?::(.*))?")


@dataclass(frozen=True)
class Target:
    """One checkov run."""

    label: str  # "student-api/values-prod" or "Dockerfile"
    framework: str  # "kubernetes" or "dockerfile"
    path: Path  # a directory (kubernetes) or a file (dockerfile)
    # Files checkov must report on: every workload's (a run that reports on
    # none of them scanned nothing).
    must_scan: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skip:
    """One skip found in the scanned sources."""

    label: str
    resource: str  # "Deployment student-api/student-api", "Dockerfile:12"
    check_id: str
    justification: str
    problem: str = ""  # why the skip is not acceptable; "" when it is


@dataclass
class Report:
    target: Target
    passed_checks: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    parsing_errors: list[str] = field(default_factory=list)
    error: str = ""  # checkov itself did not run through


# --------------------------------------------------------- skips in sources
def annotation_skips(label: str, doc: Any) -> Iterator[Skip]:
    """Skips declared by one rendered Kubernetes object's annotations."""
    if not isinstance(doc, dict):
        return
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
    namespace = meta.get("namespace")
    resource = f"{doc.get('kind', '?')} {namespace + '/' if namespace else ''}{meta.get('name', '?')}"
    for key, value in sorted(annotations.items()):
        if not str(key).startswith(SKIP_ANNOTATION_PREFIXES):
            continue
        check_id, sep, justification = str(value).partition("=")
        justification = justification.strip()
        problem = ""
        if not sep or not justification:
            problem = f'no justification: write {key}: "{check_id.strip()}=<why>"'
        elif "=" in justification:
            problem = 'the justification contains "=", which checkov cannot parse'
        yield Skip(label, resource, check_id.strip(), justification, problem)


def dockerfile_skips(label: str, text: str) -> Iterator[Skip]:
    """Skips declared by comments in a Dockerfile."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped.startswith("#"):
            continue
        match = DOCKERFILE_SKIP.search(stripped)
        if not match:
            continue
        justification = (match.group(2) or "").strip()
        problem = "" if justification else "no justification: write # checkov:skip=<ID>:<why>"
        for check_id in match.group(1).split(","):
            yield Skip(label, f"{label}:{number}", check_id, justification, problem)


def source_skips(targets: list[Target]) -> list[Skip]:
    skips: list[Skip] = []
    for target in targets:
        if target.framework == "kubernetes":
            for path in sorted(target.path.glob("*.yaml")):
                for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                    skips.extend(annotation_skips(target.label, doc))
        else:
            skips.extend(dockerfile_skips(target.label, target.path.read_text(encoding="utf-8")))
    return skips


# ------------------------------------------------------------ checkov runs
def parse_reports(stdout: str) -> list[dict]:
    """Every report in checkov's JSON output (one object, a list, or several
    objects one after the other, depending on the version and inputs)."""
    decoder = json.JSONDecoder()
    reports: list[dict] = []
    position = 0
    while True:
        while position < len(stdout) and stdout[position].isspace():
            position += 1
        if position >= len(stdout):
            return reports
        value, position = decoder.raw_decode(stdout, position)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                reports.append(item)


def run_checkov(checkov: Path, target: Target, cwd: Path) -> Report:
    report = Report(target)
    flag = "-d" if target.framework == "kubernetes" else "-f"
    command = [
        str(checkov),
        "--skip-download",
        "--framework",
        target.framework,
        flag,
        str(target.path.resolve()),
        "--output",
        "json",
    ]
    env = {
        **os.environ,
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        # The renders live under .tmp/, which checkov would otherwise skip
        # without a word, passing a scan of nothing.
        "CKV_IGNORE_HIDDEN_DIRECTORIES": "false",
        "LOG_LEVEL": "ERROR",
    }
    # cwd: the render directory, which has no .checkov.yaml, so no
    # configuration file can skip a check where reviewers do not look.
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env, cwd=cwd)
    if result.returncode not in (0, 1):
        report.error = f"checkov exited {result.returncode}: {result.stderr.strip()[-2000:]}"
        return report
    try:
        parsed = parse_reports(result.stdout)
    except json.JSONDecodeError as error:
        report.error = f"checkov printed no JSON report ({error}); stderr: {result.stderr.strip()[-2000:]}"
        return report
    for item in parsed:
        results = item.get("results") or {}
        report.passed_checks.extend(results.get("passed_checks") or [])
        report.failed.extend(results.get("failed_checks") or [])
        report.skipped.extend(results.get("skipped_checks") or [])
        report.parsing_errors.extend(map(str, results.get("parsing_errors") or []))
    if result.returncode == 1 and not report.failed:
        report.error = f"checkov exited 1 with no failed check in its report: {result.stderr.strip()[-2000:]}"
    checks = report.failed + report.skipped + report.passed_checks
    scanned = {Path(str(c.get("file_abs_path") or "")).name for c in checks}
    missed = sorted(Path(f).name for f in target.must_scan if Path(f).name not in scanned)
    if missed and not report.error:
        report.error = f"checkov checked nothing in {', '.join(missed)} (a path it ignores?)"
    return report


def _short_path(check: dict) -> str:
    return Path(str(check.get("file_abs_path") or check.get("file_path") or "?")).name


def group_labels(labels: list[str]) -> str:
    """"student-api/{values,values-prod}" for labels of one chart."""
    charts: dict[str, list[str]] = defaultdict(list)
    for label in labels:
        chart, _, values = label.partition("/")
        charts[chart].append(values)
    parts = []
    for chart, values in charts.items():
        if values == [""]:
            parts.append(chart)
        elif len(values) == 1:
            parts.append(f"{chart}/{values[0]}")
        else:
            parts.append(f"{chart}/{{{','.join(values)}}}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="checkov over every rendered chart and the Dockerfile.")
    parser.add_argument("--index", type=Path, default=OUT_DIR / "index.json", help="default %(default)s")
    parser.add_argument(
        "--dockerfile", type=Path, default=REPO / "Dockerfile", help="default %(default)s (skipped when absent)"
    )
    parser.add_argument("--checkov", type=Path, default=CHECKOV, help="default %(default)s")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="checkov runs at once (default: cores)")
    args = parser.parse_args(argv)

    index = json.loads(args.index.read_text(encoding="utf-8"))
    targets = [
        Target(c["id"], "kubernetes", Path(c["dir"]),
               tuple(d["file"] for d in c["documents"] if d["kind"] in POD_TEMPLATE_PATHS))
        for c in index["combos"]
    ]
    if args.dockerfile.is_file():
        targets.append(Target(args.dockerfile.name, "dockerfile", args.dockerfile, (str(args.dockerfile),)))
    else:
        print(f"checkov: {args.dockerfile} not present, skipped", file=sys.stderr)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        reports = list(pool.map(lambda t: run_checkov(args.checkov, t, args.index.parent), targets))

    problems: list[str] = []
    for report in reports:
        if report.error:
            problems.append(f"{report.target.label}: {report.error}")
        for error in report.parsing_errors:
            problems.append(f"{report.target.label}: checkov could not parse {error}")

    # Every skip, grouped across the values combinations of a chart.
    skips = source_skips(targets)
    names = {c["check_id"]: c.get("check_name", "") for r in reports for c in r.skipped + r.failed}
    applied = {(r.target.label, c.get("check_id")) for r in reports for c in r.skipped}
    grouped: dict[tuple, list[str]] = defaultdict(list)
    for skip in skips:
        key = (skip.label.partition("/")[0], skip.resource, skip.check_id, skip.justification, skip.problem)
        grouped[key].append(skip.label)
    print(f"checkov: {len(grouped)} skip(s) in the scanned sources, each with its justification:", file=sys.stderr)
    for (_, resource, check_id, justification, problem), labels in sorted(grouped.items()):
        name = f" ({names[check_id]})" if names.get(check_id) else ""
        line = f"  {group_labels(labels)}: {resource}: {check_id}{name}: {justification or '-'}"
        print(line, file=sys.stderr)
        if problem:
            problems.append(f"{group_labels(labels)}: {resource}: skip of {check_id}: {problem}")
        unused = [label for label in labels if (label, check_id) not in applied]
        if unused and not problem:
            print(f"    note: checkov did not apply this skip in {group_labels(unused)} "
                  "(a misspelt id, or a check that does not apply to this object)", file=sys.stderr)
    # A skip checkov applied without a justification, wherever it came from.
    for report in reports:
        for check in report.skipped:
            comment = str((check.get("check_result") or {}).get("suppress_comment") or "").strip()
            if comment in ("", NO_COMMENT):
                problems.append(
                    f"{report.target.label}: {check.get('resource')}: "
                    f"skip of {check.get('check_id')} has no justification"
                )

    failed: dict[tuple, list[str]] = defaultdict(list)
    for report in reports:
        for check in report.failed:
            key = (report.target.label.partition("/")[0], str(check.get("resource")), str(check.get("check_id")),
                   str(check.get("check_name")), _short_path(check))
            failed[key].append(report.target.label)
    for (_, resource, check_id, check_name, path), labels in sorted(failed.items()):
        problems.append(f"{group_labels(labels)}: {resource} ({path}): {check_id} failed: {check_name}")

    counts = {
        "runs": len(reports),
        "passed": sum(len(r.passed_checks) for r in reports),
        "failed": sum(len(r.failed) for r in reports),
        "skipped": sum(len(r.skipped) for r in reports),
    }
    (args.index.parent / "checkov.json").write_text(json.dumps(counts) + "\n", encoding="utf-8")
    for problem in sorted(set(problems)):
        print(problem)
    summary = (f"{counts['runs']} run(s): {counts['passed']} passed, {counts['failed']} failed, "
               f"{counts['skipped']} skipped check(s)")
    if problems:
        print(f"checkov: {len(set(problems))} problem(s); {summary}", file=sys.stderr)
        return 1
    print(f"checkov: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
