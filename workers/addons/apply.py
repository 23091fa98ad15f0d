"""Server-side apply and delete of addon objects through the cluster's API (the `kubernetes` client).

Server-side apply (PATCH `application/apply-patch+yaml`, field manager `kobot`, force) makes an install
and an upgrade the same request, and lets the API server merge kobot's fields with anyone else's.
Where each kind lives is known for the built-in kinds and read from the CRDs a render ships; an
unknown kind stops the apply with its name instead of guessing a URL.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kobot.errors import StepFailedError
from workers.addons.defaults import APPLY_REQUEST_TIMEOUT_SECONDS, FIELD_MANAGER
from workers.addons.manifests import CrdScopes, Manifest, ObjectRef

if TYPE_CHECKING:  # the client is loaded where a job builds one, not when `kobot serve` starts
    from kubernetes import client

APPLY_PATCH = "application/apply-patch+yaml"

BUILTIN_KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "ServiceAccount": ("serviceaccounts", True),
    "Secret": ("secrets", True),
    "ConfigMap": ("configmaps", True),
    "Service": ("services", True),
    "Endpoints": ("endpoints", True),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True),
    "PersistentVolume": ("persistentvolumes", False),
    "Pod": ("pods", True),
    "Deployment": ("deployments", True),
    "DaemonSet": ("daemonsets", True),
    "StatefulSet": ("statefulsets", True),
    "Job": ("jobs", True),
    "CronJob": ("cronjobs", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "Ingress": ("ingresses", True),
    "IngressClass": ("ingressclasses", False),
    "NetworkPolicy": ("networkpolicies", True),
    "PodDisruptionBudget": ("poddisruptionbudgets", True),
    "StorageClass": ("storageclasses", False),
    "CSIDriver": ("csidrivers", False),
    "PriorityClass": ("priorityclasses", False),
    "RuntimeClass": ("runtimeclasses", False),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "MutatingWebhookConfiguration": ("mutatingwebhookconfigurations", False),
    "ValidatingWebhookConfiguration": ("validatingwebhookconfigurations", False),
    "APIService": ("apiservices", False),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers", True),
}
"""Kind → (plural, namespaced) for the built-in API kinds charts use."""


def locate(api_version: str, kind: str, crds: CrdScopes) -> tuple[str, bool]:
    """(plural, namespaced) of a kind: the render's own CRDs first, then the built-in kinds."""
    group = api_version.rpartition("/")[0]
    if (group, kind) in crds:
        return crds[(group, kind)]
    if kind in BUILTIN_KINDS:
        return BUILTIN_KINDS[kind]
    raise StepFailedError(
        f"kobot does not know where {kind} ({api_version}) lives in the API; "
        "the chart's CRDs must come with it"
    )


def object_path(ref: ObjectRef) -> str:
    """The API path of one object."""
    group, _, version = ref.api_version.rpartition("/")
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if ref.namespace:
        base += f"/namespaces/{quote(ref.namespace)}"
    return f"{base}/{ref.plural}/{quote(ref.name)}"


class ServerSideApplier:
    """Applies and deletes objects through one API client; failures become chat-safe step errors."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client

    def apply(self, manifest: Manifest) -> dict[str, Any]:
        status, body = self._call(
            "PATCH",
            object_path(manifest.ref),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            body=manifest.body,
            content_type=APPLY_PATCH,
        )
        if status >= 400:
            raise StepFailedError(
                f"applying {manifest.ref} was refused: {_message(body, status)}", task=str(manifest.ref)
            )
        return body

    def delete(self, ref: ObjectRef) -> bool:
        """Delete one object; False when it was already gone."""
        status, body = self._call("DELETE", object_path(ref), query=[("propagationPolicy", "Background")])
        if status == 404:
            return False
        if status >= 400:
            raise StepFailedError(f"deleting {ref} was refused: {_message(body, status)}", task=str(ref))
        return True

    def read(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The object as the API has it, or None when it is not there."""
        status, body = self._call("GET", object_path(ref))
        if status == 404:
            return None
        if status >= 400:
            raise StepFailedError(f"reading {ref} was refused: {_message(body, status)}", task=str(ref))
        return body

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        serialized = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*serialized, _request_timeout=APPLY_REQUEST_TIMEOUT_SECONDS)
            response.read()  # type: ignore[no-untyped-call]
        except Exception as exc:  # urllib3 and socket errors: the API is unreachable
            raise StepFailedError(
                f"the cluster's API could not be reached ({type(exc).__name__})", task=f"{method} {path}"
            ) from None
        try:
            answer = json.loads(response.data or b"{}")
        except ValueError:
            answer = {}
        return int(response.status), answer if isinstance(answer, dict) else {}


def _message(body: dict[str, Any], status: int) -> str:
    return str(body.get("message") or f"HTTP {status}")[:300]
