"""SSH access to an imported cluster, against real sshd on the SSH test hosts and the Kubernetes API peer:
the peer's nodes report the test hosts' addresses as their InternalIPs, so what the import read is what
kobot logs in to. Import with a key (REST and CLI), a wrong key refused naming every node, and then a job
that only reads or renews runs there with the stored key while one that would reconfigure it refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis import Redis

from bot.api_clusters import IMPORT_PATH, SSH_PATH
from bot.app import create_app
from bot.runtime import Runtime
from kobot import automation_yaml, keys
from kobot.job_records import JobKind, JobState, StepState
from kobot.settings import Settings
from kobot.store import secret_key
from tests.cluster_import.test_import_peer import ADMIN, _settings
from tests.hosts.lab import LabHost
from tests.peers.kubernetes import KubernetesApiPeer
from tests.support.asgi import serve
from tests.workers.jobkit import job_service, run_queue, spec
from workers.attempt_keys import ATTEMPT_KEY_FILE
from workers.cluster_import_ssh import SSH_KEY_SECRET, known_hosts_path
from workers.cluster_inputs import INVENTORY_FILE
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets

NODES = ("legacy-cp-1", "legacy-w-1", "legacy-w-2")

CERT_RENEW_STAND_IN = """---
# Stands in for cluster_cert_renew.yml (which needs kubeadm): logs in over SSH to every master as the
# inventory says, puts a certificate there and reads it back the way the real playbook reports expiry.
- name: Renew certificates (stand-in)
  hosts: kube_control_plane
  gather_facts: false
  tasks:
    - name: Log in as the stored account
      ansible.builtin.command: id -un
      register: who
      changed_when: false
      failed_when: who.stdout != ansible_user
    - name: Put a certificate on the master
      ansible.builtin.copy:
        content: "{{ test_certificate }}"
        dest: /tmp/apiserver.crt
        mode: "0644"
    - name: Read it back
      ansible.builtin.fetch:
        src: /tmp/apiserver.crt
        dest: "{{ cert_renew_report_dir }}/{{ inventory_hostname }}/apiserver.crt"
        flat: true
    - name: Note the variables the real playbook's optional tasks follow
      ansible.builtin.copy:
        content: "{{ asked | to_json }}"
        dest: /tmp/cert-renew-asked.json
        mode: "0644"
      vars:
        asked:
          kubeconfig_dest: "{{ kubeconfig_dest | default('unset') }}"
          metrics_server_enabled: "{{ metrics_server_enabled | default('unset') }}"
          cert_renew_approve_serving_csrs: "{{ cert_renew_approve_serving_csrs | default('unset') }}"
          cert_renew_root_kubeconfig: "{{ cert_renew_root_kubeconfig | default('unset') }}"
    - name: Hand them to the test
      ansible.builtin.fetch:
        src: /tmp/cert-renew-asked.json
        dest: "{{ cert_renew_report_dir }}/../asked.json"
        flat: true
    - name: Fetch a file as the renewed kubeconfig where kobot asks for one, as the real playbook does
      ansible.builtin.fetch:
        src: /tmp/apiserver.crt
        dest: "{{ kubeconfig_dest }}"
        flat: true
      when: kubeconfig_dest | default('') | length > 0
