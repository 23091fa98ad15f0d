"""From a chart's render to the objects kobot applies: parsed, namespaced, labelled, images mirrored.

Every object an addon applies carries `kobot.io/addon=<release>`, and the release record lists each by
`ObjectRef`, so an upgrade prunes exactly what left the render and an uninstall removes exactly what
kobot applied: objects are never looked up by label alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ConfigDict

from kobot.deferred_models import DeferredModel
from kobot.errors import StepFailedError
from workers.addons.defaults import RELEASE_LABEL
from workers.addons.helm_render import RenderedChart

HOOK_ANNOTATION = "helm.sh/hook"
TEST_HOOKS = frozenset({"test", "test-success", "test-failure"})
"""Helm test hooks are for `helm test`, never part of an install."""

APPLY_ORDER = (
    "CustomResourceDefinition",
    "Namespace",
    "PriorityClass",
    "StorageClass",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
)
"""Kinds others depend on go first (as Helm's install order); the rest follow in render order."""


CrdScopes = dict[tuple[str, str], tuple[str, bool]]
"""(group, kind) → (plural, namespaced), from the CRDs of a render."""


class ObjectRef(DeferredModel):
    """One object an addon owns, as the release record keeps it."""

    model_config = ConfigDict(frozen=True)

    api_version: str
    kind: str
    plural: str
    """The resource name in the API path (`alertmanagers`), kept so a prune needs no render."""
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class Manifest:
    ref: ObjectRef
    body: dict[str, Any]


def mirrored_image(image: str, *, registry: str) -> str:
    """`quay.io/prometheus/alertmanager:v0.34.0` → `<registry>/prometheus/alertmanager:v0.34.0`.

    The registry host goes (a first path part with a dot or port, or `localhost`); the repository path and
    tag or digest stay, which is the layout the offline mirror is filled in."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        image = rest
    return f"{registry.rstrip('/')}/{image}"


def objects_of(
    rendered: RenderedChart,
    *,
    namespace: str,
    release: str,
    locate: Callable[[str, str, CrdScopes], tuple[str, bool]],
) -> list[Manifest]:
    """The objects to apply, CRDs first; `locate(api_version, kind, crds)` gives (plural, namespaced)."""
    documents: list[dict[str, Any]] = []
    for text in rendered.crds:
        documents.extend(_documents(text, source="crds"))
    for path in sorted(rendered.manifests):
        if path.endswith(("NOTES.txt", ".txt")):
            continue
        documents.extend(_documents(rendered.manifests[path], source=path))
    crds: CrdScopes = {
        (d["spec"]["group"], d["spec"]["names"]["kind"]): (
            d["spec"]["names"]["plural"],
            d["spec"].get("scope") == "Namespaced",
        )
        for d in documents
        if d.get("kind") == "CustomResourceDefinition"
    }
    found: list[Manifest] = []
    for body in documents:
        hooks = {h.strip() for h in str(_annotations(body).get(HOOK_ANNOTATION, "")).split(",")}
        if hooks & TEST_HOOKS:
            continue
        metadata = body.setdefault("metadata", {})
        plural, namespaced = locate(body["apiVersion"], body["kind"], crds)
        if namespaced:
            metadata["namespace"] = metadata.get("namespace") or namespace
        else:
            metadata.pop("namespace", None)
        metadata.setdefault("labels", {})[RELEASE_LABEL] = release
        ref = ObjectRef(
            api_version=body["apiVersion"],
            kind=body["kind"],
            plural=plural,
            name=metadata["name"],
            namespace=metadata.get("namespace"),
        )
        found.append(Manifest(ref=ref, body=body))
    rank = {kind: index for index, kind in enumerate(APPLY_ORDER)}
    return sorted(found, key=lambda m: rank.get(m.ref.kind, len(APPLY_ORDER)))


def rewrite_images(manifests: Iterable[Manifest], *, images: Iterable[str], registry: str) -> None:
    """Point every image the catalog lists at the mirror, wherever the render names it (container
    `image` fields, operator flags such as `--prometheus-config-reloader=`, custom resources)."""
    mapping = {image: mirrored_image(image, registry=registry) for image in images}
    for manifest in manifests:
        if manifest.ref.kind != "CustomResourceDefinition":  # schemas only: large, and never an image
            _replace_strings(manifest.body, mapping)


def image_fields(manifests: Iterable[Manifest]) -> list[str]:
    """Every value of an `image` key in the objects, sorted and unique."""
    return sorted(
        {v for m in manifests if m.ref.kind != "CustomResourceDefinition" for v in _image_values(m.body)}
    )


def check_mirrored(manifests: list[Manifest], *, registry: str) -> None:
    """Refuse a render that would still pull from the internet: the catalog's image list is out of date."""
    stray = [image for image in image_fields(manifests) if not image.startswith(registry.rstrip("/") + "/")]
    if stray:
        raise StepFailedError(
            f"the render needs images the catalog does not list, so they are not mirrored: {', '.join(stray)}"
        )


class _ManifestLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML 1.1's `=` value tag means nothing to Kubernetes: a bare `=` (CRD enums have one) is a string."""


_ManifestLoader.add_constructor(
    "tag:yaml.org,2002:value",
    lambda loader, node: loader.construct_scalar(node),
)


def _documents(text: str, *, source: str) -> Iterator[dict[str, Any]]:
    try:
        for document in yaml.load_all(text, Loader=_ManifestLoader):
            if isinstance(document, dict) and document.get("kind"):
                if document["kind"].endswith("List") and isinstance(document.get("items"), list):
                    yield from (item for item in document["items"] if isinstance(item, dict))
                else:
                    yield document
    except yaml.YAMLError as exc:
        raise StepFailedError(f"{source} of the render is not YAML: {exc}") from None


def _annotations(body: dict[str, Any]) -> dict[str, Any]:
    return dict((body.get("metadata") or {}).get("annotations") or {})


def _replace_strings(node: Any, mapping: dict[str, str]) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            node[key] = _replace_strings(value, mapping)
        return node
    if isinstance(node, list):
        return [_replace_strings(item, mapping) for item in node]
    if isinstance(node, str):
        for original, mirrored in mapping.items():
            if original in node and mirrored not in node:
                node = node.replace(original, mirrored)
        return node
    return node


def _image_values(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from _image_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _image_values(item)
