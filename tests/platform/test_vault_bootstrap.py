"""deploy/vault/bootstrap.py against a real OpenBao and a real PostgreSQL.

The module's `platform` is one OpenBao bootstrapped from zero; the tests read
its real state. Tests that need another server start their own.
"""

from __future__ import annotations

import base64
import json
import secrets
import stat
import threading
import time
from pathlib import Path

import pytest

POLICY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "vault" / "policies"
# KV path -> (user key, user name, password key)
SEEDS = {
    "student-api/db": ("username", "student_api", "password"),
    "postgres/superuser": ("username", "postgres", "password"),
    "postgres/vault": ("username", "vault", "password"),
    "observability/postgres-exporter": ("username", "postgres_exporter", "password"),
    "observability/grafana": ("admin-user", "admin", "admin-password"),
}
URL_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def login(platform, k8s_api, role: str, namespace: str, service_account: str) -> str:
    """A client token from auth/kubernetes/login with a token of that service account."""
    jwt = k8s_api.token_for(namespace, service_account)
    answer = platform.vault("POST", "auth/kubernetes/login", {"role": role, "jwt": jwt}, token="")
    return answer["auth"]["client_token"]


def leaked(secret_values: dict[str, str], *texts: str) -> list[str]:
    """Labels of the secrets found in any text (labels only, so a failure prints no secret)."""
    return [label for label, value in secret_values.items() if any(value in text for text in texts)]


def known_secrets(platform) -> dict[str, str]:
    """Root token, unseal keys (base64 and hex) and seeded passwords, by label."""
    material = json.loads(platform.init_file.read_text())
    found = {"root token": material["root_token"]}
    for index, key in enumerate(material["unseal_keys_b64"]):
        found[f"unseal key {index} (base64)"] = key
        found[f"unseal key {index} (hex)"] = base64.b64decode(key).hex()
    for path, (_, _, password_key) in SEEDS.items():
        found[f"password of secret/{path}"] = platform.kv(path)[password_key]
    return found


def role_exists(postgres, name: str) -> bool:
    return postgres.psql("select count(*) from pg_roles where rolname = :'name'", vars={"name": name}).strip() == "1"


# --------------------------------------------------------------------------
# From zero


def test_first_run_initialises_with_five_shares_threshold_three_and_unseals(platform):
    status = platform.vault("GET", "sys/seal-status", token="")

    assert (status["initialized"], status["sealed"], status["n"], status["t"]) == (True, False, 5, 3)
    material = json.loads(platform.init_file.read_text())
    assert len(material["unseal_keys_b64"]) == 5
    assert (material["unseal_shares"], material["unseal_threshold"]) == (5, 3)
    assert stat.S_IMODE(platform.init_file.stat().st_mode) == 0o600



def test_first_run_waited_for_postgresql_then_set_up_everything(platform, bootstrap):
    report = dict((item, status) for status, item in bootstrap.report_of(platform.first_run))

    assert platform.first_run.returncode == 0
    assert "waiting for PostgreSQL" in platform.first_run.stderr
    assert report.pop(f"init (5 key shares, threshold 3) -> file {platform.init_file}") == "created"
    assert report.pop("unseal (server unsealed)") == "updated"
    # The audit device is declared in the server's configuration.
    assert report.pop("audit device file/ (file)") == "unchanged"
    assert set(report.values()) <= {"created", "updated"}
    assert len(report) == 16
    assert bootstrap.changes_of(platform.first_run) == len(report) + 2


def test_no_key_token_or_password_reaches_the_output_or_the_logs(platform):
    secret_values = known_secrets(platform)

    found = leaked(
        secret_values,
        platform.first_run.stdout,
        platform.first_run.stderr,
        platform.openbao.log_file.read_text(),
        platform.openbao.audit_log.read_text(),
    )

    assert found == []


