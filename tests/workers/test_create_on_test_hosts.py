"""`create cluster` through the dispatcher and a real RQ worker against real SSH test hosts
(network namespaces running sshd in a Debian 12 root): plan, inventory, wait-for-SSH and the real
preflight playbook over SSH. The test hosts have no systemd, so preflight stops the job there,
naming each host's problem; the install stages after it are exercised in tests/playbooks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import SecretStr

from bot.dispatcher import Dispatcher
from bot.runtime import build_runtime
from kobot.clusters import ClusterState
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.job_records import JobEventType, JobState, StepState
from kobot.settings import Settings
from tests.bot.recording_adapter import RecordingAdapter
from tests.hosts.lab import LabHost
from tests.workers.jobkit import job_service, run_queue
from workers.events import read_job_events

OPS = Identity(platform="terminal", user_id="ops")
HERE = Conversation(platform="terminal", conversation_id="local")


async def test_create_cluster_on_test_hosts_runs_real_steps_up_to_preflight(
    lab_hosts: list[LabHost], redis_url: str, data_dir: Path
) -> None:
    key = lab_hosts[0].key_path
    settings = Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        in_process_worker=False,
        ssh_user=lab_hosts[0].user,
        ssh_key_file=key,
        ansible_extra_vars={"preflight_extra_supported_os": [{"distribution": "Debian", "versions": ["12"]}]},
    )
    runtime = build_runtime(settings)
    try:
        adapter = RecordingAdapter("terminal")
        runtime.adapters["terminal"] = adapter
        hosts = ",".join(h.address for h in lab_hosts)
        await Dispatcher(runtime=runtime).on_message(
            InboundMessage(
                identity=OPS, conversation=HERE, text=f"create cluster lab masters=1 workers=2 hosts={hosts}"
            )
        )
        record = runtime.jobs.records.require("1")
        assert [s.name for s in record.steps][:5] == ["plan", "inventory", "wait_ssh", "preflight", "base_os"]
        await asyncio.to_thread(run_queue, job_service(settings, runtime.redis))

        done = runtime.jobs.records.require("1")
        states = {s.name: s.state for s in done.steps}
        assert states["plan"] is StepState.SUCCEEDED
        assert states["inventory"] is StepState.SUCCEEDED
        assert states["wait_ssh"] is StepState.SUCCEEDED
        assert states["preflight"] is StepState.FAILED and states["base_os"] is StepState.PENDING
        assert done.state is JobState.FAILED
        error = done.error or ""
        assert "no time sync service running" in error
        assert "unsupported OS" not in error, "the site-wide extra OS reached the play"
        assert done.failed_host in {"lab-master-1", "lab-worker-1", "lab-worker-2"}
        hosts_seen = {e.host for e in read_job_events(runtime.redis, "1") if e.type is JobEventType.TASK_OK}
        assert {"lab-master-1", "lab-worker-1", "lab-worker-2"} <= hosts_seen, "every host ran tasks over SSH"

        cluster = runtime.clusters.require("lab")
        assert cluster.state is ClusterState.FAILED
        assert [(n.name, n.address) for n in cluster.nodes] == [
            ("lab-master-1", lab_hosts[0].address),
            ("lab-worker-1", lab_hosts[1].address),
            ("lab-worker-2", lab_hosts[2].address),
        ]
        inventory = (data_dir / "jobs" / "1" / "inventory.yml").read_text()
        assert str(key) in inventory and "PRIVATE KEY" not in inventory
    finally:
        runtime.close()
