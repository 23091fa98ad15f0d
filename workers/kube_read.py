"""Read-only `kubectl` for chat: get, describe, logs, events and top against a cluster's API.

Only GET requests leave this module, and only for the kinds in `RESOURCES` (the allow-list). It talks
to the API through the official client's `ApiClient` (its auth, TLS and proxy handling) but reads the
JSON itself: a 1,000-pod list is turned into a table without building 1,000 client models.
Secret and ConfigMap data never reach the output: tables count their keys, `-o yaml` and `describe`
show key names only, and the last-applied annotation (which holds the data again) is dropped everywhere.
Every request has a connect timeout and the caller's deadline as its read timeout, with no retries,
so an API server that is down or stalls is reported within the chat's time limit.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import yaml

from kobot import defaults
from kobot.errors import KobotError
from workers import kube_tables
from workers.kube_tables import ResourceKind, resolve_resource

if TYPE_CHECKING:  # loaded by the first read, not when `kobot serve` starts
    from kubernetes import client

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
"""Holds a full copy of the object as applied, data included: never shown."""

HIDDEN_DATA_NOTE = "Secret and ConfigMap values are never shown in chat; only their keys are."
METRICS_GROUP = "/apis/metrics.k8s.io/v1beta1"
_TLS_REFUSED = re.compile(r"certificate verify failed: ([^(\n]{1,80}?) ?\(")
_PATH_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class ReadVerb(str, Enum):
    GET = "get"
    DESCRIBE = "describe"
    LOGS = "logs"
    EVENTS = "events"
    TOP = "top"


class OutputFormat(str, Enum):
    TABLE = "table"
    WIDE = "wide"
    YAML = "yaml"


class KubeReadError(KobotError):
    """The read could not be done; the message (safe for chat) says why and what to try."""

    def __init__(self, user_message: str, *, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(user_message)
        self.status = status
        """The API server's HTTP status when it answered with an error."""
        self.body = body
        """What it answered with that status (`/readyz?verbose` names its failed checks there)."""


@dataclass(frozen=True)
class KubeReadRequest:
    """One chat read. `namespace` None means `default` for namespaced kinds (as kubectl does)."""

    verb: ReadVerb
    resource: str | None = None
    name: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    label_selector: str | None = None
    field_selector: str | None = None
    output: OutputFormat = OutputFormat.TABLE
    tail: int = defaults.KUBECTL_LOG_TAIL_DEFAULT
    container: str | None = None
    previous: bool = False

    def __post_init__(self) -> None:
        # names become path segments of GET requests: nothing but a Kubernetes name may get there
        for value in (self.name, self.namespace):
            if value is not None and not _PATH_NAME.fullmatch(value):
                raise KubeReadError(
                    f"'{value}' is no Kubernetes name: lowercase letters, digits, '-' and '.'"
                )


@dataclass(frozen=True)
class KubeReadResult:
    title: str
    lines: tuple[str, ...]
    notes: tuple[str, ...] = ()
    newest_last: bool = False
    """Log lines: when cut, the last ones are kept."""


@dataclass
class _Api:
    """The cluster's ApiClient with the caller's deadline applied to every request."""

    api_client: client.ApiClient
    cluster: str
    deadline: float
    timeout: float
    requests: int = field(default=0)

    def get_json(self, path: str, query: dict[str, str | int] | None = None) -> dict[str, Any]:
        data = self.get_bytes(path, query, accept="application/json")
        try:
            document = json.loads(data)
        except ValueError:
            raise KubeReadError(f"the API server of {self.cluster} answered {path} with no JSON") from None
        if not isinstance(document, dict):
            raise KubeReadError(f"the API server of {self.cluster} answered {path} with no object")
        return document

    def get_bytes(self, path: str, query: dict[str, str | int] | None = None, *, accept: str) -> bytes:
        from kubernetes.client.exceptions import ApiException  # loaded with the ApiClient this holds
        from urllib3.exceptions import HTTPError  # the client's transport, loaded with it

        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _too_slow(self.cluster, self.timeout)
        method, url, headers, _, _ = self.api_client.param_serialize(
            method="GET",
            resource_path=path,
            query_params=[(k, v) for k, v in (query or {}).items()],
            header_params={"Accept": accept},
            auth_settings=["BearerToken"],
        )
        self.requests += 1
        try:
            response = self.api_client.call_api(
                method,
                url,
                header_params=headers,
                _request_timeout=(min(defaults.KUBECTL_CONNECT_TIMEOUT_SECONDS, left), left),
            )
            data = _read_bounded(response.response, cluster=self.cluster, path=path)
        except (HTTPError, ApiException) as exc:
            # the client turns a TLS failure into ApiException(status=0); a refused certificate is
            # named, since "unreachable" would send the reader looking at the network
            if time.monotonic() >= self.deadline:
                raise _too_slow(self.cluster, self.timeout) from None
            refused = _TLS_REFUSED.search(str(exc))
            if refused:
                raise KubeReadError(
                    f"the API server of {self.cluster} presented a certificate kobot cannot trust "
                    f"({refused.group(1)}); renew it, or fix the kubeconfig's CA"
                ) from None
            raise KubeReadError(
                f"cannot reach the API server of {self.cluster} ({type(exc).__name__}); "
                "is the cluster up and its address reachable from kobot?"
            ) from None
        if not 200 <= response.status <= 299:
            raise _refused(self.cluster, response.status, data)
        return data


