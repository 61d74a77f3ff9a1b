"""A small, offline `kustomize build` for the features k8s/ uses, so `make test` needs no kubectl.

Supported kustomization fields: `resources` (YAML files, or folders holding a kustomization),
`namespace`, `labels` (metadata labels; `includeTemplates` adds them to pod templates too) and
`images` (`newName`, `newTag`, `digest`). Any other field raises UnsupportedKustomization rather
than being ignored: the manifests must not rely on something this build would get wrong. Where
kubectl is installed, tests/deploy/test_k8s_manifests.py checks this build against
`kubectl kustomize`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images"}
# Kinds that live outside namespaces (those a deployment of skiff could plausibly contain).
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "PersistentVolume",
    "PriorityClass",
    "StorageClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}
POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


class UnsupportedKustomization(Exception):
    """The kustomization uses a feature this build does not implement."""


def build(directory: Path) -> list[Resource]:
    """The resources `kustomize build directory` would output (in the order of `resources`)."""
    kustomization = _read_kustomization(directory)
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise UnsupportedKustomization(f"{directory}: unsupported fields {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            resources.extend(build(path))
        else:
            resources.extend(load_documents(path))
    for label_set in kustomization.get("labels", []):
        _apply_labels(resources, label_set)
    for image in kustomization.get("images", []):
        _apply_image(resources, image)
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = kustomization["namespace"]
    return resources


def load_documents(path: Path) -> list[Resource]:
    """Every non-empty YAML document of a file."""
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def key(resource: Resource) -> tuple[str, str, str, str]:
    """What identifies a resource: (apiVersion, kind, namespace, name)."""
    metadata = resource.get("metadata", {})
    return (
        resource["apiVersion"],
        resource["kind"],
        metadata.get("namespace", ""),
        metadata["name"],
    )


def pod_template(resource: Resource) -> Resource | None:
    """The pod template of a workload (or the Pod itself); None for other kinds."""
    if resource["kind"] == "Pod":
        return resource
    path = POD_TEMPLATE_PATHS.get(resource["kind"])
    if path is None:
        return None
    node: Any = resource
    for part in path:
        node = node[part]
    template: Resource = node
    return template


def containers(resource: Resource) -> Iterator[Resource]:
    """Every container and init container of a workload's pod template."""
    template = pod_template(resource)
    if template is None:
        return
    spec = template.get("spec", {})
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def _read_kustomization(directory: Path) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        path = directory / name
        if path.exists():
            data = yaml.safe_load(path.read_text())
            return dict(data or {})
    raise FileNotFoundError(f"no kustomization in {directory}")


def _apply_labels(resources: list[Resource], label_set: dict[str, Any]) -> None:
    unknown = set(label_set) - {"pairs", "includeTemplates", "includeSelectors"}
    if unknown or label_set.get("includeSelectors"):
        raise UnsupportedKustomization(f"labels: only pairs and includeTemplates, got {label_set}")
    pairs = dict(label_set.get("pairs", {}))
    for resource in resources:
        resource["metadata"].setdefault("labels", {}).update(copy.deepcopy(pairs))
        template = pod_template(resource)
        if label_set.get("includeTemplates") and template is not None and template is not resource:
            template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _apply_image(resources: list[Resource], image: dict[str, Any]) -> None:
    unknown = set(image) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise UnsupportedKustomization(f"images: unsupported fields {sorted(unknown)}")
    for resource in resources:
        for container in containers(resource):
            name, tag, digest = split_image(container["image"])
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{name}@{image['digest']}"
            elif "newTag" in image:
                container["image"] = f"{name}:{image['newTag']}"
            else:
                suffix = f"@{digest}" if digest else (f":{tag}" if tag else "")
                container["image"] = name + suffix


def split_image(reference: str) -> tuple[str, str | None, str | None]:
    """`name[:tag][@digest]` -> (name, tag, digest); a registry port is not a tag."""
    name, _, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest or None
