#!/usr/bin/env python3
"""Offline validation of Kubernetes manifests, one YAML document at a time.

Owns: choosing a schema for each document by apiVersion and kind, and
reporting every problem with file, line, document, object and field path.
Must not: contact a cluster, or print a value found under a Secret's data.

Where each document's schema comes from:
- custom resources (ExternalSecret, Application, PrometheusRule, ...): the
  strict schemas vendored in tests/schemas/; which schema serves which
  apiVersion and kind is read from the `enum` each schema pins them to;
- built-in kinds (Deployment, Service, ...): kubernetes-validate's strict
  schemas of each supported Kubernetes release (SUPPORTED_KUBERNETES_VERSIONS:
  the platform's floor and the newest release), the same check as
  `kubernetes-validate --strict -k <version>` once per release;
- anything else is an error: a kind nobody has a schema for never passes.

Both checks are library calls in one process, not CLI runs: each CLI run
pays the interpreter start and the schema load again (about half a second
with the large CRD schemas) where a library call costs milliseconds;
check-jsonschema's CLI takes one document per file; and kubernetes-validate's
CLI only warns, and exits 0, on a kind it has no schema for. The schemas and
the jsonschema engine are the ones those CLIs use (a test checks that
check-jsonschema agrees). kubernetes-validate reports one error per document,
the most relevant one; CRD documents get every error.

Usage: validate.py [-k X.Y.Z ...] [--stdin-name NAME] [-v] FILE|- ...
  (no -k: every release of SUPPORTED_KUBERNETES_VERSIONS)
  e.g. kubectl kustomize deploy/external-secrets | validate.py --stdin-name deploy/external-secrets -
Exit status: 0 when every document is valid, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError, best_match
from kubernetes_validate import utils as kubernetes_validate

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

# The Kubernetes releases every manifest must be valid for: the oldest the
# platform supports (its floor: the charts' kubeVersion, the cluster
# scripts' check; 1.33 and 1.34 are out of upstream support), whose schemas
# reject fields only newer releases know, and the newest release, whose
# schemas reject fields it has removed.
SUPPORTED_KUBERNETES_VERSIONS = ("1.35.0", "1.37.0")
DEFAULT_KUBERNETES_VERSION = SUPPORTED_KUBERNETES_VERSIONS[0]

# Longest message printed for one problem; schema messages may quote whole
# objects.
MAX_MESSAGE = 300


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one document (or with an input as a whole)."""

    source: str
    line: int  # 1-based; 0 when no line is known
    document: int  # 1-based index within the source; 0 for the whole input
    obj: str  # "Kind namespace/name", or "" when unknown
    path: str  # field path, "" for the whole document
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        parts = [where]
        if self.document:
            parts.append(f"document {self.document}")
        if self.obj:
            parts.append(self.obj)
        if self.path:
            parts.append(self.path)
        return ": ".join(parts + [self.message])


class SetupError(Exception):
    """The validator cannot start: schemas missing or a release not supported."""


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML loading with the scalars Kubernetes reads as strings."""


def _as_string(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


# Kubernetes turns YAML into JSON, where an unquoted date stays a string and
# a lone "=" is just text; PyYAML would make a date object of the first and
# fail on the second.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _as_string)
_Loader.add_constructor("tag:yaml.org,2002:value", _as_string)


def _format_path(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part and all(c.isalnum() or c in "_-" for c in str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


def _line_of(node: yaml.Node, path: Iterable[Any]) -> int:
    """The 1-based line of the deepest key or item along path that exists."""
    line = node.start_mark.line
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


def _duplicate_keys(node: yaml.Node, path: tuple = ()) -> Iterator[tuple[tuple, int]]:
    """Keys given twice in one mapping: PyYAML keeps the last, kubectl refuses."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                yield path + (key.value,), key.start_mark.line + 1
            seen.add(key.value)
            yield from _duplicate_keys(value, path + (key.value,))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, path + (i,))


def _object_name(doc: dict) -> str:
    """"Kind namespace/name" for reports; "" when the kind is not known."""
    kind = doc.get("kind")
    if not isinstance(kind, str):
        return ""
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = meta.get("name") or "?"
    namespace = meta.get("namespace")
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _explain(error: ValidationError) -> list[tuple[tuple, str, str]]:
    """(path, message, failed check) for one schema error, as precise as possible."""
    path = tuple(error.absolute_path)
    if (
        error.validator == "additionalProperties"
        and error.validator_value is False
        and isinstance(error.instance, dict)
        and not error.schema.get("patternProperties")
    ):
        known = error.schema.get("properties", {})
        extra = [k for k in error.instance if k not in known]
        if extra:
            return [(path + (k,), "unknown field (not in the schema)", "additionalProperties") for k in extra]
    if error.context:
        # anyOf/oneOf: the branch that came closest says what is wrong.
        return _explain(best_match(error.context))
    return [(path, error.message, str(error.validator))]


