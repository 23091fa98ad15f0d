"""Addons: charts from the site's chart repository, rendered by Helm in a child process, applied with
server-side apply, recorded as a release so upgrade prunes and uninstall removes exactly what was applied.
"""

from __future__ import annotations

from kobot.job_records import JobSpec
from workers.addons.steps import (
    apply_step,
    final_note,
    forget_render,
    health_step,
    prune_step,
    render_step,
    uninstall_step,
)
from workers.operations import Operation, Step, operation

ADDON_INSTALL = "addon.install"
ADDON_UPGRADE = "addon.upgrade"
ADDON_UNINSTALL = "addon.uninstall"

RENDER = Step("render", "Render the chart (images to the mirror)", render_step)
APPLY = Step("apply", "Apply (server-side)", apply_step)
PRUNE = Step("prune", "Remove what the new render no longer has", prune_step)
HEALTH = Step("health", "Check the workloads", health_step)


@operation(ADDON_INSTALL)
def addon_install(spec: JobSpec) -> Operation:
    return Operation(
        kind=ADDON_INSTALL,
        steps=(RENDER, APPLY, PRUNE, HEALTH),
        on_success=forget_render,
        final_note=final_note(spec.params),
    )


@operation(ADDON_UPGRADE)
def addon_upgrade(spec: JobSpec) -> Operation:
    return Operation(
        kind=ADDON_UPGRADE,
        steps=(RENDER, APPLY, PRUNE, HEALTH),
        on_success=forget_render,
        final_note=final_note(spec.params),
    )


@operation(ADDON_UNINSTALL)
def addon_uninstall(spec: JobSpec) -> Operation:
    return Operation(
        kind=ADDON_UNINSTALL,
        steps=(Step("uninstall", "Delete every object the addon applied", uninstall_step),),
    )
