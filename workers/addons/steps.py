"""The steps of addon jobs: render (chart from the repository, kobot's values, images to the mirror),
apply (server-side), prune what left the render, check health, and uninstall exactly what was applied.

The render is kept in the job's private work dir (0600: it holds Secrets such as kobot's webhook
token), so a retry that resumes at `apply` applies the same objects.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kobot.clusters import ClusterStore
from kobot.defaults import CANCEL_POLL_SECONDS
from kobot.errors import KobotError, StepFailedError
from kobot.job_records import JobEventType
from workers.addons.app_store import app_entry
from workers.addons.apply import ServerSideApplier, locate
from workers.addons.catalog import AddonEntry, AddonInputs, entry_named
from workers.addons.chart_repository import fetch_chart
from workers.addons.defaults import HEALTH_POLL_SECONDS, HEALTH_WAIT_SECONDS, RELEASE_LABEL
from workers.addons.helm_render import RenderedChart, render_chart
from workers.addons.manifests import (
    Manifest,
    ObjectRef,
    check_mirrored,
    image_fields,
    objects_of,
    rewrite_images,
)
from workers.addons.releases import ReleaseRecord, ReleaseStore, values_hash
from workers.cluster_secrets import KUBECONFIG_SECRET, cluster_secrets_for, sealed_job_file
from workers.context import StepContext

if TYPE_CHECKING:  # the client is loaded where a job builds one, not when `kobot serve` starts
    from kubernetes import client

RENDER_FILE = "addon-render.json"
OWN_MANIFESTS = Path(__file__).with_name("own_manifests")
"""kobot's manifests for addons with no maintained chart (Weave Scope)."""
PROGRESS_EVERY = 25
"""Objects applied or deleted between two progress lines."""


def entry_of(ctx: StepContext) -> AddonEntry:
    return entry_for(ctx.params)


def entry_for(params: dict[str, Any]) -> AddonEntry:
    """The catalog's entry, or an app's (the chart and version the plan named)."""
    if params.get("app"):
        return app_entry(chart=str(params["app"]), version=str(params.get("version") or ""))
    return entry_named(str(params["addon"]))


def image_registry(ctx: StepContext) -> str:
    """The cluster's own offline registry, else the site's; addons never pull from the internet."""
    record = ClusterStore(ctx.redis).get(ctx.cluster)
    offline = record.spec.offline_repo if record is not None else None
    registry = offline.image_registry if offline is not None else ctx.settings.addons.image_registry
    if not registry:
        raise StepFailedError(
            f"{ctx.cluster} names no image registry mirror, and addons.image_registry is unset: "
            "kobot rewrites every addon image to a mirror and will not pull from the internet"
        )
    return registry


def inputs_for(ctx: StepContext, entry: AddonEntry, user_values: dict[str, str]) -> AddonInputs:
    token = ctx.settings.alerts.webhook_bearer_token
    return AddonInputs(
        cluster=ctx.cluster,
        user_values=entry.checked_values(user_values),
        webhook_url=ctx.settings.addons.kobot_webhook_url,
        webhook_token=token.get_secret_value() if token is not None else None,
        secrets=addon_secrets(ctx, entry),
    )


def addon_secrets(ctx: StepContext, entry: AddonEntry) -> dict[str, str]:
    """The addon's credentials from kobot's encrypted cluster secrets: a generated one is made there
    once (an upgrade renders the same Grafana password); a site one is copied there from
    addons.credentials when the setting has it (a rotation), else the stored copy is used."""
    store = cluster_secrets_for(ctx)
    given = ctx.settings.addons.credentials
    found: dict[str, str] = {}
    for secret in entry.secrets:
        name = secret.store_name(entry.name)
        if secret.generated:
            found[secret.name] = store.get_or_create_password(cluster=ctx.cluster, name=name)
            continue
        if secret.name in given:
            store.put(cluster=ctx.cluster, name=name, value=given[secret.name].get_secret_value().encode())
        stored = store.get(cluster=ctx.cluster, name=name)
        if stored is None:
            raise StepFailedError(missing_credential(entry, secret.name))
        found[secret.name] = stored.decode()
    return found


