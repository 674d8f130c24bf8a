"""Every pin of the repository, found without Renovate, and which of them a
Renovate extract report lacks.

Owns: reading the pins straight from the files that hold them (the Argo CD
Applications as tests/argocd renders them, Dockerfiles, compose files,
workflows, Helm values and manifests, scripts, requirement files,
package.json and Cargo.toml files), and matching each against the
dependencies Renovate extracted (extract.Dep). What counts as a pin is
decided here by the shape of the text, never by renovate.json5, so a pin the
configuration forgets is reported rather than silently left out.

Must not: run Renovate or reach the network.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from extract import REPO, Dep, work_tree_files

ARGOCD_TESTS = REPO / "tests" / "argocd"

# An exact version: what this repository pins (1.2.3, v1.2.3, 18.6-trixie).
# Two-part numbers such as the Kubernetes floor MIN_KUBERNETES="1.35" are
# policy, not pins.
EXACT_VERSION = re.compile(r"(?<![\w.])v?\d+\.\d+\.\d+(?![.\d])(?:[-+][\w.-]+)?")
DIGEST = r"sha256:[0-9a-f]{64}"
# name:tag@sha256:..., anywhere in a text (scripts, docs, strings in YAML).
DIGEST_REF = re.compile(rf"(?<![\w./])([a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)+|[a-z0-9][a-z0-9._-]*):([\w][\w.-]*)@({DIGEST})")
RELEASE_ASSET = re.compile(r"https://github\.com/([\w.-]+/[\w.-]+)/releases/download/([^/\s]+)/")
# NAME="1.2.3" or NAME="${NAME:-1.2.3}" in a shell script.
SHELL_ASSIGNMENT = re.compile(r'^\s*(?:export\s+|readonly\s+|local\s+)?([A-Z][A-Z0-9_]*)="(?:\$\{\1:-)?([^"$}]*)\}?"', re.M)
# "package==1.2.3" in a shell script (pip arguments).
SHELL_PIP_PIN = re.compile(r'"([A-Za-z0-9][A-Za-z0-9._-]*)==([^"\s]+)"')
RENOVATE_COMMENT = re.compile(r"#\s*renovate:\s*datasource=([a-z-]+)\s+depName=(\S+)")
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*([^\s#]+)(?:\s*#\s*(\S+))?", re.M)
REQUIREMENT_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)", re.M)
# Renovate marks GitHub lookups "github-token-required" when it runs
# without a token, as the offline extract does; the hosted app has one.
# Any other skip reason means Renovate will not update the pin.
ENVIRONMENT_SKIPS = frozenset({"github-token-required"})
# The upgrade notes record the versions before and after each upgrade on
# purpose: history, not pins (renovate.json5 ignores the file too).
HISTORY = frozenset({"docs/upgrading.md"})


@dataclass(frozen=True)
class Pin:
    """A version pinned somewhere in the repository."""

    kind: str  # chart, git tag, image, action, requirement, package, crate, version, release asset
    where: str  # the file, or how the Applications were rendered
    name: str  # chart, image, action or package; "" when the file does not say
    version: str
    digest: str = ""
    registry: str = ""  # the Helm repository of a chart
    # Charts are matched wherever the argocd manager found them: the prod
    # Applications come out of a rendering, not out of one file.
    any_file: bool = False

    def describe(self) -> str:
        value = self.version + (f"@{self.digest[:19]}…" if self.digest else "")
        name = f"{self.name} " if self.name else ""
        return f"{self.kind} {name}{value} in {self.where}"


# ---------------------------------------------------------------- matching
def normalise_image(name: str) -> str:
    """An image name as Docker resolves it: postgres == docker.io/library/postgres."""
    for prefix in ("index.docker.io/", "docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name.removeprefix("library/")


def normalise_package(name: str) -> str:
    """PyPI's name normalisation (PEP 503), which npm and crates.io names survive."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _same_name(pin: Pin, dep: Dep) -> bool:
    if not pin.name:
        return True
    names = {dep.dep_name, dep.package_name} - {""}
    if pin.kind == "image":
        return normalise_image(pin.name) in {normalise_image(n) for n in names}
    if pin.kind == "git tag":
        return any(n.rstrip("/").removesuffix(".git") == pin.name.rstrip("/").removesuffix(".git") for n in names)
    return normalise_package(pin.name) in {normalise_package(n) for n in names}


