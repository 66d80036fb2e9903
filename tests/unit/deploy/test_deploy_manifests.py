"""deploy/ is checked, not just read: every Kubernetes manifest against the oldest and newest supported
schemas (kubernetes-validate --strict), the compose file with docker-compose's own parser, the Dockerfile
with hadolint, the lock against the requirements, and each of the problems docs/deploy.md lists as fixed.
No container runtime is needed here; tests/image builds and runs the image.

A missing checker skips its test, unless KNNSERVE_REQUIRE_TOOLS is set (``make test`` sets it), then it fails.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from knnserve.cli import build_parser
from knnserve.cli.serve import apply_environment

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
KUBERNETES = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
KSERVE = DEPLOY / "kserve" / "inferenceservice.yaml"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
# The oldest and newest Kubernetes versions the manifests support (kubernetes-validate ships both).
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")


def tool(name: str) -> str:
    """The checker's path: beside this Python (the venv's console scripts) or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        message = f"{name} is not installed (make setup installs it)"
        if os.environ.get("KNNSERVE_REQUIRE_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def all_kubernetes_documents() -> list[dict[str, Any]]:
    return [doc for path in KUBERNETES for doc in documents(path)]


def deployments() -> dict[str, dict[str, Any]]:
    return {path.name: doc for path in KUBERNETES for doc in documents(path) if doc["kind"] == "Deployment"}


def pod_specs() -> dict[str, dict[str, Any]]:
    """Every pod spec in deploy/: the Deployments' templates and the KServe predictor."""
    specs = {name: doc["spec"]["template"]["spec"] for name, doc in deployments().items()}
    specs[KSERVE.name] = documents(KSERVE)[0]["spec"]["predictor"]
    return specs


def serve_args(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``args`` parsed by the real ``knnserve serve`` parser, with the environment applied as the server does."""
    for name in ("KNNSERVE_HOST", "KNNSERVE_PORT", "KNNSERVE_METRICS_HOST", "KNNSERVE_METRICS_PORT", "KNNSERVE_HTTP_PORT",
                 "KNNSERVE_HTTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    parsed = build_parser().parse_args(["serve", *args])
    apply_environment(parsed)
    return parsed


def dockerfile_env() -> dict[str, str]:
    final_stage = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    env: dict[str, str] = {}
    for match in re.finditer(r"^ENV ((?:.*\\\n)*.*)$", final_stage, flags=re.MULTILINE):
        for pair in shlex.split(match.group(1).replace("\\\n", " ")):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


def dockerfile_cmd() -> list[str]:
    match = re.search(r"^CMD (\[.*\])$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert match is not None
    return list(yaml.safe_load(match.group(1)))


# -- Kubernetes -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_kubernetes_manifest_passes_strict_validation(version: str) -> None:
    command = [tool("kubernetes-validate"), "--strict", "--kubernetes-version", version, *map(str, KUBERNETES)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARN" not in result.stdout + result.stderr, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(all_kubernetes_documents())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_kserve_predictor_is_a_valid_pod_spec(version: str) -> None:
    """The InferenceService CRD has no schema in kubernetes-validate; its predictor's pod part does."""
    import kubernetes_validate

    tool("kubernetes-validate")
    predictor = copy.deepcopy(documents(KSERVE)[0]["spec"]["predictor"])
    for kserve_only in ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget"):
        predictor.pop(kserve_only, None)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "knnserve"}, "spec": predictor}
    kubernetes_validate.validate(pod, version, strict=True)


