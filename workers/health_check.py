"""The health check (巡检): one look at a cluster through its API, its etcd and its certificates.

It reads nodes (conditions, pressure, cordons), pods that are not running or keep restarting (control-plane
pods count as control plane), the API server's `/readyz`, etcd endpoint health through kobot's etcd
access when the cluster has one, pending or lost PVCs, certificate expiry (see `workers.health_certs`) and
the version skew between kubelets and the API server. Each problem is a `Finding` with a level; what
was checked and found well counts as ok. It only reads (GETs, a TLS handshake, `etcdctl endpoint health`)
and is bound by one deadline: a part that did not answer in time is named, never waited for.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from kobot import defaults
from kobot.errors import KobotError
from workers.etcd import EtcdAccess, EtcdEndpointHealth, endpoint_health
from workers.health_certs import CertificateSeen, pem_certificates, serving_certificate
from workers.kube_read import ClusterApi, KubeReadError, open_api


class HealthLevel(str, Enum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"ok": 0, "warning": 1, "critical": 2}[self.value]


class HealthArea(str, Enum):
    NODES = "nodes"
    PODS = "pods"
    CONTROL_PLANE = "control plane"
    ETCD = "etcd"
    STORAGE = "storage"
    CERTIFICATES = "certificates"
    VERSIONS = "versions"


@dataclass(frozen=True)
class Finding:
    """One problem: `problem` is a short stable word (NotReady, CrashLoopBackOff, expires) so the same
    problem seen again is recognised; `detail` may change from one look to the next."""

    area: HealthArea
    subject: str
    problem: str
    level: HealthLevel
    detail: str = ""

    @property
    def key(self) -> str:
        return f"{self.area.value}|{self.subject}|{self.problem}"

    def line(self) -> str:
        mark = "✖" if self.level is HealthLevel.CRITICAL else "⚠"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{mark} {self.area.value} · {self.subject}: {self.problem}{detail}"


@dataclass(frozen=True)
class HealthReport:
    cluster: str
    checked_at: datetime
    findings: tuple[Finding, ...]
    ok: int
    """Things looked at that were well (a Ready node, a running pod, a healthy etcd member, …)."""
    skipped: tuple[str, ...] = ()
    """Parts that could not be looked at, each with why."""
    unseen: frozenset[HealthArea] = frozenset()
    """Areas this look could not see: what was known of them before still stands."""
    certificates: tuple[CertificateSeen, ...] = ()
    seconds: float = 0.0

    def count(self, level: HealthLevel) -> int:
        return sum(1 for finding in self.findings if finding.level is level)

    @property
    def level(self) -> HealthLevel:
        return max((f.level for f in self.findings), key=lambda level: level.rank, default=HealthLevel.OK)


@dataclass
class _Tally:
    findings: list[Finding] = field(default_factory=list)
    ok: int = 0
    skipped: list[str] = field(default_factory=list)
    unseen: set[HealthArea] = field(default_factory=set)

    def add(self, area: HealthArea, subject: str, problem: str, level: HealthLevel, detail: str = "") -> None:
        self.findings.append(
            Finding(area, subject, problem, level, detail[: defaults.KUBECTL_LINE_CHARS_MAX])
        )


PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure")
BROKEN_WAITING = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
     "CreateContainerError", "RunContainerError", "InvalidImageName"}
)  # fmt: skip
"""Container waiting reasons that do not pass by themselves."""
CONTROL_PLANE_COMPONENTS = frozenset({"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"})
_VERSION = re.compile(r"v?(\d+)\.(\d+)")


@dataclass(frozen=True)
class ListBounds:
    """How a health check lists nodes, pods and PVCs: pages of `page` objects, at most `most` of a kind."""

    page: int = defaults.HEALTH_LIST_PAGE_SIZE
    most: int = defaults.HEALTH_LIST_OBJECTS_MAX


def check_cluster(
    *,
    kubeconfig: bytes,
    cluster: str,
    etcd_access: EtcdAccess | None,
    now: datetime,
    timeout: float = defaults.HEALTH_CHECK_DEADLINE_SECONDS,
    bounds: ListBounds = ListBounds(),
) -> HealthReport:
    """Look at the cluster whose admin kubeconfig this is, within `timeout` seconds."""
    started = time.monotonic()
    tally = _Tally()
    api = open_api(kubeconfig=kubeconfig, cluster=cluster, timeout=timeout)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"health-{cluster}")
    try:
        etcd_rows = pool.submit(endpoint_health, access=etcd_access) if etcd_access is not None else None
        certificates = pool.submit(_certificates, api, etcd_access)
        _api_parts(api, tally, bounds)
        left = max(0.0, started + timeout - time.monotonic())
        _etcd_part(etcd_rows, tally, min(left, defaults.HEALTH_CHECK_ETCD_SECONDS))
        seen = _certificate_part(certificates, tally, max(0.0, started + timeout - time.monotonic()), now)
    finally:
        # a stalled etcdctl or handshake is left to its own bound rather than holding the reply
        pool.shutdown(wait=False, cancel_futures=True)
        api.api_client.close()  # type: ignore[no-untyped-call]
    return HealthReport(
        cluster=cluster,
        checked_at=now,
        findings=tuple(sorted(tally.findings, key=lambda f: (-f.level.rank, f.area.value, f.subject))),
        ok=tally.ok,
        skipped=tuple(tally.skipped),
        unseen=frozenset(tally.unseen),
        certificates=tuple(seen),
        seconds=time.monotonic() - started,
    )


def look_at_certificates(
    *, kubeconfig: bytes, cluster: str, etcd_access: EtcdAccess | None
) -> list[CertificateSeen]:
    """Only the certificates (for expiry notices between scheduled checks): no API request is made."""
    api = open_api(kubeconfig=kubeconfig, cluster=cluster, timeout=defaults.HEALTH_TLS_TIMEOUT_SECONDS)
    try:
        return _certificates(api, etcd_access)[0]
    finally:
        api.api_client.close()  # type: ignore[no-untyped-call]


# --- the API's part ------------------------------------------------------------------------------------
def _listed(
    api: ClusterApi, path: str, what: str, areas: set[HealthArea], tally: _Tally, bounds: ListBounds
) -> Iterator[dict[str, Any]]:
    """The objects at list `path`, page by page (`limit`/`continue`, as kubectl does), at most
    `bounds.most`: a bigger list is cut, the card says where, and its areas count as unseen (what was
    known of them before still stands, rather than the part not read being taken for healed)."""
    resume = ""  # the API server's `continue` value of the next page
    listed = 0
    while True:
        query: dict[str, str | int] = {"limit": min(bounds.page, bounds.most - listed)}
        if resume:
            query["continue"] = resume
        document = api.get_json(path, query)
        items = list(document.get("items") or [])[: bounds.most - listed]
        listed += len(items)
        yield from items
        resume = str((document.get("metadata") or {}).get("continue") or "")
        if not resume:
            return
        if listed >= bounds.most:
            tally.skipped.append(f"{what}: cut at {bounds.most}")
            tally.unseen |= areas
            return


def _api_parts(api: ClusterApi, tally: _Tally, bounds: ListBounds) -> None:
    try:
        version = str(api.get_json("/version").get("gitVersion") or "")
    except KubeReadError as exc:
        tally.add(
            HealthArea.CONTROL_PLANE, "API server", "unreachable", HealthLevel.CRITICAL, exc.user_message
        )
        tally.skipped.append("nodes, pods, PVCs and versions: the API server did not answer")
        tally.unseen |= {HealthArea.NODES, HealthArea.PODS, HealthArea.STORAGE, HealthArea.VERSIONS}
        tally.unseen.add(HealthArea.CONTROL_PLANE)
        return
    _readiness(api, tally)
    kubelets: dict[str, str] = {}
    parts: tuple[tuple[str, str, Callable[[Iterator[dict[str, Any]]], None], set[HealthArea]], ...] = (
        (
            "nodes",
            "/api/v1/nodes",
            lambda found: _nodes(found, tally, kubelets),
            {HealthArea.NODES, HealthArea.VERSIONS},
        ),
        (
            "pods",
            "/api/v1/pods",
            lambda found: _pods(found, tally),
            {HealthArea.PODS, HealthArea.CONTROL_PLANE},
        ),
        (
            "PVCs",
            "/api/v1/persistentvolumeclaims",
            lambda found: _volume_claims(found, tally),
            {HealthArea.STORAGE},
        ),
    )
    for what, path, part, areas in parts:
        try:
            part(_listed(api, path, what, areas, tally, bounds))
        except KubeReadError as exc:
            tally.skipped.append(f"{what}: {exc.user_message}")
            tally.unseen |= areas
    _versions(version, kubelets, tally)


def _readiness(api: ClusterApi, tally: _Tally) -> None:
    try:
        api.get_bytes("/readyz", {"verbose": "true"}, accept="text/plain")
    except KubeReadError as exc:
        if exc.status == 404:
            tally.skipped.append("API server readiness: /readyz is not served")
            return
        if exc.status is None:
            tally.skipped.append(f"API server readiness: {exc.user_message}")
            return
        failed = [
            line[3:].split(" ", 1)[0]
            for line in exc.body.decode("utf-8", errors="replace").splitlines()
            if line.startswith("[-]")
        ]
        detail = "failed: " + ", ".join(failed) if failed else f"HTTP {exc.status}"
        tally.add(HealthArea.CONTROL_PLANE, "API server", "not ready", HealthLevel.CRITICAL, detail)
        return
    tally.ok += 1


def _nodes(found: Iterator[dict[str, Any]], tally: _Tally, kubelets: dict[str, str]) -> None:
    for node in found:
        name = str(_get(node, "metadata", "name") or "?")
        kubelets[name] = str(_get(node, "status", "nodeInfo", "kubeletVersion") or "")
        conditions = {str(c.get("type")): c for c in _get(node, "status", "conditions") or []}
        before = len(tally.findings)
        ready = conditions.get("Ready") or {}
        if ready.get("status") != "True":
            reason = str(ready.get("reason") or "no Ready condition")
            tally.add(HealthArea.NODES, name, "NotReady", HealthLevel.CRITICAL, reason)
        for pressure in PRESSURE_CONDITIONS:
            if (conditions.get(pressure) or {}).get("status") == "True":
                message = str(conditions[pressure].get("message") or "")
                tally.add(HealthArea.NODES, name, pressure, HealthLevel.WARNING, message)
        if (conditions.get("NetworkUnavailable") or {}).get("status") == "True":
            tally.add(HealthArea.NODES, name, "NetworkUnavailable", HealthLevel.CRITICAL)
        if _get(node, "spec", "unschedulable"):
            tally.add(HealthArea.NODES, name, "cordoned", HealthLevel.WARNING, "takes no new pods")
        tally.ok += len(tally.findings) == before


def _pods(found: Iterator[dict[str, Any]], tally: _Tally) -> None:
    for pod in found:
        phase = str(_get(pod, "status", "phase") or "Unknown")
        if phase == "Succeeded" or _get(pod, "metadata", "deletionTimestamp"):
            continue
        namespace = str(_get(pod, "metadata", "namespace") or "")
        subject = f"{namespace}/{_get(pod, 'metadata', 'name')}"
        labels = _get(pod, "metadata", "labels") or {}
        control_plane = namespace == "kube-system" and (
            labels.get("tier") == "control-plane" or labels.get("component") in CONTROL_PLANE_COMPONENTS
        )
        area = HealthArea.CONTROL_PLANE if control_plane else HealthArea.PODS
        statuses = _get(pod, "status", "containerStatuses") or []
        broken = sorted({
            str(_get(s, "state", "waiting", "reason"))
            for s in statuses
            if _get(s, "state", "waiting", "reason") in BROKEN_WAITING
        })  # fmt: skip
        restarts = max((int(s.get("restartCount") or 0) for s in statuses), default=0)
        if broken:
            detail = f"restarted {restarts} times" if restarts else ""
            tally.add(area, subject, ", ".join(broken), HealthLevel.CRITICAL, detail)
        elif phase != "Running":
            level = HealthLevel.CRITICAL if control_plane or phase == "Unknown" else HealthLevel.WARNING
            reason = str(_get(pod, "status", "reason") or "")
            tally.add(area, subject, phase, level, reason)
        elif restarts >= defaults.HEALTH_POD_RESTARTS_WARNING:
            tally.add(area, subject, "restarting", HealthLevel.WARNING, f"restarted {restarts} times")
        else:
            tally.ok += 1


def _volume_claims(found: Iterator[dict[str, Any]], tally: _Tally) -> None:
    for claim in found:
        subject = f"{_get(claim, 'metadata', 'namespace')}/{_get(claim, 'metadata', 'name')}"
        phase = str(_get(claim, "status", "phase") or "Pending")
        storage_class = _get(claim, "spec", "storageClassName")
        if phase == "Pending":
            detail = f"no volume yet (storage class {storage_class or 'default'})"
            tally.add(HealthArea.STORAGE, subject, "Pending", HealthLevel.WARNING, detail)
        elif phase == "Lost":
            tally.add(HealthArea.STORAGE, subject, "Lost", HealthLevel.CRITICAL, "its volume is gone")
        else:
            tally.ok += 1


def _versions(server: str, kubelets: dict[str, str], tally: _Tally) -> None:
    server_minor = _minor(server)
    if server_minor is None or not kubelets:
        return
    by_version: dict[str, list[str]] = {}
    for node, version in sorted(kubelets.items()):
        by_version.setdefault(version, []).append(node)
    skewed = False
    for version, nodes in sorted(by_version.items()):
        minor = _minor(version)
        if version == server or minor is None:
            continue
        skewed = True
        named = ", ".join(nodes[:5]) + (f" and {len(nodes) - 5} more" if len(nodes) > 5 else "")
        detail = f"{named} run kubelet {version}; the API server runs {server}"
        if minor > server_minor:
            tally.add(HealthArea.VERSIONS, version, "newer than API server", HealthLevel.CRITICAL, detail)
        elif server_minor - minor > defaults.HEALTH_KUBELET_SKEW_MINORS_MAX:
            tally.add(HealthArea.VERSIONS, version, "unsupported skew", HealthLevel.CRITICAL, detail)
        else:
            tally.add(HealthArea.VERSIONS, version, "skew", HealthLevel.WARNING, detail)
    tally.ok += not skewed


def _minor(version: str) -> int | None:
    found = _VERSION.match(version)
    return int(found.group(2)) if found and found.group(1) == "1" else None


# --- etcd and certificates -----------------------------------------------------------------------------
def _etcd_part(rows: Future[list[EtcdEndpointHealth]] | None, tally: _Tally, timeout: float) -> None:
    if rows is None:
        tally.skipped.append("etcd: kobot holds no etcd access for this cluster")
        return
    try:
        found = rows.result(timeout=timeout)
    except FutureTimeout:
        tally.skipped.append(f"etcd: no answer within {timeout:.0f}s")
        tally.unseen.add(HealthArea.ETCD)
        return
    except KobotError as exc:
        tally.skipped.append(f"etcd: {exc.user_message}")
        tally.unseen.add(HealthArea.ETCD)
        return
    for row in found:
        if row.healthy:
            tally.ok += 1
        else:
            tally.add(HealthArea.ETCD, row.endpoint, "unhealthy", HealthLevel.CRITICAL, row.error)


def _certificates(api: ClusterApi, etcd_access: EtcdAccess | None) -> tuple[list[CertificateSeen], list[str]]:
    """Every certificate reachable without a login on a master, and what could not be read."""
    configuration = api.api_client.configuration
    seen: list[CertificateSeen] = []
    missed: list[str] = []
    endpoints = [(str(configuration.host), "API server serving certificate")] + [
        (url, "etcd serving certificate") for url in (etcd_access.endpoints if etcd_access else ())
    ]
    etcd_client = (
        (etcd_access.cert, etcd_access.key) if etcd_access and etcd_access.cert and etcd_access.key else None
    )
    for url, name in endpoints:
        try:
            client_certificate = etcd_client if name.startswith("etcd") else None
            found = serving_certificate(url, name=name, client_certificate=client_certificate)
        except OSError as exc:
            missed.append(f"{name} at {url}: {type(exc).__name__}")
            continue
        if found is not None:
            seen.append(found)
    seen += pem_certificates(configuration.cert_file, name="admin client certificate (kubeconfig)")
    seen += pem_certificates(configuration.ssl_ca_cert, name="cluster CA (kubeconfig)")
    return seen, missed


def _certificate_part(
    looked: Future[tuple[list[CertificateSeen], list[str]]], tally: _Tally, timeout: float, now: datetime
) -> list[CertificateSeen]:
    try:
        seen, missed = looked.result(timeout=timeout)
    except FutureTimeout:
        tally.skipped.append("certificates: no answer in time")
        tally.unseen.add(HealthArea.CERTIFICATES)
        return []
    tally.skipped += [f"certificate: {what}" for what in missed]
    for cert in seen:
        days = cert.days_left(now)
        when = f"{cert.not_after:%Y-%m-%d %H:%M} UTC"
        if days <= 0:
            tally.add(HealthArea.CERTIFICATES, cert.name, "expired", HealthLevel.CRITICAL, f"on {when}")
        elif days <= defaults.HEALTH_CERT_CRITICAL_DAYS:
            tally.add(
                HealthArea.CERTIFICATES, cert.name, "expires", HealthLevel.CRITICAL, _in_days(days, when)
            )
        elif days <= defaults.HEALTH_CERT_WARNING_DAYS:
            tally.add(
                HealthArea.CERTIFICATES, cert.name, "expires", HealthLevel.WARNING, _in_days(days, when)
            )
        else:
            tally.ok += 1
    return seen


def _in_days(days: float, when: str) -> str:
    return f"in {round(days)} days, on {when}" if days >= 1 else f"within a day, on {when}"


def _get(document: Any, *path: str) -> Any:
    for step in path:
        if not isinstance(document, dict):
            return None
        document = document.get(step)
    return document
