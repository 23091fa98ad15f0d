"""Nodes and etcd: scale workers, add/remove/replace a node, back up and restore etcd."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from commands.definitions.backups import TargetName
from commands.definitions.common import GPU_WORKERS_ARG, GPU_WORKERS_FIELD, Args, BreakGlass, NodeName
from commands.grammar import Arg
from commands.registry import command
from kobot import validation
from kobot.errors import CommandError
from kobot.job_records import JobKind
from kobot.risk import Risk
from kobot.settings_backups import LOCAL_TARGET

SHRINK_ALIASES = frozenset(
    {
        "scale down",
        "scale down workers",
        "scale in",
        "scale in workers",
        "shrink workers",
        "缩容",
        "缩容工作节点",
    }
)
"""Phrases where a bare number is how many workers to remove: `缩容 prod 工作节点 2` means delta -2."""

GROW_ALIASES = frozenset(
    {"scale up", "scale up workers", "scale out", "scale out workers", "扩容", "扩容工作节点"}
)
"""Phrases that only add: a bare number is the target count, a negative delta is refused."""

MASTER_ALIASES = frozenset({"add master", "add control plane node", "添加主节点", "增加主节点"})
"""Phrases that add a control-plane node, so `role` need not be said."""

SCALE_RULES = """A bare number is the target worker count: `scale workers 5 on prod` ends with 5 workers, \
and so does `扩容 prod 工作节点 5`. A signed number is a change: `scale workers +2 on prod`, `-1`. \
`缩容`, `scale down` and `scale in` always remove: `缩容 prod 工作节点 2` removes 2 workers (delta -2). \
Risk: a target count is change (whether it shrinks is only known when the job runs, and the job \
drains before removing); a negative delta is risky and needs approval."""


def _scale_risk(args: WorkersScaleArgs) -> Risk:
    return Risk.RISKY if args.delta is not None and args.delta < 0 else Risk.CHANGE


def _scale_words(alias: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Give `缩容`/`scale down` numbers their meaning (remove N); refuse contradictions."""
    if alias in SHRINK_ALIASES:
        if "count" in raw and "delta" in raw:
            raise CommandError(f"'{alias}' takes one number: how many workers to remove")
        amount = raw.pop("count", None) or raw.pop("delta", None)
        if isinstance(amount, str):
            if amount.startswith("+"):
                raise CommandError(
                    f"'{alias}' removes workers; to add, say `scale workers {amount} on <cluster>`"
                )
            raw["delta"] = "-" + amount.lstrip("-")
    elif alias in GROW_ALIASES and str(raw.get("delta", "")).startswith("-"):
        raise CommandError(
            f"'{alias}' adds workers; to remove, say `缩容 <cluster> 工作节点 {raw['delta'][1:]}`"
        )
    return raw


@command(
    "workers.scale",
    aliases=(
        "scale workers",
        "scale worker",
        "scale",
        "resize workers",
        "扩容",
        "缩容",
        "扩缩容",
        "伸缩",
        "调整工作节点",
        *sorted(GROW_ALIASES - {"扩容"}),
        *sorted(SHRINK_ALIASES - {"缩容"}),
    ),
    risk=Risk.RISKY,
    risk_rule=_scale_risk,
    prepare=_scale_words,
    summary="Set the number of workers, or add/remove some. Removing drains each node first.",
    examples=(
        "scale workers 5 on prod",
        "scale workers +2 on prod",
        "扩容 prod 工作节点 5",
        "缩容 prod 工作节点 2",
    ),
    cluster="required",
    job_kind=JobKind.WORKERS_SCALE.value,
)
class WorkersScaleArgs(Args):
    __doc__ = SCALE_RULES

    count: Annotated[
        int | None,
        Field(ge=0, le=validation.WORKERS_MAX, description="target number of workers"),
        Arg(
            names=("workers", "worker", "to", "target", "工作节点", "数量", "到"),
            positional=True,
            shape=r"\d+",
        ),
    ] = None
    delta: Annotated[
        int | None,
        Field(
            ge=-validation.WORKERS_MAX,
            le=validation.WORKERS_MAX,
            description="workers to add (+N) or remove (-N)",
        ),
        Arg(names=("by", "change", "增减", "变化"), positional=True, shape=r"[+-]\d+", kind="+N or -N"),
    ] = None
    gpu_workers: Annotated[int | None, GPU_WORKERS_FIELD, GPU_WORKERS_ARG] = None
    """How many workers have a GPU afterwards; only new workers can add to it."""
    break_glass: BreakGlass = None

    @model_validator(mode="after")
    def _one_amount(self) -> Self:
        if (self.count is None) == (self.delta is None):
            raise validation.ArgValueError(
                "say either a target count (scale workers 5 on prod) or a change (+2 / -1), exactly one"
            )
        if self.delta == 0:
            raise validation.ArgValueError("delta 0 changes nothing: use +N to add or -N to remove workers")
        return self

    def target(self, *, current: int) -> int:
        """The worker count asked for, given the current one; below zero when more are removed than exist."""
        if self.count is not None:
            return self.count
        assert self.delta is not None  # _one_amount keeps exactly one of count and delta
        return current + self.delta


