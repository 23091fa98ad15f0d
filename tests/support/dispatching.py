"""A runtime for dispatcher tests: a policy file, the fixture operations and a recording Slack adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.runtime import Runtime, build_runtime
from kobot.settings import Settings
from tests.bot.recording_adapter import RecordingAdapter
from tests.workers.jobkit import FIXTURE_PLAYBOOKS


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
