"""Handlers of the addon commands: the catalog and releases are read at once; install, upgrade and
uninstall answer with a job whose plan names the chart, the values set and what will change."""

from __future__ import annotations

import asyncio
from typing import Any

from commands.context import CommandContext, CommandResult, SubmitJob, reply
from commands.definitions.addons import (
    AddonInstallArgs,
    AddonListArgs,
    AddonShowArgs,
    AddonUninstallArgs,
    AddonUpgradeArgs,
    AppInstallArgs,
    AppListArgs,
    AppShowArgs,
    AppUninstallArgs,
)
from commands.handlers.submit import plan_hash, require_changeable, require_operation
from commands.registry import handles
from kobot.errors import KobotError
from kobot.messages import Field, Tone
from kobot.store import secret_key
from workers.addons import ADDON_INSTALL, ADDON_UNINSTALL, ADDON_UPGRADE
from workers.addons.app_store import app_entry, app_named, apps_of, release_of, settings_of, version_of
from workers.addons.catalog import CATALOG, AddonEntry, entry_named
from workers.addons.chart_repository import fetch_index
from workers.addons.releases import ReleaseRecord, ReleaseStore
from workers.addons.steps import missing_credential
from workers.cluster_secrets import ClusterSecrets


@handles(AddonListArgs)
async def list_addons(ctx: CommandContext, args: AddonListArgs) -> CommandResult:
    cluster = ctx.parsed.cluster
    installed: dict[str, ReleaseRecord] = {}
    if cluster is not None:
        ctx.runtime.clusters.require(cluster)
        installed = {r.addon: r for r in ReleaseStore(ctx.runtime.redis).installed(cluster=cluster)}
    fields = []
    for entry in CATALOG.values():
        record = installed.get(entry.name)
        state = f"installed {record.chart_version}" if record else ("not installed" if cluster else "")
        line = f"{entry.source} · {len(entry.images)} images to mirror"
        fields.append(Field(label=entry.name, value=" · ".join(p for p in (line, state) if p)))
    for name, record in sorted(installed.items()):
        if name not in CATALOG:  # an app of the store
            where = f"namespace {record.namespace} · {len(record.objects)} objects"
            fields.append(Field(label=name, value=f"{record.chart} {record.chart_version} · {where}"))
    title = f"Addons on {cluster}" if cluster else "Addon catalog"
    return reply(title, body="`show addon NAME` lists its images and settings.", fields=tuple(fields))


@handles(AddonShowArgs)
async def show_addon(ctx: CommandContext, args: AddonShowArgs) -> CommandResult:
    entry = entry_named(args.addon)
    fields = [
        Field(
            label="Made from",
            value=entry.source if entry.own_manifests else f"{entry.source} (from addons.chart_repository)",
        ),
        Field(label="Namespace", value=entry.namespace),
        Field(label="Images to mirror", value="\n".join(entry.images)),
    ]
    if entry.settable:
        settings = "\n".join(f"{v.name}={v.example}: {v.description}" for v in entry.settable)
        fields.append(Field(label="Settable", value=settings))
    if entry.secrets:
        needs = "\n".join(
            f"{s.name}: {s.description}" + (" (made by kobot)" if s.generated else " (addons.credentials)")
            for s in entry.secrets
        )
        fields.append(Field(label="Credentials (kept encrypted)", value=needs))
    if entry.links:
        fields.append(
            Field(
                label="Links", value=", ".join(f"{link.title} (svc/{link.service})" for link in entry.links)
            )
        )
    cluster = ctx.parsed.cluster
    if cluster is not None:
        record = ReleaseStore(ctx.runtime.redis).get(cluster=cluster, addon=entry.name)
        where = f"{record.chart_version}, {len(record.objects)} objects" if record else "not installed"
        fields.append(Field(label=f"On {cluster}", value=where))
    return reply(f"Addon {entry.name}", body=entry.summary, fields=tuple(fields))


@handles(AddonInstallArgs)
async def install_addon(ctx: CommandContext, args: AddonInstallArgs) -> CommandResult:
    entry = entry_named(args.addon)
    values = entry.checked_values(args.given())
    _require_repository(ctx)
    if _release(ctx, entry) is not None:
        raise KobotError(
            f"{entry.name} is already on {ctx.cluster()}: `upgrade addon {entry.name} on {ctx.cluster()}`"
        )
    _require_credentials(ctx, entry)
    if entry.refuses is not None and (reason := entry.refuses(ctx.runtime.clusters.require(ctx.cluster()))):
        raise KobotError(reason)
    lines = [f"install {entry.source} into namespace {entry.namespace}"]
    lines += [f"{name}={value}" for name, value in sorted(values.items())]
    if entry.secrets:
        names = ", ".join(s.name for s in entry.secrets)
        lines.append(f"credentials {names}: from kobot's encrypted store, applied as Secrets")
    return _job(ctx, ADDON_INSTALL, entry, values, lines)


@handles(AddonUpgradeArgs)
async def upgrade_addon(ctx: CommandContext, args: AddonUpgradeArgs) -> CommandResult:
    entry = entry_named(args.addon)
    _require_repository(ctx)
    record = _release(ctx, entry)
    if record is None:
        raise KobotError(
            f"{entry.name} is not installed on {ctx.cluster()}: `install {entry.name} on {ctx.cluster()}`"
        )
    values = entry.checked_values(args.given() or record.user_values)
    _require_credentials(ctx, entry)
    lines = [
        f"{entry.chart} {record.chart_version} → {entry.version}; objects no longer rendered are deleted"
    ]
    return _job(ctx, ADDON_UPGRADE, entry, values, lines)