def missing_credential(entry: AddonEntry, name: str) -> str:
    """What to do when a credential is neither set nor stored: said without any value."""
    return (
        f"{entry.name} needs the credential {name}: an admin sets it in addons.credentials "
        f"(KOBOT_ADDONS__CREDENTIALS, a JSON object with key {name!r}); kobot keeps it encrypted for the "
        "cluster and never takes credentials in chat"
    )


def render_addon(
    *, entry: AddonEntry, inputs: AddonInputs, repository: str, registry: str, charts_dir: Path, upgrade: bool
) -> tuple[list[Manifest], str, str]:
    """Fetch, render and mirror one addon: (objects, chart version, values hash). Tests call it directly."""
    values = entry.values(inputs)
    if entry.own_manifests:
        rendered = own_render(entry)
    else:
        archive = fetch_chart(repository=repository, name=entry.chart, version=entry.version, into=charts_dir)
        rendered = render_chart(
            archive=archive,
            values=values,
            release=entry.release,
            namespace=entry.namespace,
            is_upgrade=upgrade,
        )
    if entry.objects is not None:
        added = yaml.safe_dump_all(entry.objects(inputs))
        rendered = dataclasses.replace(
            rendered, manifests={**rendered.manifests, "kobot/objects.yaml": added}
        )
    manifests = objects_of(rendered, namespace=entry.namespace, release=entry.release, locate=locate)
    if entry.own_namespace:
        labels = {RELEASE_LABEL: entry.release}
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": entry.namespace, "labels": labels},
        }
        ref = ObjectRef(api_version="v1", kind="Namespace", plural="namespaces", name=entry.namespace)
        manifests.insert(
            0 if manifests[0].ref.kind != "CustomResourceDefinition" else _after_crds(manifests),
            Manifest(ref=ref, body=namespace),
        )
    # an app's images are whatever its render names; the catalog lists each addon's
    images = image_fields(manifests) if entry.app else entry.images
    rewrite_images(manifests, images=images, registry=registry)
    check_mirrored(manifests, registry=registry)
    return manifests, rendered.version, values_hash(values)


def own_render(entry: AddonEntry) -> RenderedChart:
    """kobot's own manifests of an addon with no maintained chart, as a render."""
    text = (OWN_MANIFESTS / entry.own_manifests).read_text()
    return RenderedChart(
        chart=entry.name, version=entry.version, manifests={entry.own_manifests: text}, crds=()
    )


def _after_crds(manifests: list[Manifest]) -> int:
    return next(
        (i for i, m in enumerate(manifests) if m.ref.kind != "CustomResourceDefinition"), len(manifests)
    )


def render_step(ctx: StepContext) -> None:
    entry = entry_of(ctx)
    repository = ctx.settings.addons.chart_repository
    if not repository:
        raise StepFailedError(
            "addons.chart_repository is unset: kobot has no chart repository to install from"
        )
    previous = ReleaseStore(ctx.redis).get(cluster=ctx.cluster, addon=entry.name)
    given = dict(ctx.params.get("values") or {})
    if not given and previous is not None:
        given = dict(previous.user_values)
    try:
        inputs = inputs_for(ctx, entry, given)
    except KobotError as exc:
        raise StepFailedError(exc.user_message) from None
    ctx.emit(JobEventType.LOG, message=f"rendering {entry.chart} {entry.version} from {repository}")
    manifests, version, digest = render_addon(
        entry=entry,
        inputs=inputs,
        repository=repository,
        registry=image_registry(ctx),
        charts_dir=ctx.work_dir / "charts",
        upgrade=previous is not None,
    )
    document = {
        "chart_version": version,
        "values_hash": digest,
        "user_values": inputs.user_values,
        "objects": [{"ref": m.ref.model_dump(), "body": m.body} for m in manifests],
    }
    sealed_job_file(ctx, RENDER_FILE).write(json.dumps(document).encode())
    ctx.emit(
        JobEventType.LOG,
        message=f"{len(manifests)} objects, {len(image_fields(manifests))} images (mirrored)",
    )