def test_strict_validation_catches_a_misspelled_field(tmp_path: Path) -> None:
    broken = copy.deepcopy(deployments()["deployment-volume.yaml"])
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "IfNotPresent"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = subprocess.run([tool("kubernetes-validate"), "--strict", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "imagePullPolicyy" in result.stdout + result.stderr


def test_no_secret_with_a_known_value_is_applied() -> None:
    assert all(doc["kind"] != "Secret" for doc in all_kubernetes_documents())


@pytest.mark.parametrize("name", sorted(pod_specs()))
def test_pods_meet_the_restricted_pod_security_standard(name: str) -> None:
    spec = pod_specs()[name]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec.get("initContainers", []) + spec["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert not container["image"].endswith(":latest") and ":" in container["image"], container["image"]
        assert container["imagePullPolicy"] == "IfNotPresent", container["name"]
        assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"], container["name"]


@pytest.mark.parametrize("name", sorted(pod_specs()))
def test_the_server_container_agrees_with_the_cli_and_the_image(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Args parse with the real CLI; FAISS threads = the CPU request; probes are HTTP on the metrics port
    (they work with TLS on); the writable paths are volumes (read-only root); a token from a Secret."""
    spec = pod_specs()[name]
    (server,) = [c for c in spec["containers"] if c["image"].startswith("knnserve:")]
    env = {**dockerfile_env(), **{e["name"]: e["value"] for e in server["env"] if "value" in e}}
    args = serve_args(server["args"], env, monkeypatch)
    assert args.faiss_threads == int(server["resources"]["requests"]["cpu"])
    assert args.token_env == "KNNSERVE_TOKEN"
    (token,) = [e for e in server["env"] if e["name"] == "KNNSERVE_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["name"] == "knnserve-token"
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert args.port in ports.values() and args.metrics_port == ports.get("metrics", 9100)
    assert args.http_port == ports["http"] and args.http_port not in (args.port, args.metrics_port)  # the REST port
    assert args.host == "0.0.0.0" and args.metrics_host == "0.0.0.0" and args.http_host is None  # REST binds --host
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe_name in server:
            probe = server[probe_name]["httpGet"]
            assert probe["path"] in ("/readyz", "/livez") and probe["port"] in ("metrics", args.metrics_port)
    mounted = {m["mountPath"] for m in server["volumeMounts"]}
    assert {"/tmp", "/home/knnserve/.cache"} <= mounted
    models = Path(args.models)
    assert str(models) in mounted or name == KSERVE.name  # KServe mounts /mnt/models itself
    if name != KSERVE.name:
        grace = spec["terminationGracePeriodSeconds"]
        assert args.drain + args.grace < grace


def test_the_services_expose_the_rest_port_of_the_pods() -> None:
    services = [doc for doc in all_kubernetes_documents() if doc["kind"] == "Service"]
    assert len(services) == 2
    container = next(iter(deployments().values()))["spec"]["template"]["spec"]["containers"][0]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for service in services:
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        assert ports["http"]["targetPort"] == "http" and "http" in named and ports["http"]["appProtocol"] == "http"
        assert ports["grpc"]["targetPort"] == "grpc"
    (predictor,) = documents(KSERVE)[0]["spec"]["predictor"]["containers"]
    assert [p["name"] for p in predictor["ports"]] == ["h2c", "http"]  # KServe routes its first port: gRPC, as before


def test_the_two_deployments_run_the_same_server() -> None:
    found = deployments()
    assert set(found) == {"deployment-volume.yaml", "deployment-object-storage.yaml"}
    volume, storage = (found[name]["spec"]["template"]["spec"] for name in sorted(found, reverse=True))
    assert volume["containers"] == storage["containers"]
    assert {v["name"] for v in volume["volumes"]} == {v["name"] for v in storage["volumes"]}
    (init,) = storage["initContainers"]
    assert "/models" in {m["mountPath"] for m in init["volumeMounts"]}


def test_the_models_volume_is_defined_and_readonlymany() -> None:
    claims = {doc["metadata"]["name"]: doc for doc in all_kubernetes_documents() if doc["kind"] == "PersistentVolumeClaim"}
    for volume in deployments()["deployment-volume.yaml"]["spec"]["template"]["spec"]["volumes"]:
        if "persistentVolumeClaim" in volume:
            claim = claims[volume["persistentVolumeClaim"]["claimName"]]
            assert claim["spec"]["accessModes"] == ["ReadOnlyMany"]


def test_the_autoscaler_and_the_disruption_budget_target_the_deployment() -> None:
    docs = {doc["kind"]: doc for doc in all_kubernetes_documents()}
    labels = next(iter(deployments().values()))["spec"]["selector"]["matchLabels"]
    assert docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "knnserve"
    assert docs["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    assert all("replicas" not in d["spec"] for d in deployments().values())  # the autoscaler owns the count


# -- compose ----------------------------------------------------------------------------------


def compose(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "KNNSERVE_TOKEN"}
    return subprocess.run([tool("docker-compose"), "-f", str(path), "config", "-q"], capture_output=True, text=True,
                          timeout=120, env={**clean, **env}, cwd=ROOT)


def test_compose_file_is_valid_and_requires_a_token() -> None:
    assert compose(COMPOSE, {"KNNSERVE_TOKEN": "t"}).returncode == 0
    missing = compose(COMPOSE, {})
    assert missing.returncode != 0 and "set KNNSERVE_TOKEN" in missing.stderr


def test_compose_check_catches_a_misspelled_key(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    cpus: 2\n", "    cpu: 2\n"))
    result = compose(broken, {"KNNSERVE_TOKEN": "t"})
    assert result.returncode != 0 and "cpu" in result.stderr


def test_compose_service_binds_loopback_sizes_faiss_and_drops_privileges(monkeypatch: pytest.MonkeyPatch) -> None:
    service = yaml.safe_load(COMPOSE.read_text())["services"]["knnserve"]
    args = serve_args(service["command"], dockerfile_env(), monkeypatch)
    assert args.faiss_threads == service["cpus"]
    assert args.token_env == "KNNSERVE_TOKEN" and "KNNSERVE_TOKEN" in service["environment"]
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    published = {int(port.rsplit(":", 1)[1]) for port in service["ports"]}
    assert published == {args.port, args.http_port, args.metrics_port}
    assert service["read_only"] is True and "/home/knnserve/.cache:uid=10001,gid=10001" in service["tmpfs"]
    assert service["cap_drop"] == ["ALL"] and service["image"] != "knnserve:latest"


# -- Dockerfile, .dockerignore, lock ----------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_an_unpinned_base_image(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:latest\nRUN pip install knnserve\n")
    result = subprocess.run([tool("hadolint"), str(broken)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_image_defaults_serve_every_interface_with_metrics_and_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    args = serve_args(dockerfile_cmd(), dockerfile_env(), monkeypatch)
    assert (args.host, args.port, args.metrics_host, args.metrics_port) == ("0.0.0.0", 50051, "0.0.0.0", 9100)
    assert args.http_port == 8000 and "EXPOSE 50051 8000 9100" in DOCKERFILE.read_text()
    assert args.models == Path("/models")


def test_dockerfile_is_reproducible_and_its_health_check_follows_the_port() -> None:
    text = DOCKERFILE.read_text()
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, flags=re.MULTILINE)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base
    assert "-c /wheels/requirements.lock" in text
    healthcheck = next(line for line in text.splitlines() if line.startswith("HEALTHCHECK"))
    assert "50051" not in healthcheck and "KNNSERVE_METRICS_PORT" in healthcheck and "/readyz" in healthcheck
    assert "--create-home" in text and "KNNSERVE_DATA=/home/knnserve/.cache/knnserve" in text


def test_dockerignore_sends_only_the_sources() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"  # everything out, then the allow-list
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "server", "client", "deploy/requirements.lock"}
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE))
    assert {path.rstrip("/") for path in copied} <= allowed


def test_the_lock_pins_every_runtime_dependency_within_its_requirements() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "lock_deps.py"), "--check"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_lock_check_finds_a_missing_and_an_excluded_pin() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import lock_deps
    finally:
        sys.path.pop(0)
    closure = lock_deps.requirements_closure()
    pins = lock_deps.read_lock()
    assert lock_deps.lock_problems(pins, closure) == []
    missing = {k: v for k, v in pins.items() if k != "faiss-cpu"}
    assert lock_deps.lock_problems(missing, closure) == ["faiss-cpu: needed but not locked"]
    old = {**pins, "numpy": "1.0.0"}
    assert any(problem.startswith("numpy==1.0.0: excluded by") for problem in lock_deps.lock_problems(old, closure))
