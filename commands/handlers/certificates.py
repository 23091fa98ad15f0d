"""Handler of `renew certificates`: a Day 2 job whose plan names the masters in the order renewed."""

from __future__ import annotations

from commands.context import CommandContext, CommandResult
from commands.definitions.certificates import CertsRenewArgs
from commands.handlers.submit import day2_job
from commands.registry import handles
from kobot import defaults
from kobot.job_records import JobKind


@handles(CertsRenewArgs)
async def renew_certificates(ctx: CommandContext, args: CertsRenewArgs) -> CommandResult:
    record = ctx.runtime.clusters.require(ctx.cluster())
    masters = [n.name for n in record.nodes if n.role == "master"]
    what = (
        "every kubeadm certificate"
        if args.force
        else f"kubeadm certificates if any expires within {defaults.CERT_RENEW_BEFORE_DAYS} days"
    )
    lines = [
        f"renew {what}, one master at a time: {', '.join(masters) or 'none'}",
        "restart each master's etcd, API server, controller manager and scheduler on the new certificates",
        "replace kobot's admin kubeconfig with the renewed one, then read every certificate's expiry back",
    ]
    return day2_job(ctx, args, kind=JobKind.CERTS_RENEW, lines=lines)
