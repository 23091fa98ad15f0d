"""How a health check reads in chat: the summary card, the worsening notice and the expiry notice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from kobot import defaults
from kobot.messages import Field, MessageKind, OutgoingMessage, Tone
from workers.health_certs import CertificateSeen
from workers.health_check import Finding, HealthLevel, HealthReport

TONE_OF = {HealthLevel.OK: Tone.SUCCESS, HealthLevel.WARNING: Tone.WARNING, HealthLevel.CRITICAL: Tone.DANGER}


def report_card(report: HealthReport) -> OutgoingMessage:
    """Counts first (ok / warning / critical), then each finding, worst first, then what was skipped."""
    critical, warning = report.count(HealthLevel.CRITICAL), report.count(HealthLevel.WARNING)
    if report.findings:
        title = f"Health of {report.cluster}: {critical} critical, {warning} warnings"
    else:
        title = f"Health of {report.cluster}: all {report.ok} checks ok"
    notes = [f"skipped {what}" for what in report.skipped]
    notes.append(f"checked {report.checked_at:%Y-%m-%d %H:%M} UTC in {report.seconds:.1f}s")
    return OutgoingMessage(
        kind=MessageKind.REPLY,
        title=title,
        tone=TONE_OF[report.level],
        fields=_counts(report),
        body=_lines(report.findings) or None,
        footer="\n".join(notes),
    )


def worsened_notice(report: HealthReport, worse: Sequence[Finding]) -> OutgoingMessage:
    """What got worse since the last scheduled check, with the whole card's counts."""
    return OutgoingMessage(
        kind=MessageKind.NOTICE,
        title=f"Health of {report.cluster} got worse: {len(worse)} new or worse findings",
        tone=TONE_OF[max((f.level for f in worse), key=lambda level: level.rank)],
        fields=_counts(report),
        body=_lines(worse),
        footer=f"The whole report: `check cluster {report.cluster}`",
    )


def node_worsened_notice(report: HealthReport, worse: Sequence[Finding]) -> OutgoingMessage:
    """The node findings of `worse` alone, for channels that asked for `node` notices: they may not
    read every namespace, so no pod or volume names, and no counts of them either."""
    return OutgoingMessage(
        kind=MessageKind.NOTICE,
        title=f"Nodes of {report.cluster} got worse: {len(worse)} new or worse findings",
        tone=TONE_OF[max((f.level for f in worse), key=lambda level: level.rank)],
        body=_lines(worse),
        footer=f"Node findings only: `notify {report.cluster} health` posts the whole report to those "
        "who may read every namespace",
    )


def expiry_notice(*, cluster: str, cert: CertificateSeen, now: datetime) -> OutgoingMessage:
    days = cert.days_left(now)
    when = "has expired" if days <= 0 else f"expires in {round(days)} days"
    return OutgoingMessage(
        kind=MessageKind.NOTICE,
        title=f"A certificate of {cluster} {when}",
        tone=Tone.DANGER if days <= defaults.HEALTH_CERT_CRITICAL_DAYS else Tone.WARNING,
        fields=(
            Field(label="Cluster", value=cluster),
            Field(label="Certificate", value=cert.name),
            Field(label="Subject", value=cert.subject or "-"),
            Field(label="Not after", value=f"{cert.not_after:%Y-%m-%d %H:%M} UTC"),
        ),
        body="Renew the cluster's certificates before then (kubeadm certs renew on each master).",
    )


def _counts(report: HealthReport) -> tuple[Field, ...]:
    return (
        Field(label="OK", value=str(report.ok)),
        Field(label="Warning", value=str(report.count(HealthLevel.WARNING))),
        Field(label="Critical", value=str(report.count(HealthLevel.CRITICAL))),
    )


def _lines(findings: Sequence[Finding]) -> str:
    shown = [finding.line() for finding in findings[: defaults.HEALTH_FINDINGS_SHOWN_MAX]]
    hidden = len(findings) - len(shown)
    if hidden > 0:
        shown.append(f"… and {hidden} more")
    return "\n".join(shown)
