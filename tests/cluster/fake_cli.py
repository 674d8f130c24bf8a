"""Stand-ins for kubectl, minikube, kind, docker, helm, git and npx, for the
tests of deploy/cluster/*.sh, deploy/argocd/install/bootstrap.sh and the
platform's scripts where no cluster can run.

Each tool is a wrapper script on PATH that runs `fake_cli.py TOOL ARGS...`.
The cluster they pretend to talk to is one JSON document, FAKE_WORLD, read
and written back by every call, so `minikube start` really makes the nodes
that `kubectl get nodes` then lists and `kubectl label` changes. Every call
is appended to FAKE_CALLS (one JSON object a line: tool, args). Answers are
built from the hand-written recordings in fixtures/ (FAKE_FIXTURES), with
the shapes and error texts of the real tools. Only what the scripts call is
implemented; anything else fails loudly, so a new call cannot pass unseen.

For the bootstrap: `helm template` renders the real chart with the Helm SDK
(helm-python-sdk, imported only then); `git ls-remote` answers from the
remotes of FAKE_WORLD's `git`, asking GIT_ASKPASS for credentials as git
does; Argo CD's view of the root Application is worked out from the same
remotes and the repository Secret the cluster holds (argocd_view).
What the platform's scripts ask (Argo CD Applications, OpenBao, logs,
newman) is answered by fake_platform.py.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

import fake_platform

FIXTURES = Path(os.environ.get("FAKE_FIXTURES", Path(__file__).parent / "fixtures"))
WORLD = Path(os.environ["FAKE_WORLD"])
CALLS = Path(os.environ["FAKE_CALLS"])

METRICS_SERVER = "kube-system/metrics-server"
LOCAL_PATH = "local-path-storage/local-path-provisioner"
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def emit(doc: object) -> None:
    print(json.dumps(doc, indent=4))


def ready_deployment(ref: str) -> dict:
    ns, name = ref.split("/")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "generation": 1},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1},
    }


def server_version(git_version: str) -> dict:
    """The recorded `kubectl version -o json`, its server at git_version (v1.36.4)."""
    doc = fixture("version.json")
    minor = git_version.lstrip("v").split(".")[1]
    doc["serverVersion"].update(gitVersion=git_version, minor=minor, emulationMinor=minor)
    return doc


def storageclass(name: str) -> dict:
    for sc in fixture("storageclasses.json")["items"]:
        if sc["metadata"]["name"] == name:
            return sc
    raise KeyError(name)


def fresh_nodes(names: list[str], labels: list[dict[str, str]] | None = None) -> dict:
    """Nodes as a new cluster has them: the recorded ones, renamed, no role label."""
    recorded = fixture("nodes-good.json")
    template = recorded["items"]
    items = []
    for i, name in enumerate(names):
        node = copy.deepcopy(template[min(i, len(template) - 1)])
        node["metadata"]["name"] = name
        node_labels = node["metadata"]["labels"]
        node_labels.pop("type", None)
        node_labels["kubernetes.io/hostname"] = name
        node_labels.update((labels or [{}] * len(names))[i])
        items.append(node)
    recorded["items"] = items
    return recorded


def node_by_name(world: dict, name: str) -> dict | None:
    return next((n for n in (world.get("nodes") or {}).get("items", []) if n["metadata"]["name"] == name), None)


def is_ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


# ------------------------------------------------------------------ docker
def docker(world: dict, args: list[str]) -> None:
    if args[:1] not in (["info"], ["build"]):
        fail(f"fake docker: unsupported call {args}", 64)
    if not world.get("docker_running", True):
        fail("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?")
    if args[0] == "build":
        tag = args[args.index("--tag") + 1]
        if not (Path(args[-1]) / "Dockerfile").is_file():
            fail("ERROR: failed to build: failed to solve: failed to read dockerfile: open Dockerfile: no such file or directory")
        world.setdefault("docker_images", []).append(tag)
        print(f"#12 naming to docker.io/{tag} done")
        return
    print("28.4.0")


# ---------------------------------------------------------------- minikube
def minikube(world: dict, args: list[str]) -> None:
    profile, words, flags = "minikube", [], {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-p", "--profile"):
            profile, i = args[i + 1], i + 2
            continue
        if arg.startswith("--profile="):
            profile = arg.split("=", 1)[1]
        elif arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            flags[key] = value
        elif arg in ("-o", "--output"):
            flags["output"], i = args[i + 1], i + 2
            continue
        else:
            words.append(arg)
        i += 1
    mk = world.setdefault("minikube", {"home_exists": False, "profiles": {}})
    profiles = mk["profiles"]

    if words == ["profile", "list"]:
        if not mk.get("home_exists") and not profiles:
            print('{"error":{"Op":"open","Path":"/home/dev/.minikube/profiles","Err":2}}')
            sys.exit(1)
        valid = []
        for name, p in profiles.items():
            entry = fixture("minikube-profile-list.json")["valid"][0]
            entry["Name"] = entry["Config"]["Name"] = name
            entry["Status"] = "OK" if p["status"] == "Running" else "Stopped"
            nodes = entry["Config"]["Nodes"]
            entry["Config"]["Nodes"] = (nodes * 3)[: p["nodes"]]
            valid.append(entry)
        print(json.dumps({"invalid": [], "valid": valid}))
    elif words == ["start"]:
        if profile in profiles:
            profiles[profile]["status"] = "Running"
            return
        count = int(flags.get("nodes", "1"))
        profiles[profile] = {"status": "Running", "nodes": count, "flags": flags}
        mk["home_exists"] = True
        world.setdefault("contexts", []).append(profile)
        mk["addons"] = {name: a["Status"] for name, a in fixture("minikube-addons-fresh.json").items()}
        names = [profile] + [f"{profile}-m{n:02d}" for n in range(2, count + 1)]
        world["nodes"] = fresh_nodes(names)
        world["storageclasses"] = [storageclass("standard")]
        # minikube's own default when the flag is missing.
        world["version"] = server_version(flags.get("kubernetes-version", "v1.35.1"))
        world.setdefault("deployments", {})
    elif words[:2] == ["addons", "list"]:
        if profile not in profiles:
            fail(f'* Profile "{profile}" not found. Run "minikube profile list" to view all profiles.', 85)
        print(json.dumps({name: {"Profile": profile, "Status": s} for name, s in mk["addons"].items()}))
    elif words[:2] == ["addons", "enable"] and len(words) == 3:
        addon = words[2]
        if addon not in mk["addons"]:
            fail(f"X Exiting due to MK_ADDON_ENABLE: enable failed: addon {addon} does not exist", 10)
        mk["addons"][addon] = "enabled"
        deployments = world.setdefault("deployments", {})
        if addon == "metrics-server":
            deployments[METRICS_SERVER] = ready_deployment(METRICS_SERVER)
            world["metrics_api"] = True
        elif addon == "storage-provisioner-rancher":
            deployments[LOCAL_PATH] = ready_deployment(LOCAL_PATH)
            world["storageclasses"].append(storageclass("local-path"))
    elif words == ["delete"]:
        profiles.pop(profile, None)
        world["nodes"] = None
    else:
        fail(f"fake minikube: unsupported call {args}", 64)


# -------------------------------------------------------------------- kind
def kind(world: dict, args: list[str]) -> None:
    clusters = world.setdefault("kind_clusters", [])
    opts = {args[i][2:]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    if args[:2] == ["get", "clusters"]:
        if not clusters:
            print("No kind clusters found.", file=sys.stderr)
        for name in clusters:
            print(name)
    elif args[:2] == ["create", "cluster"]:
        config = yaml.safe_load(Path(opts["config"]).read_text())
        name = opts.get("name") or config.get("name", "kind")
        if name in clusters:
            fail(f'ERROR: failed to create cluster: node(s) already exist for a cluster with the name "{name}"')
        names, labels, workers = [], [], 0
        for node in config["nodes"]:
            if node["role"] == "control-plane":
                names.append(f"{name}-control-plane")
            else:
                workers += 1
                names.append(f"{name}-worker" + (str(workers) if workers > 1 else ""))
            labels.append({k: str(v) for k, v in (node.get("labels") or {}).items()})
        world["nodes"] = fresh_nodes(names, labels)
        for node in world["nodes"]["items"]:
            if node["metadata"]["name"].endswith("-control-plane"):
                node["spec"]["taints"] = [dict(CONTROL_PLANE_TAINT)]
        kind_default = copy.deepcopy(storageclass("local-path"))
        kind_default["metadata"]["name"] = "standard"
        kind_default["metadata"]["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
        world["storageclasses"] = [kind_default]
        world["deployments"] = {LOCAL_PATH: ready_deployment(LOCAL_PATH)}
        # kind's node image names its Kubernetes: kindest/node:v1.36.4@sha256:….
        image = opts.get("image", "kindest/node:v1.37.0")
        world["version"] = server_version(image.split(":", 1)[1].split("@", 1)[0])
        world.setdefault("contexts", []).append(f"kind-{name}")
        clusters.append(name)
    elif args[:2] == ["load", "docker-image"]:
        image = args[2]
        if opts.get("name", "kind") not in clusters:
            fail(f'ERROR: no nodes found for cluster "{opts.get("name", "kind")}"')
        if image not in world.get("docker_images", []):
            fail(f"ERROR: image: \"{image}\" not present locally")
        world.setdefault("node_images", []).append(image)
        print(f'Image: "{image}" with ID "sha256:0d2b5c3a" not yet present on node "{opts["name"]}-worker", loading...')
    elif args[:2] == ["export", "logs"]:
        name = opts.get("name", "kind")
        if name not in clusters:
            fail(f'ERROR: unknown cluster "{name}"')
        for node in world["nodes"]["items"]:
            node_dir = Path(args[2]) / node["metadata"]["name"]
            node_dir.mkdir(parents=True, exist_ok=True)
            (node_dir / "kubelet.log").write_text("I1205 08:40:01 kubelet started\n")
        print(f'Exporting logs for cluster "{name}" to:\n{args[2]}')
    elif args[:2] == ["delete", "cluster"]:
        if opts.get("name") in clusters:
            clusters.remove(opts["name"])
        world["nodes"] = None
    else:
        fail(f"fake kind: unsupported call {args}", 64)


# ----------------------------------------------------------------- kubectl
def kubectl(world: dict, args: list[str]) -> None:
    rest, ns, output = [], None, None
    i = 0
    while i < len(args):
        if args[i] == "--context":
            if args[i + 1] not in world.get("contexts", []):
                fail(f'error: context "{args[i + 1]}" does not exist')
            i += 2
        elif args[i] == "-n":
            ns, i = args[i + 1], i + 2
        elif args[i] == "-o":
            output, i = args[i + 1], i + 2
        elif args[i].startswith("--request-timeout="):
            i += 1
        else:
            rest.append(args[i])
            i += 1
    if world.get("kubectl_warning"):
        print(world["kubectl_warning"], file=sys.stderr)
    if rest[:1] == ["config"] or rest == ["version", "--client"]:
        kubectl_local(world, rest, output)
        return
    if world.get("nodes") is None and rest[:1] != ["version"]:
        fail("The connection to the server 127.0.0.1:32771 was refused - did you specify the right host or port?")
    if fake_platform.kubectl(world, rest, ns, output):
        return

    if rest == ["get", "nodes"] and output == "json":
        emit(world["nodes"])
    elif rest == ["version"] and output == "json":
        if world.get("nodes") is None:
            emit({"clientVersion": fixture("version.json")["clientVersion"]})
            fail("The connection to the server 127.0.0.1:32771 was refused - did you specify the right host or port?")
        emit(world["version"])
    elif rest == ["get", "storageclass"] and output == "json":
        emit({"apiVersion": "v1", "items": world.get("storageclasses", []), "kind": "List", "metadata": {"resourceVersion": ""}})
    elif rest[:2] == ["get", "deployment"] and len(rest) == 3:
        doc = world.get("deployments", {}).get(f"{ns}/{rest[2]}")
        if doc is None:
            fail(f'Error from server (NotFound): deployments.apps "{rest[2]}" not found')
        if output == "json":
            emit(doc)
        else:
            print(f"{rest[2]}   1/1     1            1           3m")
    elif rest[:2] == ["rollout", "status"]:
        name = rest[2].split("/", 1)[1]
        doc = world.get("deployments", {}).get(f"{ns}/{name}")
        if doc is None:
            fail(f'Error from server (NotFound): deployments.apps "{name}" not found')
        if doc["status"].get("readyReplicas", 0) < doc["spec"].get("replicas", 1):
            fail("error: timed out waiting for the condition")
        print(f'deployment "{name}" successfully rolled out')
    elif rest[:2] == ["get", "crd"] and len(rest) == 4 and rest[3] == "--ignore-not-found" and output == "json":
        crd = (world.get("crds") or {}).get(rest[2])
        if crd is not None:
            emit(crd)
    elif rest == ["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"]:
        if not world.get("metrics_api"):
            fail('Error from server (NotFound): the server could not find the requested resource')
        print(json.dumps(fixture("nodemetrics.json")))
    elif rest[:1] == ["wait"]:
        not_ready = [n["metadata"]["name"] for n in world["nodes"]["items"] if not is_ready(n)]
        if not_ready:
            fail(f"error: timed out waiting for the condition on nodes/{not_ready[0]}")
        for node in world["nodes"]["items"]:
            print(f"node/{node['metadata']['name']} condition met")
    elif rest[:2] == ["label", "node"] and len(rest) == 5 and rest[4] == "--overwrite":
        node = node_by_name(world, rest[2])
        if node is None:
            fail(f'Error from server (NotFound): nodes "{rest[2]}" not found')
        key, value = rest[3].split("=", 1)
        node["metadata"]["labels"][key] = value
        print(f"node/{rest[2]} labeled")
    elif rest[:2] == ["taint", "node"] and len(rest) == 4 and rest[3].endswith("-"):
        node = node_by_name(world, rest[2])
        if node is None:
            fail(f'Error from server (NotFound): nodes "{rest[2]}" not found')
        key, effect = rest[3][:-1].split(":")
        taints = node["spec"].get("taints", [])
        kept = [t for t in taints if (t["key"], t["effect"]) != (key, effect)]
        if len(kept) == len(taints):
            fail(f'error: taint "{key}:{effect}" not found')
        node["spec"]["taints"] = kept
        print(f"node/{rest[2]} untainted")
    elif bootstrap_call(world, rest, ns, output):
        pass
    elif rest[:1] == ["apply"] and rest[1:2] == ["-k"] and Path(rest[2]).name == "kind":
        world.setdefault("deployments", {})[METRICS_SERVER] = ready_deployment(METRICS_SERVER)
        if not any(sc["metadata"]["name"] == "local-path" for sc in world["storageclasses"]):
            world["storageclasses"].append(storageclass("local-path"))
        world["metrics_api"] = True
        print("deployment.apps/metrics-server configured")
    else:
        fail(f"fake kubectl: unsupported call {args}", 64)


# -------------------------------------------- kubectl for the bootstrap
ARGOCD_NS = "argocd"


def kubectl_local(world: dict, rest: list[str], output: str | None) -> None:
    """What kubectl answers from the kubeconfig and itself."""
    if rest == ["config", "current-context"]:
        if not world.get("current_context"):
            fail("error: current-context is not set")
        print(world["current_context"])
    elif rest == ["config", "get-contexts"] and output == "name":
        for name in world.get("contexts", []):
            print(name)
    elif rest == ["version", "--client"]:
        print(f"Client Version: {world.get('kubectl_client', 'v1.37.1')}\nKustomize Version: v5.7.1")
    else:
        fail(f"fake kubectl: unsupported call {rest}", 64)


def bootstrap_call(world: dict, rest: list[str], ns: str | None, output: str | None) -> bool:
    """The objects bootstrap.sh reads and writes: the repository Secret,
    OpenBao's seal key and its namespace, and the root Application. False
    when the call is none of its."""
    secrets = world.setdefault("secrets", {})
    if rest[:2] == ["get", "namespace"] and len(rest) == 3 and output == "name":
        if rest[2] not in world.get("namespaces", []):
            fail(f'Error from server (NotFound): namespaces "{rest[2]}" not found')
        print(f"namespace/{rest[2]}")
    elif rest[:2] == ["create", "namespace"] and len(rest) == 3:
        if rest[2] in world.setdefault("namespaces", []):
            fail(f'Error from server (AlreadyExists): namespaces "{rest[2]}" already exists')
        world["namespaces"].append(rest[2])
        print(f"namespace/{rest[2]} created")
    elif rest[:2] == ["get", "secret"] and len(rest) == 3 and output == "name":
        if f"{ns}/{rest[2]}" not in secrets:
            fail(f'Error from server (NotFound): secrets "{rest[2]}" not found')
        print(f"secret/{rest[2]}")
    elif rest == ["create", "-f", "-"]:
        doc = yaml.safe_load(sys.stdin.read())
        meta = doc["metadata"]
        if meta["namespace"] not in world.get("namespaces", []):
            fail(f'Error from server (NotFound): namespaces "{meta["namespace"]}" not found')
        key = f"{meta['namespace']}/{meta['name']}"
        if key in secrets:
            fail(f'Error from server (AlreadyExists): secrets "{meta["name"]}" already exists')
        secrets[key] = doc
        print(f"secret/{meta['name']} created")
    elif rest[:2] == ["apply", "-f"] and len(rest) == 3 and rest[2] != "-":
        if not world.get("argocd_installed"):
            fail(
                f'error: resource mapping not found for name: "root" namespace: "argocd" from "{rest[2]}": '
                'no matches for kind "Application" in version "argoproj.io/v1alpha1"\n'
                "ensure CRDs are installed first"
            )
        docs = [d for d in yaml.safe_load_all(Path(rest[2]).read_text()) if d]
        for doc in docs:
            world.setdefault("applications", {})[doc["metadata"]["name"]] = doc
            print(f"application.argoproj.io/{doc['metadata']['name']} created")
    elif rest[:3] == ["get", "application", "root"] and (output or "").startswith("jsonpath="):
        if "root" not in world.get("applications", {}):
            fail('Error from server (NotFound): applications.argoproj.io "root" not found')
        status, condition = argocd_view(world, world["applications"]["root"])
        print(status)
        if condition:
            print(condition)
    else:
        return False
    return True


def argocd_view(world: dict, app: dict) -> tuple[str, str]:
    """The root's sync status and error condition as Argo CD's repo server
    would report them, reading the Git remotes of FAKE_WORLD from inside the
    cluster, with the repository Secret the cluster holds."""
    source = app["spec"]["source"]
    url, revision = source["repoURL"], source["targetRevision"]
    prefix = "Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: code = Unknown desc = "
    if world.get("cluster_cannot_reach_git"):
        return "Unknown", f"ComparisonError: {prefix}failed to list refs: dial tcp: lookup github.com: i/o timeout"
    remote = (world.get("git") or {}).get("remotes", {}).get(url)
    if remote is None:
        return "Unknown", f"ComparisonError: {prefix}failed to list refs: repository not found"
    if remote.get("credentials"):
        secret = next(
            (s for s in world.get("secrets", {}).values() if base64.b64decode(s["data"]["url"]).decode() == url),
            None,
        )
        given = {k: base64.b64decode(secret["data"][k]).decode() for k in ("username", "password")} if secret else None
        want = {"username": remote["credentials"]["username"], "password": remote["credentials"]["token"]}
        if given != want:
            return "Unknown", f"ComparisonError: {prefix}failed to list refs: authentication required: Repository not found."
    refs = remote.get("refs", {})
    if revision not in refs.values() and not {revision, f"refs/heads/{revision}", f"refs/tags/{revision}"} & set(refs):
        return "Unknown", f"ComparisonError: {prefix}unable to resolve '{revision}' to a commit SHA"
    return "OutOfSync", ""


# -------------------------------------------------------------------- helm
def helm(world: dict, args: list[str]) -> None:
    if args == ["version", "--short"]:
        print(world.get("helm_version", "v4.0.4+g8650e1d"))
    elif args[:1] == ["template"]:
        helm_template(args[1:])
    elif args[:2] == ["upgrade", "--install"]:
        opts = {args[i]: args[i + 1] for i in range(2, len(args) - 1) if args[i].startswith("--")}
        if opts.get("--kube-context") not in world.get("contexts", []):
            fail(f'Error: kubernetes cluster unreachable: context "{opts.get("--kube-context")}" does not exist')
        if world.get("argocd_install_fails"):
            fail("Error: UPGRADE FAILED: context deadline exceeded")
        world["argocd_installed"] = True
        world.setdefault("namespaces", []).append(opts["--namespace"])
        print(f'Release "{args[2]}" has been upgraded. Happy Helming!')
    else:
        fail(f"fake helm: unsupported call {args}", 64)


def helm_template(args: list[str]) -> None:
    """`helm template NAME CHART [--namespace NS] [--show-only T] [--values F]
    [--set K=V] [--set-string K=V]`, rendered by the real Helm SDK."""
    import helm_python  # only here: the cluster tests' environment need not have it

    name, chart, rest = args[0], args[1], args[2:]
    opts: dict[str, str] = {}
    values: dict = {}
    for flag, value in zip(rest[::2], rest[1::2]):
        if flag == "--values":
            values = merged(values, helm_python.values_from_yaml(Path(value).read_text()))
        elif flag == "--set":
            values = merged(values, helm_python.parse_set_string(value))
        elif flag == "--set-string":
            values = merged(values, helm_python.parse_set_string_values(value))
        elif flag in ("--namespace", "--show-only"):
            opts[flag] = value
        else:
            fail(f"fake helm: unsupported template flag {flag}", 64)
    try:
        with helm_python.Chart.load(chart) as loaded:
            loaded.validate_schema(values)
            manifests = loaded.render(values, name=name, namespace=opts.get("--namespace"), is_install=True)
            chart_name = loaded.name
    except helm_python.HelmError as error:
        fail(f"Error: {error}")
    wanted = f"{chart_name}/{opts['--show-only']}" if "--show-only" in opts else None
    for template in sorted(manifests):
        if wanted in (None, template) and manifests[template].strip():
            print(f"---\n# Source: {template}\n{manifests[template]}")


def merged(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in top.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# --------------------------------------------------------------------- git
def git(world: dict, args: list[str]) -> None:
    repo = world.get("git") or {}
    config: dict[str, str] = {}
    while args[:1] in (["-C"], ["-c"]):
        if args[0] == "-c":
            key, _, value = args[1].partition("=")
            config[key] = value
        args = args[2:]
    if args == ["remote", "get-url", "origin"]:
        if not repo.get("origin"):
            fail("error: No such remote 'origin'", 2)
        print(repo["origin"])
    elif args == ["symbolic-ref", "--quiet", "--short", "HEAD"]:
        if not repo.get("branch"):
            sys.exit(1)
        print(repo["branch"])
    elif args == ["rev-parse", "HEAD"]:
        print(repo.get("head", "0" * 40))
    elif args[:1] == ["ls-remote"] and len(args) == 2:
        git_ls_remote(repo, args[1], config)
    else:
        fail(f"fake git: unsupported call {args}", 64)


def git_ls_remote(repo: dict, url: str, config: dict[str, str]) -> None:
    """Lists a remote's refs. A remote with credentials takes the user's
    own (their credential helper, `user_can_read`, on unless the helper is
    cleared with -c credential.helper=), else asks GIT_ASKPASS, as git does
    over https; a terminal prompt must be off."""
    if os.environ.get("GIT_TERMINAL_PROMPT") != "0":
        fail("fake git: ls-remote without GIT_TERMINAL_PROMPT=0 would prompt on a terminal", 64)
    remote = repo.get("remotes", {}).get(url)
    host = url.split("/")[2]
    own_access = config.get("credential.helper") != "" and repo.get("user_can_read", True)
    if remote is None or (remote.get("credentials") and not own_access and not os.environ.get("GIT_ASKPASS")):
        fail(f"fatal: could not read Username for 'https://{host}': terminal prompts disabled", 128)
    if remote.get("credentials") and not own_access:
        ask = os.environ["GIT_ASKPASS"]
        username = subprocess.run([ask, f"Username for 'https://{host}': "], capture_output=True, text=True).stdout
        token = subprocess.run([ask, f"Password for 'https://{username.strip()}@{host}': "], capture_output=True, text=True).stdout
        wanted = remote["credentials"]
        if (username.strip(), token.strip()) != (wanted["username"], wanted["token"]):
            fail(f"remote: Invalid username or token.\nfatal: Authentication failed for '{url}/'", 128)
    for ref, sha in sorted(remote.get("refs", {}).items()):
        print(f"{sha}\t{ref}")


def main() -> None:
    tool, args = sys.argv[1], sys.argv[2:]
    with CALLS.open("a") as calls:
        calls.write(json.dumps({"tool": tool, "args": args}) + "\n")
    world = json.loads(WORLD.read_text())
    try:
        tools = {
            "docker": docker,
            "minikube": minikube,
            "kind": kind,
            "kubectl": kubectl,
            "helm": helm,
            "git": git,
            "npx": fake_platform.npx,
        }
        tools[tool](world, args)
    finally:
        WORLD.write_text(json.dumps(world))


if __name__ == "__main__":
    main()
