"""Handlers of read-only `kubectl`: check the namespace scope, read on a thread within a deadline, answer.

The dispatcher has already checked the `kubectl` permission on the cluster; a policy may narrow it to
namespaces (`kubectl:shop`), which is checked here, where the namespace is known. The read itself
(decrypting the kubeconfig, the API requests) runs on a worker thread, never on the chat loop, and the
reply comes within `KUBECTL_DEADLINE_SECONDS` whatever the API server does.
"""

from __future__ import annotations

import asyncio

from commands.context import CommandContext, CommandResult, Reply
from commands.definitions.inspect import (
    KubectlDescribeArgs,
    KubectlEventsArgs,
    KubectlGetArgs,
    KubectlLogsArgs,
    KubectlTopArgs,
)
from commands.registry import handles
from kobot import defaults
from kobot.access import CLUSTER_READ_PERMISSION, EVERY_SCOPE, scoped_permission
from kobot.errors import KobotError, NotFoundError, PermissionDeniedError
from kobot.messages import MessageKind, OutgoingMessage, Tone
from kobot.risk import Risk
from kobot.store import secret_key
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets
from workers.kube_read import KubeReadRequest, KubeReadResult, OutputFormat, ReadVerb, read_cluster
from workers.kube_tables import clip, resolve_resource

NARROW_HINT = "narrow it with -n NAMESPACE, -l app=NAME, --field-selector or a name"


@handles(KubectlGetArgs)
async def kubectl_get(ctx: CommandContext, args: KubectlGetArgs) -> CommandResult:
    request = KubeReadRequest(
        verb=ReadVerb.GET,
        resource=args.resource,
        name=args.name,
        namespace=args.namespace,
        all_namespaces=args.all_namespaces,
        label_selector=",".join(args.label_selector) or None,
        field_selector=",".join(args.field_selector) or None,
        output=OutputFormat(args.output),
    )
    return await _read(ctx, request)


@handles(KubectlDescribeArgs)
async def kubectl_describe(ctx: CommandContext, args: KubectlDescribeArgs) -> CommandResult:
    request = KubeReadRequest(
        verb=ReadVerb.DESCRIBE, resource=args.resource, name=args.name, namespace=args.namespace
    )
    return await _read(ctx, request)


@handles(KubectlLogsArgs)
async def kubectl_logs(ctx: CommandContext, args: KubectlLogsArgs) -> CommandResult:
    kind, _, name = (args.target or "").rpartition("/")
    request = KubeReadRequest(
        verb=ReadVerb.LOGS,
        resource=kind or None,
        name=name,
        namespace=args.namespace,
        tail=args.tail,
        container=args.container,
        previous=args.previous,
    )
    return await _read(ctx, request)


@handles(KubectlEventsArgs)
async def kubectl_events(ctx: CommandContext, args: KubectlEventsArgs) -> CommandResult:
    request = KubeReadRequest(
        verb=ReadVerb.EVENTS,
        resource="events",
        namespace=args.namespace,
        all_namespaces=args.all_namespaces,
        label_selector=",".join(args.label_selector) or None,
        field_selector=",".join(args.field_selector) or None,
    )
    return await _read(ctx, request)


@handles(KubectlTopArgs)
async def kubectl_top(ctx: CommandContext, args: KubectlTopArgs) -> CommandResult:
    request = KubeReadRequest(
        verb=ReadVerb.TOP,
        resource=args.resource,
        namespace=args.namespace,
        all_namespaces=args.all_namespaces,
        label_selector=",".join(args.label_selector) or None,
    )
    return await _read(ctx, request)


async def _read(ctx: CommandContext, request: KubeReadRequest) -> Reply:
    cluster = ctx.cluster()
    ctx.runtime.clusters.require(cluster)
    _check_scope(ctx, cluster, request)
    try:
        result = await asyncio.wait_for(
            asyncio.to_thread(_read_blocking, ctx, cluster, request),
            timeout=defaults.KUBECTL_DEADLINE_SECONDS,
        )
    except TimeoutError:
        raise KobotError(
            f"the API server of {cluster} did not answer within {defaults.KUBECTL_DEADLINE_SECONDS:.0f}s; "
            "it may be down or overloaded. Try again, or narrow the read (-n, -l, a name)"
        ) from None
    return Reply(render(result))


def _read_blocking(ctx: CommandContext, cluster: str, request: KubeReadRequest) -> KubeReadResult:
    runtime = ctx.runtime
    secrets = ClusterSecrets(redis=runtime.redis, secret=secret_key(runtime.settings))
    kubeconfig = secrets.get(cluster=cluster, name=KUBECONFIG_SECRET)
    if kubeconfig is None:
        raise NotFoundError(
            f"kobot holds no admin kubeconfig for {cluster}: it is stored when its create job installs "
            "Kubernetes, so kubectl works once the cluster is up"
        )
    return read_cluster(kubeconfig=kubeconfig, cluster=cluster, request=request)


def _check_scope(ctx: CommandContext, cluster: str, request: KubeReadRequest) -> None:
    """A policy can grant `kubectl` for some namespaces only: ask for the one this read needs."""
    namespaced = request.verb is ReadVerb.LOGS or (
        request.resource is not None and resolve_resource(request.resource).namespaced
    )
    scope = (request.namespace or "default") if namespaced and not request.all_namespaces else EVERY_SCOPE
    permission = scoped_permission(CLUSTER_READ_PERMISSION, scope)
    allowed = ctx.runtime.policy.can_run(
        identity=ctx.identity,
        conversation=ctx.conversation,
        command_id=permission,
        risk=Risk.READ,
        cluster=cluster,
    )
    if not allowed:
        where = "every namespace or cluster-wide kinds" if scope == EVERY_SCOPE else f"namespace {scope}"
        raise PermissionDeniedError(
            f"you may not read {where} in {cluster} (permission {permission}); "
            "name a namespace you may read with -n, or ask an admin"
        )


def render(result: KubeReadResult) -> OutgoingMessage:
    """The lines as a code block, cut at `KUBECTL_REPLY_LINES_MAX` with the count left and how to narrow."""
    limit = defaults.KUBECTL_REPLY_LINES_MAX
    kept = result.lines[-limit:] if result.newest_last else result.lines[:limit]
    shown = [clip(line) for line in kept]
    hidden = len(result.lines) - len(shown)
    notes = list(result.notes)
    if hidden > 0 and result.newest_last:
        notes.insert(0, f"… {hidden} earlier lines not shown; ask for fewer with --tail {limit}")
    elif hidden > 0:
        notes.insert(0, f"… {hidden} more lines not shown; {NARROW_HINT}")
    return OutgoingMessage(
        kind=MessageKind.REPLY,
        title=result.title,
        tone=Tone.INFO,
        code="\n".join(shown) if shown else None,
        footer="\n".join(notes) if notes else None,
    )
