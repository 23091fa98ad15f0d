"""The SSH test hosts are real: sshd in a Debian root of their own, in their own network namespace."""

from __future__ import annotations

import secrets
import socket
import subprocess
from pathlib import Path

from tests.hosts.lab import HostLab, LabHost

SSH_TIMEOUT = 30.0


def _ssh(host: LabHost, command: str, *, args: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*(args or host.ssh_args()), command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=SSH_TIMEOUT, check=False)


def test_lab_hosts_answer_ssh_as_root_in_a_debian_bookworm_root(lab_hosts: list[LabHost]) -> None:
    assert len({host.address for host in lab_hosts}) == len(lab_hosts) == 3
    for host in lab_hosts:
        script = "id -un; hostname; . /etc/os-release; echo $VERSION_CODENAME; python3 -c 'print(1+1)'"
        result = _ssh(host, script)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["root", host.name, "bookworm", "2"]


def test_lab_host_changes_stay_inside_that_host(lab_hosts: list[LabHost], tmp_path: Path) -> None:
    first, second = lab_hosts[0], lab_hosts[1]
    marker = f"/etc/kobot-lab-{first.name}"
    assert _ssh(first, f"echo written > {marker} && hostname changed-inside").returncode == 0
    try:
        assert not Path(marker).exists()
        assert socket.gethostname() != "changed-inside"
        assert _ssh(second, f"test -e {marker}").returncode == 1
        assert _ssh(first, f"cat {marker}").stdout == "written\n"
    finally:
        _ssh(first, f"rm -f {marker}; hostname {first.name}")


def test_lab_host_sees_only_its_own_processes_and_devices(lab_hosts: list[LabHost]) -> None:
    result = _ssh(lab_hosts[0], "ls /proc | grep -c '^[0-9]'; ls /dev")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert int(lines[0]) < 20
    assert "vda" not in lines and "sda" not in lines
    assert {"null", "urandom", "pts"} <= set(lines)


def test_lab_hosts_reach_each_other_by_name(lab_hosts: list[LabHost]) -> None:
    target = lab_hosts[1]
    connect = f'socket.create_connection(("{target.name}", 22), 5)'
    probe = f"python3 -c 'import socket; print({connect}.recv(7).decode())'"
    result = _ssh(lab_hosts[0], probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SSH-2.0"


def test_lab_refuses_a_key_it_did_not_authorize(lab_hosts: list[LabHost], tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)]
    subprocess.run(keygen, check=True, timeout=10)
    host = lab_hosts[0]
    args = host.ssh_args()
    args[args.index(str(host.key_path))] = str(stranger)
    result = _ssh(host, "true", args=[*args[:1], "-o", "IdentitiesOnly=yes", *args[1:]])
    assert result.returncode == 255
    assert "Permission denied" in result.stderr


def test_lab_host_key_is_checked_strictly(lab_hosts: list[LabHost], tmp_path: Path) -> None:
    host, other = lab_hosts[0], lab_hosts[1]
    other_key = next(
        line.split(maxsplit=1)[1]
        for line in other.known_hosts_path.read_text().splitlines()
        if line.startswith(other.address + " ")
    )
    forged = tmp_path / "known_hosts"
    forged.write_text(f"{host.address} {other_key}\n")
    args = [a.replace(str(host.known_hosts_path), str(forged)) for a in host.ssh_args()]
    result = _ssh(host, "true", args=args)
    assert result.returncode == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in result.stderr


def test_lab_stop_removes_the_host_namespace_and_processes(host_lab: HostLab) -> None:
    (extra,) = host_lab.start(count=1)
    # a sleep no other process of this machine runs (other test processes run beside this one)
    sleeper = f"sleep 300.{secrets.randbelow(10**9):09d}"
    assert _ssh(extra, f"nohup {sleeper} >/dev/null 2>&1 & echo started").stdout.strip() == "started"
    host_lab.stop(extra)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert extra.namespace not in namespaces.split()
    assert extra not in host_lab.hosts
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert sleeper not in processes
    mounts = Path("/proc/self/mountinfo").read_text()
    assert extra.name not in mounts
    with socket.socket() as probe:
        probe.settimeout(1.0)
        assert probe.connect_ex((extra.address, extra.port)) != 0
