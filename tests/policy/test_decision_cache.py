"""Authorization answers are reused while the same policy is in force, and never past a reload."""

from __future__ import annotations

from pathlib import Path

from redis import Redis

from bot.policy import PolicyStore
from kobot.conversations import Conversation, Identity
from kobot.risk import Risk

ALICE = Identity(platform="slack", user_id="U1ALICE")
OPS = Conversation(platform="slack", conversation_id="C0OPS")
ELSEWHERE = Conversation(platform="slack", conversation_id="C0OTHER")

OPERATOR = """
version: 1
bindings:
  - role: operator
    subjects: ["slack:U1ALICE"]
"""

VIEWER_ONLY = """
version: 1
bindings:
  - role: viewer
    subjects: ["slack:U1ALICE"]
"""


def _scale(store: PolicyStore, where: Conversation = OPS) -> bool:
    return store.authorize(
        identity=ALICE, conversation=where, command_id="workers.scale", risk=Risk.CHANGE, cluster="prod"
    ).allowed


def test_a_repeated_question_is_answered_from_memory(redis: Redis, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(OPERATOR)
    store = PolicyStore(path=path, redis=redis)
    first = store.authorize(
        identity=ALICE, conversation=OPS, command_id="workers.scale", risk=Risk.CHANGE, cluster="prod"
    )
    again = store.authorize(
        identity=ALICE, conversation=OPS, command_id="workers.scale", risk=Risk.CHANGE, cluster="prod"
    )
    assert first.allowed and again is first


def test_a_reloaded_policy_applies_to_the_next_question_at_once(redis: Redis, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(OPERATOR)
    store = PolicyStore(path=path, redis=redis)
    assert _scale(store) and _scale(store, ELSEWHERE)
    path.write_text(VIEWER_ONLY + "\n# revoked\n")
    assert store.reload_if_changed()
    assert not _scale(store)
    assert not _scale(store, ELSEWHERE)