def _same_version(pin: Pin, dep: Dep) -> bool:
    # pip_requirements reports "==1.2.3"; others the version as written.
    return dep.current_value.lstrip("=").strip() == pin.version


def matches(pin: Pin, dep: Dep) -> bool:
    return (
        (pin.any_file or dep.package_file == pin.where)
        and (dep.skip_reason == "" or dep.skip_reason in ENVIRONMENT_SKIPS)
        and _same_name(pin, dep)
        and _same_version(pin, dep)
        and (not pin.digest or dep.current_digest == pin.digest)
        and (not pin.registry or pin.registry.rstrip("/") in {u.rstrip("/") for u in dep.registry_urls})
    )


def missing(pins: Iterable[Pin], deps: list[Dep]) -> list[str]:
    """The pins no extracted dependency matches, described, with what
    Renovate did find in that file when it found something."""
    findings = []
    for pin in sorted(set(pins), key=lambda p: (p.where, p.kind, p.name, p.version)):
        if any(matches(pin, dep) for dep in deps):
            continue
        near = [d.describe() for d in deps if d.package_file == pin.where and _same_version(pin, d)]
        hint = f" (Renovate found only: {'; '.join(near)})" if near else ""
        findings.append(f"not tracked: {pin.describe()}{hint}")
    return findings


# ------------------------------------------------------------------ files
def _text(root: Path, name: str) -> str:
    return (root / name).read_text(encoding="utf-8", errors="replace")


def _files(root: Path, predicate: Callable[[str], bool]) -> list[str]:
    return [n for n in work_tree_files(root) if predicate(n) and n not in HISTORY]


def _yaml_documents(root: Path, name: str) -> list[Any]:
    """The YAML documents of a file, or none when it does not parse (Helm
    templates, whose pins the text scans still see)."""
    try:
        return [d for d in yaml.safe_load_all(_text(root, name)) if d is not None]
    except yaml.YAMLError:
        return []


def _image(where: str, ref: str) -> Pin | None:
    """A Pin for an image reference with a tag or a digest; None without
    either, or for a template."""
    if "{{" in ref or "$" in ref:
        return None
    name, digest = ref, ""
    if "@" in name:
        name, digest = name.split("@", 1)
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    if not tag and not digest:
        return None
    return Pin("image", where, name, tag, digest)


# ----------------------------------------------------------------- finders
@functools.lru_cache(maxsize=1)
def argocd_pins() -> tuple[Pin, ...]:
    """Every chart and upstream Git tag of every Application, in both
    variants tests/argocd/gitops.py renders (dev_variant() and prod_variant(),
    whatever layout they read). Rendered once per run."""
    sys.path.insert(0, str(ARGOCD_TESTS))
    try:
        import gitops  # noqa: PLC0415  (tests/argocd, imported where needed)
    finally:
        sys.path.remove(str(ARGOCD_TESTS))
    loaders = [gitops.dev_variant, gitops.prod_variant]
    pins = []
    for load in loaders:
        variant = load()
        apps = dict(variant.apps)
        if getattr(variant, "root", None):
            apps.setdefault(variant.root["metadata"]["name"], variant.root)
        for app_name, app in apps.items():
            where = f"{variant.name} Application {app_name}"
            for source in gitops.app_sources(app):
                revision = str(source.get("targetRevision") or "")
                if source.get("chart"):
                    pins.append(Pin("chart", where, str(source["chart"]), revision, registry=str(source["repoURL"]), any_file=True))
                elif EXACT_VERSION.fullmatch(revision):
                    # A Git source at a release tag (an upstream repository);
                    # this repository's own sources follow a branch.
                    pins.append(Pin("git tag", where, str(source["repoURL"]), revision, any_file=True))
    return tuple(pins)


