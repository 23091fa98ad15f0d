"""The template-injection attack of issue 9, through the real entry points and the real playbook path.

A host address with an IPv6 zone id carried a Jinja template into the inventory, and ansible-core
rendered it on the worker. Now the command is refused, a record edited in the store to carry a
template fails the job before any playbook runs, and, should a value ever slip past every check,
the play sees the literal text: inventory and extra-var values from records are written `!unsafe`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from commands.parser import parse
from kobot import automation_values
from kobot.clusters import ClusterRecord, ClusterState, ClusterStore, NodeRecord
from kobot.errors import CommandError
from kobot.job_records import JobKind, JobState, StepState
from kobot.settings import Settings
from tests.workers.jobkit import job_service, job_settings, run_queue, spec

ATTACK = (
    "create cluster dev-x masters=1 workers=0 hosts=\"fe80::1%{{lookup(*(['pipe']+['id>kobot-pwned']))}}\""
)

SHOW_WHAT_ANSIBLE_SAW = """---
- name: Write down what the play sees
  hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: Every value kobot wrote from the record, as the play reads it
      ansible.builtin.copy:
        dest: "{{ record_dir }}/{{ inventory_hostname }}.json"
        content: "{{ seen | to_json }}"
        mode: "0600"
      vars:
        seen:
          ansible_host: "{{ ansible_host }}"
          ip: "{{ ip }}"
          kube_version: "{{ kube_version }}"
          etcd_backup_dest: "{{ etcd_backup_dest }}"
"""
"""A stand-in for etcd_backup.yml (the real one reaches etcd on the nodes): it reads what a real play
of the backup job reads, the node's address and the cluster variables, on this machine."""


def marker_template(marker: Path) -> str:
    return f"{{{{ lookup('pipe', 'id > {marker}') }}}}"


@pytest.fixture
def playbooks(tmp_path: Path) -> Path:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "etcd_backup.yml").write_text(SHOW_WHAT_ANSIBLE_SAW)
    return folder


def settings_for(redis_url: str, data_dir: Path, playbooks: Path, *, allow_local_hosts: bool) -> Settings:
    record_dir = data_dir / "seen"
    record_dir.mkdir(exist_ok=True)
    return job_settings(
        redis_url,
        data_dir,
        playbooks_dir=playbooks,
        plugins=[],
        allow_local_hosts=allow_local_hosts,
        ansible_extra_vars={"record_dir": str(record_dir)},
    )


def edit_record_in_store(redis: Redis, *, address: str, version: str = "1.31.4") -> None:
    """What someone with write access to Redis (or an older kobot) could leave behind."""
    record = ClusterRecord(
        name="dev-x",
        state=ClusterState.RUNNING,
        spec={"version": version, "masters": 1, "workers": 0},
        nodes=[NodeRecord(name="dev-x-master-1", role="master", address=address, state="ready")],
    )
    ClusterStore(redis).save(record)
    raw = json.loads(redis.get("kobot:cluster:dev-x:record") or b"{}")
    assert raw["nodes"][0]["address"] == address, "the record in the store carries the template"


def test_the_reported_command_is_refused_with_a_clear_message() -> None:
    with pytest.raises(CommandError) as caught:
        parse(ATTACK)
    assert "zone id" in caught.value.user_message
    assert "give the address alone" in caught.value.user_message


@pytest.mark.parametrize(
    "host",
    [
        "fe80::1%eth0",
        "fe80::1%{{7*7}}",
        "10.0.0.1{{ lookup('pipe','id') }}",
        "{% raw %}x{% endraw %}",
        "node-1.example.com -o ProxyCommand=id",
        "[::1]",
        "127.1",
        "0x7f000001",
    ],
)
def test_hosts_with_templates_options_or_loopback_are_refused_when_parsed(host: str) -> None:
    with pytest.raises(CommandError):
        parse(f'create cluster dev-x masters=1 workers=0 hosts="{host}"')
    with pytest.raises(CommandError):
        parse(f'add node dev-x host="{host}"')