def _add_risk(args: NodeAddArgs) -> Risk:
    # a master joins etcd: a bad join can cost the cluster its quorum, so a second person looks first
    return Risk.RISKY if args.role == "master" else Risk.CHANGE


def _node_words(alias: str, raw: dict[str, Any]) -> dict[str, Any]:
    if alias in MASTER_ALIASES:
        if raw.get("role", "master") != "master":
            raise CommandError(f"'{alias}' adds a master; to add a worker, say `add node`")
        raw["role"] = "master"
    return raw


@command(
    "node.add",
    aliases=(
        "add node",
        "add a node",
        "add worker node",
        "join node",
        "添加节点",
        "增加节点",
        "加节点",
        "新增节点",
        *sorted(MASTER_ALIASES),
    ),
    risk=Risk.RISKY,
    risk_rule=_add_risk,
    prepare=_node_words,
    summary="Add one node (a worker unless role=master). Masters keep an odd count only in pairs: add two.",
    examples=(
        "add node to prod",
        "add node prod host=10.0.0.9",
        "add master prod host=10.0.0.10 --first-of-two",
        "add master prod host=10.0.0.11",
        "添加节点 prod 角色=master 主机=10.0.0.12 成对第一台",
    ),
    cluster="required",
    job_kind=JobKind.NODE_ADD.value,
)
class NodeAddArgs(Args):
    """With provider=manual give host; vSphere/OpenStack clusters create the machine. Risk: change for a
    worker; risky (needs approval) for a master, which joins etcd.

    Masters stay odd, so etcd's majority tolerates as many failures as it can: from 3, adding one
    master is refused unless it is the first of two, said with `--first-of-two`; the second add
    (4 → 5) needs no flag. Until it runs the cluster has an even count and one more member to lose."""

    role: Annotated[
        Literal["worker", "master"],
        Arg(
            names=("角色", "类型"),
            positional=True,
            synonyms={
                "工作节点": "worker",
                "主节点": "master",
                "控制节点": "master",
                "control-plane": "master",
            },
        ),
        Field(description="what the node becomes"),
    ] = "worker"
    host: Annotated[
        str | None,
        AfterValidator(validation.optional_host_address_in_context),
        Arg(
            names=("address", "ip", "主机", "地址"),
            positional=True,
            shape=r"[0-9a-fA-F:.\[\]]+|[\w-]+(\.[\w-]+)+",
            kind="IP or hostname",
        ),
        Field(description="the machine to join (provider=manual)"),
    ] = None
    first_of_two: Annotated[
        bool,
        Arg(names=("first-of-pair", "成对第一台", "两台中的第一台")),
        Field(description="role=master only: this master is the first of two, so an even count is brief"),
    ] = False
    gpu: Annotated[
        bool,
        Arg(names=("gpu-worker", "gpu_workers", "显卡", "gpu节点")),
        Field(description="the new worker has an NVIDIA GPU (driver, toolkit, containerd's nvidia runtime)"),
    ] = False
    break_glass: BreakGlass = None

    @model_validator(mode="after")
    def _pair_is_for_masters(self) -> Self:
        if self.first_of_two and self.role != "master":
            raise validation.ArgValueError("--first-of-two is for role=master: workers need no pairs")
        if self.gpu and self.role != "worker":
            raise validation.ArgValueError("--gpu is for workers: kobot runs GPU workloads on workers only")
        return self