def _redact(kind: Any, path: tuple, message: str, check: str) -> str:
    """Never echo a Secret's values: schema messages quote the instance."""
    if kind != "Secret" or check in ("required", "additionalProperties"):
        return message
    if not path or path[0] in ("data", "stringData"):
        return f"invalid value (fails the '{check}' check)"
    return message


class Validator:
    """Validates parsed documents; builds each schema validator once."""

    def __init__(
        self,
        schema_dir: Path = SCHEMA_DIR,
        kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    ) -> None:
        self.kubernetes_version = kubernetes_version
        self._crd_schemas = self._index_crd_schemas(schema_dir)
        self._crd_validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
        self._builtin = self._builtin_kinds(kubernetes_version)

    @staticmethod
    def _index_crd_schemas(schema_dir: Path) -> dict[tuple[str, str], tuple[str, dict]]:
        """(apiVersion, kind) -> (file name, schema), from the pinned enums."""
        index: dict[tuple[str, str], tuple[str, dict]] = {}
        files = sorted(schema_dir.glob("*.json"))
        if not files:
            raise SetupError(f"no *.json schemas in {schema_dir}")
        for file in files:
            schema = json.loads(file.read_text(encoding="utf-8"))
            props = schema.get("properties", {})
            api_versions = props.get("apiVersion", {}).get("enum")
            kinds = props.get("kind", {}).get("enum")
            if not api_versions or not kinds:
                raise SetupError(f"{file} does not pin apiVersion and kind with an enum")
            for api_version in api_versions:
                for kind in kinds:
                    if (api_version, kind) in index:
                        raise SetupError(
                            f"{file.name} and {index[api_version, kind][0]} "
                            f"both claim {api_version} {kind}"
                        )
                    index[api_version, kind] = (file.name, schema)
        return index

    @staticmethod
    def _builtin_kinds(version: str) -> set[tuple[str, str]]:
        """Every (apiVersion, kind) the pinned release's schemas describe."""
        supported = kubernetes_validate.all_versions()
        if version not in supported:
            raise SetupError(
                f"kubernetes-validate has no schemas for Kubernetes {version}; "
                f"it has {', '.join(sorted(set(supported), key=supported.index))}"
            )
        definitions = kubernetes_validate.schema_contents(
            f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version
        )
        kinds = set()
        for definition in definitions["$defs"].values():
            for gvk in definition.get("x-kubernetes-group-version-kind", []):
                group_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
                kinds.add((group_version, gvk["kind"]))
        return kinds

    def schema_name(self, api_version: Any, kind: Any) -> str | None:
        """The schema that checks this apiVersion and kind; None if none does."""
        key = (api_version, kind)
        if not all(isinstance(x, str) for x in key):
            return None
        if key in self._crd_schemas:
            return self._crd_schemas[key][0]
        if key in self._builtin:
            return f"Kubernetes {self.kubernetes_version} strict"
        return None

    def check(self, doc: Any) -> list[tuple[tuple, str]]:
        """(path, message) for each problem of one parsed document."""
        if not isinstance(doc, dict):
            return [((), f"a manifest must be a mapping, not {type(doc).__name__}")]
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return [((), "apiVersion and kind must both be set to strings")]

        key = (api_version, kind)
        if key in self._crd_schemas:
            errors = list(self._crd_validator(key).iter_errors(doc))
        elif key in self._builtin:
            errors = self._builtin_errors(doc)
        else:
            known = sorted(v for v, k in set(self._crd_schemas) | self._builtin if k == kind)
            hint = f"; {kind} is known as {', '.join(known)}" if known else ""
            return [((), f"unknown kind {api_version} {kind}: no schema to check it against{hint}")]

        problems = [
            (path, _redact(kind, path, message, check))
            for error in errors
            for path, message, check in _explain(error)
        ]
        # Every manifest is applied by name (kubectl apply, Argo CD), though
        # some schemas leave metadata optional.
        meta = doc.get("metadata")
        if not (isinstance(meta, dict) and isinstance(meta.get("name"), str) and meta["name"]):
            problems.append((("metadata", "name"), "required: every manifest needs a name"))
        return sorted(problems, key=lambda p: [str(x) for x in p[0]])

    def _crd_validator(self, key: tuple[str, str]) -> jsonschema.protocols.Validator:
        if key not in self._crd_validators:
            schema = self._crd_schemas[key][1]
            cls = jsonschema.validators.validator_for(schema)
            self._crd_validators[key] = cls(schema, format_checker=cls.FORMAT_CHECKER)
        return self._crd_validators[key]

    def _builtin_errors(self, doc: dict) -> list[ValidationError]:
        # kubernetes-validate stops at the most relevant error of a document.
        try:
            kubernetes_validate.validate(doc, self.kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            return [error]
        return []

    def check_text(self, text: str, source: str) -> tuple[list[str], list[Problem]]:
        """For one multi-document YAML text: a description of each document
        ("Kind namespace/name (schema)"), and the problems found."""
        problems: list[Problem] = []
        checked: list[str] = []
        loader = _Loader(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                # Before construction, which flattens "<<" merge keys into the
                # node and would make an overridden key look given twice.
                duplicates = list(_duplicate_keys(node))
                doc = loader.construct_document(node)
                if doc is None:  # an empty document, e.g. between two "---"
                    continue
                obj, schema = "", None
                if isinstance(doc, dict):
                    obj = _object_name(doc)
                    schema = self.schema_name(doc.get("apiVersion"), doc.get("kind"))
                checked.append(f"{obj} ({schema or 'no schema'})")
                count = len(checked)
                for path, line in duplicates:
                    problems.append(
                        Problem(source, line, count, obj, _format_path(path), "key given twice")
                    )
                for path, message in self.check(doc):
                    if len(message) > MAX_MESSAGE:
                        message = message[: MAX_MESSAGE - 3] + "..."
                    problems.append(
                        Problem(source, _line_of(node, path), count, obj, _format_path(path), message)
                    )
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = mark.line + 1 if mark else 0
            problems.append(Problem(source, line, len(checked) + 1, "", "", f"not valid YAML: {error}"))
        finally:
            loader.dispose()
        return checked, problems


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    return Path(source).read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Validate Kubernetes manifests offline against strict schemas.",
    )
    parser.add_argument("sources", nargs="+", metavar="FILE", help="YAML file, or - for standard input")
    parser.add_argument(
        "-k",
        "--kubernetes-version",
        action="append",
        dest="kubernetes_versions",
        help="Kubernetes release whose built-in schemas apply; repeat for several "
        f"(default: {' and '.join(SUPPORTED_KUBERNETES_VERSIONS)})",
    )
    parser.add_argument("--schemas", type=Path, default=SCHEMA_DIR, help="directory of CRD schemas")
    parser.add_argument(
        "--stdin-name",
        default="<stdin>",
        help="what to call standard input in reports, e.g. the command that rendered it",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also list every valid document")
    args = parser.parse_args(argv)

    versions = list(dict.fromkeys(args.kubernetes_versions or SUPPORTED_KUBERNETES_VERSIONS))
    try:
        validators = [Validator(args.schemas, version) for version in versions]
    except SetupError as error:
        print(f"validate: {error}", file=sys.stderr)
        return 2
    total_docs = 0
    problems: list[Problem] = []
    names = [args.stdin_name if source == "-" else source for source in args.sources]
    for source, name in zip(args.sources, names):
        try:
            text = _read(source)
        except OSError as error:
            problems.append(Problem(name, 0, 0, "", "", f"cannot read: {error.strerror}"))
            continue
        checked, found = check_all(validators, text, name)
        count = len(checked)
        if count == 0 and not found:
            # An empty render usually means a broken pipeline, not a valid one.
            found = [Problem(name, 0, 0, "", "", "no Kubernetes documents found")]
        total_docs += count
        problems.extend(found)
        if args.verbose:
            bad = {p.document for p in found}
            for i, description in enumerate(checked, start=1):
                if i not in bad:
                    print(f"{name}: document {i}: {description}: valid")
    for problem in problems:
        print(problem)
    what = f"validate: {names[0]}" if len(names) == 1 else f"validate: {len(names)} inputs"
    releases = f"Kubernetes {' and '.join(versions)}"
    if problems:
        print(f"{what}: {len(problems)} problem(s) in {total_docs} document(s) read ({releases})", file=sys.stderr)
        return 1
    print(f"{what}: {total_docs} document(s) valid for {releases}", file=sys.stderr)
    return 0


def check_all(validators: list[Validator], text: str, source: str) -> tuple[list[str], list[Problem]]:
    """check_text under each validator's Kubernetes release: the documents as
    the first release describes them, and every problem once, naming the
    releases it is limited to when not all of them have it."""
    results = [validator.check_text(text, source) for validator in validators]
    seen: dict[Problem, list[str]] = {}
    for validator, (_, found) in zip(validators, results):
        for problem in found:
            seen.setdefault(problem, []).append(validator.kubernetes_version)
    problems = [
        problem
        if len(releases) == len(validators)
        else replace(problem, message=f"{problem.message} (Kubernetes {', '.join(releases)})")
        for problem, releases in seen.items()
    ]
    return results[0][0], problems


if __name__ == "__main__":
    sys.exit(main())