def test_audit_device_mounts_auth_method_and_policies_are_configured(platform):
    audit = platform.vault("GET", "sys/audit")["data"]
    mounts = platform.vault("GET", "sys/mounts")["data"]
    methods = platform.vault("GET", "sys/auth")["data"]

    assert [device["type"] for device in audit.values()] == ["file"]
    assert (mounts["secret/"]["type"], mounts["secret/"]["options"]["version"]) == ("kv", "2")
    assert mounts["database/"]["type"] == "database"
    assert methods["kubernetes/"]["type"] == "kubernetes"
    files = sorted(POLICY_DIR.glob("*.hcl"))
    assert [file.stem for file in files] == ["external-secrets", "student-api"]
    for file in files:
        assert platform.vault("GET", f"sys/policies/acl/{file.stem}")["data"]["policy"] == file.read_text()


def test_kubernetes_auth_points_at_the_api_server_and_binds_one_account_per_role(platform, k8s_api):
    config = platform.vault("GET", "auth/kubernetes/config")["data"]

    assert config["kubernetes_host"] == k8s_api.url
    assert config["kubernetes_ca_cert"] == k8s_api.ca_file.read_text()
    for role in ("student-api", "external-secrets"):
        data = platform.vault("GET", f"auth/kubernetes/role/{role}")["data"]
        assert data["bound_service_account_names"] == [role]
        assert data["bound_service_account_namespaces"] == [role]
        assert data["token_policies"] == [role]
        assert (data["token_ttl"], data["token_max_ttl"], data["audience"]) == (3600, 86400, "vault")


def test_database_engine_has_the_postgres_connection_and_the_student_api_role(platform):
    connection = platform.vault("GET", "database/config/postgres")["data"]
    role = platform.vault("GET", "database/roles/student-api")["data"]

    assert connection["plugin_name"] == "postgresql-database-plugin"
    assert connection["allowed_roles"] == ["student-api"]
    assert connection["connection_details"]["username"] == "vault"
    assert connection["connection_details"]["connection_url"] == (
        "postgresql://{{username}}:{{password}}@"
        f"{platform.db_host}:{platform.db_port}/student_api?sslmode=prefer"
    )
    assert (role["db_name"], role["default_ttl"], role["max_ttl"]) == ("postgres", 3600, 86400)
    assert role["creation_statements"] == [
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' "
        "IN ROLE student_api_owner;",
        "ALTER ROLE \"{{name}}\" SET role = 'student_api_owner';",
    ]
    assert role["revocation_statements"] == [
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';",
        'DROP ROLE IF EXISTS "{{name}}";',
    ]


def test_seeds_hold_their_user_names_and_distinct_strong_passwords(platform):
    passwords = []
    for path, (user_key, user, password_key) in SEEDS.items():
        data = platform.kv(path)
        assert set(data) == {user_key, password_key}, path
        assert data[user_key] == user, path
        password = data[password_key]
        strong = len(password) >= 43 and set(password) <= URL_SAFE  # 32 random bytes
        assert strong, f"password of secret/{path} is not 32 random bytes"
        passwords.append(password)

    assert len(set(passwords)) == len(SEEDS)


def test_vault_user_password_is_rotated_so_the_seeded_copy_no_longer_logs_in(platform, postgres):
    seeded = platform.kv("postgres/vault")["password"]
    metadata = platform.vault("GET", "secret/metadata/postgres/vault")["data"]

    with pytest.raises(Exception, match="password authentication failed"):
        postgres.psql("select 1", db="student_api", user="vault", password=seeded)
    assert "rotated-by-vault" in metadata["custom_metadata"]
    assert metadata["current_version"] == 1


def test_issued_user_creates_tables_owned_by_the_group_and_is_dropped_with_its_sessions_on_revoke(
    platform, postgres
):
    creds = platform.vault("GET", "database/creds/student-api")
    user, password = creds["data"]["username"], creds["data"]["password"]
    postgres.psql("create table issued_user_check (id int)", db="student_api", user=user, password=password)
    owner = postgres.psql("select tableowner from pg_tables where tablename = 'issued_user_check'", db="student_api")
    identity = postgres.psql("select current_user, session_user", db="student_api", user=user, password=password)
    session_error: list[Exception] = []

    def hold_a_session() -> None:
        try:
            postgres.psql("select pg_sleep(30)", db="student_api", user=user, password=password)
        except Exception as err:  # the revocation ends this session
            session_error.append(err)

    holder = threading.Thread(target=hold_a_session)
    holder.start()
    wait_for_session(postgres, user)

    platform.vault("PUT", f"sys/leases/revoke/{creds['lease_id']}")
    holder.join(timeout=20)

    assert owner.strip() == "student_api_owner"
    assert identity.strip() == f"student_api_owner|{user}"
    assert not holder.is_alive()
    assert session_error and "terminat" in str(session_error[0])
    assert not role_exists(postgres, user)
    postgres.psql("drop table issued_user_check", db="student_api")