def dockerfile_pins(root: Path) -> list[Pin]:
    """The base images of every Dockerfile (FROM scratch and earlier stages aside)."""
    pins = []
    for name in _files(root, lambda n: re.search(r"(^|/)(Docker|Container)file[^/]*$", n) is not None):
        stages: set[str] = set()
        for line in _text(root, name).splitlines():
            m = re.match(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
            if not m:
                continue
            if m.group(1) != "scratch" and m.group(1) not in stages and (pin := _image(name, m.group(1))):
                pins.append(pin)
            if m.group(2):
                stages.add(m.group(2))
    return pins


def _walk_images(where: str, node: Any) -> list[Pin]:
    """Images in parsed YAML: a string under a key ending in `image` (or
    `imageName`), or a map under such a key with repository and tag or
    digest, or with a tag alone (an upstream chart's own repository)."""
    pins: list[Pin] = []
    if isinstance(node, dict):
        # A compose service that builds its image names what it builds, not
        # an image to pull.
        if "build" in node and isinstance(node.get("image"), str):
            node = {k: v for k, v in node.items() if k != "image"}
        for key, value in node.items():
            key_s = str(key)
            if re.search(r"image(Name)?$", key_s, re.I):
                if isinstance(value, str) and (pin := _image(where, value)):
                    pins.append(pin)
                    continue
                if isinstance(value, dict) and (value.get("tag") or value.get("digest")):
                    tag, digest = str(value.get("tag") or ""), str(value.get("digest") or "")
                    if "{{" not in tag + digest:
                        repository = str(value.get("repository") or "")
                        registry = str(value.get("registry") or "")
                        name = f"{registry}/{repository}" if registry and repository else repository
                        pins.append(Pin("image", where, name, tag, digest))
                        continue
            pins.extend(_walk_images(where, value))
    elif isinstance(node, list):
        for item in node:
            pins.extend(_walk_images(where, item))
    return pins


def yaml_image_pins(root: Path) -> list[Pin]:
    """Images of compose files, workflows, and every YAML file of deploy/
    (manifests, Helm values, Applications)."""
    pins = []
    for name in _files(
        root,
        lambda n: n.endswith((".yaml", ".yml"))
        and (n.startswith(("deploy/", ".github/workflows/")) or re.search(r"(^|/)(docker-)?compose[^/]*\.ya?ml$", n) is not None),
    ):
        for doc in _yaml_documents(root, name):
            pins.extend(_walk_images(name, doc))
    return pins


def digest_reference_pins(root: Path) -> list[Pin]:
    """Every name:tag@sha256:... written in deploy/, docs/ or a script,
    whatever the file type."""
    pins = []
    for name in _files(root, lambda n: n.startswith(("deploy/", "docs/", "scripts/")) or n.endswith(".sh")):
        for image, tag, digest in DIGEST_REF.findall(_text(root, name)):
            pins.append(Pin("image", name, image, tag, digest))
    return pins


def release_asset_pins(root: Path) -> list[Pin]:
    """Files fetched from a GitHub release by URL."""
    pins = []
    for name in _files(root, lambda n: n.startswith(("deploy/", "scripts/", ".github/"))):
        for repo, tag in RELEASE_ASSET.findall(_text(root, name)):
            pins.append(Pin("release asset", name, repo, tag))
    return pins


def script_pins(root: Path) -> list[Pin]:
    """Exact versions assigned in shell scripts (NAME="1.2.3",
    NAME="${NAME:-image:1.2.3@sha256:...}") and pip pins written in them
    ("package==1.2.3")."""
    pins = []
    for name in _files(root, lambda n: n.endswith(".sh") or n == ".ci/run"):
        text = _text(root, name)
        for _var, value in SHELL_ASSIGNMENT.findall(text):
            if (version := EXACT_VERSION.search(value)) and "==" not in value:
                pins.append(Pin("version", name, "", version.group(0)))
        for package, version in SHELL_PIP_PIN.findall(text):
            pins.append(Pin("requirement", name, package, version))
    return pins


def workflow_pins(root: Path) -> list[Pin]:
    """Every action of every workflow (SHA and the version in its comment)
    and every exact version in a workflow's env."""
    pins = []
    for name in _files(root, lambda n: re.match(r"^\.github/workflows/[^/]+\.ya?ml$", n) is not None):
        text = _text(root, name)
        for ref, comment in USES.findall(text):
            if ref.startswith("./"):
                continue
            if ref.startswith("docker://"):
                if pin := _image(name, ref[len("docker://") :]):
                    pins.append(pin)
                continue
            action, _, sha = ref.partition("@")
            digest = sha if re.fullmatch(r"[0-9a-f]{40}", sha) else ""
            version = comment if digest else sha
            pins.append(Pin("action", name, "/".join(action.split("/")[:2]), version, digest))
        for doc in _yaml_documents(root, name):
            for env in _envs(doc):
                for value in env.values():
                    if isinstance(value, str) and EXACT_VERSION.fullmatch(value):
                        pins.append(Pin("version", name, "", value))
    return pins


def _envs(node: Any) -> list[dict]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, dict):
                found.append(value)
            else:
                found.extend(_envs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_envs(item))
    return found


