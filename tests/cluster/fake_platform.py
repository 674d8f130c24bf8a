"""Stand-ins for what the platform's own scripts ask of kubectl and npx
(deploy/argocd/install/wait.sh, deploy/observability/set-alertmanager-webhook.sh,
deploy/cluster/diagnostics.sh, deploy/cluster/check-api.sh), kept apart from
fake_cli.py's cluster-level stand-ins, which call into here first.

The pretend platform lives in the same FAKE_WORLD document:
  argocd            false: the cluster has no Application kind [true]
  application_polls list of Application lists; each `get applications`
                    answers the first and drops it, the last one stays
  openbao           {"pod": bool, "failures": N (sealed answers before the
                    first success), "kv": {"mount/path": {key: value}},
                    "operator_account": bool (the service account
                    openbao/openbao-operator exists and its tokens may be
                    created), "tokens": [OpenBao tokens it accepts],
                    "jwts": [service-account tokens kubectl made]}
  secrets           {"ns/name": {key: base64 value}}
  externalsecrets   ["ns/name", ...]; annotations land in "annotations"
  kinds             resource kinds the cluster knows beyond the built-in ones
  pods              {"ns/name": {"containers": {name: restarts}, "log": text}}
  newman            {"installed": bool, "exit": N}
Shapes and error texts are those of the real tools (fixtures/).
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

BUILTIN_KINDS = {
    "nodes", "pods", "deployments", "statefulsets", "daemonsets", "replicasets", "jobs", "cronjobs",
    "services", "endpointslices", "persistentvolumeclaims", "persistentvolumes", "storageclasses",
    "configmaps", "serviceaccounts", "horizontalpodautoscalers", "poddisruptionbudgets",
    "networkpolicies", "secrets", "events", "namespaces",
}
APPLICATION_KINDS = {"applications.argoproj.io", "appprojects.argoproj.io"}


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def kinds_of(world: dict) -> set[str]:
    known = BUILTIN_KINDS | set(world.get("kinds", []))
    if world.get("argocd", True):
        known |= APPLICATION_KINDS
    return known


def require_kinds(world: dict, names: str) -> None:
    for name in names.split(","):
        if name not in kinds_of(world):
            fail(f'error: the server doesn\'t have a resource type "{name.split(".")[0]}"')


def applications(world: dict) -> list[dict]:
    polls = world.get("application_polls") or [[]]
    answer = polls[0]
    if len(polls) > 1:
        world["application_polls"] = polls[1:]
    return answer


def openbao_exec(world: dict, rest: list[str], ns: str | None) -> None:
    """`exec -i openbao-0 -c openbao -- sh -c SCRIPT sh KIND ROLE MOUNT PATH KEY`,
    the credential then the value on stdin, answered as the script's login
    and `bao kv put` would."""
    pod, container = rest[2], rest[4]
    bao = world.setdefault("openbao", {})
    if not bao.get("pod", True):
        fail(f'Error from server (NotFound): pods "{pod}" not found')
    assert (ns, pod, container, rest[5]) == ("openbao", "openbao-0", "openbao", "--"), rest
    script, kind, role, mount, path, key = rest[rest.index("-c", 5) + 1], *rest[-5:]
    assert "bao kv put" in script and "auth/kubernetes/login" in script, rest
    credential, _, value = sys.stdin.read().partition("\n")
    if bao.get("failures", 0) > 0:
        bao["failures"] -= 1
        fail(
            f"Error writing data to {mount}/data/{path}: Error making API request.\n\n"
            f"URL: PUT http://127.0.0.1:8200/v1/{mount}/data/{path}\nCode: 503. Errors:\n\n* Vault is sealed\n"
            "command terminated with exit code 2",
            2,
        )
    accepted = bao.get("jwts", []) if kind == "jwt" else bao.get("tokens", [])
    if kind == "jwt" and role != "operator":
        accepted = []
    if credential not in accepted:
        where = "auth/kubernetes/login" if kind == "jwt" else f"{mount}/data/{path}"
        fail(
            f"Error writing data to {where}: Error making API request.\n\n"
            f"URL: PUT http://127.0.0.1:8200/v1/{where}\nCode: 403. Errors:\n\n* permission denied\n"
            "command terminated with exit code 2",
            2,
        )
    bao.setdefault("kv", {})[f"{mount}/{path}"] = {key: value}
    print(f"== Secret Path ==\n{mount}/data/{path}\n\n== Metadata ==\nKey     Value\nversion 1")


def create_token(world: dict, rest: list[str], ns: str | None) -> None:
    """`create token ACCOUNT --audience AUD --duration D`, as kubectl answers it."""
    bao = world.setdefault("openbao", {})
    account = rest[2]
    if (ns, account) != ("openbao", "openbao-operator") or not bao.get("operator_account", True):
        fail(f'Error from server (NotFound): serviceaccounts "{account}" not found')
    if bao.get("forbidden"):
        fail(
            f'error: failed to create token: serviceaccounts "{account}" is forbidden: User "dev" cannot '
            f'create resource "serviceaccounts/token" in API group "" in the namespace "{ns}"'
        )
    assert rest[3:] == ["--audience", "vault", "--duration", "10m"], rest
    jwt = "eyJhbGciOiJSUzI1NiJ9." + uuid.uuid4().hex + "." + uuid.uuid4().hex
    bao.setdefault("jwts", []).append(jwt)
    print(jwt)


def kubectl(world: dict, rest: list[str], ns: str | None, output: str | None) -> bool:
    """Answers a platform-level call and returns True, or returns False."""
    verb = rest[0] if rest else ""
    if verb == "get" and rest[1:2] == ["applications.argoproj.io"] and output == "json":
        require_kinds(world, rest[1])
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": applications(world)}))
    elif verb == "create" and rest[1:2] == ["token"]:
        create_token(world, rest, ns)
    elif verb == "exec" and rest[1:2] == ["-i"]:
        openbao_exec(world, rest, ns)
    elif verb == "get" and rest[1:2] == ["externalsecret"] and len(rest) == 3:
        if f"{ns}/{rest[2]}" not in world.get("externalsecrets", []):
            fail(f'Error from server (NotFound): externalsecrets.external-secrets.io "{rest[2]}" not found')
        print(f"NAME   STORE   REFRESH INTERVAL   STATUS\n{rest[2]}   openbao   1h   SecretSyncedError")
    elif verb == "annotate" and rest[1:2] == ["externalsecret"] and rest[-1] == "--overwrite":
        world.setdefault("annotations", {})[f"{ns}/{rest[2]}"] = rest[3]
        print(f"externalsecret.external-secrets.io/{rest[2]} annotated")
    elif verb == "config" and rest[1:] == ["current-context"]:
        print((world.get("contexts") or ["kind-student-api"])[-1])
    elif verb == "get" and rest[1:] == ["pods", "-A"] and output == "json":
        items = [
            {
                "metadata": {"namespace": ref.split("/")[0], "name": ref.split("/")[1]},
                "status": {
                    "containerStatuses": [
                        {"name": c, "restartCount": n} for c, n in pod["containers"].items()
                    ]
                },
            }
            for ref, pod in (world.get("pods") or {}).items()
        ]
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    elif verb == "logs":
        pod = (world.get("pods") or {}).get(f"{ns}/{rest[1]}")
        if pod is None:
            fail(f'Error from server (NotFound): pods "{rest[1]}" not found')
        if "--previous" in rest:
            container = rest[rest.index("-c") + 1]
            if not pod["containers"].get(container):
                fail(f'Error from server (BadRequest): previous terminated container "{container}" in pod "{rest[1]}" not found')
        print(pod.get("log", ""))
    elif verb == "version" and output is None:
        doc = json.loads((Path(__file__).with_name("fixtures") / "version.json").read_text())
        print(f"Client Version: {doc['clientVersion']['gitVersion']}\nServer Version: {doc['serverVersion']['gitVersion']}")
    elif verb in ("get", "describe") and len(rest) >= 2 and (verb == "describe" or "-A" in rest or output in ("wide", "yaml")):
        # The read-only listings diagnostics.sh makes: a kind the cluster
        # lacks fails as kubectl does; the rest answers one line a kind.
        require_kinds(world, rest[1])
        print(f"{verb} {rest[1]}: the objects as kubectl prints them")
    else:
        return False
    return True


def npx(world: dict, args: list[str]) -> None:
    """`npx --no-install newman --version | run COLLECTION ...`."""
    newman = world.get("newman", {})
    if args[:2] != ["--no-install", "newman"]:
        fail(f"fake npx: unsupported call {args}", 64)
    if not newman.get("installed", True):
        fail("npm error npx canceled due to missing packages and no YES option: [\"newman@6.2.2\"]")
    if args[2:] == ["--version"]:
        print("6.2.2")
        return
    if args[2] != "run" or not Path(args[3]).is_file():
        fail(f"fake npx: unsupported call {args}", 64)
    print("newman\n\nstudent-api\n")
    if newman.get("exit", 0):
        print("  1. AssertionError  status is 201\n     expected 503 to equal 201")
        sys.exit(newman["exit"])