def test_a_template_edited_into_the_record_fails_the_job_before_any_play(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "kobot-pwned"
    settings = settings_for(redis_url, data_dir, playbooks, allow_local_hosts=False)
    service = job_service(settings, redis)
    edit_record_in_store(redis, address=f"fe80::1%{marker_template(marker)}")

    job = service.submit(spec(service, kind=JobKind.ETCD_BACKUP.value, cluster="dev-x"))
    run_queue(service)

    done = service.records.require(job.job_id)
    assert done.state is JobState.FAILED
    inventory = next(step for step in done.steps if step.name == "inventory")
    assert inventory.state is StepState.FAILED
    assert inventory.error is not None and "zone id" in inventory.error
    assert not marker.exists()
    assert not list((data_dir / "seen").iterdir()), "no play ran"


def _without_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if a check had been forgotten: the tag alone must keep the value inert."""
    monkeypatch.setattr(automation_values, "host_address", lambda value, allow_local=False: value)
    monkeypatch.setattr(automation_values, "dns_label", lambda value, what: value)
    monkeypatch.setattr(automation_values, "semver", lambda value, what="version": value)
    monkeypatch.setattr(automation_values, "check_hosts_resolved", lambda hosts, allow_local=False: None)


@pytest.mark.parametrize("tagged", [True, False], ids=["unsafe-tagged", "control-without-tag"])
def test_a_template_that_slips_past_every_check_is_inert_in_the_real_play(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    playbooks: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tagged: bool,
) -> None:
    """The control run drops the `!unsafe` tag too and shows the play would have run the lookup: so
    the tagged run proves the tag, not an accident of the fixture, keeps the template inert."""
    _without_checks(monkeypatch)
    if not tagged:
        monkeypatch.setattr(automation_values, "untrusted", lambda value: value)
    address_marker, version_marker = tmp_path / "via-address", tmp_path / "via-cluster-var"
    address = f"10.0.0.1{marker_template(address_marker)}"
    version = marker_template(version_marker)
    settings = settings_for(redis_url, data_dir, playbooks, allow_local_hosts=False)
    service = job_service(settings, redis)
    edit_record_in_store(redis, address=address, version=version)

    job = service.submit(spec(service, kind=JobKind.ETCD_BACKUP.value, cluster="dev-x"))
    run_queue(service)

    if not tagged:
        # both: the control must drop the tag of the host values and of the cluster variables alike
        assert address_marker.exists(), "the control run evaluates the address's template"
        assert version_marker.exists(), "the control run evaluates the cluster variable's template"
        return
    assert not address_marker.exists() and not version_marker.exists()
    seen: dict[str, Any] = json.loads((data_dir / "seen" / "dev-x-master-1.json").read_text())
    assert seen["ansible_host"] == address and seen["ip"] == address
    assert seen["kube_version"] == version
    assert seen["etcd_backup_dest"].endswith(".db")
    snapshot = next(s for s in service.records.require(job.job_id).steps if s.name == "snapshot")
    assert snapshot.state is StepState.FAILED, "the stand-in play fetches no snapshot; its run is what counts"


def test_a_retry_renders_its_inventory_again_instead_of_trusting_the_file_on_disk(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, tmp_path: Path
) -> None:
    """An inventory left in the job's directory by an earlier attempt (or an older kobot, before values
    were tagged) is never used as it is: every attempt writes it again from the checked record."""
    marker = tmp_path / "via-stale-inventory"
    settings = settings_for(redis_url, data_dir, playbooks, allow_local_hosts=True)
    service = job_service(settings, redis)
    edit_record_in_store(redis, address="127.0.0.1")
    job = service.submit(spec(service, kind=JobKind.ETCD_BACKUP.value, cluster="dev-x"))
    run_queue(service)
    first = service.records.require(job.job_id)
    assert first.state is JobState.FAILED, "the stand-in play fetches no snapshot"
    inventory_step, snapshot_step, *later = first.steps
    assert (inventory_step.state, snapshot_step.state) == (StepState.SUCCEEDED, StepState.FAILED)
    assert all(step.state is StepState.PENDING for step in later), "the retry resumes at the snapshot"

    inventory = settings.job_artifacts_dir() / job.job_id / "inventory.yml"
    untagged = inventory.read_text().replace("!unsafe ", "")
    stale = untagged.replace('ansible_host: "127.0.0.1"', f'ansible_host: "{marker_template(marker)}"', 1)
    assert stale != untagged, "the stale file carries the template"
    inventory.write_text(stale)

    service.retry(job.job_id)
    run_queue(service)

    assert not marker.exists(), "the stale inventory's template never ran"
    seen: dict[str, Any] = json.loads((data_dir / "seen" / "dev-x-master-1.json").read_text())
    assert seen["ansible_host"] == "127.0.0.1"
    assert "!unsafe" in inventory.read_text(), "the file was written again, tagged"
