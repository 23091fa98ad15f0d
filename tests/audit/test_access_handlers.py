"""`whoami` and `audit` in chat: parsed by the real parser, run on a real runtime over Valkey."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

import commands.handlers
from bot.runtime import Runtime, build_runtime
from commands.context import CommandContext, Reply
from commands.parser import parse
from commands.registry import spec_of, typed_args
from kobot.conversations import Conversation, Identity
from kobot.settings import Settings

commands.handlers.load_all()  # attaches kobot's own handlers

POLICY = """
people:
  alice:
    identities: ["slack:UALICE", "dingtalk:alice01"]
    groups: [sre]
bindings:
  - {role: admin, subjects: ["person:alice"], clusters: ["prod-*"]}
  - {role: operator, subjects: ["group:sre"]}
  - {role: viewer, subjects: ["*"]}
channels:
  "slack:COPS": {cluster: prod-eu}
"""

ALICE = Identity(platform="slack", user_id="UALICE", display_name="alice")
MALLORY = Identity(platform="slack", user_id="UMAL", display_name="mallory")
OPS = Conversation(platform="slack", conversation_id="COPS")
DM = Conversation(platform="slack", conversation_id="DALICE", is_direct=True)


@pytest.fixture
def runtime(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    settings = Settings(
        redis_url=SecretStr(redis_url), data_dir=data_dir, policy_file=policy, secret_key=SecretStr("k" * 32)
    )
    built = build_runtime(settings)
    yield built
    built.close()


async def _run(runtime: Runtime, who: Identity, text: str, *, where: Conversation = OPS) -> str:
    parsed = parse(text, default_cluster=runtime.policy.default_cluster(conversation=where))
    handler = spec_of(parsed).handler
    assert handler is not None
    ctx = CommandContext(runtime=runtime, identity=who, conversation=where, parsed=parsed, text=text)
    result = await handler(ctx, typed_args(parsed))
    assert isinstance(result, Reply)
    return result.message.to_text()


async def test_whoami_shows_identity_person_groups_roles(runtime: Runtime) -> None:
    text = await _run(runtime, ALICE, "whoami")
    assert "Identity: slack:UALICE" in text
    assert "Person: alice" in text
    assert "Also: dingtalk:alice01" in text
    assert "Groups: sre" in text
    assert "Roles on prod-eu: admin, operator, viewer" in text
    chinese = await _run(runtime, MALLORY, "我是谁")
    assert "Person: —" in chinese and "Roles on prod-eu: viewer" in chinese


async def test_audit_in_chat_scoped_to_clusters_the_admin_may_audit(runtime: Runtime) -> None:
    log = runtime.audit
    log.record(who=MALLORY, where=OPS, action="command.refused", cluster="prod-eu",
               detail={"text": "delete cluster prod-eu"}, result="missing cluster.delete")  # fmt: skip
    log.record(who=ALICE, where=OPS, action="command", cluster="staging",
               detail={"text": "scale workers 3 on staging"}, result="queued")  # fmt: skip
    text = await _run(runtime, ALICE, "audit", where=DM)
    assert text.startswith("ℹ️ Audit\n")
    assert "mallory command.refused on prod-eu → missing cluster.delete: delete cluster prod-eu" in text
    assert "staging" not in text, "alice is admin on prod-* only"
    since = await _run(runtime, ALICE, "audit prod-eu 1h")
    assert "Audit on prod-eu since 1h" in since and "delete cluster prod-eu" in since
    empty = await _run(runtime, ALICE, "audit prod-us")
    assert "Nothing recorded." in empty
