"""`setup repository on <host>`: a job bound to the host and to the bundle kobot holds now."""

from __future__ import annotations

from commands.context import CommandContext, CommandResult, SubmitJob
from commands.definitions.repository import REPOSITORY_SETUP, RepositorySetupArgs
from commands.handlers.submit import job_params, plan_hash, require_operation
from commands.registry import handles
from workers.bundle.repository_job import REPOSITORY_SCOPE, RepositoryStore, bundle_folder, bundle_sha256


@handles(RepositorySetupArgs)
async def setup_repository(ctx: CommandContext, args: RepositorySetupArgs) -> CommandResult:
    require_operation(REPOSITORY_SETUP)
    bundle = bundle_folder(ctx.runtime.settings)
    # the approval is for this bundle: the job refuses one that changed meanwhile
    params = {**job_params(args), "bundle_sha256": bundle_sha256(bundle)}
    current = RepositoryStore(ctx.runtime.redis).get()
    lines = [
        f"install and start a file server and a registry (docker-registry) on {args.host}",
        f"load the bundle in {bundle} (bundle.json sha256 {params['bundle_sha256'][:12]}…) into them",
        f"new clusters take packages, files and images from {args.host}"
        + (f" instead of {current.files_url}" if current is not None else ""),
    ]
    return SubmitJob(
        kind=REPOSITORY_SETUP,
        cluster=REPOSITORY_SCOPE,
        params=params,
        title=f"{REPOSITORY_SETUP} {args.host}",
        plan_lines=tuple(lines),
        plan_hash=plan_hash({"kind": REPOSITORY_SETUP, "params": params, "bundle": str(bundle)}),
    )
