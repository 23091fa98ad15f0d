"""What the DingTalk alert tests share: the group chat alerts are routed to and the card space it is."""

from __future__ import annotations

GROUP = "cidAlertsProd01"
SPACE = f"dtv1.card//IM_GROUP.{GROUP}"
CREATE = "/v1.0/card/instances/createAndDeliver"
UPDATE = "/v1.0/card/instances"
