"""Addons from the catalog: list, show, install, upgrade, uninstall (monitoring, logging, dashboard, NFS)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from commands.definitions.common import Args, BreakGlass
from commands.grammar import Arg, close_matches
from commands.registry import command
from kobot.risk import Risk
from kobot.validation import ArgValueError
from workers.addons import ADDON_INSTALL, ADDON_UNINSTALL, ADDON_UPGRADE
from workers.addons.catalog import CATALOG

AddonId = Literal["monitoring", "logging", "dashboard", "storage-nfs"]

ADDON_WORDS = {alias: entry.name for entry in CATALOG.values() for alias in entry.aliases}
"""Other words for catalog entries, 中文 included: 监控 → monitoring, nfs → storage-nfs."""

_ADDON_OF_ALIAS = {
    "安装监控": "monitoring",
    "安装日志": "logging",
    "安装仪表盘": "dashboard",
    "安装nfs存储": "storage-nfs",
    "卸载监控": "monitoring",
    "卸载日志": "logging",
    "升级监控": "monitoring",
    "install storage": "storage-nfs",
}
"""Aliases that name the addon themselves (`安装监控 prod`)."""


def _catalog_addon(value: object) -> object:
    """An addon word the catalog does not hold is answered with its names (and the nearest), before
    the generic choice check: `install gpu on prod`."""
    if isinstance(value, str) and value not in CATALOG:
        words = [*CATALOG, *ADDON_WORDS]
        nearest = list(dict.fromkeys(ADDON_WORDS.get(w, w) for w in close_matches(value, words)))
        hint = f"did you mean {' or '.join(nearest)}? " if nearest else ""
        raise ArgValueError(
            f"there is no addon '{value}' in kobot's catalog; {hint}"
            f"the catalog has {', '.join(sorted(CATALOG))} (`list addons` says what each installs)",
            suggestions=nearest,
        )
    return value


Addon = Annotated[
    AddonId,
    BeforeValidator(_catalog_addon),
    Arg(positional=True, names=("addon", "插件", "组件"), synonyms=ADDON_WORDS),
    Field(description=f"an addon of the catalog: {', '.join(sorted(CATALOG))}"),
]
SettableValue = Annotated[
    str | None,
    Arg(kind="value"),
    Field(max_length=256, description="checked against the addon's catalog entry"),
]


def _addon_from_alias(alias: str, raw: dict[str, Any]) -> dict[str, Any]:
    named = _ADDON_OF_ALIAS.get(alias)
    if named is not None:
        given = raw.get("addon")
        if (given in ("nfs",) and named == "storage-nfs") or given is None:
            raw["addon"] = named
    return raw


class AddonValues(Args):
    """Values a person may set; each addon's catalog entry says which it takes and checks them."""

    server: SettableValue = None
    path: SettableValue = None
    retention: SettableValue = None

    def given(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (("server", self.server), ("path", self.path), ("retention", self.retention))
            if v
        }


@command(
    "addon.list",
    aliases=("list addons", "addons", "addon list", "插件列表", "列出插件", "查看插件列表"),
    risk=Risk.READ,
    summary="The addon catalog, what each needs mirrored, and (with a cluster) what is installed there.",
    examples=("list addons", "list addons on prod", "插件列表 prod"),
    cluster="optional",
)
class AddonListArgs(Args):
    """No arguments besides an optional cluster."""


@command(
    "addon.show",
    aliases=("show addon", "describe addon", "addon", "查看插件", "插件详情"),
    risk=Risk.READ,
    summary="One addon: its chart and version, settable values, images to mirror, links.",
    examples=("show addon monitoring", "查看插件 监控"),
    cluster="optional",
)
class AddonShowArgs(Args):
    addon: Addon


@command(
    "addon.install",
    aliases=(
        "install addon",
        "install",
        "install storage",
        "安装插件",
        "安装",
        *sorted(k for k in _ADDON_OF_ALIAS if k.startswith("安装")),
    ),
    risk=Risk.CHANGE,
    prepare=_addon_from_alias,
    summary="Install an addon from the catalog: charts from the site's mirror, images from the cluster's.",
    examples=(
        "install monitoring on prod",
        "install storage nfs server=nfs1 path=/exports on prod",
        "安装监控 prod",
    ),
    cluster="required",
    job_kind=ADDON_INSTALL,
)
class AddonInstallArgs(AddonValues):
    addon: Addon


@command(
    "addon.upgrade",
    aliases=("upgrade addon", "update addon", "升级插件", "升级监控"),
    risk=Risk.CHANGE,
    prepare=_addon_from_alias,
    summary="Apply the catalog's current render of an installed addon and remove what it no longer has.",
    examples=("upgrade addon monitoring on prod", "升级监控 prod"),
    cluster="required",
    job_kind=ADDON_UPGRADE,
)
class AddonUpgradeArgs(AddonValues):
    addon: Addon


@command(
    "addon.uninstall",
    aliases=("uninstall addon", "remove addon", "delete addon", "卸载插件", "卸载监控", "卸载日志"),
    risk=Risk.RISKY,
    prepare=_addon_from_alias,
    summary="Delete every object an addon applied (its data volumes with it).",
    examples=("uninstall addon monitoring on prod", "卸载监控 prod"),
    cluster="required",
    job_kind=ADDON_UNINSTALL,
)
class AddonUninstallArgs(Args):
    addon: Addon
    break_glass: BreakGlass = None
