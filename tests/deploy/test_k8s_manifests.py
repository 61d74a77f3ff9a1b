"""k8s/: the kustomize build validates against the Kubernetes schemas, offline, and holds the
properties docs/operations.md relies on (roles by ordinal, drain before exit, probes, limits,
non-root). Needs no cluster and no kubectl; where kubectl is installed, our build is also
compared with `kubectl kustomize`."""

from __future__ import annotations

import http.server
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from broker.http.client_address import TrustedForwarders
from skiff.cli import build_parser
from tests.deploy import kustomize
from tests.deploy.kustomize import Resource

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
# The oldest Kubernetes the manifests promise to work on; kubernetes-validate ships its schemas.
KUBERNETES_VERSION = "1.31.0"


@pytest.fixture(scope="module")
def resources() -> list[Resource]:
    return kustomize.build(K8S)


def find(resources: list[Resource], kind: str, name: str) -> Resource:
    for resource in resources:
        if resource["kind"] == kind and resource["metadata"]["name"] == name:
            return resource
    raise AssertionError(f"no {kind} {name} in the build")


def workloads(resources: list[Resource]) -> Iterator[Resource]:
    return (r for r in resources if kustomize.pod_template(r) is not None)


def env_value(container: dict[str, Any], name: str) -> str:
    for var in container.get("env", []):
        if var["name"] == name:
            return str(var["value"])
    raise AssertionError(f"{container['name']} has no env {name}")


# -- the build ------------------------------------------------------------------------------


def test_build_validates_against_the_kubernetes_schemas(resources: list[Resource]) -> None:
    assert len(resources) >= 10
    for resource in resources:
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{kustomize.key(resource)}: {err.message}")