def _read_bounded(raw: Any, *, cluster: str, path: str) -> bytes:
    """The body of an answer read without preloading (urllib3), refused past KUBE_READ_MAX_BYTES."""
    limit = defaults.KUBE_READ_MAX_BYTES
    try:
        data: bytes = raw.read(limit + 1)
    except BaseException:
        raw.close()
        raise
    if len(data) <= limit:
        raw.release_conn()
    else:
        raw.close()  # the rest is never read: the connection cannot go back to the pool
        raise KubeReadError(
            f"the API server of {cluster} answered {path} with more than {_size(limit)}; "
            "narrow the read (a namespace, a label selector)"
        )
    return data


def _size(count: int) -> str:
    mib = 1024 * 1024
    return f"{count // mib} MB" if count >= mib else f"{count} bytes"


def read_cluster(
    *,
    kubeconfig: bytes,
    cluster: str,
    request: KubeReadRequest,
    timeout: float = defaults.KUBECTL_DEADLINE_SECONDS,
) -> KubeReadResult:
    """Run one read against the cluster whose admin kubeconfig this is, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    api = _Api(
        api_client=_api_client(kubeconfig, cluster), cluster=cluster, deadline=deadline, timeout=timeout
    )
    try:
        if request.verb is ReadVerb.GET:
            return _get(api, request)
        if request.verb is ReadVerb.DESCRIBE:
            return _describe(api, request)
        if request.verb is ReadVerb.LOGS:
            return _logs(api, request)
        if request.verb is ReadVerb.EVENTS:
            return _events(api, request)
        return _top(api, request)
    finally:
        api.api_client.close()  # type: ignore[no-untyped-call]


# --- verbs -------------------------------------------------------------------------------------------
def _get(api: _Api, request: KubeReadRequest) -> KubeReadResult:
    kind = _kind(request.resource)
    namespace = _namespace(kind, request)
    notes = (HIDDEN_DATA_NOTE,) if kind.hides_data else ()
    if request.name is not None:
        item = api.get_json(kind.item_path(namespace, request.name))
        if request.output is OutputFormat.YAML:
            return KubeReadResult(
                title=f"{kind.singular} {request.name}",
                lines=tuple(_yaml(kind, item).splitlines()),
                notes=notes,
            )
        items = [item]
    else:
        if request.output is OutputFormat.YAML:
            raise KubeReadError(
                f"-o yaml shows one object: name it, e.g. `kubectl get {kind.singular} NAME -o yaml`"
            )
        items, cut = _list(api, kind, namespace, request)
        if cut:
            notes = (*notes, f"only the first {defaults.KUBECTL_LIST_LIMIT} were read; narrow the list")
    wide = request.output is OutputFormat.WIDE
    table = kube_tables.table(kind, items, wide=wide, all_namespaces=namespace is None and kind.namespaced)
    where = _where(kind, namespace)
    if not items:
        return KubeReadResult(title=f"No {kind.plural}{where}", lines=(), notes=notes)
    return KubeReadResult(title=f"{len(items)} {kind.plural}{where}", lines=tuple(table), notes=notes)


def _describe(api: _Api, request: KubeReadRequest) -> KubeReadResult:
    kind = _kind(request.resource)
    if request.name is None:
        raise KubeReadError(f"describe names one object: `kubectl describe {kind.singular} NAME`")
    namespace = _namespace(kind, request)
    item = api.get_json(kind.item_path(namespace, request.name))
    lines = kube_tables.describe(kind, item)
    events_path = f"/api/v1/namespaces/{namespace}/events" if namespace else "/api/v1/events"
    selector = f"involvedObject.name={request.name},involvedObject.kind={item.get('kind', kind.kind)}"
    events = api.get_json(events_path, {"fieldSelector": selector}).get("items") or []
    lines.append("Events:")
    lines.extend(kube_tables.event_lines(events, all_namespaces=False) or ["  <none>"])
    notes = (HIDDEN_DATA_NOTE,) if kind.hides_data else ()
    return KubeReadResult(
        title=f"{kind.singular} {request.name}{_where(kind, namespace)}", lines=tuple(lines), notes=notes
    )


def _logs(api: _Api, request: KubeReadRequest) -> KubeReadResult:
    if request.name is None:
        raise KubeReadError("logs of which pod? `kubectl logs POD` or `kubectl logs deploy/NAME`")
    namespace = request.namespace or "default"
    pod = _pod_for(api, namespace, request.resource, request.name)
    query: dict[str, str | int] = {
        "tailLines": min(request.tail, defaults.KUBECTL_LOG_TAIL_MAX),
        "limitBytes": defaults.KUBECTL_LOG_MAX_BYTES,
    }
    if request.container:
        query["container"] = request.container
    if request.previous:
        query["previous"] = "true"
    data = api.get_bytes(f"/api/v1/namespaces/{namespace}/pods/{pod}/log", query, accept="*/*")
    lines = tuple(data.decode("utf-8", errors="replace").splitlines())
    which = f" ({request.container})" if request.container else ""
    title = f"Logs of pod {pod}{which} in {namespace}, last {len(lines)} lines"
    return KubeReadResult(title=title, lines=lines or ("<no log lines>",), newest_last=True)


def _events(api: _Api, request: KubeReadRequest) -> KubeReadResult:
    kind = resolve_resource("events")
    namespace = _namespace(kind, request)
    items, cut = _list(api, kind, namespace, request)
    items.sort(key=kube_tables.event_time)
    lines = kube_tables.event_lines(items, all_namespaces=namespace is None)
    notes = (f"only the first {defaults.KUBECTL_LIST_LIMIT} were read",) if cut else ()
    where = _where(kind, namespace)
    if not items:
        return KubeReadResult(title=f"No events{where}", lines=(), notes=notes)
    header = ("NAMESPACE  " if namespace is None else "") + "LAST SEEN  TYPE  REASON  OBJECT  MESSAGE"
    return KubeReadResult(title=f"{len(items)} events{where}", lines=(header, *lines), notes=notes)


def _top(api: _Api, request: KubeReadRequest) -> KubeReadResult:
    kind = _kind(request.resource or "nodes")
    if kind.plural not in ("nodes", "pods"):
        raise KubeReadError(f"top shows nodes or pods, not {kind.plural}")
    namespace = _namespace(kind, request)
    base = f"{METRICS_GROUP}/namespaces/{namespace}/pods" if namespace else f"{METRICS_GROUP}/{kind.plural}"
    query: dict[str, str | int] = {}
    if request.label_selector:
        query["labelSelector"] = request.label_selector
    try:
        items = api.get_json(base, query).get("items") or []
    except KubeReadError as exc:
        if exc.status == 404:
            raise KubeReadError(
                f"{api.cluster} serves no metrics API (metrics.k8s.io): install metrics-server to use top"
            ) from None
        raise
    lines = kube_tables.top_lines(kind.plural, items, all_namespaces=namespace is None)
    where = _where(kind, namespace)
    if not items:
        return KubeReadResult(title=f"No metrics for {kind.plural}{where}", lines=())
    return KubeReadResult(title=f"Usage of {len(items)} {kind.plural}{where}", lines=tuple(lines))


# --- helpers -----------------------------------------------------------------------------------------
def _kind(resource: str | None) -> ResourceKind:
    if resource is None:
        raise KubeReadError(f"which kind? e.g. `kubectl get pods`; allowed: {kube_tables.allowed_text()}")
    try:
        return resolve_resource(resource)
    except ValueError as exc:
        raise KubeReadError(str(exc)) from None


def _namespace(kind: ResourceKind, request: KubeReadRequest) -> str | None:
    """None means every namespace (or a kind that has none)."""
    if not kind.namespaced or request.all_namespaces:
        return None
    return request.namespace or "default"


def _where(kind: ResourceKind, namespace: str | None) -> str:
    if not kind.namespaced:
        return ""
    return f" in {namespace}" if namespace else " in all namespaces"


def _list(
    api: _Api, kind: ResourceKind, namespace: str | None, request: KubeReadRequest
) -> tuple[list[dict[str, Any]], bool]:
    query: dict[str, str | int] = {"limit": defaults.KUBECTL_LIST_LIMIT}
    if request.label_selector:
        query["labelSelector"] = request.label_selector
    if request.field_selector:
        query["fieldSelector"] = request.field_selector
    document = api.get_json(kind.list_path(namespace), query)
    items = list(document.get("items") or [])
    cut = bool((document.get("metadata") or {}).get("continue"))
    return items, cut


def _pod_for(api: _Api, namespace: str, resource: str | None, name: str) -> str:
    """The pod whose logs to read: a pod by name, or the first pod of a workload (as kubectl does)."""
    if resource is None or resolve_resource(resource).plural == "pods":
        return name
    kind = resolve_resource(resource)
    if kind.plural not in ("deployments", "statefulsets", "daemonsets", "replicasets", "jobs"):
        raise KubeReadError(f"logs come from pods or workloads, not {kind.plural}")
    workload = api.get_json(kind.item_path(namespace, name))
    labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not labels:
        raise KubeReadError(f"{kind.singular} {name} has no label selector to find its pods")
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods = (
        api.get_json(f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": selector}).get("items") or []
    )
    if not pods:
        raise KubeReadError(f"{kind.singular} {name} in {namespace} has no pods")
    names = sorted(str((p.get("metadata") or {}).get("name")) for p in pods)
    return names[0]


def _yaml(kind: ResourceKind, item: dict[str, Any]) -> str:
    shown = json.loads(json.dumps(item))
    metadata = shown.get("metadata") or {}
    metadata.pop("managedFields", None)
    (metadata.get("annotations") or {}).pop(LAST_APPLIED, None)
    if kind.hides_data:
        for key in ("data", "binaryData", "stringData"):
            if isinstance(shown.get(key), dict):
                shown[key] = {name: "<hidden>" for name in shown[key]}
    return yaml.safe_dump(shown, sort_keys=False, allow_unicode=True)


ClusterApi = _Api
"""The deadline-bound, GET-only reader of a cluster's API that `read_cluster` uses, for other read-only
checks (the health check). Close its `api_client` when done."""


def open_api(*, kubeconfig: bytes, cluster: str, timeout: float) -> ClusterApi:
    """A reader of the cluster whose admin kubeconfig this is, with `timeout` seconds from now."""
    return _Api(
        api_client=_api_client(kubeconfig, cluster),
        cluster=cluster,
        deadline=time.monotonic() + timeout,
        timeout=timeout,
    )


def _api_client(kubeconfig: bytes, cluster: str) -> client.ApiClient:
    from kubernetes import client, config  # heavy: only a read that reaches a cluster pays for it

    try:
        document = yaml.safe_load(kubeconfig)
        if not isinstance(document, dict):
            raise ValueError("not a kubeconfig document")
        configuration = client.Configuration()
        config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
            config_dict=document, client_configuration=configuration, persist_config=False
        )
    except (config.ConfigException, yaml.YAMLError, ValueError, KeyError) as exc:
        raise KubeReadError(f"the kubeconfig of {cluster} cannot be used ({type(exc).__name__})") from None
    # one try per request: a retry would spend the chat's deadline on an API server that is down
    configuration.retries = False
    return client.ApiClient(configuration)


def _too_slow(cluster: str, timeout: float) -> KubeReadError:
    return KubeReadError(
        f"the API server of {cluster} did not answer within {timeout:.0f}s; "
        "it may be down or overloaded. Try again, or narrow the read (-n, -l, a name)"
    )


def _refused(cluster: str, status: int, body: bytes) -> KubeReadError:
    try:
        document = json.loads(body)
        message = str(document.get("message") or "") if isinstance(document, dict) else ""
    except ValueError:
        message = ""
    message = message[: defaults.KUBECTL_LINE_CHARS_MAX] or "no reason given"
    return KubeReadError(
        f"the API server of {cluster} answered ({status}): {message}", status=status, body=body[:65536]
    )