@handles(AddonUninstallArgs)
async def uninstall_addon(ctx: CommandContext, args: AddonUninstallArgs) -> CommandResult:
    entry = entry_named(args.addon)
    record = _release(ctx, entry)
    if record is None:
        return reply(f"{entry.name} is not installed on {ctx.cluster()}", tone=Tone.INFO)
    lines = [f"delete the {len(record.objects)} objects {entry.name} applied (namespace {entry.namespace})"]
    return _job(ctx, ADDON_UNINSTALL, entry, {}, lines)


@handles(AppListArgs)
async def list_apps(ctx: CommandContext, args: AppListArgs) -> CommandResult:
    apps = apps_of(await _index(ctx))
    fields = tuple(
        Field(label=app.name, value=" · ".join(p for p in (app.latest, app.description[:120]) if p))
        for app in apps
    )
    return reply(
        f"App store: {len(apps)} charts",
        body="`show app NAME` lists its versions and images; `install app NAME on CLUSTER` installs it.",
        fields=fields,
    )


@handles(AppShowArgs)
async def show_app(ctx: CommandContext, args: AppShowArgs) -> CommandResult:
    app = app_named(await _index(ctx), args.app)
    fields = [
        Field(label="Versions", value=", ".join(app.versions[:10])),
        Field(label="Images to mirror", value="\n".join(app.images) or "not listed by the chart"),
    ]
    if app.app_version:
        fields.insert(1, Field(label="App version", value=app.app_version))
    cluster = ctx.parsed.cluster
    if cluster is not None:
        record = ReleaseStore(ctx.runtime.redis).get(cluster=cluster, addon=release_of(app.name))
        where = f"{record.chart_version}, {len(record.objects)} objects" if record else "not installed"
        fields.append(Field(label=f"On {cluster}", value=where))
    return reply(f"App {app.name}", body=app.description, fields=tuple(fields))


@handles(AppInstallArgs)
async def install_app(ctx: CommandContext, args: AppInstallArgs) -> CommandResult:
    app = app_named(await _index(ctx), args.app)
    version = version_of(app, args.version)
    values = settings_of(args.values)
    entry = app_entry(chart=app.name, version=version)
    if _release(ctx, entry) is not None:
        raise KobotError(f"{app.name} is already on {ctx.cluster()}: `uninstall app {app.name}` first")
    lines = [f"install {app.name} {version} into namespace {entry.namespace} as release {entry.release}"]
    lines += [f"{name}={value}" for name, value in sorted(values.items())]
    return _job(ctx, ADDON_INSTALL, entry, values, lines, extra={"app": app.name, "version": version})


@handles(AppUninstallArgs)
async def uninstall_app(ctx: CommandContext, args: AppUninstallArgs) -> CommandResult:
    record = ReleaseStore(ctx.runtime.redis).get(cluster=ctx.cluster(), addon=release_of(args.app))
    if record is None:
        return reply(f"{args.app} is not installed on {ctx.cluster()}", tone=Tone.INFO)
    entry = app_entry(chart=args.app, version=record.chart_version)
    lines = [f"delete the {len(record.objects)} objects {args.app} applied (namespace {entry.namespace})"]
    extra = {"app": args.app, "version": record.chart_version}
    return _job(ctx, ADDON_UNINSTALL, entry, {}, lines, extra=extra)


async def _index(ctx: CommandContext) -> dict[str, Any]:
    _require_repository(ctx)
    repository = ctx.runtime.settings.addons.chart_repository or ""
    # a blocking read with its own deadline (CHART_FETCH_TIMEOUT_SECONDS), off the event loop
    return await asyncio.to_thread(fetch_index, repository=repository)


def _require_repository(ctx: CommandContext) -> None:
    if not ctx.runtime.settings.addons.chart_repository:
        raise KobotError("no chart repository is set: an admin sets it (KOBOT_ADDONS__CHART_REPOSITORY)")


def _require_credentials(ctx: CommandContext, entry: AddonEntry) -> None:
    """A site credential the addon needs must be set (addons.credentials) or already stored for the
    cluster; refused before the job, naming the setting, never asking for it in chat."""
    runtime = ctx.runtime
    given = runtime.settings.addons.credentials
    site = [s for s in entry.secrets if not s.generated and s.name not in given]
    if not site:
        return
    stored = set(
        ClusterSecrets(redis=runtime.redis, secret=secret_key(runtime.settings)).names(cluster=ctx.cluster())
    )
    for secret in site:
        if secret.store_name(entry.name) not in stored:
            raise KobotError(missing_credential(entry, secret.name))


def _release(ctx: CommandContext, entry: AddonEntry) -> ReleaseRecord | None:
    return ReleaseStore(ctx.runtime.redis).get(cluster=ctx.cluster(), addon=entry.name)


def _job(
    ctx: CommandContext,
    kind: str,
    entry: AddonEntry,
    values: dict[str, str],
    lines: list[str],
    *,
    extra: dict[str, str] | None = None,
) -> SubmitJob:
    require_operation(kind)
    name = ctx.cluster()
    require_changeable(ctx, ctx.runtime.clusters.require(name))
    params: dict[str, Any] = {"addon": entry.name, "values": values, **(extra or {})}
    record = _release(ctx, entry)
    state = {"chart": record.chart_version, "objects": len(record.objects)} if record else None
    return SubmitJob(
        kind=kind,
        cluster=name,
        params=params,
        title=f"{kind} {entry.name} {name}",
        plan_lines=tuple(lines),
        plan_hash=plan_hash({"kind": kind, "cluster": name, "params": params, "state": state}),
    )
