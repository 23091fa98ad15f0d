"""What the WeCom alert tests share: the person alerts are routed to, one-to-one, and what she was shown."""

from __future__ import annotations

from tests.peers.wecom import Sent, WeComPeer

ALICE_ID = "alice"
SEND = "/cgi-bin/message/send"


def sent(peer: WeComPeer, api: str, target: str) -> list[Sent]:
    """What `target` was shown through `api`, in order."""
    return [s for s in peer.sent if s.api == api and s.target == target]