def requirement_pins(root: Path) -> list[Pin]:
    """Every exact pin of every pip requirements file."""
    pins = []
    for name in _files(root, lambda n: re.search(r"(^|/)[\w-]*requirements([-.]\w+)?\.(txt|pip)$", n) is not None):
        for package, version in REQUIREMENT_PIN.findall(_text(root, name)):
            pins.append(Pin("requirement", name, package, version))
    return pins


def npm_pins(root: Path) -> list[Pin]:
    """Every dependency of every package.json."""
    pins = []
    for name in _files(root, lambda n: n == "package.json" or n.endswith("/package.json")):
        manifest = json.loads(_text(root, name))
        for field in ("dependencies", "devDependencies", "optionalDependencies"):
            for package, version in (manifest.get(field) or {}).items():
                pins.append(Pin("package", name, package, str(version)))
    return pins


def cargo_pins(root: Path) -> list[Pin]:
    """Every crate of every Cargo.toml (ranges: Cargo.lock holds the exact
    versions, which lock-file maintenance refreshes)."""
    pins = []
    for name in _files(root, lambda n: n == "Cargo.toml" or n.endswith("/Cargo.toml")):
        manifest = tomllib.loads(_text(root, name))
        tables = [manifest.get(t) for t in ("dependencies", "dev-dependencies", "build-dependencies")]
        tables.append((manifest.get("workspace") or {}).get("dependencies"))
        for table in tables:
            for crate, spec in (table or {}).items():
                version = spec if isinstance(spec, str) else (spec or {}).get("version")
                if version:
                    pins.append(Pin("crate", name, crate, str(version)))
    return pins


def comment_pins(root: Path) -> list[Pin]:
    """Every `# renovate:` comment names a pin the regex manager must find."""
    pins = []
    for name in _files(root, lambda n: True):
        try:
            text = (root / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for match in RENOVATE_COMMENT.finditer(text):
            following = text[match.end() :].split("\n", 2)
            line = following[1] if len(following) > 1 else ""
            version = EXACT_VERSION.search(line)
            pins.append(Pin("version", name, match.group(2), version.group(0) if version else "(no version on the next line)"))
    return pins


FINDERS: tuple[Callable[[Path], list[Pin]], ...] = (
    dockerfile_pins,
    yaml_image_pins,
    digest_reference_pins,
    release_asset_pins,
    script_pins,
    workflow_pins,
    requirement_pins,
    npm_pins,
    cargo_pins,
    comment_pins,
)


def repository_pins(root: Path) -> list[Pin]:
    """Every pin of the files at root (a snapshot of the work tree), the
    Argo CD charts aside (argocd_pins, read from this repository)."""
    return [pin for finder in FINDERS for pin in finder(root)]
