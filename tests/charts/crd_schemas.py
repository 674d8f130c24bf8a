#!/usr/bin/env python3
"""Checks every rendered custom resource with the check-jsonschema CLI.

Owns: picking, from .tmp/charts/index.json (written by render.py), the
documents of a custom resource kind, and running check-jsonschema on their
one-document files against the strict schema tests/schemas/ has for them.
Which schema serves which apiVersion and kind is validate.py's answer
(Validator.schema_name), so both checks always agree on the mapping.

validate.py already checks the same documents in-process; this is the
independent second opinion of the reference CLI.

Must not: check built-in kinds (validate.py does, against Kubernetes'
schemas), or print anything of a Secret (no Secret is a custom resource).

Usage: crd_schemas.py [--index FILE]
Writes the counts to crd-schemas.json beside the index.
Exit status: 0 when every custom resource is valid (or there is none), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "manifests"))
import validate  # noqa: E402  (tests/manifests/validate.py)

from render import OUT_DIR  # noqa: E402


def crd_files(index: dict, validator: validate.Validator) -> dict[Path, list[str]]:
    """Schema file -> rendered one-document files it must validate."""
    by_schema: dict[Path, list[str]] = defaultdict(list)
    for combo in index["combos"]:
        for doc in combo["documents"]:
            name = validator.schema_name(doc["apiVersion"], doc["kind"])
            if name and (validate.SCHEMA_DIR / name).is_file():
                by_schema[validate.SCHEMA_DIR / name].append(doc["file"])
    return dict(sorted(by_schema.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="check-jsonschema over every rendered custom resource.")
    parser.add_argument("--index", type=Path, default=OUT_DIR / "index.json", help="default %(default)s")
    args = parser.parse_args(argv)

    index = json.loads(args.index.read_text(encoding="utf-8"))
    by_schema = crd_files(index, validate.Validator())
    cli = Path(sys.executable).parent / "check-jsonschema"
    failed = 0
    total = 0
    for schema, files in by_schema.items():
        total += len(files)
        result = subprocess.run(
            [str(cli), "--schemafile", str(schema), *files], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            failed += 1
            print(f"crd-schemas: {schema.name}: check-jsonschema failed (exit {result.returncode}):")
            print(result.stdout + result.stderr)
        else:
            print(f"crd-schemas: {schema.name}: {len(files)} document(s) valid", file=sys.stderr)
    if failed:
        print(f"crd-schemas: {failed} schema(s) with invalid documents", file=sys.stderr)
        return 1
    print(f"crd-schemas: {total} custom resource document(s) valid", file=sys.stderr)
    counts = {"documents": total, "schemas": len(by_schema)}
    (args.index.parent / "crd-schemas.json").write_text(json.dumps(counts) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