@command(
    "node.remove",
    aliases=("remove node", "delete node", "drain and remove node", "删除节点", "移除节点", "下线节点"),
    risk=Risk.RISKY,
    summary="Drain a node, then remove it from the cluster (and destroy its machine on vSphere/OpenStack).",
    examples=("remove node worker-3 from prod", "删除节点 prod worker-3"),
    cluster="required",
    job_kind=JobKind.NODE_REMOVE.value,
)
class NodeRemoveArgs(Args):
    """The node is cordoned and drained first; if the drain fails the node stays. A master is removed
    only while the masters left still hold etcd's majority of the members it has now."""

    node: NodeName
    break_glass: BreakGlass = None


@command(
    "node.replace",
    aliases=("replace node", "rebuild node", "替换节点", "更换节点", "重建节点"),
    risk=Risk.RISKY,
    summary="Replace a failed or sick node with a fresh one of the same role.",
    examples=(
        "replace node worker-3 on prod",
        "替换节点 prod master-2",
        "replace node worker-3 on prod host=10.0.0.21",
    ),
    cluster="required",
    job_kind="node.replace",
)
class NodeReplaceArgs(Args):
    """Works for masters too, one at a time, and only while the other masters alone hold etcd's majority
    (the old member goes even when its node is dead): so not on a cluster of one or two masters.
    A worker's successor joins before the old worker is drained; a master leaves etcd before its
    successor joins. With provider=manual, `host=` names the new machine."""

    node: NodeName
    host: Annotated[
        str | None,
        AfterValidator(validation.optional_host_address_in_context),
        Arg(names=("address", "ip", "主机", "地址"), kind="IP or hostname"),
        Field(description="the machine that takes the node's place (provider=manual)"),
    ] = None
    break_glass: BreakGlass = None


@command(
    "etcd.backup",
    aliases=(
        "backup",
        "back up",
        "backup etcd",
        "etcd backup",
        "snapshot etcd",
        "backup cluster",
        "备份",
        "备份集群",
        "备份etcd",
        "etcd备份",
    ),
    risk=Risk.CHANGE,
    summary="Take an etcd snapshot now; the reply names the backup id.",
    examples=("backup prod", "备份 prod", "backup prod target=offsite"),
    cluster="required",
    job_kind=JobKind.ETCD_BACKUP.value,
)
class EtcdBackupArgs(Args):
    """`target` names where the snapshot is kept: `local` (kobot's disk) or a configured target."""

    target: TargetName = LOCAL_TARGET


@command(
    "etcd.restore",
    aliases=(
        "restore",
        "restore etcd",
        "etcd restore",
        "restore backup",
        "恢复",
        "恢复etcd",
        "etcd恢复",
        "恢复备份",
        "还原",
    ),
    risk=Risk.RISKY,
    summary="Restore etcd from a backup: API servers stop first, every member restores the same snapshot.",
    examples=("restore etcd prod backup=prod-20250131-0200", "恢复 prod prod-20250131-0200"),
    cluster="required",
    job_kind=JobKind.ETCD_RESTORE.value,
)
class EtcdRestoreArgs(Args):
    """Everything written after the backup is lost. `from` names the backup: `restore on prod from ID`."""

    backup: Annotated[
        str,
        AfterValidator(validation.backup_id),
        Arg(
            names=("snapshot", "from", "id", "备份", "快照"),
            positional=True,
            shape=r"[A-Za-z0-9][\w.:-]*",
            kind="backup id",
        ),
        Field(description="the backup id a backup reply or `show <cluster>` named"),
    ]
    break_glass: BreakGlass = None
