"""`create cluster ... provider=vsphere` end to end, with the test-only `testhosts` Terraform module
standing in for vSphere (the real engine runs it; it creates nothing) and the SSH test hosts standing
in for the machines it would have created: addresses from kobot's IP pool, `plan cluster` showing the
Terraform plan, then plan → provision (Terraform apply, outputs read) → inventory → SSH wait → the real
preflight over SSH, which stops the job on the systemd-less test hosts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import SecretStr

from bot.dispatcher import Dispatcher
from bot.runtime import build_runtime
from commands.context import CommandContext, SubmitJob
from commands.parser import parse
from commands.registry import spec_of, typed_args
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.job_records import JobState, StepState
from kobot.settings import Settings
from kobot.settings_ip_pools import IpPoolConfig
from tests.bot.recording_adapter import RecordingAdapter
from tests.hosts.lab import LabHost
from tests.workers.jobkit import job_service, run_queue

REPO = Path(__file__).resolve().parents[2]
OPS = Identity(platform="terminal", user_id="ops")
HERE = Conversation(platform="terminal", conversation_id="local")


def _terraform_dir_with_testhosts_as_vsphere(tmp_path: Path) -> Path:
    modules = tmp_path / "terraform" / "modules"
    modules.mkdir(parents=True)
    (modules / "vsphere").symlink_to(REPO / "terraform" / "modules" / "testhosts", target_is_directory=True)
    return tmp_path / "terraform"


async def test_create_on_vsphere_with_testhosts_module_standing_in_then_ssh_test_hosts(
    lab_hosts: list[LabHost], redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    addresses = [h.address for h in lab_hosts]
    network = addresses[0].rsplit(".", 1)[0]
    settings = Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        in_process_worker=False,
        ssh_user=lab_hosts[0].user,
        ssh_key_file=lab_hosts[0].key_path,
        terraform_dir=_terraform_dir_with_testhosts_as_vsphere(tmp_path),
        ip_pools=[IpPoolConfig(zone="lab", cidr=f"{network}.0/24", first=addresses[0], last=addresses[-1])],
        ansible_extra_vars={"preflight_extra_supported_os": [{"distribution": "Debian", "versions": ["12"]}]},
    )
    runtime = build_runtime(settings)
    try:
        adapter = RecordingAdapter("terminal")
        runtime.adapters["terminal"] = adapter
        dispatcher = Dispatcher(runtime=runtime)

        await dispatcher.on_message(
            InboundMessage(
                identity=OPS, conversation=HERE, text="plan cluster lab masters=1 workers=2 provider=vsphere"
            )
        )
        shown = adapter.deliveries[-1].message
        fields = {f.label: f.value for f in shown.fields}
        assert fields["Terraform"].startswith("3 to add, 0 to change, 0 to destroy"), fields
        assert all(a in (shown.body or "") for a in addresses), "the plan shows every node's address"

        text = "create cluster lab masters=1 workers=2 provider=vsphere"
        parsed = parse(text)
        handler = spec_of(parsed).handler
        assert handler is not None
        asked = await handler(
            CommandContext(runtime=runtime, identity=OPS, conversation=HERE, parsed=parsed, text=text),
            typed_args(parsed),
        )
        assert isinstance(asked, SubmitJob), asked
        assert any(line.startswith("terraform: 3 to add") for line in asked.plan_lines), (
            "the approval shows it"
        )
        assert not (data_dir / "terraform" / "lab").exists(), "previews never touch the cluster's workspace"
        assert list((data_dir / "terraform" / "previews").iterdir()) == [], "nor leave one of their own"

        await dispatcher.on_message(
            InboundMessage(
                identity=OPS,
                conversation=HERE,
                text="create cluster lab masters=1 workers=2 provider=vsphere",
            )
        )
        record = runtime.jobs.records.require("1")
        assert [s.name for s in record.steps][:5] == [
            "plan",
            "provision",
            "inventory",
            "wait_ssh",
            "preflight",
        ]
        await asyncio.to_thread(run_queue, job_service(settings, runtime.redis))

        done = runtime.jobs.records.require("1")
        states = {s.name: s.state for s in done.steps}
        for step in ("plan", "provision", "inventory", "wait_ssh"):
            assert states[step] is StepState.SUCCEEDED, (step, done.error)
        assert states["preflight"] is StepState.FAILED and done.state is JobState.FAILED
        assert "no time sync service running" in (done.error or "")

        cluster = runtime.clusters.require("lab")
        assert sorted(n.address for n in cluster.nodes) == sorted(addresses)
        assert {n.state for n in cluster.nodes} == {"provisioned"}
        assert (data_dir / "terraform" / "lab").is_dir()
    finally:
        runtime.close()
