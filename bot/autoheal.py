"""Autoheal: a worker NotReady for longer than its cluster's threshold is replaced by kobot itself.

The node watcher hands each round's readiness of a cluster with autoheal on to `Autoheal.consider`. A
replacement is the `replace node` command, planned by its own handler (cordon, drain and replace), and
goes through the same approval rules: the rule that decides is the first one matching `node.autoheal`
(so a policy can pre-approve autoheal on a cluster with `commands: [node.autoheal], approvals: 0`) or
else `node.replace` at risky. Without a pre-approval an approval request is posted to the cluster's
approval channels (`notify <cluster> approvals here`). kobot acts as itself (`kobot:autoheal`, on behalf
of the policy and of who turned autoheal on), and the audit trail says so.

Limits: one replacement at a time per cluster; none while more than the set share of nodes is NotReady
(an outage, not a node failure: said once, to page people); never a master (its etcd member and the
quorum are a person's decision: said once per master). A replacement that fails, or an approval that is
rejected or expires, leaves that node to people until it is Ready again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from alerts.subscriptions import ClusterEvent, notify_targets
from bot.approval_flow import ApprovalFlow
from bot.approvals import ApprovalStatus
from bot.command_runs import CommandRuns
from bot.runtime import Runtime, catalog_loaded
from commands.parser import parse
from kobot.access import AuthDecision
from kobot.autoheal import AutohealAction, AutohealSetting, AutohealStore
from kobot.clock import utcnow
from kobot.clusters import ClusterRecord
from kobot.conversations import Conversation, Identity
from kobot.errors import KobotError
from kobot.job_records import JobState
from kobot.messages import Field, MessageKind, OutgoingMessage, Tone
from kobot.risk import Risk

log = logging.getLogger(__name__)

AUTOHEAL_IDENTITY = Identity(platform="kobot", user_id="autoheal", display_name="kobot autoheal")
"""Who requests and queues autoheal's replacements: kobot itself, for the policy."""
AUTOHEAL_PERMISSION = "node.autoheal"
"""The permission (and approval-rule command name) of autoheal, besides `node.replace` it runs as."""
REPLACE_COMMAND = "node.replace"
OUTAGE_TOPIC = "outage"
GAVE_UP = "left-to-people:"
MASTER_TOLD = "master:"
NO_CHANNEL = "no-approval-channel"


class AutohealVerdict(str, Enum):
    """What one round of autoheal did for a cluster."""

    NOTHING = "nothing"
    BUSY = "busy"
    OUTAGE = "outage"
    ASKED = "asked"
    QUEUED = "queued"


@dataclass(frozen=True)
class AutohealOutcome:
    verdict: AutohealVerdict
    node: str | None = None
    job_id: str | None = None
    approval_id: str | None = None