def test_every_manifest_file_validates_on_its_own() -> None:
    files = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert files
    for path in files:
        for resource in kustomize.load_documents(path):
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_validation_is_strict_enough_to_catch_a_misspelt_field(
    resources: list[Resource],
) -> None:
    broken = yaml.safe_load(yaml.safe_dump(find(resources, "StatefulSet", "skiff")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_build_matches_kubectl_kustomize(resources: list[Resource]) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    theirs = {kustomize.key(r): r for r in yaml.safe_load_all(out) if r}
    ours = {kustomize.key(r): r for r in resources}
    assert ours.keys() == theirs.keys()
    for k, resource in ours.items():
        assert resource == theirs[k], k


def test_namespace_labels_and_images_are_applied(resources: list[Resource]) -> None:
    for resource in resources:
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "skiff"
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "skiff"
    images = {c["image"] for r in workloads(resources) for c in kustomize.containers(r)}
    assert images == {"skiff:0.1.0", "redis:7.4"}


# -- what operations rely on -------------------------------------------------------------


def test_nodes_are_one_statefulset_behind_a_headless_service(resources: list[Resource]) -> None:
    nodes = find(resources, "StatefulSet", "skiff")
    headless = find(resources, "Service", nodes["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert nodes["spec"]["podManagementPolicy"] == "Parallel"
    config = find(resources, "ConfigMap", "skiff")["data"]
    # Room for at least one follower beside the leader candidates.
    assert nodes["spec"]["replicas"] > int(config["SKIFF_LEADER_CANDIDATES"])


def test_services_and_budgets_select_existing_pods(resources: list[Resource]) -> None:
    pod_labels = [
        kustomize.pod_template(r)["metadata"]["labels"]  # type: ignore[index]
        for r in workloads(resources)
    ]

    def selects(selector: dict[str, str]) -> bool:
        return any(selector.items() <= labels.items() for labels in pod_labels)

    for resource in resources:
        if resource["kind"] == "Service":
            assert selects(resource["spec"]["selector"]), kustomize.key(resource)
        if resource["kind"] == "PodDisruptionBudget":
            assert selects(resource["spec"]["selector"]["matchLabels"]), kustomize.key(resource)
        if resource["kind"] in ("StatefulSet", "Deployment"):
            template_labels = resource["spec"]["template"]["metadata"]["labels"]
            assert resource["spec"]["selector"]["matchLabels"].items() <= template_labels.items()


def test_configuration_references_exist(resources: list[Resource]) -> None:
    names = {(r["kind"], r["metadata"]["name"]) for r in resources}
    for workload in workloads(resources):
        for container in kustomize.containers(workload):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in names
                if "secretRef" in source:
                    assert ("Secret", source["secretRef"]["name"]) in names
    ingress = find(resources, "Ingress", "skiff")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = find(resources, "Service", backend["name"])
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_proxy_runs_twice_behind_a_service(resources: list[Resource]) -> None:
    proxy = find(resources, "Deployment", "skiff-proxy")
    assert proxy["spec"]["replicas"] == 2
    assert proxy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (container,) = kustomize.containers(proxy)
    build_parser().parse_args(container["args"])  # skiff accepts the command line
    assert find(resources, "PodDisruptionBudget", "skiff-proxy")["spec"]["minAvailable"] == 1


def test_proxies_believe_the_ingress_about_who_the_client_is(resources: list[Resource]) -> None:
    # Behind the ingress every request comes from an ingress pod: unless the proxy trusts its
    # X-Forwarded-For, all clients would share one address and one rate limit.
    (container,) = kustomize.containers(find(resources, "Deployment", "skiff-proxy"))
    (source,) = [s for s in container["envFrom"] if "configMapRef" in s]
    config = find(resources, "ConfigMap", source["configMapRef"]["name"])["data"]
    trusted = TrustedForwarders(config["SKIFF_FORWARDED_ALLOW_IPS"].split(","))
    assert "*" not in trusted.entries
    assert trusted.trusts("10.244.1.17") and trusted.trusts("172.17.0.5")  # pod networks
    assert not trusted.trusts("203.0.113.9")  # a client on the internet names no one


def test_every_container_has_probes_resources_and_runs_as_non_root(
    resources: list[Resource],
) -> None:
    for workload in workloads(resources):
        template = kustomize.pod_template(workload)
        assert template is not None
        pod_security = template["spec"]["securityContext"]
        assert pod_security["runAsNonRoot"] is True
        assert pod_security["runAsUser"] > 0
        assert pod_security["seccompProfile"]["type"] == "RuntimeDefault"
        for container in kustomize.containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert {"readinessProbe", "livenessProbe"} <= container.keys(), where
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), where
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), where
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert security["readOnlyRootFilesystem"] is True, where


def test_nodes_probe_readiness_on_healthz_and_liveness_elsewhere(
    resources: list[Resource],
) -> None:
    # A standby candidate answers /healthz 503 by design: liveness on it would restart it forever.
    (container,) = kustomize.containers(find(resources, "StatefulSet", "skiff"))
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] != "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] != "/healthz"


def test_grace_period_outlasts_the_drain(resources: list[Resource]) -> None:
    nodes = find(resources, "StatefulSet", "skiff")
    config = find(resources, "ConfigMap", "skiff")["data"]
    drain_window = float(config["SKIFF_DRAIN_WINDOW"])
    shutdown_timeout = 5.0  # skiff's default --shutdown-timeout
    grace = nodes["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # preStop waits the window (+1 s), then SIGTERM shuts the node down.
    assert grace > drain_window + 1 + shutdown_timeout + 10


def test_redis_keeps_its_data_on_a_volume_with_aof(resources: list[Resource]) -> None:
    redis = find(resources, "StatefulSet", "redis")
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    (container,) = kustomize.containers(redis)
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    config = find(resources, "ConfigMap", "skiff")["data"]
    service = find(resources, "Service", "redis")
    assert config["SKIFF_REDIS_URL"] == f"redis://{service['metadata']['name']}:6379/0"


# -- the scripts inside the manifests, run for real -------------------------------------


def _fake_skiff(tmp_path: Path) -> Path:
    """A `skiff` that writes its arguments, one per line, where $ARGS_OUT says."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "skiff"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done > "$ARGS_OUT"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return bin_dir


@pytest.mark.parametrize(
    ("pod", "role"),
    [
        ("skiff-0", "leader"),
        ("skiff-1", "leader"),
        ("skiff-2", "follower"),
        ("skiff-11", "follower"),
    ],
)
def test_start_script_picks_the_role_from_the_ordinal(
    resources: list[Resource], tmp_path: Path, pod: str, role: str
) -> None:
    (container,) = kustomize.containers(find(resources, "StatefulSet", "skiff"))
    config = find(resources, "ConfigMap", "skiff")["data"]
    out = tmp_path / "args"
    env = {
        **config,
        "PATH": f"{_fake_skiff(tmp_path)}:{os.environ['PATH']}",
        "POD_NAME": pod,
        "ARGS_OUT": str(out),
    }
    subprocess.run([*container["command"], *container["args"]], env=env, check=True, timeout=10)
    argv = out.read_text().splitlines()
    assert argv[:2] == [role, config["SKIFF_APP"]]
    args = build_parser().parse_args(argv)  # the real CLI accepts what the script runs
    assert (args.host, args.port, args.drain_window_s) == ("0.0.0.0", 8080, 10.0)
    # Reachable by the proxies at the pod's own address, named after the pod.
    assert env_value(container, "SKIFF_ADVERTISE_URL") == "http://$(POD_IP):8080"
    assert env_value(container, "SKIFF_NODE_ID") == "$(POD_NAME)"


class _DrainRecorder(http.server.BaseHTTPRequestHandler):
    calls: list[tuple[str, str, str | None]] = []

    def do_POST(self) -> None:
        self.calls.append(("POST", self.path, self.headers.get("Authorization")))
        self.send_response(202)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_prestop_hook_asks_the_node_to_drain_then_waits(
    resources: list[Resource],
) -> None:
    (container,) = kustomize.containers(find(resources, "StatefulSet", "skiff"))
    command = list(container["lifecycle"]["preStop"]["exec"]["command"])
    _DrainRecorder.calls = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _DrainRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # The hook talks to the node in its own pod; point it at our recorder instead.
        command[-1] = command[-1].replace("127.0.0.1:8080", f"127.0.0.1:{server.server_port}")
        env = {
            "PATH": os.environ["PATH"],
            "SKIFF_CONTROL_TOKEN": "s3cret",
            "SKIFF_DRAIN_WINDOW": "0",
        }
        subprocess.run(command, env=env, check=True, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert _DrainRecorder.calls == [("POST", "/v1/admin/drain", "Bearer s3cret")]


def test_prestop_hook_ends_at_once_when_nothing_answers(resources: list[Resource]) -> None:
    (container,) = kustomize.containers(find(resources, "StatefulSet", "skiff"))
    command = list(container["lifecycle"]["preStop"]["exec"]["command"])
    command[-1] = command[-1].replace("127.0.0.1:8080", "127.0.0.1:9")  # discard: closed
    subprocess.run(command, env={"PATH": os.environ["PATH"]}, check=True, timeout=10)


# -- the build helper itself ---------------------------------------------------------------


def _write(directory: Path, files: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(
            yaml.safe_dump_all(content if isinstance(content, list) else [content])
        )
    return directory


def _deployment(image: str) -> Resource:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


@pytest.mark.parametrize(
    ("image", "override", "expected"),
    [
        ("skiff", {"newTag": "1.2"}, "skiff:1.2"),
        ("skiff:0.1", {"newName": "reg.example:5000/skiff"}, "reg.example:5000/skiff:0.1"),
        ("skiff:0.1", {"digest": "sha256:abc"}, "skiff@sha256:abc"),
        ("other:1", {"newTag": "2"}, "other:1"),
        ("reg.example:5000/skiff:3", {"newTag": "4"}, "reg.example:5000/skiff:3"),
    ],
)
def test_kustomize_images(
    tmp_path: Path, image: str, override: dict[str, str], expected: str
) -> None:
    _write(
        tmp_path,
        {
            "kustomization.yaml": {
                "resources": ["web.yaml"],
                "images": [{"name": "skiff", **override}],
            },
            "web.yaml": _deployment(image),
        },
    )
    (web,) = kustomize.build(tmp_path)
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == expected


def test_kustomize_nested_namespace_and_labels(tmp_path: Path) -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}
    _write(
        tmp_path / "base",
        {"kustomization.yaml": {"resources": ["web.yaml"]}, "web.yaml": _deployment("x")},
    )
    _write(
        tmp_path,
        {
            "kustomization.yaml": {
                "namespace": "n",
                "resources": ["ns.yaml", "base"],
                "labels": [{"pairs": {"team": "a"}, "includeTemplates": True}],
            },
            "ns.yaml": namespace,
        },
    )
    ns, web = kustomize.build(tmp_path)
    assert ns["metadata"] == {"name": "n", "labels": {"team": "a"}}
    assert web["metadata"] == {"name": "web", "namespace": "n", "labels": {"team": "a"}}
    assert web["spec"]["template"]["metadata"]["labels"] == {"app": "web", "team": "a"}
    assert web["spec"]["selector"]["matchLabels"] == {"app": "web"}


@pytest.mark.parametrize(
    "kustomization",
    [
        {"resources": [], "patches": []},
        {"resources": [], "labels": [{"pairs": {"a": "b"}, "includeSelectors": True}]},
        {"resources": [], "images": [{"name": "x", "newTagg": "1"}]},
    ],
)
def test_kustomize_refuses_what_it_does_not_implement(
    tmp_path: Path, kustomization: dict[str, Any]
) -> None:
    _write(tmp_path, {"kustomization.yaml": kustomization})
    with pytest.raises(kustomize.UnsupportedKustomization):
        kustomize.build(tmp_path)
