"""The platform's OpenBao, started from the project's own configuration
(deploy/vault, loaded as the chart loads it) on empty storage, against a
real PostgreSQL: it initialises, configures and unseals itself, leaves no
root token, unseal key or recovery key anywhere, and the Job openbao-config
brings later changes from Git to it.

The module's `platform` is one such server after a new cluster's first sync
(see conftest.py); tests that need another server start their own.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import (
    BAO,
    OPENER,
    TOKEN_PATTERN,
    VAULT_DIR,
    apply_roles_from_seeds,
    configmap_files,
    kubernetes_role,
    reset_platform_database,
    start_transit_seal_server,
    vault,
    wait_until,
)

POLICY_DIR = VAULT_DIR / "policies"
# KV path -> (user key, user name, password key)
SEEDS = {
    "student-api/db": ("username", "student_api", "password"),
    "postgres/superuser": ("username", "postgres", "password"),
    "postgres/vault": ("username", "vault", "password"),
    "observability/postgres-exporter": ("username", "postgres_exporter", "password"),
    "observability/grafana": ("admin-user", "admin", "admin-password"),
}
# 32 random bytes, hex-encoded.
HEX_32_BYTES = re.compile(r"^[0-9a-f]{64}$")
# Secrets an operator supplies (never seeded).
OPERATOR_SECRETS = ("postgres/backup-s3", "observability/alertmanager", "argocd/repository")
BAO_BIN_DIR = BAO.parent


def seconds(duration: str) -> int:
    """A role file's duration ("90s", "10m", "1h") in seconds, as OpenBao reads it back."""
    number, unit = re.fullmatch(r"(\d+)([smh])", duration).groups()
    return int(number) * {"s": 1, "m": 60, "h": 3600}[unit]


def role_as_read(spec: dict) -> dict:
    """A role file's fields as OpenBao answers them (durations in seconds)."""
    return {k: seconds(v) if k.endswith("ttl") else v for k, v in spec.items()}


def leaked(secret_values: dict[str, str], *texts: str) -> list[str]:
    """Labels of the secrets found in any text (labels only, so a failure prints no secret)."""
    return [label for label, value in secret_values.items() if any(value in text for text in texts)]


def seed_passwords(platform) -> dict[str, str]:
    return {f"password of secret/{path}": platform.kv(path)[key] for path, (_, _, key) in SEEDS.items()}