def wait_for_session(postgres, user: str) -> None:
    """Waits until user has a backend in pg_stat_activity."""
    for _ in range(100):
        count = postgres.psql("select count(*) from pg_stat_activity where usename = :'u'", vars={"u": user})
        if count.strip() != "0":
            return
        time.sleep(0.1)
    pytest.fail(f"no session of {user} appeared")


# --------------------------------------------------------------------------
# Re-runs


def seed_versions(platform) -> dict[str, int]:
    return {path: platform.vault("GET", f"secret/metadata/{path}")["data"]["current_version"] for path in SEEDS}


def policy_texts(platform) -> dict[str, str]:
    names = ("student-api", "external-secrets")
    return {name: platform.vault("GET", f"sys/policies/acl/{name}")["data"]["policy"] for name in names}


def test_second_run_changes_nothing(platform, bootstrap):
    versions, policies = seed_versions(platform), policy_texts(platform)

    result = bootstrap("all")

    assert result.returncode == 0, result.stderr
    assert bootstrap.changes_of(result) == 0
    assert {status for status, _ in bootstrap.report_of(result)} == {"unchanged"}
    assert seed_versions(platform) == versions
    assert policy_texts(platform) == policies


def test_configure_never_overwrites_an_existing_seed(platform, bootstrap):
    path = "observability/grafana"
    chosen = {"admin-user": "admin", "admin-password": secrets.token_urlsafe(32)}
    platform.vault("POST", f"secret/data/{path}", {"data": chosen})
    version = seed_versions(platform)[path]

    result = bootstrap("configure")

    assert result.returncode == 0, result.stderr
    assert bootstrap.changes_of(result) == 0
    assert seed_versions(platform)[path] == version
    kept = platform.kv(path) == chosen
    assert kept, f"secret/{path} was overwritten"


def test_configure_creates_a_removed_seed_again_and_leaves_the_others(platform, bootstrap):
    path = "observability/grafana"
    others = {other: version for other, version in seed_versions(platform).items() if other != path}
    old_password = platform.kv(path)["admin-password"]
    platform.vault("DELETE", f"secret/metadata/{path}")

    result = bootstrap("configure")

    assert result.returncode == 0, result.stderr
    assert bootstrap.report_of(result).count(("created", f"kv seed secret/{path}")) == 1
    assert bootstrap.changes_of(result) == 1
    assert platform.kv(path)["admin-user"] == "admin"
    renewed = platform.kv(path)["admin-password"] != old_password
    assert renewed, "the recreated seed reused the old password"
    assert {other: v for other, v in seed_versions(platform).items() if other != path} == others


def test_without_a_root_token_all_skips_configure_and_configure_fails(platform, bootstrap, tmp_path):
    material = json.loads(platform.init_file.read_text())
    del material["root_token"]
    without_token = tmp_path / "init.json"
    without_token.write_text(json.dumps(material))
    without_token.chmod(0o600)

    everything = bootstrap("all", BOOTSTRAP_INIT_FILE=str(without_token))
    configure = bootstrap("configure", BOOTSTRAP_INIT_FILE=str(without_token))
    bad_token = bootstrap("configure", VAULT_TOKEN="s.not-a-token")

    assert everything.returncode == 0, everything.stderr
    assert bootstrap.report_of(everything)[-1] == (
        "skipped",
        "configure (no root token in the init material and no VAULT_TOKEN)",
    )
    assert bootstrap.changes_of(everything) == 0
    assert configure.returncode == 4
    assert "bao operator generate-root" in configure.stderr
    assert bad_token.returncode == 1
    assert "the token for configure is not valid" in bad_token.stderr