"""


@pytest.fixture
def peer(lab_hosts: list[LabHost]) -> Iterator[KubernetesApiPeer]:
    with KubernetesApiPeer(tls=True) as server:
        for name, host in zip(NODES, lab_hosts, strict=True):
            server.add_node(name, role="master" if name.endswith("cp-1") else "worker")
            server.set_node_network(name, address=host.address)
        yield server


@pytest.fixture
def kubeconfig(peer: KubernetesApiPeer, tmp_path: Path) -> bytes:
    return peer.write_kubeconfig(tmp_path / "legacy.kubeconfig").read_bytes()


@pytest.fixture
def wrong_key(tmp_path: Path) -> Path:
    path = tmp_path / "wrong_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)
    return path


def _certificate() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def app_settings(redis_url: str, data_dir: Path, tmp_path: Path) -> Settings:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "cluster_cert_renew.yml").write_text(CERT_RENEW_STAND_IN)
    return _settings(redis_url, data_dir).model_copy(
        update={
            "playbooks_dir": playbooks,
            "plugins": [],
            "job_lease_seconds": 2.0,
            "ansible_extra_vars": {"test_certificate": _certificate()},
        }
    )


@pytest.fixture
def served(app_settings: Settings) -> Iterator[tuple[httpx.Client, Runtime]]:
    app = create_app(app_settings)
    with serve(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http, app.state.runtime


def _command(http: httpx.Client, text: str) -> httpx.Response:
    return http.post("/api/v1/commands", json={"text": text}, headers=ADMIN)


def test_rest_import_with_ssh_peer_on_test_hosts_proves_every_node_then_an_ssh_job_runs_with_the_stored_key(
    served: tuple[httpx.Client, Runtime],
    app_settings: Settings,
    redis: Redis,
    kubeconfig: bytes,
    lab_hosts: list[LabHost],
) -> None:
    http, runtime = served
    key = lab_hosts[0].key_path.read_bytes()

    response = http.post(
        IMPORT_PATH,
        json={"name": "legacy", "kubeconfig": kubeconfig.decode(), "ssh_key": key.decode()},
        headers=ADMIN,
    )

    assert response.status_code == 201, response.text
    assert "PRIVATE KEY" not in response.text, "the key is never echoed"
    assert response.json()["summary"][-1] == "SSH as root proven on all 3 nodes"
    record = runtime.clusters.require("legacy")
    assert record.imported is not None and record.imported.ssh_user == "root"
    assert [n.address for n in record.nodes] == [h.address for h in lab_hosts]
    secrets = ClusterSecrets(redis=redis, secret=secret_key(app_settings))
    assert secrets.get(cluster="legacy", name=SSH_KEY_SECRET) == key
    stored = redis.hget(keys.cluster_secrets("legacy"), SSH_KEY_SECRET)
    assert stored is not None and b"PRIVATE KEY" not in stored
    pinned = known_hosts_path(app_settings).read_text()
    assert all(host.address in pinned for host in lab_hosts), "host keys are pinned where runs check them"
    [entry] = runtime.audit.query(action="cluster.import", limit=5)
    assert entry.detail.get("ssh_user") == "root" and "PRIVATE KEY" not in entry.model_dump_json()
    assert not [p for p in app_settings.data_dir.iterdir() if p.name.startswith("kobot-ssh-")]

    # a job that needs only SSH and playbooks passes the refusal (the renewal is risky: it asks first) ...
    asked = _command(http, "renew certificates on legacy")
    assert asked.status_code != 409, asked.text
    assert "imported" not in asked.text
    # ... and one that would reconfigure it from a spec that does not describe it still refuses, naming why
    for text in ("scale workers 1 on legacy", "upgrade legacy 1.31.4", "delete cluster legacy"):
        refused = _command(http, text)
        assert refused.status_code == 409, (text, refused.text)
        assert "kobot did not build it and does not know its configuration" in refused.json()["detail"]

    service = job_service(app_settings, redis)
    job_id = service.submit(spec(service, kind=JobKind.CERTS_RENEW.value, cluster="legacy")).job_id
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, (done.summary, done.error, [s.state for s in done.steps])
    assert [s.state for s in done.steps] == [StepState.SUCCEEDED] * 4
    assert "legacy-cp-1: earliest apiserver.crt" in done.summary
    assert "kobot kept the kubeconfig given at import" in done.summary
    assert secrets.get(cluster="legacy", name=KUBECONFIG_SECRET) == kubeconfig, "the admin's is kept"
    asked = json.loads((app_settings.job_artifacts_dir() / job_id / "asked.json").read_text())
    assert asked == {
        "kubeconfig_dest": "",
        "metrics_server_enabled": False,
        "cert_renew_approve_serving_csrs": False,
        "cert_renew_root_kubeconfig": False,
    }, "an imported cluster's renewal touches neither addons kobot never installed nor CSRs"
    work_dir = app_settings.job_artifacts_dir() / job_id
    inventory = automation_yaml.load_yaml((work_dir / INVENTORY_FILE).read_text())
    assert inventory["all"]["vars"]["ansible_user"] == "root"
    assert inventory["all"]["vars"]["ansible_ssh_private_key_file"] == str(work_dir / ATTEMPT_KEY_FILE)
    assert not (work_dir / ATTEMPT_KEY_FILE).exists(), "the key is on disk for the attempt only"


def test_rest_ssh_peer_on_test_hosts_with_a_wrong_key_names_every_node_and_records_nothing(
    served: tuple[httpx.Client, Runtime], redis: Redis, kubeconfig: bytes, wrong_key: Path
) -> None:
    http, runtime = served
    bad = wrong_key.read_text()

    refused = http.post(
        IMPORT_PATH, json={"name": "legacy", "kubeconfig": kubeconfig.decode(), "ssh_key": bad}, headers=ADMIN
    )

    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert detail.startswith("SSH as root did not work on 3 node(s): legacy-cp-1 (")
    assert all(name in detail for name in NODES) and "Permission denied" in detail
    assert runtime.clusters.get("legacy") is None
    assert redis.exists(keys.cluster_secrets("legacy")) == 0

    assert (
        http.post(
            IMPORT_PATH, json={"name": "legacy", "kubeconfig": kubeconfig.decode()}, headers=ADMIN
        ).status_code
        == 201
    )
    later = http.post(SSH_PATH.format(name="legacy"), json={"ssh_key": bad}, headers=ADMIN)
    assert later.status_code == 422 and "legacy-w-2 (" in later.json()["detail"]
    record = runtime.clusters.require("legacy")
    assert record.imported is not None and record.imported.ssh_user is None
    assert redis.hexists(keys.cluster_secrets("legacy"), SSH_KEY_SECRET) == 0
    still = _command(http, "renew certificates on legacy")
    assert still.status_code == 409 and "kobot attach-ssh legacy --ssh-key FILE" in still.json()["detail"]
    [entry] = runtime.audit.query(action="cluster.attach_ssh", limit=5)
    assert (
        entry.result.startswith("failed: SSH as root did not work")
        and "PRIVATE" not in entry.model_dump_json()
    )

    bad_user = http.post(
        SSH_PATH.format(name="legacy"), json={"ssh_key": bad, "ssh_user": "root;id"}, headers=ADMIN
    )
    assert bad_user.status_code == 422 and "is not an account name" in bad_user.json()["detail"]


def test_cli_attach_ssh_peer_on_test_hosts_reads_the_key_from_its_file(
    app_settings: Settings,
    redis_url: str,
    kubeconfig: bytes,
    lab_hosts: list[LabHost],
    wrong_key: Path,
    tmp_path: Path,
) -> None:
    path = tmp_path / "admin.conf"
    path.write_bytes(kubeconfig)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "USER": os.environ.get("USER", "root"),
        "KOBOT_REDIS_URL": redis_url,
        "KOBOT_DATA_DIR": str(app_settings.data_dir),
        "KOBOT_POLICY_FILE": str(app_settings.policy_file),
        "KOBOT_ALLOW_LOCAL_HOSTS": "true",
    }
    kobot = [sys.executable, "-m", "bot.cli"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*kobot, *args], env=env, capture_output=True, text=True, timeout=90, check=False
        )

    wrong = run("import", "legacy", "--kubeconfig", str(path), "--ssh-key", str(wrong_key))
    assert wrong.returncode == 1 and "legacy-w-1 (" in wrong.stderr, wrong.stderr
    assert "PRIVATE" not in wrong.stderr + wrong.stdout
    imported = run("import", "legacy", "--kubeconfig", str(path))
    assert imported.returncode == 0, imported.stderr
    attached = run("attach-ssh", "legacy", "--ssh-key", str(lab_hosts[0].key_path))
    assert attached.returncode == 0, attached.stderr
    assert attached.stdout.strip() == "SSH as root proven on all 3 nodes"
    inline = run("attach-ssh", "legacy", "--ssh-key", lab_hosts[0].key_path.read_text())
    assert inline.returncode != 0, "a key given on the command line is not read"
