"""A runtime for dispatcher tests: a policy file, the fixture operations and a recording Slack adapter; the
people and the channel those tests speak as, their policies, and what kobot answers them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from alerts.service import AlertService
from bot.dispatcher import Dispatcher
from bot.runtime import Runtime, build_runtime
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.messages import OutgoingMessage
from kobot.settings import Settings
from tests.bot.recording_adapter import RecordingAdapter
from tests.workers.jobkit import FIXTURE_PLAYBOOKS

ROOM = Conversation(platform="slack", conversation_id="C0OPS")
"""The channel the dispatcher tests speak in."""
OPERATOR = Identity(platform="slack", user_id="U7", display_name="Olu")
ADMIN = Identity(platform="slack", user_id="U1", display_name="Ada")
OPERATOR_ON_PROD = """
version: 1
bindings:
  - role: operator
    subjects: ["slack:U7"]
    clusters: ["prod"]
"""
"""Policy: OPERATOR operates the cluster prod; nobody else may do anything."""
OPERATOR_ON_PROD_ADMIN_EVERYWHERE = (
    OPERATOR_ON_PROD
    + """  - role: admin
    subjects: ["slack:U1"]
"""
)
"""Policy: OPERATOR operates prod, ADMIN administers every cluster (and approves)."""


def dispatching_runtime(
    *, redis_url: str, data_dir: Path, policy: str, policy_dir: Path, **settings: Any
) -> Runtime:
    """Built on the real store with `policy` (YAML text) written into `policy_dir`; jobs are queued, not
    run (no in-process worker), and replies land in `adapters["slack"]`; `settings` adds or overrides
    settings (backup targets, say). The caller closes it."""
    policy_file = policy_dir / "policy.yaml"
    policy_file.write_text(policy)
    values: dict[str, Any] = {
        "redis_url": SecretStr(redis_url),
        "data_dir": data_dir,
        "playbooks_dir": FIXTURE_PLAYBOOKS,
        "plugins": ["tests.fixtures.operations"],
        "policy_file": policy_file,
        "in_process_worker": False,
    }
    runtime = build_runtime(Settings(**{**values, **settings}))
    runtime.adapters["slack"] = RecordingAdapter("slack")
    return runtime


async def reply_to(
    runtime: Runtime, text: str, *, who: Identity = OPERATOR, where: Conversation = ROOM
) -> OutgoingMessage:
    """The last message kobot sends on the recording Slack adapter after `who` says `text` in `where`."""
    await Dispatcher(runtime=runtime).on_message(InboundMessage(identity=who, conversation=where, text=text))
    adapter = runtime.adapters["slack"]
    assert isinstance(adapter, RecordingAdapter)
    return adapter.deliveries[-1].message


def with_recorded_terminal_and_alerts(runtime: Runtime) -> Runtime:
    """`runtime` with a recording terminal adapter and the alert service the bot's app builds (not started:
    the caller starts and stops it)."""
    runtime.adapters["terminal"] = RecordingAdapter("terminal")
    runtime.alerts = AlertService(
        settings=runtime.settings,
        store_url=runtime.store.url,
        adapters=runtime.adapters,
        secret=runtime.secret,
        policy=runtime.policy,
        audit=runtime.audit,
    )
    return runtime