def test_an_init_file_readable_by_others_is_refused(platform, bootstrap, tmp_path):
    exposed = tmp_path / "init.json"
    exposed.write_bytes(platform.init_file.read_bytes())
    exposed.chmod(0o644)

    result = bootstrap("configure", BOOTSTRAP_INIT_FILE=str(exposed))

    assert result.returncode == 4
    assert "accessible to others" in result.stderr


# --------------------------------------------------------------------------
# Restart and unseal


def test_restarted_server_is_sealed_until_unseal_mode_and_keeps_issued_credentials(
    platform, postgres, bootstrap, k8s_api
):
    token = login(platform, k8s_api, "student-api", "student-api", "student-api")
    creds = platform.vault("GET", "database/creds/student-api", token=token)
    user, password = creds["data"]["username"], creds["data"]["password"]

    platform.openbao.restart()
    sealed = platform.openbao.health()
    result = bootstrap("unseal")
    platform.openbao.wait_active()

    assert (sealed["initialized"], sealed["sealed"]) == (True, True)
    assert result.returncode == 0, result.stderr
    assert bootstrap.report_of(result) == [("updated", "unseal (server unsealed)")]
    assert platform.openbao.health()["sealed"] is False
    renewed = platform.vault("PUT", f"sys/leases/renew/{creds['lease_id']}", token=token)
    assert renewed["lease_id"] == creds["lease_id"]
    assert postgres.psql("select 1", db="student_api", user=user, password=password).strip() == "1"
    assert platform.vault("GET", "secret/data/student-api/db", token=token)["data"]["data"]["username"] == "student_api"
    platform.vault("PUT", f"sys/leases/revoke/{creds['lease_id']}", token=token)


# --------------------------------------------------------------------------
# Kubernetes auth


def test_student_api_account_logs_in_and_reads_its_credentials_but_not_other_secrets(platform, k8s_api):
    token = login(platform, k8s_api, "student-api", "student-api", "student-api")
    review = k8s_api.reviews[-1]
    identity = platform.vault("GET", "auth/token/lookup-self", token=token)["data"]
    creds = platform.vault("GET", "database/creds/student-api", token=token)

    assert review["audiences"] == ["vault"]
    assert identity["policies"] == ["default", "student-api"]
    assert identity["meta"]["service_account_namespace"] == "student-api"
    assert 0 < identity["ttl"] <= 3600
    assert creds["data"]["username"].startswith("v-")
    assert platform.vault("GET", "secret/data/student-api/db", token=token)["data"]["data"]["username"] == "student_api"
    assert platform.status_of("GET", "secret/data/postgres/superuser", token=token) == 403
    assert platform.status_of("POST", "secret/data/student-api/db", {"data": {}}, token=token) == 403
    assert platform.status_of("GET", "sys/policies/acl/student-api", token=token) == 403
    platform.vault("PUT", f"sys/leases/revoke/{creds['lease_id']}", token=token)


@pytest.mark.parametrize(
    ("namespace", "service_account"),
    [("default", "student-api"), ("student-api", "default"), ("external-secrets", "external-secrets")],
)
def test_student_api_role_refuses_another_namespace_or_service_account(platform, k8s_api, namespace, service_account):
    jwt = k8s_api.token_for(namespace, service_account)

    status = platform.status_of("POST", "auth/kubernetes/login", {"role": "student-api", "jwt": jwt}, token="")

    assert status == 403


def test_forged_and_wrong_audience_tokens_are_refused(platform, k8s_api):
    real = k8s_api.token_for("student-api", "student-api")
    forged = real.rsplit(".", 1)[0] + "." + base64.urlsafe_b64encode(secrets.token_bytes(256)).rstrip(b"=").decode()
    for_the_api_server = k8s_api.token_for(
        "student-api", "student-api", audiences=("https://kubernetes.default.svc.cluster.local",)
    )

    for jwt in (forged, for_the_api_server):
        status = platform.status_of("POST", "auth/kubernetes/login", {"role": "student-api", "jwt": jwt}, token="")
        assert status == 403