def apply_step(ctx: StepContext) -> None:
    entry = entry_of(ctx)
    document = _read_render(ctx)
    manifests = [Manifest(ref=ObjectRef(**o["ref"]), body=o["body"]) for o in document["objects"]]
    releases = ReleaseStore(ctx.redis)
    previous = releases.get(cluster=ctx.cluster, addon=entry.name)
    applied: list[ObjectRef] = []
    applier = ServerSideApplier(api_client_for(ctx))
    try:
        for index, manifest in enumerate(manifests, start=1):
            ctx.check_cancel()
            applier.apply(manifest)
            applied.append(manifest.ref)
            if index % PROGRESS_EVERY == 0 or index == len(manifests):
                ctx.emit(JobEventType.LOG, message=f"applied {index}/{len(manifests)} objects")
    finally:
        # Whatever got applied is owned now, also when the apply stopped half way: an uninstall
        # after a failed install must still find it.
        owned = list(previous.objects) if previous is not None else []
        owned += [ref for ref in applied if ref not in owned]
        record = ReleaseRecord(
            cluster=ctx.cluster,
            addon=entry.name,
            release=entry.release,
            namespace=entry.namespace,
            chart=entry.chart,
            chart_version=document["chart_version"] if applied else _old(previous, "chart_version"),
            values_hash=document["values_hash"] if applied else _old(previous, "values_hash"),
            user_values=document["user_values"],
            objects=owned,
            images=image_fields(manifests),
            job_id=ctx.job_id,
        )
        if previous is not None:
            record.installed_at = previous.installed_at
        releases.save(record)


def prune_step(ctx: StepContext) -> None:
    """Delete what the release owned and the new render no longer has."""
    entry = entry_of(ctx)
    document = _read_render(ctx)
    wanted = [ObjectRef(**o["ref"]) for o in document["objects"]]
    releases = ReleaseStore(ctx.redis)
    record = releases.get(cluster=ctx.cluster, addon=entry.name)
    if record is None:
        raise StepFailedError(f"kobot holds no release record of {entry.name} on {ctx.cluster}")
    stale = [ref for ref in record.objects if ref not in wanted]
    _delete(ctx, stale)
    record.objects = wanted
    releases.save(record)
    if stale:
        ctx.emit(JobEventType.LOG, message=f"pruned {len(stale)} objects the new render no longer has")


def uninstall_step(ctx: StepContext) -> None:
    entry = entry_of(ctx)
    releases = ReleaseStore(ctx.redis)
    record = releases.get(cluster=ctx.cluster, addon=entry.name)
    if record is None:
        ctx.emit(
            JobEventType.LOG, message=f"{entry.name} is not installed on {ctx.cluster}: nothing to remove"
        )
        return
    remaining = list(record.objects)
    try:
        _delete(ctx, remaining, removed=remaining)
    finally:
        releases.save(record.model_copy(update={"objects": remaining}))
    releases.delete(cluster=ctx.cluster, addon=entry.name)


def health_step(ctx: StepContext) -> None:
    """Wait, up to HEALTH_WAIT_SECONDS, until every workload that tells the addon is healthy is ready;
    fail naming those that are not, so the person knows where to look (a retry waits again)."""
    entry = entry_of(ctx)
    applier = ServerSideApplier(api_client_for(ctx))
    rendered = {
        f"{ref.kind}/{ref.name}": ref
        for ref in (ObjectRef(**o["ref"]) for o in _read_render(ctx)["objects"])
        if ref.kind in ("Deployment", "StatefulSet", "DaemonSet")
    }
    # a workload the values switched off (grafana.enabled=false) is not waited for
    named = [item.format(release=entry.release) for item in entry.healthy]
    workloads = rendered if entry.app else {label: rendered[label] for label in named if label in rendered}
    if off := [label for label in named if label not in rendered]:
        ctx.emit(JobEventType.LOG, message=f"not in this render, not waited for: {', '.join(off)}")
    deadline = time.monotonic() + HEALTH_WAIT_SECONDS
    said: list[str] = []
    while True:
        pending = [label for label, ref in workloads.items() if not workload_ready(applier.read(ref))]
        if not pending:
            ctx.emit(JobEventType.LOG, message="every workload is ready")
            return
        if time.monotonic() >= deadline:
            raise StepFailedError(
                f"not ready after {HEALTH_WAIT_SECONDS:.0f}s: {', '.join(pending)} "
                f"(namespace {entry.namespace}); `events -n {entry.namespace} on {ctx.cluster}` "
                f"says why, `retry job {ctx.job_id}` waits again"
            )
        if pending != said:
            ctx.emit(JobEventType.LOG, message=f"waiting for {', '.join(pending)}")
            said = pending
        _pause(min(HEALTH_POLL_SECONDS, max(deadline - time.monotonic(), 0.0)), ctx)


