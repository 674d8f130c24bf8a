"""Tests of validate.py: it passes the real manifests and catches what it must.

Broken inputs are made at test time from the real files under deploy/, so a
test breaks when the real files stop exercising what it checks.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import validate

REPO = Path(__file__).resolve().parents[2]
ESO_DIR = REPO / "deploy" / "external-secrets"
VALIDATE = Path(validate.__file__)


def eso_files() -> list[Path]:
    return sorted(p for p in ESO_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def real_document(kind: str) -> dict:
    """The first real document of this kind in deploy/external-secrets."""
    for path in eso_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == kind:
                return doc
    raise AssertionError(f"no {kind} in {ESO_DIR}")


def dump(*docs: dict) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "student-api"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
            },
        },
    }


@pytest.fixture(scope="module")
def validator() -> validate.Validator:
    return validate.Validator()


def problems_of(validator: validate.Validator, text: str) -> list[validate.Problem]:
    return validator.check_text(text, "test.yaml")[1]


def test_every_external_secrets_file_passes_against_the_vendored_schemas(validator):
    described = []
    for path in eso_files():
        checked, problems = validator.check_text(path.read_text(), str(path))
        assert problems == [], "\n".join(map(str, problems))
        described += checked

    assert sorted(described) == [
        "ClusterSecretStore openbao (clustersecretstore-external-secrets-v1.json)",
        "ExternalSecret observability/grafana-admin (externalsecret-external-secrets-v1.json)",
        "ExternalSecret observability/postgres-exporter (externalsecret-external-secrets-v1.json)",
    ]


def test_an_external_secret_at_v1beta1_is_an_unknown_kind(validator):
    doc = real_document("ExternalSecret")
    doc["apiVersion"] = "external-secrets.io/v1beta1"

    problems = problems_of(validator, dump(doc))

    assert [(p.path, p.message) for p in problems] == [
        (
            "",
            "unknown kind external-secrets.io/v1beta1 ExternalSecret: no schema to check it "
            "against; ExternalSecret is known as external-secrets.io/v1",
        )
    ]


def test_a_misspelt_field_is_reported_at_its_path_and_line(validator):
    doc = real_document("ExternalSecret")
    doc["spec"] = {("refreshInteval" if k == "refreshInterval" else k): v for k, v in doc["spec"].items()}
    text = dump(doc)
    typo_line = text.splitlines().index(f"  refreshInteval: {doc['spec']['refreshInteval']}") + 1

    problems = problems_of(validator, text)

    assert [(p.line, p.document, p.path, p.message) for p in problems] == [
        (typo_line, 1, "spec.refreshInteval", "unknown field (not in the schema)")
    ]


def test_a_value_outside_the_schema_enum_fails(validator):
    doc = real_document("ClusterSecretStore")
    doc["spec"]["provider"]["vault"]["version"] = "v3"

    problems = problems_of(validator, dump(doc))

    assert [(p.path, p.message) for p in problems] == [
        ("spec.provider.vault.version", "'v3' is not one of ['v1', 'v2']")
    ]


def test_a_custom_resource_without_a_name_fails_though_its_schema_allows_it(validator):
    doc = real_document("ExternalSecret")
    del doc["metadata"]["name"]

    problems = problems_of(validator, dump(doc))

    assert [(p.path, p.message) for p in problems] == [
        ("metadata.name", "required: every manifest needs a name")
    ]


def test_a_valid_built_in_object_passes(validator):
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        # An unquoted date stays a string, as Kubernetes reads it.
        "data": {"since": "2024-01-01"},
    }
    text = dump(deployment(), config_map).replace("'2024-01-01'", "2024-01-01")

    checked, problems = validator.check_text(text, "test.yaml")

    assert problems == []
    assert checked == [
        "Deployment student-api/web (Kubernetes 1.35.0 strict)",
        "ConfigMap settings (Kubernetes 1.35.0 strict)",
    ]


def test_a_deployment_with_an_unknown_field_fails_under_strict_validation(validator):
    doc = deployment()
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolic"] = "Always"

    problems = problems_of(validator, dump(doc))

    assert [(p.obj, p.path, p.message) for p in problems] == [
        (
            "Deployment student-api/web",
            "spec.template.spec.containers[0].imagePullPolic",
            "unknown field (not in the schema)",
        )
    ]


def test_a_kind_without_a_schema_fails(validator):
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}

    problems = problems_of(validator, dump(doc))

    assert [p.message for p in problems] == [
        "unknown kind example.com/v1 Widget: no schema to check it against"
    ]


def test_a_built_in_kind_under_a_foreign_group_fails(validator):
    doc = deployment()
    doc["apiVersion"] = "apps.example.com/v1"

    problems = problems_of(validator, dump(doc))

    assert [p.message for p in problems] == [
        "unknown kind apps.example.com/v1 Deployment: no schema to check it against; "
        "Deployment is known as apps/v1"
    ]


def test_a_key_given_twice_fails(validator):
    text = dump(real_document("ClusterSecretStore")).replace(
        "metadata:\n  name: openbao\n", "metadata:\n  name: openbao\n  name: vault\n"
    )

    problems = problems_of(validator, text)

    assert [(p.line, p.path, p.message) for p in problems] == [(5, "metadata.name", "key given twice")]


def test_a_secret_value_never_appears_in_a_report(validator):
    value = secrets.token_hex(16)
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": [value]}}

    problems = problems_of(validator, dump(doc))

    assert [(p.path, p.message) for p in problems] == [
        ("stringData.k", "invalid value (fails the 'type' check)")
    ]
    assert value not in "\n".join(map(str, problems))


def test_every_vendored_schema_serves_exactly_its_pinned_kind(validator):
    for path in sorted(validate.SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text())
        api_version = schema["properties"]["apiVersion"]["enum"][0]
        kind = schema["properties"]["kind"]["enum"][0]
        assert validator.schema_name(api_version, kind) == path.name


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(VALIDATE), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_command_exits_0_on_valid_files_and_1_on_any_problem():
    files = eso_files()
    ok = run_cli(*map(str, files))
    expected = f"validate: {len(files)} inputs: {len(files)} document(s) valid for Kubernetes 1.35.0 and 1.37.0\n"
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", expected)

    doc = real_document("ExternalSecret")
    doc["spec"]["refreshInteval"] = doc["spec"].pop("refreshInterval")
    bad = run_cli(str(eso_files()[0]), "-", stdin=dump(doc))
    assert bad.returncode == 1
    assert bad.stdout.startswith("<stdin>:")
    assert "spec.refreshInteval: unknown field" in bad.stdout
    assert bad.stderr == "validate: 2 inputs: 1 problem(s) in 2 document(s) read (Kubernetes 1.35.0 and 1.37.0)\n"


def test_the_command_checks_the_floor_and_the_newest_release_and_names_the_one_that_fails():
    assert validate.SUPPORTED_KUBERNETES_VERSIONS == ("1.35.0", "1.37.0")
    # PodSpec.schedulingGroup exists from 1.37 on; PodSpec.workloadRef, an
    # alpha field of 1.35, is gone in 1.37. Each is valid in one release only.
    newer, removed = deployment(), deployment()
    newer["spec"]["template"]["spec"]["schedulingGroup"] = {"podGroupName": "web"}
    removed["spec"]["template"]["spec"]["workloadRef"] = {"name": "web", "podGroup": "web"}

    for doc, fails_in in ((newer, "1.35.0"), (removed, "1.37.0")):
        result = run_cli("-", stdin=dump(doc))
        assert result.returncode == 1, result.stdout
        assert result.stdout.rstrip().endswith(f"(Kubernetes {fails_in})"), result.stdout
        passes_in = "1.37.0" if fails_in == "1.35.0" else "1.35.0"
        assert run_cli("-k", passes_in, "-", stdin=dump(doc)).returncode == 0


def test_the_command_fails_on_empty_input_and_on_an_unsupported_release():
    empty = run_cli("-", stdin="# nothing here\n")
    assert (empty.returncode, empty.stdout) == (1, "<stdin>: no Kubernetes documents found\n")

    unsupported = run_cli("-k", "1.0.0", "-")
    assert unsupported.returncode == 2
    assert "no schemas for Kubernetes 1.0.0" in unsupported.stderr


@pytest.mark.skipif(shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) is None,
                    reason="check-jsonschema is not installed next to this Python")
def test_check_jsonschema_agrees_on_the_real_files_and_on_a_typo(tmp_path):
    cli = str(Path(sys.executable).parent / "check-jsonschema")
    by_schema = {
        "externalsecret-external-secrets-v1.json": [p for p in eso_files() if "externalsecret-" in p.name],
        "clustersecretstore-external-secrets-v1.json": [p for p in eso_files() if "clustersecretstore-" in p.name],
    }
    for schema, files in by_schema.items():
        result = subprocess.run(
            [cli, "--schemafile", str(validate.SCHEMA_DIR / schema), *map(str, files)],
            capture_output=True, text=True, check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    doc = real_document("ExternalSecret")
    doc["spec"]["refreshInteval"] = doc["spec"].pop("refreshInterval")
    typo = tmp_path / "typo.yaml"
    typo.write_text(dump(doc))
    result = subprocess.run(
        [cli, "--schemafile", str(validate.SCHEMA_DIR / "externalsecret-external-secrets-v1.json"), str(typo)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1
    assert "refreshInteval" in result.stdout