class Autoheal:
    """Decides, for one cluster at a time, whether a NotReady worker is replaced now."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        approvals: ApprovalFlow,
        runs: CommandRuns,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._runtime = runtime
        self._approvals = approvals
        self._runs = runs
        self._now = clock
        self._store = AutohealStore(runtime.redis)

    def setting(self, cluster: str) -> AutohealSetting | None:
        setting = self._store.setting(cluster)
        return setting if setting is not None and setting.enabled else None

    async def consider(self, cluster: str, ready: dict[str, bool]) -> AutohealOutcome:
        """One round for `cluster` with the nodes' readiness just read (node -> Ready)."""
        setting = self.setting(cluster)
        if setting is None:
            return AutohealOutcome(AutohealVerdict.NOTHING)
        now = self._now()
        not_ready = {node for node, is_ready in ready.items() if not is_ready}
        since = self._store.track(cluster, not_ready=not_ready, now=now)
        action = self._store.action(cluster)
        if action is not None and await self._under_way(cluster, action):
            return AutohealOutcome(AutohealVerdict.BUSY, node=action.node)
        if ready and len(not_ready) * 100 > setting.max_unhealthy_percent * len(ready):
            if not self._store.said(cluster, OUTAGE_TOPIC):
                await self._outage(cluster, not_ready=sorted(not_ready), total=len(ready), setting=setting)
            return AutohealOutcome(AutohealVerdict.OUTAGE)
        self._store.unsay(cluster, OUTAGE_TOPIC)
        record = self._runtime.clusters.get(cluster)
        if record is None:
            return AutohealOutcome(AutohealVerdict.NOTHING)
        roles = {node.name: node.role for node in record.nodes}
        due = sorted(n for n in not_ready if (now - since[n]).total_seconds() >= setting.after_seconds)
        for node in due:
            if roles.get(node) == "master":
                if not self._store.said(cluster, MASTER_TOLD + node):
                    await self._master_left_alone(cluster, node)
                continue
            if roles.get(node) != "worker" or self._store.has_said(cluster, GAVE_UP + node):
                continue
            return await self._replace(record, node=node, since=since[node], setting=setting)
        return AutohealOutcome(AutohealVerdict.NOTHING)

    # the replacement under way ---------------------------------------------------------------
    async def _under_way(self, cluster: str, action: AutohealAction) -> bool:
        """Whether the replacement under way still is; a finished one is forgotten (and a failed or
        declined one leaves its node to people)."""
        rt = self._runtime
        if action.job_id is None and action.approval_id is not None:
            try:
                request = rt.approvals.get(request_id=action.approval_id)
            except KobotError:
                request = None
            if request is not None and request.status is ApprovalStatus.PENDING:
                return True
            if request is not None and request.status is ApprovalStatus.APPROVED:
                job_id = rt.approvals.job_of(request=request)
                if job_id is None:
                    return True  # approved; the housekeeping queues its job
                action = action.model_copy(update={"job_id": job_id})
                self._store.save_action(cluster, action)
            else:
                why = request.status.value if request is not None else "gone"
                await self._leave_to_people(cluster, action.node, f"its replacement's approval {why}")
                return False
        if action.job_id is not None:
            record = rt.jobs.records.get(action.job_id)
            if record is not None and not record.state.finished:
                return True
            if record is None or record.state is not JobState.SUCCEEDED:
                state = record.state.value if record is not None else "gone"
                await self._leave_to_people(
                    cluster, action.node, f"its replacement (job {action.job_id}) {state}"
                )
                return False
        self._store.save_action(cluster, None)
        return False

    async def _leave_to_people(self, cluster: str, node: str, why: str) -> None:
        self._store.save_action(cluster, None)
        self._store.said(cluster, GAVE_UP + node)
        await self._say(
            cluster,
            OutgoingMessage(
                kind=MessageKind.NOTICE,
                title=f"autoheal leaves {node} to people",
                tone=Tone.WARNING,
                fields=(Field(label="Cluster", value=cluster),),
                body=f"{why}; autoheal tries {node} again only after it was Ready once more.",
            ),
        )

    # acting ---------------------------------------------------------------------------------
    async def _replace(
        self, record: ClusterRecord, *, node: str, since: datetime, setting: AutohealSetting
    ) -> AutohealOutcome:
        rt = self._runtime
        cluster = record.name
        text = f"replace node {node} on {cluster}"
        await catalog_loaded()
        parsed = parse(text, allow_local_hosts=rt.settings.allow_local_hosts)
        needed, approver = rt.policy.policy.approval_rule(
            permission=AUTOHEAL_PERMISSION, command_id=REPLACE_COMMAND, risk=Risk.RISKY, cluster=cluster
        )
        conversation = await self._conversation(cluster, approval=needed > 0)
        if conversation is None:
            if not self._store.said(cluster, NO_CHANNEL):
                log.warning("autoheal on %s needs an approval, and no conversation takes them", cluster)
                await self._say(
                    cluster,
                    OutgoingMessage(
                        kind=MessageKind.NOTICE,
                        title=f"autoheal cannot ask to replace {node}",
                        tone=Tone.WARNING,
                        fields=(Field(label="Cluster", value=cluster),),
                        body="its replacement needs an approval, and no conversation takes the cluster's "
                        "approval requests:",
                        code=f"notify {cluster} approvals here",
                    ),
                )
            return AutohealOutcome(AutohealVerdict.NOTHING, node=node)
        self._store.unsay(cluster, NO_CHANNEL)
        ctx = self._runs.context(
            identity=AUTOHEAL_IDENTITY, conversation=conversation, parsed=parsed, text=text
        )
        try:
            job = await self._runs.plan_of(ctx)
        except KobotError as exc:
            await self._leave_to_people(cluster, node, f"`{text}` cannot run: {exc.user_message}")
            return AutohealOutcome(AutohealVerdict.NOTHING, node=node)
        assert job is not None  # replace node always answers with a job
        detail = {
            "node": node,
            "not_ready_since": since.isoformat(),
            "after_seconds": setting.after_seconds,
            "turned_on_by": setting.set_by,
            "approvals_required": needed,
        }
        if needed == 0:
            job_id = self._runs.submit(
                identity=AUTOHEAL_IDENTITY,
                conversation=conversation,
                job=job,
                command_text=text,
                parsed=parsed,
            )
            self._store.save_action(cluster, AutohealAction(node=node, job_id=job_id))
            rt.audit.record(
                who=AUTOHEAL_IDENTITY,
                where=conversation,
                action="autoheal.replace",
                cluster=cluster,
                detail={**detail, "job": job_id},
                result="queued (pre-approved by the policy)",
            )
            return AutohealOutcome(AutohealVerdict.QUEUED, node=node, job_id=job_id)
        decision = AuthDecision(
            allowed=True,
            reason="autoheal",
            missing_permission=None,
            needs_approval=True,
            approvals_required=needed,
            approver_role=approver,
            break_glass_allowed=False,
        )
        request = await self._approvals.ask(ctx, job, decision)
        self._store.save_action(cluster, AutohealAction(node=node, approval_id=request.request_id))
        rt.audit.record(
            who=AUTOHEAL_IDENTITY,
            where=conversation,
            action="autoheal.replace",
            cluster=cluster,
            detail={**detail, "request": request.request_id},
            result="approval requested",
        )
        return AutohealOutcome(AutohealVerdict.ASKED, node=node, approval_id=request.request_id)

    async def _conversation(self, cluster: str, *, approval: bool) -> Conversation | None:
        """Where the replacement is asked for and its job reported: the first conversation taking the
        cluster's approval requests, else (no approval needed) the first taking its node events."""
        alerts = self._runtime.alerts
        events = (
            [ClusterEvent.APPROVAL_NEEDED]
            if approval
            else [ClusterEvent.APPROVAL_NEEDED, ClusterEvent.NODE_NOT_READY]
        )
        if alerts is not None:
            for event in events:
                for target in await notify_targets(alerts.redis, cluster=cluster, event=event.value):
                    if target.platform in self._runtime.adapters:
                        return Conversation(
                            platform=target.platform,
                            conversation_id=target.conversation_id,
                            thread_id=target.thread_id,
                        )
        if approval:
            return None
        # pre-approved and nobody listening: the job still runs; its record and the audit tell
        return Conversation(platform=AUTOHEAL_IDENTITY.platform, conversation_id=f"autoheal:{cluster}")

    # what people are told -------------------------------------------------------------------
    async def _outage(
        self, cluster: str, *, not_ready: list[str], total: int, setting: AutohealSetting
    ) -> None:
        await self._say(
            cluster,
            OutgoingMessage(
                kind=MessageKind.NOTICE,
                title="outage, not a node failure: paging humans",
                tone=Tone.DANGER,
                fields=(
                    Field(label="Cluster", value=cluster),
                    Field(label="NotReady", value=f"{len(not_ready)} of {total} nodes"),
                    Field(label="Autoheal limit", value=f"{setting.max_unhealthy_percent}%"),
                ),
                body=f"autoheal replaces nothing while more than {setting.max_unhealthy_percent}% of the "
                f"nodes are NotReady: {', '.join(not_ready)}",
            ),
        )

    async def _master_left_alone(self, cluster: str, node: str) -> None:
        await self._say(
            cluster,
            OutgoingMessage(
                kind=MessageKind.NOTICE,
                title=f"autoheal never replaces a master: {node} is left to people",
                tone=Tone.WARNING,
                fields=(Field(label="Cluster", value=cluster),),
                body="a master's etcd member and the quorum are a person's decision; if it stays down:",
                code=f"replace node {node} on {cluster}",
            ),
        )

    async def _say(self, cluster: str, message: OutgoingMessage) -> None:
        alerts = self._runtime.alerts
        if alerts is None:
            log.warning("autoheal on %s: %s (no alert delivery to say it)", cluster, message.title)
            return
        await alerts.publish_cluster_event(
            cluster=cluster, event=ClusterEvent.NODE_NOT_READY.value, message=message
        )
