"""Job operations are registered after `kobot serve` answers, not before: building the app as serve does
(handlers later, the in-process worker built) registers none of them (the bundle builder, the addon and
cluster steps they import cost about 70 ms of the start), and a job submitted first registers its own.
Each case runs in a fresh interpreter, since this test process has long registered them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support.fresh_python import run_fresh
from tests.workers.jobkit import FIXTURE_PLAYBOOKS

AS_SERVE_BUILDS_IT = """
import json
from bot.app import create_app
from bot.runtime import build_runtime
from kobot.conversations import Conversation, Identity
from kobot.job_records import JobKind, JobSpec
from kobot.settings import load_settings
from workers.operations import OPERATIONS, operation_for

settings = load_settings()
app = create_app(settings, runtime=build_runtime(settings, handlers=False))
before = sorted(OPERATIONS)
spec = JobSpec(
    job_id="1",
    kind=JobKind.CLUSTER_CREATE.value,
    cluster="c1",
    requested_by=Identity(platform="terminal", user_id="u", display_name="u"),
    reply_to=Conversation(platform="terminal", conversation_id="cli"),
)
first_step = operation_for(spec).steps[0].name
app.state.runtime.close()
print(json.dumps({"before": before, "worker": app.state.supervisor.worker is not None, "step": first_step}))
"""


def test_the_app_registers_no_operation_until_a_job_needs_one(redis_url: str, data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOBOT_")}
    env.update(
        {
            "KOBOT_REDIS_URL": redis_url,
            "KOBOT_DATA_DIR": str(data_dir),
            "KOBOT_PLAYBOOKS_DIR": str(FIXTURE_PLAYBOOKS),
            "KOBOT_LOG_LEVEL": "WARNING",
        }
    )
    seen = json.loads(run_fresh(AS_SERVE_BUILDS_IT, env=env).splitlines()[-1])
    assert seen["worker"], "the in-process worker was not built: the case proves nothing about it"
    assert seen["before"] == []
    assert seen["step"]
