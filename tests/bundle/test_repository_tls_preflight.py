"""The shared preflight's offline probes verify the repository with the CA the cluster was given
(`offline_registry_ca`), and that CA alone, run for real through the Ansible runner against this
machine: a loopback HTTPS server whose certificate kobot's repository CA signed for 127.0.0.1 stands
in for the repository host. Two hosts run at once, one given the right CA and one another CA."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kobot.job_records import JobEvent, JobEventType
from workers.ansible import PlaybookRun, run_playbook
from workers.bundle.repository_tls import RepositoryCa, issue_server_certificate, new_ca

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
DEBIAN_12 = [{"distribution": "Debian", "versions": ["12"]}]
LOOPBACK = "127.0.0.1"


class _Registry(http.server.BaseHTTPRequestHandler):
    """Answers what the probes ask: HEAD of the package repository, GET of the registry's /v2/."""

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/v2/" else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def ca() -> RepositoryCa:
    return new_ca()


@pytest.fixture
def tls_repository(ca: RepositoryCa, tmp_path: Path) -> Iterator[str]:
    """host:port of a loopback HTTPS server presenting a certificate of `ca` for 127.0.0.1."""
    server_cert = issue_server_certificate(ca, names=[LOOPBACK])
    (tmp_path / "tls.crt").write_text(server_cert.certificate_pem)
    (tmp_path / "tls.key").write_text(server_cert.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _Registry)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_preflight_verifies_the_offline_repository_with_its_ca_only(
    tmp_path: Path, ca: RepositoryCa, tls_repository: str
) -> None:
    hosts = {"trusting": ca.certificate_pem, "other-ca": new_ca().certificate_pem}
    content = {
        "all": {
            "vars": {
                "preflight_extra_supported_os": DEBIAN_12,
                "offline_repo_url": f"https://{tls_repository}/packages",
                "offline_registry": tls_repository,
                # the ports check would find the server itself listening
                "preflight_ports_control_plane": [],
                "preflight_ports_node": [],
                "preflight_nodeport_sample": [],
            },
            "hosts": {
                name: {"ansible_connection": "local", "ip": f"192.0.2.{number}", "offline_registry_ca": pem}
                for number, (name, pem) in enumerate(hosts.items(), start=10)
            },
            "children": {
                "kube_control_plane": {"hosts": {"trusting": None}},
                "kube_node": {"hosts": {"other-ca": None}},
                "etcd": {"hosts": {"trusting": None}},
                "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
            },
        }
    }
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump(content), encoding="utf-8")
    events: list[JobEvent] = []
    run_playbook(
        PlaybookRun(
            job_id="9",
            step="preflight",
            attempt=1,
            playbook="preflight.yml",
            playbooks_dir=PLAYBOOKS,
            inventory=inventory,
            artifacts_root=tmp_path / "jobs",
        ),
        on_event=events.append,
        should_cancel=lambda: False,
    )
    # the report passes or fails with whatever else this machine lacks: only the offline problems matter
    reports = {
        event.host: event.message or ""
        for event in events
        if event.type in (JobEventType.TASK_FAILED, JobEventType.TASK_OK)
        and event.task == "Report the problems found"
    }
    assert set(reports) == set(hosts), "both hosts reach the report"
    assert "offline registry" not in reports["trusting"] and "offline repository" not in reports["trusting"]
    assert f"offline registry https://{tls_repository} unreachable or not verified" in reports["other-ca"]
    assert "CERTIFICATE_VERIFY_FAILED" in reports["other-ca"]
    assert f"offline repository https://{tls_repository}/packages unreachable" in reports["other-ca"]
    leftovers = [event.task for event in events if event.type is JobEventType.TASK_CHANGED]
    assert not leftovers, "preflight changes nothing: the probes' CA file is temporary"
