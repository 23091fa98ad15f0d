"""The shared preflight, run for real through the Ansible runner against this machine (read-only checks).

This machine runs Debian 12, which production does not support: the inventories here add it through
`preflight_extra_supported_os`, as the test hosts' inventories do.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from workers.ansible import PlaybookResult, PlaybookRun, PlaybookStatus, run_playbook

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
DEBIAN_12 = [{"distribution": "Debian", "versions": ["12"]}]
TIME_SYNC_PROBLEM = "no time sync service running"


def inventory(tmp_path: Path, *, hosts: dict[str, str], etcd: list[str], **variables: Any) -> Path:
    """Local-connection hosts (name -> node ip); the first is the control plane, the others nodes."""
    names = list(hosts)
    content = {
        "all": {
            "vars": {"preflight_extra_supported_os": DEBIAN_12, **variables},
            "hosts": {name: {"ansible_connection": "local", "ip": ip} for name, ip in hosts.items()},
            "children": {
                "kube_control_plane": {"hosts": {names[0]: None}},
                "kube_node": {"hosts": {name: None for name in names[1:]} or {names[0]: None}},
                "etcd": {"hosts": {name: None for name in etcd}},
                "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
            },
        }
    }
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def preflight(tmp_path: Path, inventory_path: Path) -> PlaybookResult:
    run = PlaybookRun(
        job_id="7",
        step="preflight",
        attempt=1,
        playbook="preflight.yml",
        playbooks_dir=PLAYBOOKS,
        inventory=inventory_path,
        artifacts_root=tmp_path / "jobs",
    )
    return run_playbook(run, on_event=lambda event: None, should_cancel=lambda: False)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture
def offline_repo() -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_preflight_on_this_debian12_machine_reports_only_the_missing_time_sync(tmp_path: Path) -> None:
    result = preflight(tmp_path, inventory(tmp_path, hosts={"cp-1": "192.168.77.10"}, etcd=["cp-1"]))

    assert result.status is PlaybookStatus.FAILED
    assert result.failed_host == "cp-1"
    assert result.failed_task == "Report the problems found"
    assert result.error is not None
    assert result.error.startswith(f"cp-1: {TIME_SYNC_PROBLEM}")
    assert ";" not in result.error, "this machine should pass every other check"
    assert result.changed == 0


def test_preflight_refuses_a_bad_inventory_once_before_any_host_check(tmp_path: Path) -> None:
    bad = inventory(
        tmp_path,
        hosts={"cp-1": "192.168.77.10", "node-1": "192.168.77.21"},
        etcd=["cp-1", "node-1"],
        kube_pods_subnet="10.233.0.0/16",
        kube_service_addresses="10.233.128.0/18",
        preflight_extra_supported_os=[],
    )

    result = preflight(tmp_path, bad)

    assert result.status is PlaybookStatus.FAILED
    error = result.error or ""
    assert error.startswith("inventory refused: ")
    assert "etcd group has 2 members, need an odd number" in error
    assert "kube_pods_subnet 10.233.0.0/16 overlaps kube_service_addresses 10.233.128.0/18" in error
    assert "unsupported OS" not in error, "no host is checked while the inventory is wrong"
    assert result.failed == 1, "the inventory is refused once, not once per host"


def test_preflight_names_every_problem_of_a_host_per_host(tmp_path: Path) -> None:
    hosts_wrong = inventory(
        tmp_path,
        hosts={"cp-1": "10.233.64.50", "node-1": "192.168.77.21"},
        etcd=["cp-1"],
        preflight_extra_supported_os=[],
        # on both hosts: either may be the one reported first
        preflight_min_memory_mb_control_plane=10_000_000,
        preflight_min_memory_mb_node=10_000_000,
    )

    result = preflight(tmp_path, hosts_wrong)

    assert result.status is PlaybookStatus.FAILED
    # both hosts fail at once: the first failure reported is whichever host Ansible finished first
    assert result.failed_host in ("cp-1", "node-1")
    error = result.error or ""
    assert error.startswith(f"{result.failed_host}: ")
    if result.failed_host == "cp-1":
        assert "node address 10.233.64.50 lies inside 10.233.64.0/18" in error
    assert "unsupported OS Debian 12" in error
    assert "MB memory, need at least 10000000 MB" in error
    assert result.failed == 2, "both hosts fail, each naming its own problems"


def test_preflight_names_a_port_in_use(tmp_path: Path, busy_port: int) -> None:
    inv = inventory(
        tmp_path,
        hosts={"cp-1": "192.168.77.10"},
        etcd=["cp-1"],
        preflight_ports_control_plane=[busy_port],
        preflight_ports_node=[],
        preflight_nodeport_sample=[],
    )
    result = preflight(tmp_path, inv)
    assert f"port {busy_port} is in use" in (result.error or "")


def test_preflight_names_a_port_a_listener_holds_on_one_address_only(tmp_path: Path) -> None:
    """kubeadm binds its ports on every address, so a listener on any one address blocks it: a connection
    to 0.0.0.0 would not have seen this one, on 127.0.0.2 alone."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))
        listener.listen()
        port = listener.getsockname()[1]
        inv = inventory(
            tmp_path,
            hosts={"cp-1": "192.168.77.10"},
            etcd=["cp-1"],
            preflight_ports_control_plane=[port, port + 1 if port < 65535 else port - 1],
            preflight_ports_node=[],
            preflight_nodeport_sample=[],
        )
        result = preflight(tmp_path, inv)
    error = result.error or ""
    assert f"port {port} is in use" in error
    assert error.count("is in use") == 1, error


def test_preflight_probes_the_offline_repository(tmp_path: Path, offline_repo: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    down = f"http://127.0.0.1:{closed}/repo"
    result = preflight(
        tmp_path, inventory(tmp_path, hosts={"cp-1": "192.168.77.10"}, etcd=["cp-1"], offline_repo_url=down)
    )
    assert f"offline repository {down} unreachable" in (result.error or "")

    up = preflight(
        tmp_path,
        inventory(tmp_path, hosts={"cp-1": "192.168.77.10"}, etcd=["cp-1"], offline_repo_url=offline_repo),
    )
    assert "offline repository" not in (up.error or "")
    assert (up.error or "").startswith(f"cp-1: {TIME_SYNC_PROBLEM}")
