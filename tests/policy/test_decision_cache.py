"""Authorization answers are reused while the same policy is in force, and never past a reload."""

from __future__ import annotations

from pathlib import Path

from redis import Redis

from bot.policy import PolicyStore
from commands.catalog import load_commands
from kobot.access import AuthDecision
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


def test_allowed_commands_agree_with_asking_each_command(redis: Redis) -> None:
    commands = load_commands()  # registers every command, whatever ran before this test
    store = PolicyStore(path=Path(__file__).with_name("sample_policy.yaml"), redis=redis)
    people = [
        ALICE,
        Identity(platform="slack", user_id="U9MAL"),
        Identity(platform="slack", user_id="U3CAROL"),
    ]
    for identity in people:
        for cluster in ("prod-eu", "dev", None):
            allowed = store.allowed_commands(identity=identity, conversation=OPS, cluster=cluster)
            one_by_one = {
                spec.id
                for spec in commands.values()
                if store.can_run(
                    identity=identity, conversation=OPS, command_id=spec.id, risk=spec.risk, cluster=cluster
                )
            }
            assert allowed == one_by_one, (identity.key, cluster)
            assert allowed, "every sample user may run something"
            assert store.allowed_commands(identity=identity, conversation=OPS, cluster=cluster) is allowed
    assert store.allowed_commands(
        identity=ALICE, conversation=OPS, cluster="prod-eu"
    ) != store.allowed_commands(
        identity=Identity(platform="slack", user_id="U9MAL"), conversation=OPS, cluster="prod-eu"
    )


def test_allowed_commands_follow_a_policy_reload_at_once(redis: Redis, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(OPERATOR)
    store = PolicyStore(path=path, redis=redis)
    assert "workers.scale" in store.allowed_commands(identity=ALICE, conversation=OPS, cluster="prod")
    path.write_text(VIEWER_ONLY + "\n# revoked\n")
    assert store.reload_if_changed()
    assert "workers.scale" not in store.allowed_commands(identity=ALICE, conversation=OPS, cluster="prod")


def test_a_remembered_decision_is_given_without_deciding_and_never_past_a_due_reload_check(
    redis: Redis, tmp_path: Path
) -> None:
    """The event loop asks `remembered_decision` before paying a thread for `authorize`: it answers only
    what `authorize` remembered, and nothing once the policy file is due a look (it may have changed)."""
    path = tmp_path / "policy.yaml"
    path.write_text(OPERATOR)

    def remembered(store: PolicyStore, risk: Risk = Risk.CHANGE) -> AuthDecision | None:
        return store.remembered_decision(
            identity=ALICE, conversation=OPS, command_id="workers.scale", risk=risk, cluster="prod"
        )

    store = PolicyStore(path=path, redis=redis, reload_check_seconds=3600)
    assert remembered(store) is None
    decided = store.authorize(
        identity=ALICE, conversation=OPS, command_id="workers.scale", risk=Risk.CHANGE, cluster="prod"
    )
    assert decided.allowed and remembered(store) is decided
    assert remembered(store, Risk.READ) is None
    due = PolicyStore(path=path, redis=redis, reload_check_seconds=0)
    assert _scale(due)
    path.write_text(VIEWER_ONLY)
    assert remembered(due) is None
    assert not _scale(due)
