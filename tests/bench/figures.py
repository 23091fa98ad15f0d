"""What every benchmark shares: the percentile it reports and the sink that answers at once."""

from __future__ import annotations

import os
from pathlib import Path

from kobot.chat import ChatAdapter
from kobot.conversations import ButtonClick, InboundMessage
from kobot.messages import OutgoingMessage


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; NaN for no samples."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def resident_mb(pid: int) -> float:
    """A live process's resident memory (VmRSS), MB; NaN when it has none to report."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU (user + system) a live process has used so far, in seconds; on a busy machine it swings far
    less than wall time does."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # after the command name: state is field 3, utime and stime are fields 14 and 15 (proc(5))
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class EchoSink:
    """Answers every command with one short reply, as the dispatcher's fastest path does: it measures
    a platform adapter's own path, in and out, without parsing or queueing."""

    def __init__(self, adapter: ChatAdapter | None = None) -> None:
        self.adapter = adapter

    async def on_message(self, message: InboundMessage) -> None:
        assert self.adapter is not None
        await self.adapter.send(message.conversation, OutgoingMessage(title=f"echo {message.text}"))

    async def on_click(self, click: ButtonClick) -> None:
        return None
