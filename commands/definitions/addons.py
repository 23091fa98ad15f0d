"""Addons from the catalog: list, show, install, upgrade, uninstall (monitoring, logging, dashboard, Scope,
GPU, F5 BIG-IP, NFS, Ceph RBD, Cinder);
and the app store: any chart of the site's chart repository, installed by the same mechanism."""

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

AddonId = Literal[
    "monitoring",
    "logging",
    "dashboard",
    "scope",
    "gpu",
    "f5",
    "storage-nfs",
    "storage-ceph-rbd",
    "storage-cinder",
]

ADDON_WORDS = {alias: entry.name for entry in CATALOG.values() for alias in entry.aliases}
"""Other words for catalog entries, 中文 included: 监控 → monitoring, nfs → storage-nfs."""

_ADDON_OF_ALIAS = {
    "安装监控": "monitoring",
    "安装日志": "logging",
    "安装仪表盘": "dashboard",
    "安装nfs存储": "storage-nfs",
    "安装拓扑": "scope",
    "安装显卡插件": "gpu",
    "安装ceph存储": "storage-ceph-rbd",
    "安装cinder存储": "storage-cinder",
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
SETTABLE = frozenset(value.name for entry in CATALOG.values() for value in entry.settable)
"""Every value some catalog entry takes; the entry itself says which are its own."""

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
    """Values a person may set; each addon's catalog entry says which it takes and checks them.
    Credentials are never among them: they come from addons.credentials and stay encrypted."""

    server: SettableValue = None
    path: SettableValue = None
    retention: SettableValue = None
    bigip: SettableValue = None
    partition: SettableValue = None
    mode: SettableValue = None
    insecure: SettableValue = None
    cluster_id: SettableValue = None
    monitors: SettableValue = None
    pool: SettableValue = None
    auth_url: SettableValue = None
    region: SettableValue = None

    def given(self) -> dict[str, str]:
        return {name: value for name, value in self.model_dump().items() if value and name in SETTABLE}


@command(
    "addon.list",
    aliases=(
        "list addons",
        "addons",
        "addon list",
        "list releases",
        "releases",
        "插件列表",
        "列出插件",
        "查看插件列表",
        "已安装应用",
    ),
    risk=Risk.READ,
    summary="The addon catalog, what each needs mirrored, and (with a cluster) every release installed "
    "there, apps included.",
    examples=("list addons", "list addons on prod", "list releases on prod", "插件列表 prod"),
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
        "install storage ceph-rbd cluster_id=b9127830-b0cc-4e34-aa47-9d1a2e9949a8 "
        "monitors=ceph1:6789 pool=kubernetes on prod",
        "install gpu on prod",
        "install f5 bigip=https://bigip1.example.com partition=kubernetes mode=cluster on prod",
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


AppName = Annotated[
    str,
    Arg(
        positional=True,
        names=("app", "chart", "应用"),
        shape=r"[a-z0-9][a-z0-9-]{0,52}",
        before_cluster=True,  # `install app redis prod`: the app, then the cluster
    ),
    Field(pattern=r"^[a-z0-9][a-z0-9-]{0,52}$", description="a chart of the site's chart repository"),
]


@command(
    "app.list",
    aliases=("list apps", "apps", "app store", "应用商店", "应用列表", "列出应用"),
    risk=Risk.READ,
    summary="The app store: every chart in the site's chart repository, its newest version.",
    examples=("list apps", "应用商店"),
    cluster="none",
)
class AppListArgs(Args):
    """No arguments."""


@command(
    "app.show",
    aliases=("show app", "describe app", "查看应用", "应用详情"),
    risk=Risk.READ,
    summary="One app of the store: its versions, what it is, the images to mirror.",
    examples=("show app valkey", "查看应用 valkey"),
    cluster="optional",
)
class AppShowArgs(Args):
    app: AppName


@command(
    "app.install",
    aliases=("install app", "install chart", "安装应用", "应用安装"),
    risk=Risk.CHANGE,
    summary="Install a chart of the app store (newest version unless named) with values set by --set.",
    examples=(
        "install app valkey on prod",
        "install app valkey 0.11.0 --set auth.enabled=false on prod",
        "安装应用 valkey 到 prod",
    ),
    cluster="required",
    job_kind=ADDON_INSTALL,
)
class AppInstallArgs(Args):
    app: AppName
    version: Annotated[
        str | None,
        Arg(positional=True, shape=r"v?[0-9]+(\.[0-9]+){1,2}([-+][0-9A-Za-z.-]+)?", kind="1.2.3"),
        Field(max_length=64, description="a version the repository lists; its newest when left out"),
    ] = None
    values: Annotated[
        list[str],
        Arg(names=("set", "值", "设置"), kind="key=value, one per --set"),
        Field(max_length=32, description="chart values, like --set auth.enabled=false"),
    ] = Field(default_factory=list)


@command(
    "app.uninstall",
    aliases=("uninstall app", "remove app", "delete app", "卸载应用", "删除应用"),
    risk=Risk.RISKY,
    summary="Delete every object an app applied (its data volumes with it).",
    examples=("uninstall app valkey on prod", "卸载应用 valkey 到 prod"),
    cluster="required",
    job_kind=ADDON_UNINSTALL,
)
class AppUninstallArgs(Args):
    app: AppName
    break_glass: BreakGlass = None
