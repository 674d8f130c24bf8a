"""Renovate's offline extract of this repository, as data.

Owns: making a throwaway git repository of the work tree as the test command
sees it (committed and uncommitted files, .gitignore applied), running
Renovate there with `--platform=local --dry-run=extract`, and returning its
report: every dependency each manager found, per package file.

Must not: reach the network. Renovate needs none in extract mode; every
proxy variable points at a closed loopback port, so a call that tried would
fail at once instead of leaving the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONFIG_NAME = "renovate.json5"
# Installed by tests/renovate/run.sh (npm ci in this directory).
NODE_MODULES = HERE / "node_modules"
# A loopback port nothing listens on: a request through this proxy fails.
CLOSED_PROXY = "http://127.0.0.1:9"


def renovate_bin(name: str = "renovate") -> Path:
    path = Path(os.environ.get("RENOVATE_BIN_DIR") or NODE_MODULES / ".bin") / name
    if not path.exists():
        raise RuntimeError(f"{path} not found: run tests/renovate/run.sh, which installs Renovate")
    return path


def work_tree_files(repo: Path = REPO) -> list[str]:
    """Tracked and untracked, not ignored, files that exist: what the test
    command checks (a deleted file not yet committed is gone)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode()
    names = sorted({n for n in out.split("\0") if n})
    return [n for n in names if (repo / n).is_file() and not (repo / n).is_symlink()]


def snapshot(dest: Path, repo: Path = REPO) -> Path:
    """A git repository at dest holding the work tree's files, all staged
    (Renovate's local platform lists files with `git ls-files`)."""
    for name in work_tree_files(repo):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True, env=env)
    return dest


def json5_to_data(path: Path) -> Any:
    """A JSON5 file (comments, trailing commas) as data, parsed by the json5
    package Renovate itself reads its configuration with."""
    script = "const fs=require('fs');const J=require('json5');process.stdout.write(JSON.stringify(J.parse(fs.readFileSync(process.argv[1],'utf8'))))"
    out = subprocess.run(
        ["node", "-e", script, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
    ).stdout
    return json.loads(out)


@dataclass(frozen=True)
class Dep:
    """One dependency of Renovate's report, with where it was found."""

    manager: str
    package_file: str
    dep_name: str
    datasource: str
    current_value: str
    current_digest: str
    skip_reason: str
    registry_urls: tuple[str, ...]
    package_name: str

    def describe(self) -> str:
        value = self.current_value + (f"@{self.current_digest}" if self.current_digest else "")
        skip = f" (skipped: {self.skip_reason})" if self.skip_reason else ""
        return f"{self.manager} {self.package_file}: {self.dep_name} {value}{skip}"


def deps_of(report: dict) -> list[Dep]:
    """Every dependency of a report (`--report-type=file`), flattened."""
    deps = []
    for repository in (report.get("repositories") or {}).values():
        for manager, files in (repository.get("packageFiles") or {}).items():
            for package_file in files:
                for dep in package_file.get("deps") or []:
                    deps.append(
                        Dep(
                            manager=manager,
                            package_file=package_file.get("packageFile", ""),
                            dep_name=str(dep.get("depName") or ""),
                            datasource=str(dep.get("datasource") or ""),
                            current_value=str(dep.get("currentValue") or ""),
                            current_digest=str(dep.get("currentDigest") or ""),
                            skip_reason=str(dep.get("skipReason") or ""),
                            registry_urls=tuple(dep.get("registryUrls") or ()),
                            package_name=str(dep.get("packageName") or ""),
                        )
                    )
    return deps


def offline_env(scratch: Path) -> dict[str, str]:
    """The environment Renovate runs in: its base directory (cache, clones)
    under scratch, no RENOVATE_* setting of the caller's, and every proxy
    variable on a closed loopback port."""
    base_dir = scratch / "base"
    base_dir.mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("RENOVATE_") and key.lower() not in {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}
    }
    env.update(
        {
            "RENOVATE_BASE_DIR": str(base_dir),
            "LOG_LEVEL": os.environ.get("RENOVATE_TEST_LOG_LEVEL", "warn"),
            "HTTP_PROXY": CLOSED_PROXY,
            "HTTPS_PROXY": CLOSED_PROXY,
            "http_proxy": CLOSED_PROXY,
            "https_proxy": CLOSED_PROXY,
            "NO_PROXY": "",
            "no_proxy": "",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
        }
    )
    return env


def run_extract(clone: Path, scratch: Path, config: Any | None = None) -> dict:
    """Renovate's extract report of the repository at clone. With config
    (data), that configuration replaces the repository's own, in a copy.
    scratch holds Renovate's base directory and the report."""
    if config is not None:
        copy = scratch / "repo"
        shutil.copytree(clone, copy, symlinks=True)
        # JSON is JSON5: the same file name, so Renovate reads it as before.
        (copy / CONFIG_NAME).write_text(json.dumps(config, indent=2), encoding="utf-8")
        clone = copy
    report = scratch / "report.json"
    result = subprocess.run(
        [
            str(renovate_bin()),
            "--platform=local",
            "--dry-run=extract",
            "--report-type=file",
            f"--report-path={report}",
        ],
        cwd=clone,
        env=offline_env(scratch),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not report.is_file():
        raise RuntimeError(
            f"renovate extract failed (exit {result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return json.loads(report.read_text(encoding="utf-8"))


def decide(config: Path, deps: list[Dep]) -> list[dict[str, dict]]:
    """What the configuration's packageRules decide for each dependency and
    update type (patch, minor, major, digest, pinDigest): enabled, groupName,
    dependencyDashboardApproval, schedule, allowedVersions. Computed by
    Renovate's own code in rules.js, offline."""
    payload = [
        {
            "manager": d.manager,
            "packageFile": d.package_file,
            "depName": d.dep_name,
            "packageName": d.package_name or d.dep_name,
            "datasource": d.datasource,
            "currentValue": d.current_value,
        }
        for d in deps
    ]
    with tempfile.TemporaryDirectory(prefix="renovate-rules-") as tmp:
        result = subprocess.run(
            ["node", str(HERE / "rules.js"), str(config)],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            check=False,
            env={**offline_env(Path(tmp)), "NODE_PATH": str(NODE_MODULES), "LOG_LEVEL": "error"},
        )
    if result.returncode != 0:
        raise RuntimeError(f"rules.js failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout)


def main() -> None:
    """`python tests/renovate/extract.py [OUT]`: the report of the work tree,
    printed or written to OUT, for a person reading what Renovate finds."""
    with tempfile.TemporaryDirectory(prefix="renovate-extract-") as tmp:
        clone = snapshot(Path(tmp) / "clone")
        report = run_extract(clone, Path(tmp))
    text = json.dumps(report, indent=2)
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text, encoding="utf-8")
    else:
        print(text)


if __name__ == "__main__":
    main()