def _pause(seconds: float, ctx: StepContext) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ctx.check_cancel()
        time.sleep(min(CANCEL_POLL_SECONDS, left))


def workload_ready(workload: dict[str, Any] | None) -> bool:
    """A Deployment or StatefulSet with all replicas ready, a DaemonSet ready on every node it wants."""
    if workload is None:
        return False
    status = workload.get("status") or {}
    if workload.get("kind") == "DaemonSet":
        return int(status.get("numberReady") or 0) >= max(int(status.get("desiredNumberScheduled") or 1), 1)
    wanted = (workload.get("spec") or {}).get("replicas", 1)
    return int(status.get("readyReplicas") or 0) >= int(wanted)


def api_client_for(ctx: StepContext) -> client.ApiClient:
    from kubernetes import config  # heavy: only a job that talks to a cluster pays for it

    data = cluster_secrets_for(ctx).get(cluster=ctx.cluster, name=KUBECONFIG_SECRET)
    if data is None:
        raise StepFailedError(f"kobot holds no admin kubeconfig for {ctx.cluster}")
    try:
        api: client.ApiClient = config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
            config_dict=yaml.safe_load(data), persist_config=False
        )
    except (config.ConfigException, yaml.YAMLError, ValueError, KeyError) as exc:
        raise StepFailedError(
            f"the kubeconfig of {ctx.cluster} cannot be used", error=type(exc).__name__
        ) from None
    return api


def final_note(params: dict[str, Any]) -> str:
    """What the job's last message says: where to reach the addon and how to log in."""
    entry = entry_for(params)
    if entry.app:
        return f"{entry.chart} {entry.version} runs in namespace {entry.namespace} as release {entry.release}"
    parts = [
        f"{link.title}: `kubectl -n {entry.namespace} port-forward svc/{link.service} {link.port}` "
        for link in entry.links
    ]
    if entry.login:
        parts.append(entry.login)
    return "; ".join(p.strip() for p in parts)


def _delete(ctx: StepContext, refs: list[ObjectRef], *, removed: list[ObjectRef] | None = None) -> None:
    """Delete in reverse apply order, CRDs last, so custom resources go before their definitions."""
    applier = ServerSideApplier(api_client_for(ctx))
    ordered = sorted(reversed(refs), key=lambda r: r.kind == "CustomResourceDefinition")
    for index, ref in enumerate(ordered, start=1):
        ctx.check_cancel()
        applier.delete(ref)
        if removed is not None:
            removed.remove(ref)
        if index % PROGRESS_EVERY == 0 or index == len(ordered):
            ctx.emit(JobEventType.LOG, message=f"deleted {index}/{len(ordered)} objects")


def _old(previous: ReleaseRecord | None, name: str) -> str:
    return str(getattr(previous, name)) if previous is not None else ""


def _read_render(ctx: StepContext) -> dict[str, Any]:
    text = sealed_job_file(ctx, RENDER_FILE).read()
    if text is None:
        raise StepFailedError("the render of this job is gone; retry the job from its start")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def forget_render(ctx: StepContext) -> None:
    """A finished job's render goes: it holds the Secrets it applied, and nothing reads it again."""
    sealed_job_file(ctx, RENDER_FILE).remove()
