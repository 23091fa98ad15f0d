"""How a CIS scan reads in chat: counts per section, the failed checks with their remediation (cut
short), and what changed since the previous scan. `show scan` answers with it; a scheduled scan that
changed something posts its change card."""

from __future__ import annotations

from kobot import defaults
from kobot.messages import Field, MessageKind, OutgoingMessage, Tone
from workers.compliance.results import ScanDiff, ScanResult


def scan_card(result: ScanResult) -> OutgoingMessage:
    totals = result.totals()
    lines = [
        f"{len(result.nodes)} node(s), kube-bench {result.kube_bench_version}, "
        f"benchmark {', '.join(result.benchmarks) or 'unknown'}; "
        f"finished {result.finished_at:%Y-%m-%d %H:%M} UTC",
        "",
        "Sections (pass / fail / warn / info):",
        *(
            f"  {s.section} {s.desc} [{s.node_type}]: {s.pass_} / {s.fail} / {s.warn} / {s.info}"
            for s in result.sections
        ),
    ]
    lines += ["", *diff_lines(result.diff)]
    if result.failed:
        lines += ["", "Failed checks:"]
        shown = result.failed[: defaults.CIS_FAILED_SHOWN_MAX]
        for check in shown:
            lines.append(f"• {check.id} {check.text} — on {on_nodes(check.nodes)}")
            if check.remediation:
                lines.append(f"  fix: {trimmed(check.remediation)}")
        if len(result.failed) > len(shown):
            lines.append(f"… and {len(result.failed) - len(shown)} more failed checks")
    return OutgoingMessage(
        kind=MessageKind.REPLY,
        title=f"CIS scan {result.id} of {result.cluster}",
        tone=Tone.WARNING if totals["fail"] else Tone.SUCCESS,
        body="\n".join(lines),
        fields=tuple(Field(label=label.capitalize(), value=str(count)) for label, count in totals.items()),
    )


def change_card(result: ScanResult) -> OutgoingMessage:
    """What a scheduled scan posts: only the change, and where to see the whole scan."""
    totals = result.totals()
    return OutgoingMessage(
        kind=MessageKind.REPLY,
        title=f"CIS scan of {result.cluster} changed",
        tone=Tone.WARNING if result.diff.newly_failing else Tone.SUCCESS,
        body="\n".join(diff_lines(result.diff)),
        fields=tuple(Field(label=label.capitalize(), value=str(count)) for label, count in totals.items()),
        footer=f"show scan {result.cluster} {result.id}",
    )


def diff_lines(diff: ScanDiff) -> list[str]:
    """What changed since the previous scan, `CIS_CHANGES_SHOWN_MAX` checks of each kind at most (a big
    cluster's first hardening run may fix hundreds): the rest are counted."""
    if diff.previous_id is None:
        return ["First scan of this cluster: nothing to compare with."]
    if not diff.changed:
        return [f"No change since scan {diff.previous_id}."]
    lines = [f"Since scan {diff.previous_id}:"]
    for what, changes in (("newly failing", diff.newly_failing), ("fixed", diff.fixed)):
        shown = list(changes.items())[: defaults.CIS_CHANGES_SHOWN_MAX]
        lines += [f"  {what} {check} on {on_nodes(nodes)}" for check, nodes in shown]
        if len(changes) > len(shown):
            lines.append(f"  … and {len(changes) - len(shown)} more {what} checks")
    return lines


def on_nodes(nodes: list[str]) -> str:
    """The nodes by name when few, else how many (`on 40 nodes`): one line stays one line."""
    if len(nodes) <= defaults.CIS_NODES_NAMED_MAX:
        return ", ".join(nodes)
    return f"{len(nodes)} nodes"


def trimmed(text: str, *, limit: int = defaults.CIS_REMEDIATION_CHARS_MAX) -> str:
    """One line, at most `limit` characters, cut at a word."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 1].rsplit(" ", 1)[0] + "…"
