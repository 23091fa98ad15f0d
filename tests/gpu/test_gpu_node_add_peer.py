"""`add node --gpu` through JobService and a real RQ worker, against the Kubernetes API peer: the new
worker is recorded with its GPU and the inventory node_add plays with says `gpu: true` for it alone,
which the nvidia_driver and containerd roles key on."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis

from kobot.clusters import ClusterStore
from kobot.job_records import JobKind, JobState
from kobot.store import secret_key
from tests.peers.kubernetes import KubernetesApiPeer
from tests.workers.jobkit import job_service, run_queue
from tests.workers.recorders import played, recording_settings, write_recorders
from tests.workers.test_ansible_contract_peer import _cluster
from tests.workers.test_day2_jobs_peer import peer, submit

__all__ = ["peer"]

RECORDER = """---
- name: Record which hosts node_add sees with a GPU
  hosts: localhost
  connection: local
  gather_facts: false
  tags: [always]
  tasks:
    - name: Write them down
      ansible.builtin.copy:
        dest: "{{ record_dir }}/{name}.json"
        content: "{{ gpu_hosts | to_json }}"
        mode: "0600"
      vars:
        gpu_hosts: >-
          {{ groups['all'] | map('extract', hostvars) | selectattr('gpu', 'defined') | selectattr('gpu')
             | map(attribute='inventory_hostname') | list }}
"""


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    return write_recorders(tmp_path / "playbooks", ["node_add.yml"], template=RECORDER)


def test_add_node_gpu_reaches_the_record_and_the_inventory_fixture_playbooks_peer(
    redis_url: str, redis: Redis, data_dir: Path, recorder: Path, peer: KubernetesApiPeer
) -> None:
    settings, record_dir = recording_settings(redis_url, data_dir, playbooks_dir=recorder)
    service = job_service(settings, redis)
    _cluster(redis, secret_key(settings), peer, data_dir)
    peer.add_node("demo-worker-2", role="worker")

    job_id = submit(service, JobKind.NODE_ADD, role="worker", host="127.0.0.12", gpu=True)
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert played(record_dir, "node_add.yml") == ["demo-worker-2"]
    record = ClusterStore(redis).require("demo")
    assert [n.name for n in record.nodes if n.gpu] == ["demo-worker-2"]
    assert record.spec.gpu_workers == 1 and record.spec.workers == 2