def test_external_secrets_reads_exactly_the_synced_paths(platform, k8s_api):
    token = login(platform, k8s_api, "external-secrets", "external-secrets", "external-secrets")

    for path in SEEDS:
        assert platform.status_of("GET", f"secret/data/{path}", token=token) == 200, path
    # Allowed but not seeded (an operator writes it): absent, not forbidden.
    for path in ("postgres/backup-s3", "observability/alertmanager", "argocd/repository"):
        assert platform.status_of("GET", f"secret/data/{path}", token=token) == 404, path
    assert platform.status_of("GET", "database/creds/student-api", token=token) == 403
    assert platform.status_of("POST", "secret/data/student-api/db", {"data": {"password": "x"}}, token=token) == 403
    assert platform.status_of("GET", "secret/data/other", token=token) == 403
    assert platform.status_of("GET", "secret/metadata/student-api/db", token=token) == 403
    assert platform.status_of("LIST", "secret/metadata", token=token) == 403


# --------------------------------------------------------------------------
# Leases


def test_student_api_policy_renews_and_revokes_its_own_lease_by_url_path(platform, postgres, k8s_api):
    token = login(platform, k8s_api, "student-api", "student-api", "student-api")
    creds = platform.vault("GET", "database/creds/student-api", token=token)
    lease = creds["lease_id"]

    renewed = platform.vault("PUT", f"sys/leases/renew/{lease}", {"increment": 600}, token=token)
    platform.vault("PUT", f"sys/leases/revoke/{lease}", token=token)

    assert renewed["lease_id"] == lease
    assert 0 < renewed["lease_duration"] <= 600
    assert not role_exists(postgres, creds["data"]["username"])
    assert platform.status_of("PUT", "sys/leases/lookup", {"lease_id": lease}) == 400


def test_student_api_policy_cannot_revoke_leases_outside_its_role(platform, k8s_api):
    token = login(platform, k8s_api, "student-api", "student-api", "student-api")
    own = platform.vault("GET", "database/creds/student-api", token=token)["lease_id"]
    other_token = login(platform, k8s_api, "external-secrets", "external-secrets", "external-secrets")
    other_leases = platform.vault("LIST", "sys/leases/lookup/auth/kubernetes/login/")["data"]["keys"]

    refused = {
        "another mount's lease": platform.status_of(
            "PUT", f"sys/leases/revoke/auth/kubernetes/login/{other_leases[0]}", token=token
        ),
        "revoke-prefix": platform.status_of("PUT", "sys/leases/revoke-prefix/database/creds/student-api", token=token),
        "revoke-force": platform.status_of("PUT", "sys/leases/revoke-force/database/creds/student-api", token=token),
        "body form": platform.status_of("PUT", "sys/leases/revoke", {"lease_id": own}, token=token),
    }

    assert refused == dict.fromkeys(refused, 403)
    assert platform.status_of("GET", "auth/token/lookup-self", token=other_token) == 200
    platform.vault("PUT", f"sys/leases/revoke/{own}", token=token)


# --------------------------------------------------------------------------
# Other servers


def test_configure_fails_clearly_when_the_server_has_no_file_audit_device(make_openbao, bootstrap, tmp_path):
    server = make_openbao(audit=False)
    init_file = tmp_path / "init.json"

    result = bootstrap("all", VAULT_ADDR=server.addr, BOOTSTRAP_INIT_FILE=str(init_file))

    root_token = json.loads(init_file.read_text())["root_token"]
    status, mounts = server.api("GET", "sys/mounts", token=root_token)
    assert result.returncode == 1
    assert "cannot enable audit device via API" in result.stderr
    assert 'audit "file" "file"' in result.stderr
    assert status == 200 and "secret/" not in mounts["data"]
    assert leaked({"root token": root_token}, result.stdout, result.stderr) == []
    server.stop()


