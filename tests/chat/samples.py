"""The messages every platform renderer is pinned on by golden files, one per situation kobot shows."""

from __future__ import annotations

from kobot.messages import Button, ButtonStyle, Field, MessageKind, OutgoingMessage, Progress, Tone

COMMAND_REPLY = OutgoingMessage(
    kind=MessageKind.REPLY,
    title="Clusters",
    tone=Tone.INFO,
    fields=(Field(label="prod", value="running · 3 masters · 5 workers · v1.31.4"),),
)

PROGRESS_START = OutgoingMessage(
    kind=MessageKind.PROGRESS,
    title="Job 42 · create cluster prod",
    tone=Tone.RUNNING,
    status="queued by Alice",
    progress=Progress(step=1, total=4, step_title="Render inventory", elapsed_seconds=0),
)

PROGRESS_MIDDLE = OutgoingMessage(
    kind=MessageKind.PROGRESS,
    title="Job 42 · create cluster prod",
    tone=Tone.RUNNING,
    status="running",
    progress=Progress(step=3, total=4, step_title="Preflight", task="swap is off", elapsed_seconds=75),
)

PROGRESS_FAILED = OutgoingMessage(
    kind=MessageKind.PROGRESS,
    title="Job 42 · create cluster prod",
    tone=Tone.DANGER,
    status="failed at step 3/4 Preflight after 1m32s",
    fields=(
        Field(label="Task", value="swap is off"),
        Field(label="Host", value="prod-worker-2"),
        Field(label="Changed", value="4"),
        Field(label="Failed", value="1"),
    ),
    code="swap is on (2048 MB); turn it off",
    footer="retry job 42 resumes at Preflight",
)

PROGRESS_DONE = OutgoingMessage(
    kind=MessageKind.PROGRESS,
    title="Job 42 · create cluster prod",
    tone=Tone.SUCCESS,
    status="succeeded in 12m05s",
    fields=(Field(label="Changed", value="57"), Field(label="Failed", value="0")),
)

APPROVAL_REQUEST = OutgoingMessage(
    kind=MessageKind.APPROVAL,
    title="Approval needed · delete cluster staging",
    tone=Tone.WARNING,
    status="requested by Alice · 0/2 approved · expires 14:30 UTC",
    fields=(
        Field(label="Command", value="delete cluster staging"),
        Field(label="Plan", value="destroy 3 masters, 5 workers"),
        Field(label="Approvers", value="2 × admin on staging"),
    ),
    buttons=(
        Button(
            label="Approve", action_id="approval.approve", value="ap1.approve.sig", style=ButtonStyle.PRIMARY
        ),
        Button(label="Reject", action_id="approval.reject", value="ap1.reject.sig", style=ButtonStyle.DANGER),
    ),
)

APPROVAL_DECIDED = OutgoingMessage(
    kind=MessageKind.APPROVAL,
    title="Approved · delete cluster staging",
    tone=Tone.SUCCESS,
    status="approved by Bob and Carol · job 43 queued",
)

ALERT_FIRING = OutgoingMessage(
    kind=MessageKind.ALERT,
    title="[critical] prod · KubeNodeNotReady",
    tone=Tone.DANGER,
    status="firing · 2 alerts",
    body="prod-worker-2 has been NotReady for 5 minutes.\nprod-worker-3 has been NotReady for 5 minutes.",
    fields=(Field(label="namespace", value="kube-system"), Field(label="team", value="platform")),
    buttons=(
        Button(label="Silence 1h", action_id="alert.silence", value="g1.1h.sig"),
        Button(label="Silence 4h", action_id="alert.silence", value="g1.4h.sig"),
        Button(label="Silence 24h", action_id="alert.silence", value="g1.24h.sig"),
        Button(label="Ack", action_id="alert.ack", value="g1.ack.sig"),
        Button(
            label="Run runbook", action_id="alert.runbook", value="g1.runbook.sig", style=ButtonStyle.PRIMARY
        ),
    ),
    footer="http://prometheus.example/graph?g0.expr=up",
)

ALERT_RESOLVED = OutgoingMessage(
    kind=MessageKind.ALERT,
    title="[resolved] prod · KubeNodeNotReady",
    tone=Tone.SUCCESS,
    status="resolved after 17m",
)

HELP = OutgoingMessage(
    kind=MessageKind.HELP,
    title="kobot commands",
    tone=Tone.INFO,
    body=(
        "create cluster NAME masters=3 workers=5 — create a cluster\nscale workers +2 on NAME — scale workers"
    ),
    footer="help <command> shows its arguments",
)

ALL = {
    "command_reply": COMMAND_REPLY,
    "progress_start": PROGRESS_START,
    "progress_middle": PROGRESS_MIDDLE,
    "progress_failed": PROGRESS_FAILED,
    "progress_done": PROGRESS_DONE,
    "approval_request": APPROVAL_REQUEST,
    "approval_decided": APPROVAL_DECIDED,
    "alert_firing": ALERT_FIRING,
    "alert_resolved": ALERT_RESOLVED,
    "help": HELP,
}