def files_of(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def role_exists(postgres, name: str) -> bool:
    return postgres.psql("select count(*) from pg_roles where rolname = :'name'", vars={"name": name}).strip() == "1"


def configuration(server, token: str) -> dict:
    """What an operator can read of a server's configuration."""

    def read(path: str) -> dict:
        return vault(server.addr, "GET", path, token=token)["data"]

    policies = vault(server.addr, "LIST", "sys/policies/acl", token=token)["data"]["keys"]
    return {
        "audit": read("sys/audit"),
        "mounts": {k: (v["type"], v.get("options")) for k, v in read("sys/mounts").items()},
        "auth": {k: v["type"] for k, v in read("sys/auth").items()},
        "policies": {name: read(f"sys/policies/acl/{name}")["policy"] for name in policies},
        "kubernetes": read("auth/kubernetes/config"),
        "roles": {name: read(f"auth/kubernetes/role/{name}") for name in role_names()},
        "connection": read("database/config/postgres"),
        "database_role": read("database/roles/student-api"),
    }


def role_names() -> list[str]:
    return sorted(f.stem for f in configmap_files("openbao-kubernetes-roles"))


@pytest.fixture(scope="module")
def self_initialised(make_openbao):
    """A server that only self-initialisation has touched (no Job run): what
    initialize.hcl alone leaves."""
    return make_openbao()


# --------------------------------------------------------------------------
# From empty storage


def test_the_first_start_initialises_and_unseals_with_no_key_share_and_no_operator_step(platform):
    status = platform.vault("GET", "sys/seal-status")

    # Auto-unseal with the static key; no recovery key was made (n = 0).
    assert (status["type"], status["initialized"], status["sealed"]) == ("static", True, False)
    assert (status["recovery_seal"], status["n"], status["t"]) == (True, 0, 0)
    log = platform.openbao.log_file.read_text()
    assert "beginning post-unseal configuration" in log
    assert "self-initialization failed" not in log


def test_no_root_token_exists_afterwards(platform):
    operator = platform.login("operator")
    accessors = platform.vault("LIST", "auth/token/accessors", token=operator)["data"]["keys"]
    holders = [
        platform.vault("POST", "auth/token/lookup-accessor", {"accessor": a}, token=operator)["data"] for a in accessors
    ]
    attempt = platform.vault("GET", "sys/generate-root-token/attempt", token=platform.login("recovery"))

    # Every token alive was made by a login of the platform's roles.
    assert holders and all("root" not in h["policies"] for h in holders)
    assert all(h["path"].startswith("auth/kubernetes/login") for h in holders)
    # The token self-initialisation used was revoked when it finished.
    assert re.search(r"revoked lease: lease_id=auth/token/root/", platform.openbao.log_file.read_text())
    assert attempt["data"]["started"] is False
    # Nothing on disk or in any output holds a token: the server's log, audit
    # log (tokens HMAC-ed), configuration and storage, and the Job's output.
    texts = [p.read_bytes().decode("latin-1") for p in files_of(platform.openbao.workdir)]
    texts += [r.stdout + r.stderr for r in [platform.job_before_postgres, *platform.job_runs]]
    found = [t for t in texts if TOKEN_PATTERN.search(t)]
    assert found == [], "a token is in a file or an output"


def test_no_seed_password_reaches_a_log_an_output_or_a_file_in_clear(platform):
    passwords = seed_passwords(platform)

    texts = [p.read_bytes().decode("latin-1") for p in files_of(platform.openbao.workdir)]
    texts += [r.stdout + r.stderr for r in [platform.job_before_postgres, *platform.job_runs]]

    assert leaked(passwords, *texts) == []


def test_self_initialisation_alone_reaches_the_end_state_the_platform_needs(self_initialised, k8s_api, postgres):
    server = self_initialised
    config = configuration(server, server.login("operator"))

    audit = config["audit"]
    assert [(d["type"], d["options"]["file_path"]) for d in audit.values()] == [("file", str(server.audit_log))]
    assert config["mounts"]["secret/"] == ("kv", {"version": "2"})
    assert config["mounts"]["database/"][0] == "database"
    assert config["auth"]["kubernetes/"] == "kubernetes"
    files = {f.stem: f.read_text() for f in POLICY_DIR.glob("*.hcl")}
    assert sorted(files) == ["external-secrets", "openbao-config", "operator", "recovery", "student-api"]
    assert {n: t for n, t in config["policies"].items() if n not in ("default", "root")} == files
    assert config["kubernetes"]["kubernetes_host"] == k8s_api.url
    assert config["kubernetes"]["disable_local_ca_jwt"] is False
    for name in role_names():
        wanted = role_as_read(kubernetes_role(name))
        got = {k: config["roles"][name][k] for k in wanted}
        assert got == wanted, name
        assert wanted["audience"] == "vault", name
    connection = config["connection"]
    assert connection["plugin_name"] == "postgresql-database-plugin"
    assert connection["allowed_roles"] == ["student-api"]
    assert connection["connection_details"]["password_authentication"] == "scram-sha-256"
    assert connection["connection_details"]["username"] == "vault"
    address = f"{postgres.host}:{postgres.port}"
    assert connection["connection_details"]["connection_url"] == (
        f"postgresql://{{{{username}}}}:{{{{password}}}}@{address}/student_api?sslmode=prefer"
    )
    role = json.loads((VAULT_DIR / "database-roles" / "student-api.json").read_text())
    assert {k: config["database_role"][k] for k in role} == role_as_read(role)


def test_seeds_hold_their_user_names_and_distinct_random_passwords(platform):
    passwords = []
    for path, (user_key, user, password_key) in SEEDS.items():
        data = platform.kv(path)
        assert set(data) == {user_key, password_key}, path
        assert data[user_key] == user, path
        assert HEX_32_BYTES.match(data[password_key]), f"password of secret/{path} is not 32 random bytes"
        passwords.append(data[password_key])

    assert len(set(passwords)) == len(SEEDS)


# --------------------------------------------------------------------------
# Restarts


def test_a_restart_comes_back_unsealed_with_no_operator_step_and_keeps_issued_credentials(platform, postgres):
    token = platform.login("student-api")
    creds = platform.vault("GET", "database/creds/student-api", token=token)
    user, password = creds["data"]["username"], creds["data"]["password"]
    seeds = seed_passwords(platform)

    platform.openbao.stop()
    log_before = len(platform.openbao.log_file.read_text())
    started = time.monotonic()
    platform.openbao.start()
    unsealed_after = time.monotonic() - started
    log = platform.openbao.log_file.read_text()[log_before:]

    assert platform.openbao.health()["sealed"] is False
    assert unsealed_after < 30
    # Unsealed with the stored key; self-initialisation did not run again.
    assert "unsealed with stored key" in log
    assert "beginning post-unseal configuration" not in log
    renewed = platform.vault("PUT", f"sys/leases/renew/{creds['lease_id']}", token=token)
    assert renewed["lease_id"] == creds["lease_id"]
    assert postgres.psql("select 1", db="student_api", user=user, password=password).strip() == "1"
    assert seed_passwords(platform) == seeds
    platform.vault("PUT", f"sys/leases/revoke/{creds['lease_id']}", token=token)


def test_without_its_seal_key_the_server_refuses_to_start_and_keeps_its_data(make_openbao):
    server = make_openbao()
    key = server.seal_key.read_bytes()
    server.stop()
    server.seal_key.chmod(0o600)
    server.seal_key.write_bytes(b"\0" * 32)

    server.start(wait=False)
    wait_until("the server to answer or stop", server.settled)
    time.sleep(2)  # a few unseal attempts
    sealed = server.sealed_or_stopped()
    server.stop()
    server.seal_key.write_bytes(key)
    server.start()

    assert sealed
    assert server.health()["sealed"] is False
    assert server.login("operator")
    server.stop()


# --------------------------------------------------------------------------
# The Job openbao-config


def test_the_job_waits_for_postgresql_and_changed_nothing_self_initialisation_had_set(platform):
    before = platform.job_before_postgres
    after = platform.job_runs[0]

    # Before roles.sql the rotation cannot log in: the Job fails (and is
    # retried), after writing the same policies and roles self-init wrote.
    assert before.returncode != 0
    assert "database/rotate-root/postgres" in before.stderr
    assert before.stdout.count("Success! Uploaded policy") == len(list(POLICY_DIR.glob("*.hcl")))
    assert after.returncode == 0, after.stderr
    assert "Success! Data written to: database/rotate-root/postgres" in after.stdout


def test_the_jobs_files_are_what_self_initialisation_set_so_applying_them_changes_nothing(
    self_initialised, config_job, tmp_path
):
    operator = self_initialised.login("operator")
    before = configuration(self_initialised, operator)

    # No PostgreSQL knows this server's seeds: the rotation fails, after the
    # policies and roles are written.
    result = config_job.run(self_initialised, tmp_path)

    after = configuration(self_initialised, operator)
    assert "Success! Data written to: database/roles/student-api" in result.stdout, result.stderr
    assert after == before


def test_the_vault_login_is_rotated_so_the_seeded_copy_no_longer_logs_in(platform, postgres):
    seeded = platform.kv("postgres/vault")["password"]

    with pytest.raises(Exception, match="password authentication failed"):
        postgres.psql("select 1", db="student_api", user="vault", password=seeded)
    # OpenBao itself still logs in: it issues users.
    creds = platform.vault("GET", "database/creds/student-api", token=platform.login("student-api"))
    platform.vault("PUT", f"sys/leases/revoke/{creds['lease_id']}", token=platform.login("student-api"))


def test_a_policy_and_a_role_added_in_git_reach_the_running_server_through_the_job(platform, k8s_api):
    policy = 'path "secret/data/reports/db" {\n  capabilities = ["read"]\n}\n'
    role = {
        "bound_service_account_names": ["reports"],
        "bound_service_account_namespaces": ["reports"],
        "audience": "vault",
        "token_policies": ["reports"],
        "token_ttl": "20m",
        "token_max_ttl": "1h",
    }
    changes = {
        "policies/reports.hcl": policy,
        "kubernetes-roles/reports.json": role,
        "kubernetes-roles/student-api.json": {"token_ttl": "30m"},
    }

    platform.apply_config(changes)

    jwt = k8s_api.token_for("reports", "reports")
    login = platform.vault("POST", "auth/kubernetes/login", {"role": "reports", "jwt": jwt})["auth"]
    operator = platform.login("operator")
    assert login["policies"] == ["default", "reports"]
    assert platform.vault("GET", "sys/policies/acl/reports", token=operator)["data"]["policy"] == policy
    assert platform.vault("GET", "auth/kubernetes/role/student-api", token=operator)["data"]["token_ttl"] == 1800
    # Back as Git had it: the Job writes the files again; removing what Git
    # dropped is an operator's delete.
    platform.apply_config()
    assert platform.vault("GET", "auth/kubernetes/role/student-api", token=operator)["data"]["token_ttl"] == 3600
    platform.vault("DELETE", "auth/kubernetes/role/reports", token=operator)
    platform.vault("DELETE", "sys/policies/acl/reports", token=operator)


def test_the_jobs_identity_writes_configuration_but_reads_no_secret(platform):
    token = platform.login("openbao-config")

    assert platform.status_of("GET", "secret/data/student-api/db", token=token) == 403
    assert platform.status_of("GET", "database/creds/student-api", token=token) == 403
    assert platform.status_of("POST", "sys/mounts/other", {"type": "kv"}, token=token) == 403
    assert platform.status_of("PUT", "sys/audit/other", {"type": "file"}, token=token) == 403
    assert platform.status_of("GET", "sys/policies/acl/student-api", token=token) == 200


# --------------------------------------------------------------------------
# People: operator and break-glass


def test_the_operator_writes_the_secrets_only_a_person_supplies_but_reads_none(platform):
    token = platform.login("operator")
    eso = platform.login("external-secrets")

    for path in OPERATOR_SECRETS:
        value = secrets.token_urlsafe(16)
        platform.vault("POST", f"secret/data/{path}", {"data": {"value": value}}, token=token)
        assert platform.vault("GET", f"secret/data/{path}", token=eso)["data"]["data"] == {"value": value}
        assert platform.status_of("GET", f"secret/data/{path}", token=token) == 403
    for path in SEEDS:
        assert platform.status_of("GET", f"secret/data/{path}", token=token) == 403
    assert platform.status_of("PUT", "sys/policies/acl/operator", {"policy": ""}, token=token) == 403
    assert platform.status_of("POST", "auth/kubernetes/role/operator", {"token_ttl": "24h"}, token=token) == 403
    assert platform.status_of("PUT", "sys/seal", token=token) == 403



def test_after_postgresql_is_recreated_from_the_seeds_an_operator_gives_the_engine_the_seed_again(
    platform, postgres
):
    # A new database volume: roles.sql creates vault with the (stale) seed,
    # while OpenBao holds the password it rotated to.
    reset_platform_database(postgres)
    apply_roles_from_seeds(postgres, platform.openbao)
    stale = platform.job.run(platform.openbao, platform.workdir)
    operator = platform.login("operator")
    seed = platform.kv("postgres/vault")["password"]
    moved = platform.status_of(
        "POST", "database/config/postgres", {"connection_url": "postgresql://elsewhere/x"}, token=operator
    )

    platform.vault("POST", "database/config/postgres", {"password": seed}, token=operator)
    platform.apply_config()

    assert stale.returncode != 0 and "password authentication failed" in stale.stderr
    assert moved == 403
    creds = platform.vault("GET", "database/creds/student-api", token=platform.login("student-api"))
    assert postgres.psql("select 1", db="student_api", user=creds["data"]["username"], password=creds["data"]["password"])
    with pytest.raises(Exception, match="password authentication failed"):
        postgres.psql("select 1", db="student_api", user="vault", password=seed)

def test_the_operator_takes_a_raft_snapshot(platform):
    status, answer = platform.openbao.api("GET", "sys/storage/raft/snapshot", token=platform.login("operator"))

    assert status == 200
    assert len(answer.get("raw", b"")) > 1000


# --------------------------------------------------------------------------
# Kubernetes auth


def test_student_api_account_logs_in_and_reads_its_credentials_but_not_other_secrets(platform, k8s_api):
    token = platform.login("student-api")
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

    status = platform.status_of("POST", "auth/kubernetes/login", {"role": "student-api", "jwt": jwt})

    assert status == 403


def test_forged_and_wrong_audience_tokens_are_refused(platform, k8s_api):
    real = k8s_api.token_for("student-api", "student-api")
    forged = real.rsplit(".", 1)[0] + "." + secrets.token_urlsafe(256)
    for_the_api_server = k8s_api.token_for(
        "student-api", "student-api", audiences=("https://kubernetes.default.svc.cluster.local",)
    )

    for jwt in (forged, for_the_api_server):
        status = platform.status_of("POST", "auth/kubernetes/login", {"role": "student-api", "jwt": jwt})
        assert status == 403


def test_external_secrets_reads_exactly_the_synced_paths(platform):
    token = platform.login("external-secrets")

    for path in SEEDS:
        assert platform.status_of("GET", f"secret/data/{path}", token=token) == 200, path
    assert platform.status_of("GET", "database/creds/student-api", token=token) == 403
    assert platform.status_of("POST", "secret/data/student-api/db", {"data": {"password": "x"}}, token=token) == 403
    assert platform.status_of("GET", "secret/data/other", token=token) == 403
    assert platform.status_of("GET", "secret/metadata/student-api/db", token=token) == 403
    assert platform.status_of("LIST", "secret/metadata", token=token) == 403


# --------------------------------------------------------------------------
# Leases


def test_student_api_policy_renews_and_revokes_its_own_lease_by_url_path(platform, postgres):
    token = platform.login("student-api")
    creds = platform.vault("GET", "database/creds/student-api", token=token)
    lease = creds["lease_id"]

    renewed = platform.vault("PUT", f"sys/leases/renew/{lease}", {"increment": 600}, token=token)
    platform.vault("PUT", f"sys/leases/revoke/{lease}", token=token)

    assert renewed["lease_id"] == lease
    assert 0 < renewed["lease_duration"] <= 600
    assert not role_exists(postgres, creds["data"]["username"])


def test_student_api_policy_cannot_revoke_leases_outside_its_role(platform):
    token = platform.login("student-api")
    own = platform.vault("GET", "database/creds/student-api", token=token)["lease_id"]

    refused = {
        "another mount's lease": platform.status_of(
            "PUT", "sys/leases/revoke/auth/kubernetes/login/0123456789abcdef", token=token
        ),
        "revoke-prefix": platform.status_of("PUT", "sys/leases/revoke-prefix/database/creds/student-api", token=token),
        "revoke-force": platform.status_of("PUT", "sys/leases/revoke-force/database/creds/student-api", token=token),
        "body form": platform.status_of("PUT", "sys/leases/revoke", {"lease_id": own}, token=token),
    }

    assert refused == dict.fromkeys(refused, 403)
    platform.vault("PUT", f"sys/leases/revoke/{own}", token=token)


def test_issued_user_creates_tables_owned_by_the_group_and_is_dropped_with_its_sessions_on_revoke(platform, postgres):
    token = platform.login("student-api")
    creds = platform.vault("GET", "database/creds/student-api", token=token)
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
    sessions = "select count(*) from pg_stat_activity where usename = :'u'"
    wait_until(f"a session of {user}", lambda: postgres.psql(sessions, vars={"u": user}).strip() != "0")

    platform.vault("PUT", f"sys/leases/revoke/{creds['lease_id']}", token=token)
    holder.join(timeout=20)

    assert owner.strip() == "student_api_owner"
    assert identity.strip() == f"student_api_owner|{user}"
    assert not holder.is_alive()
    assert session_error and "terminat" in str(session_error[0])
    assert not role_exists(postgres, user)
    postgres.psql("drop table issued_user_check", db="student_api")


# --------------------------------------------------------------------------
# The runbook's procedures, on servers of their own


def test_a_failed_self_initialisation_stops_the_server_which_then_refuses_to_unseal_until_its_storage_is_emptied(
    make_openbao,
):
    # A policy file missing from the ConfigMap: the request that reads it fails.
    server = make_openbao(start=False, policy_changes={"recovery.hcl": None})

    server.start(wait=False)
    first = server.wait_exit()
    log = server.log_file.read_text()
    server.start(wait=False)
    wait_until("the restarted server to stop or answer", server.settled)
    time.sleep(2)
    refused = server.sealed_or_stopped()
    server.stop()
    again = server.log_file.read_text()[len(log) :]
    # The runbook: fix the cause, empty the storage, start again.
    policy = (VAULT_DIR / "policies" / "recovery.hcl").read_text()
    (server.files.path("/openbao/policies") / "recovery.hcl").write_text(policy)
    for child in server.data_dir.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    server.start()

    assert first != 0
    assert "request.[recovery" in log and "recovery.hcl" in log
    assert refused
    assert "self-initialization failed: refusing to unseal" in again
    assert server.health()["sealed"] is False
    assert server.login("recovery")
    server.stop()


def rotate_seal_config(current: str, previous: str | None) -> str:
    """seal-static.hcl as the runbook's rotation commit makes it."""
    text = (VAULT_DIR / "server" / "seal-static.hcl").read_text()
    stanza = f'  current_key_id = "{current}"\n  current_key    = "file:///openbao/seal/{current}"\n'
    if previous:
        stanza += f'  previous_key_id = "{previous}"\n  previous_key    = "file:///openbao/seal/{previous}"\n'
    return re.sub(r'(seal "static" \{\n)(.*?)(\})', lambda m: m.group(1) + stanza + m.group(3), text, flags=re.S)


def test_the_seal_key_rotates_as_the_runbook_says(make_openbao):
    server = make_openbao()
    seeds_before = vault(server.addr, "GET", "secret/data/student-api/db", token=server.login("external-secrets"))
    # Step 1: a recovery key share, thrown away, so that OpenBao re-wraps its
    # root key under the new seal key (without one it keeps needing the old).
    shares = vault(
        server.addr, "POST", "sys/rotate/recovery/init", {"secret_shares": 1, "secret_threshold": 1},
        token=server.login("recovery"),
    )  # fmt: skip
    assert len(shares["data"]["keys"]) == 1
    del shares
    old_id = server.seal_key.name
    new_key = server.seal_key.parent / "seal-2"
    new_key.write_bytes(os.urandom(32))
    server.stop()

    # Step 2: the new key current, the old one previous; restart.
    platform_config = server.files.path("/openbao/platform/seal-static.hcl")
    platform_config.write_text(server.files.adapt(rotate_seal_config("seal-2", old_id)))
    server.start()
    # Step 3: the old key gone from the configuration and the Secret; restart.
    server.stop()
    platform_config.write_text(server.files.adapt(rotate_seal_config("seal-2", None)))
    server.seal_key.chmod(0o600)
    server.seal_key.unlink()
    server.start()

    assert server.health()["sealed"] is False
    after = vault(server.addr, "GET", "secret/data/student-api/db", token=server.login("external-secrets"))
    assert after["data"]["data"] == seeds_before["data"]["data"]
    server.stop()


def test_the_production_configuration_self_initialises_the_same_end_state_behind_a_transit_seal(
    make_openbao, make_plain_openbao
):
    seal_server, seal_token = start_transit_seal_server(make_plain_openbao)
    server = make_openbao(variant="prod", seal_server=seal_server.addr, env={"BAO_TOKEN": seal_token})
    server.restart()

    status = server.api("GET", "sys/seal-status")[1]
    operator = server.login("operator")
    policies = vault(server.addr, "LIST", "sys/policies/acl", token=operator)["data"]["keys"]
    roles = vault(server.addr, "LIST", "auth/kubernetes/role", token=operator)["data"]["keys"]
    seeds = vault(server.addr, "LIST", "secret/metadata", token=operator)["data"]["keys"]

    assert (status["type"], status["sealed"], status["n"]) == ("transit", False, 0)
    assert sorted(set(policies) - {"default", "root"}) == sorted(f.stem for f in POLICY_DIR.glob("*.hcl"))
    assert sorted(roles) == role_names()
    assert sorted(seeds) == ["observability/", "postgres/", "student-api/"]
    server.stop()
    seal_server.stop()


def test_a_raft_snapshot_restores_into_a_new_server_with_the_same_seal_key(make_openbao, platform):
    snapshot = platform.openbao.api("GET", "sys/storage/raft/snapshot", token=platform.login("operator"))[1]["raw"]
    seeds = seed_passwords(platform)
    # A new server on empty storage, given the seal key of the lost one.
    server = make_openbao(start=False, audit_dir=platform.openbao.audit_log.parent)
    server.seal_key.chmod(0o600)
    server.seal_key.write_bytes(platform.openbao.seal_key.read_bytes())
    server.start()
    assert vault(server.addr, "GET", "secret/data/postgres/vault", token=server.login("external-secrets"))

    token = server.login("recovery")
    request = urllib.request.Request(
        f"{server.addr}/v1/sys/storage/raft/snapshot-force", data=snapshot, method="POST",
        headers={"X-Vault-Token": token, "Content-Type": "application/octet-stream"},
    )  # fmt: skip
    with OPENER.open(request, timeout=60) as answer:
        assert answer.status in (200, 204)
    server.wait_active()

    reader = server.login("external-secrets")
    restored = {
        f"password of secret/{path}": vault(server.addr, "GET", f"secret/data/{path}", token=reader)["data"]["data"][key]
        for path, (_, _, key) in SEEDS.items()
    }
    assert restored == seeds
    server.stop()


def test_the_alertmanager_webhook_scripts_write_logs_in_as_an_operator_and_writes_the_url(platform, k8s_api, tmp_path):
    """The commands deploy/observability/set-alertmanager-webhook.sh runs in
    the OpenBao pod, run here with this server's bao and address."""
    script = (VAULT_DIR.parents[1] / "deploy" / "observability" / "set-alertmanager-webhook.sh").read_text()
    in_pod = re.search(r"^IN_POD_WRITE='(.*?)'$", script, re.S | re.M).group(1)
    role = re.search(r'^OPERATOR_ROLE="([^"]+)"', script, re.M).group(1)
    account = re.search(r'^OPERATOR_ACCOUNT="([^"]+)"', script, re.M).group(1)
    url = f"http://127.0.0.1:9/{secrets.token_hex(8)}"
    jwt = k8s_api.token_for("openbao", account)
    env = {"PATH": f"{BAO_BIN_DIR}:/usr/bin:/bin", "HOME": str(tmp_path), "BAO_ADDR": platform.vault_addr,
           "BAO_TOKEN": "the seal's token in production"}  # fmt: skip

    result = subprocess.run(
        ["/bin/sh", "-c", in_pod, "sh", "jwt", role, "secret", "observability/alertmanager", "slack-webhook-url"],
        input=f"{jwt}\n{url}", env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert platform.kv("observability/alertmanager") == {"slack-webhook-url": url}
    assert url not in result.stdout + result.stderr and jwt not in result.stdout + result.stderr