def test_init_material_can_live_in_a_kubernetes_secret(make_openbao, bootstrap, k8s_api):
    server = make_openbao()
    env = {
        "VAULT_ADDR": server.addr,
        "BOOTSTRAP_INIT_FILE": None,
        "BOOTSTRAP_INIT_SECRET": "openbao-init",
        "BOOTSTRAP_INIT_SECRET_API": k8s_api.url,
        "BOOTSTRAP_INIT_SECRET_SA_DIR": str(k8s_api.sa_dir),
    }

    first = bootstrap("init", **env)
    again = bootstrap("init", **env)
    unsealed = bootstrap("unseal", **env)
    server.restart()
    sealed_after_restart = server.health()["sealed"]
    unsealed_again = bootstrap("unseal", **env)

    stored = k8s_api.secret("openbao", "openbao-init")
    material = json.loads(base64.b64decode(stored["data"]["init.json"]))
    assert [r.returncode for r in (first, again, unsealed, unsealed_again)] == [0, 0, 0, 0]
    assert [bootstrap.changes_of(r) for r in (first, again, unsealed, unsealed_again)] == [1, 0, 1, 1]
    assert len(material["unseal_keys_b64"]) == 5
    assert stored["metadata"]["resourceVersion"] == "2"  # created empty, then filled once
    assert sealed_after_restart is True
    assert server.health()["sealed"] is False
    secret_values = {f"key {i}": key for i, key in enumerate(material["unseal_keys_b64"])}
    secret_values["root token"] = material["root_token"]
    assert leaked(secret_values, *(r.stdout + r.stderr for r in (first, again, unsealed, unsealed_again))) == []
    server.stop()


def test_init_refuses_to_overwrite_existing_init_material(make_openbao, bootstrap, tmp_path):
    server = make_openbao()
    init_file = tmp_path / "init.json"
    init_file.write_text('{"unseal_keys_b64": ["material of another server"]}')

    result = bootstrap("init", VAULT_ADDR=server.addr, BOOTSTRAP_INIT_FILE=str(init_file))

    assert result.returncode == 4
    assert "refusing to overwrite" in result.stderr
    assert server.health()["initialized"] is False
    assert init_file.read_text() == '{"unseal_keys_b64": ["material of another server"]}'
    server.stop()


def start_transit_seal(server) -> str:
    """Makes server a transit seal provider; returns a token allowed only to use its key."""
    _, init = server.api("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
    root = init["root_token"]
    server.api("PUT", "sys/unseal", {"key": init["keys_base64"][0]})
    server.wait_active()
    policy = (
        'path "transit/encrypt/autounseal" { capabilities = ["update"] }\n'
        'path "transit/decrypt/autounseal" { capabilities = ["update"] }\n'
    )
    steps = [
        ("POST", "sys/mounts/transit", {"type": "transit"}),
        ("POST", "transit/keys/autounseal", {}),
        ("PUT", "sys/policies/acl/autounseal", {"policy": policy}),
    ]
    for method, path, body in steps:
        status, _ = server.api(method, path, body, token=root)
        assert status in (200, 204), path
    body = {"policies": ["autounseal"], "period": "1h"}
    status, token = server.api("POST", "auth/token/create-orphan", body, token=root)
    assert status == 200
    return token["auth"]["client_token"]


def test_auto_unseal_server_gets_recovery_keys_and_unseals_itself(make_openbao, bootstrap, tmp_path):
    transit = make_openbao(audit=False)
    seal = (
        f'seal "transit" {{\n  address = "{transit.addr}"\n  key_name = "autounseal"\n'
        f'  mount_path = "transit/"\n}}\n'
    )
    server = make_openbao(extra_config=seal, env={"VAULT_TOKEN": start_transit_seal(transit)})
    init_file = tmp_path / "init.json"
    env = {"VAULT_ADDR": server.addr, "BOOTSTRAP_INIT_FILE": str(init_file)}

    init = bootstrap("init", **env)
    server.wait_active()
    server.restart()
    server.wait_active()
    unseal = bootstrap("unseal", **env)

    material = json.loads(init_file.read_text())
    assert init.returncode == 0, init.stderr
    assert bootstrap.report_of(init) == [
        ("created", f"init (5 recovery key shares, auto-unseal transit, threshold 3) -> file {init_file}")
    ]
    assert sorted(material) == ["recovery_keys_b64", "recovery_shares", "recovery_threshold", "root_token"]
    assert len(material["recovery_keys_b64"]) == 5
    assert unseal.returncode == 0, unseal.stderr
    assert bootstrap.report_of(unseal) == [("unchanged", "unseal (server already unsealed)")]
    server.stop()
    transit.stop()
