"""Import a cluster kobot did not build: its admin kubeconfig stored encrypted like a created cluster's,
its API probed within a bound, and its nodes, version and network read into a record marked imported.

The kubeconfig must carry everything inline (certificate and key data, or a token): it is kept in the
store, not beside files it points to, and one that runs a program to get credentials (`exec`,
`auth-provider`) is refused, since kobot would run that program on its own machine for every read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import yaml
from redis import Redis
from redis.exceptions import WatchError

from kobot import automation_values, defaults, keys, validation
from kobot.clock import utcnow
from kobot.cluster_spec import ClusterShape, NodeRole
from kobot.clusters import ClusterRecord, ClusterState, ClusterStore, ImportedCluster, NodeRecord, NodeState
from kobot.errors import CommandError, ConflictError, KobotError
from kobot.settings import Settings
from workers.cluster_import_ssh import SshAccess, check_access, prove_ssh, store_access
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets
from workers.kube_read import KubeReadError, open_api

IMPORTED_PROVIDER = "imported"
"""`provider` of an imported cluster's record: no Terraform stands behind it, and SSH only once access
was given (workers.cluster_import_ssh)."""

NETWORK_PLUGINS = {
    "calico-node": "calico",
    "kube-flannel-ds": "flannel",
    "kube-flannel": "flannel",
    "cilium": "cilium",
    "weave-net": "weave",
    "kube-router": "kube-router",
    "antrea-agent": "antrea",
    "canal": "canal",
}
"""DaemonSet names that say which pod network plugin a cluster runs."""

CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")

_FILE_KEYS = ("certificate-authority", "client-certificate", "client-key", "tokenFile")
_PROGRAM_KEYS = ("exec", "auth-provider")


def check_kubeconfig(data: bytes, *, allow_local: bool = False) -> str:
    """The API server address of a self-contained kubeconfig; any other kubeconfig is a clear error.
    The address must be https (the kubeconfig's token would cross the network in clear otherwise) and
    its host one kobot may reach, as node addresses are checked; `allow_local` (tests) lets loopback
    and plain http through."""
    if len(data) > defaults.IMPORT_KUBECONFIG_MAX_BYTES:
        raise CommandError(
            f"the kubeconfig is {len(data)} bytes; "
            f"at most {defaults.IMPORT_KUBECONFIG_MAX_BYTES} are accepted"
        )
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError:
        raise CommandError("the kubeconfig is not YAML") from None
    if not isinstance(document, dict) or document.get("kind", "Config") != "Config":
        raise CommandError("the kubeconfig is not a kubeconfig (kind: Config)")
    current = document.get("current-context")
    context = _named(document.get("contexts"), current, what="context")
    cluster = _named(document.get("clusters"), context.get("cluster"), what="cluster")
    user = _named(document.get("users"), context.get("user"), what="user")
    for key in _PROGRAM_KEYS:
        if key in user:
            raise CommandError(
                f"the kubeconfig's user gets credentials by running a program (`{key}`); kobot does not run "
                "programs from a kubeconfig: give a token or client certificate data instead"
            )
    for section, values in (("cluster", cluster), ("user", user)):
        for key in _FILE_KEYS:
            if key in values:
                raise CommandError(
                    f"the kubeconfig's {section} points to a file (`{key}`); kobot keeps the kubeconfig "
                    f"alone, so inline it (`{key}-data`, e.g. `kubectl config view --raw --flatten`)"
                )
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise CommandError("the kubeconfig's cluster has no `server` URL (https://HOST:PORT)")
    if not server.startswith("https://") and not allow_local:
        raise CommandError(
            "the kubeconfig's server is plain http: its credentials would cross the network in clear; "
            "give the API server's https:// address"
        )
    try:
        host = automation_values.host_address(urlsplit(server).hostname or "", allow_local=allow_local)
        automation_values.check_resolved(host, allow_local=allow_local)
    except (automation_values.UnsafeValueError, ValueError) as exc:
        raise CommandError(f"kobot will not connect to the kubeconfig's server: {exc}") from None
    return server


def _named(entries: Any, name: Any, *, what: str) -> dict[str, Any]:
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == name and isinstance(entry.get(what), dict):
            found: dict[str, Any] = entry[what]
            return found
    raise CommandError(f"the kubeconfig has no {what} named by its current context ({name!r})")


def probe(
    *,
    name: str,
    kubeconfig: bytes,
    timeout: float = defaults.IMPORT_PROBE_TIMEOUT_SECONDS,
    allow_local: bool = False,
) -> ClusterRecord:
    """Read version, nodes and network from the API within `timeout` seconds; raise KobotError (safe to
    show) when the API cannot be reached or refuses. What the server answered with an error is not
    repeated: it names a status only, since the address may not be a Kubernetes API at all."""
    server = check_kubeconfig(kubeconfig, allow_local=allow_local)
    api = open_api(kubeconfig=kubeconfig, cluster=name, timeout=timeout)
    try:
        try:
            version = str(api.get_json("/version").get("gitVersion") or "").lstrip("v")
            nodes = api.get_json("/api/v1/nodes").get("items") or []
        except KubeReadError as exc:
            if exc.status is None:
                raise
            raise KobotError(
                f"the API server of {name} answered with status {exc.status}; check that the kubeconfig "
                "names the cluster's API server and carries admin credentials"
            ) from None
        try:
            daemon_sets = api.get_json("/apis/apps/v1/daemonsets").get("items") or []
        except KobotError:
            daemon_sets = []  # the network plugin stays unknown; everything else was read
    finally:
        api.api_client.close()  # type: ignore[no-untyped-call]
    records = [_node(item) for item in nodes]
    records.sort(key=lambda n: (n.role is not NodeRole.MASTER, n.name))
    masters = sum(1 for n in records if n.role is NodeRole.MASTER)
    return ClusterRecord(
        name=name,
        provider=IMPORTED_PROVIDER,
        version=version or None,
        state=ClusterState.RUNNING,
        spec=ClusterShape(masters=masters, workers=len(records) - masters, version=version or "unknown"),
        nodes=records,
        imported=ImportedCluster(
            by="",
            server=server,
            network_plugin=_plugin(daemon_sets),
            pod_cidrs=sorted({str(c) for item in nodes if (c := (item.get("spec") or {}).get("podCIDR"))}),
        ),
    )


def import_cluster(
    *,
    name: str,
    kubeconfig: bytes,
    by: str,
    redis: Redis,
    secret: bytes,
    timeout: float = defaults.IMPORT_PROBE_TIMEOUT_SECONDS,
    ssh: SshAccess | None = None,
    settings: Settings | None = None,
) -> ClusterRecord:
    """Probe, then store the kubeconfig encrypted and the record; a name already taken is refused first.
    With `ssh` (and the `settings` that say where host keys are pinned), SSH is proven on every node the
    API lists before anything is stored, and the key is kept with the kubeconfig."""
    if ssh is not None:
        if settings is None:
            raise ValueError("importing with SSH access needs the settings")
        ssh = check_access(ssh)
    try:
        name = validation.cluster_name(name)
    except validation.ArgValueError as exc:
        raise CommandError(str(exc)) from None
    clusters = ClusterStore(redis)
    if clusters.get(name) is not None:
        raise ConflictError(f"there is already a cluster {name}; import under another name")
    allow_local = settings.allow_local_hosts if settings is not None else False
    record = probe(name=name, kubeconfig=kubeconfig, timeout=timeout, allow_local=allow_local)
    assert record.imported is not None
    record.imported = record.imported.model_copy(update={"by": by})
    if ssh is not None and settings is not None:
        prove_ssh(nodes=record.nodes, access=ssh, settings=settings)
    return _record_new(redis=redis, secret=secret, record=record, kubeconfig=kubeconfig, ssh=ssh)


def _record_new(
    *, redis: Redis, secret: bytes, record: ClusterRecord, kubeconfig: bytes, ssh: SshAccess | None
) -> ClusterRecord:
    """Write the record and its secrets in one transaction that holds only while no record of that name
    appeared during the probe and the SSH proof (a concurrent import or create): the later one is refused
    instead of overwriting the first one's record, kubeconfig or key."""
    key = keys.cluster_record(record.name)
    taken = ConflictError(f"{record.name} was created or imported meanwhile; import under another name")
    with redis.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(key)  # type: ignore[no-untyped-call]
            if pipe.exists(key):
                raise taken
            pipe.multi()
            if ssh is not None:
                record = store_access(redis=pipe, secret=secret, record=record, access=ssh)
            ClusterSecrets(redis=pipe, secret=secret).put(
                cluster=record.name, name=KUBECONFIG_SECRET, value=kubeconfig
            )
            record.updated_at = utcnow()
            pipe.set(key, record.model_dump_json())
            pipe.sadd(keys.CLUSTERS_INDEX, record.name)
            pipe.execute()
        except WatchError:
            raise taken from None
    return record


def _node(item: dict[str, Any]) -> NodeRecord:
    metadata = item.get("metadata") or {}
    labels = metadata.get("labels") or {}
    role = NodeRole.MASTER if any(label in labels for label in CONTROL_PLANE_LABELS) else NodeRole.WORKER
    addresses = {a.get("type"): a.get("address") for a in (item.get("status") or {}).get("addresses") or []}
    address = addresses.get("InternalIP") or addresses.get("ExternalIP") or addresses.get("Hostname") or ""
    return NodeRecord(name=str(metadata.get("name")), role=role, address=str(address), state=NodeState.READY)


def _plugin(daemon_sets: Iterable[dict[str, Any]]) -> str | None:
    for item in daemon_sets:
        plugin = NETWORK_PLUGINS.get(str((item.get("metadata") or {}).get("name")))
        if plugin is not None:
            return plugin
    return None


def summary_lines(record: ClusterRecord) -> list[str]:
    """What the import read, as the CLI and the audit trail say it."""
    info = record.imported
    lines = [
        f"{record.name}: kubernetes {record.version or '?'}, {record.count('master')} control-plane and "
        f"{record.count('worker')} worker nodes",
    ]
    if info is not None:
        network = info.network_plugin or "network plugin not recognised"
        cidrs = ", ".join(info.pod_cidrs) or "no pod ranges on the nodes"
        lines.append(f"API {info.server} · {network} · pods {cidrs}")
        if info.ssh_user is not None:
            lines.append(f"SSH as {info.ssh_user} proven on all {len(record.nodes)} nodes")
    return lines
