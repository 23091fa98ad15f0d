"""A create's dry run as a job, with a real RQ worker and ansible-runner: entry playbooks that record
whether Ansible ran them in check mode (local connection), and on vSphere the real Terraform engine
planning the test-only `testhosts` module. The real playbooks on real hosts, from Slack to the final
message: tests/playbooks/test_install_stages_on_test_hosts.py."""

from __future__ import annotations

import json
from pathlib import Path

from redis import Redis

from kobot import keys
from kobot.clusters import ClusterRecord, ClusterState, ClusterStore
from kobot.job_records import JobKind, JobState
from kobot.settings_ip_pools import IpPoolConfig
from tests.workers.jobkit import job_service, job_settings, run_queue
from tests.workers.test_day2_jobs_peer import submit
from workers import playbook_names
from workers.cluster_create import INSTALL_STAGES
from workers.ippool import IpPools

REPO = Path(__file__).resolve().parents[2]
RECORDER = """---
- name: Record how kobot ran {name}
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write this run down
      ansible.builtin.copy:
        dest: "{{{{ record_dir }}}}/{name}.json"
        content: "{{{{ {{'check_mode': ansible_check_mode, 'vrrp': vrrp | length}} | to_json }}}}"
        mode: "0600"
      vars:
        vrrp: "{{{{ lookup('ansible.builtin.env', 'KOBOT_KEEPALIVED_AUTH') }}}}"
      check_mode: false
    - name: Install {name}'s part
      ansible.builtin.copy:
        dest: "{{{{ record_dir }}}}/{name}.installed"
        content: "installed"
        mode: "0600"
"""
"""The first task writes even in check mode (what it records is the point); the second is a change a
real run makes and a check-mode run only reports."""
CREATE_PLAYBOOKS = (playbook_names.PREFLIGHT, *(playbook for _, _, playbook in INSTALL_STAGES))
HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def _recorders(tmp_path: Path) -> Path:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    for playbook in CREATE_PLAYBOOKS:
        (folder / playbook).write_text(RECORDER.format(name=playbook.removesuffix(".yml")), encoding="utf-8")
    return folder


def test_dry_run_runs_preflight_for_real_then_check_mode_and_a_failure_keeps_the_record_fixture_playbooks(
    redis_url: str, redis: Redis, data_dir: Path, tmp_path: Path
) -> None:
    """Preflight runs for real, the stages in check mode; the first stage fails here, and the failed
    rehearsal leaves the earlier failed create's record of that name as it was (no hooks run)."""
    record_dir = data_dir / "played"
    record_dir.mkdir()
    playbooks = _recorders(tmp_path)
    failing = (
        "    - name: Set the kernel modules\n      ansible.builtin.fail:\n        msg: no modules here\n"
    )
    with (playbooks / playbook_names.BASE_OS).open("a") as base_os:
        base_os.write(failing)
    settings = job_settings(
        redis_url,
        data_dir,
        playbooks_dir=playbooks,
        plugins=[],
        allow_local_hosts=True,
        ansible_extra_vars={"record_dir": str(record_dir)},
    )
    service = job_service(settings, redis)
    ClusterStore(redis).save(ClusterRecord(name="demo", state=ClusterState.FAILED, creating_job="7"))

    job_id = submit(service, JobKind.CLUSTER_CREATE, masters=1, workers=2, hosts=HOSTS, dry_run=True)
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.FAILED and done.failed_task == "Set the kernel modules", done.error
    assert [s.title for s in done.steps][:6] == [
        "Plan nodes (dry run: nothing recorded)",
        "Render inventory",
        "Wait for SSH",
        "Preflight checks",
        "Base OS (check mode)",
        "Container runtime (check mode)",
    ]
    played = {path.stem: json.loads(path.read_text())["check_mode"] for path in record_dir.glob("*.json")}
    assert played == {"preflight": False, "base_os": True}
    installed = sorted(path.name for path in record_dir.glob("*.installed"))
    assert installed == ["preflight.installed"], "only preflight ran for real"
    kept = ClusterStore(redis).require("demo")
    assert (kept.state, kept.creating_job, kept.nodes, kept.history) == (ClusterState.FAILED, "7", [], [])
    assert not redis.exists(keys.cluster_secrets("demo"))


def test_dry_run_on_vsphere_only_plans_with_terraform_and_reserves_nothing(
    redis_url: str, redis: Redis, data_dir: Path, tmp_path: Path
) -> None:
    modules = tmp_path / "terraform" / "modules"
    modules.mkdir(parents=True)
    (modules / "vsphere").symlink_to(REPO / "terraform" / "modules" / "testhosts", target_is_directory=True)
    settings = job_settings(
        redis_url,
        data_dir,
        plugins=[],
        terraform_dir=tmp_path / "terraform",
    )
    service = job_service(settings, redis)
    # TEST-NET addresses: the testhosts module creates nothing and nothing dials them
    IpPools(redis).configure(
        pool=IpPoolConfig(zone="lab", cidr="192.0.2.0/24", first="192.0.2.10", last="192.0.2.20")
    )

    job_id = submit(service, JobKind.CLUSTER_CREATE, masters=1, workers=2, provider="vsphere", dry_run=True)
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert [s.name for s in done.steps] == ["plan", "provision"]
    summary = done.summary or ""
    assert "a real run would have Terraform do: 3 to add, 0 to change, 0 to destroy" in summary, summary
    assert "the install stages were not rehearsed" in summary
    assert ClusterStore(redis).get("demo") is None
    assert not (data_dir / "terraform" / "demo").exists(), "the cluster's workspace is never made"
    assert list((data_dir / "terraform" / "previews").iterdir()) == [], "nor is a throwaway one left"
    assert IpPools(redis).reserved(cluster="demo") == {}, "no address is reserved"
