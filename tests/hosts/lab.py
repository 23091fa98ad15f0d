"""A lab of real SSH hosts: one network namespace per host, sshd chrooted into its own Debian root.

Layout of a lab with subnet index N (one per running session, held by a lock file):
    bridge kobrN (10.231.N.1/24) in the root namespace
    host i: namespace kobot-N-i, veth kbNhi <-> eth0 (10.231.N.(10+i)/24), default route via the bridge
            (this machine does not forward, so a host reaches nothing beyond the lab)
            sshd runs under unshare (mount, pid, uts, ipc) in an overlay over the cached root, so every
            mount and process of the host dies with it and nothing it does lands on this machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

SUBNET_PREFIX = "10.231"
"""Private /16 the lab's /24s come from; addresses exist only on the lab bridge and in its namespaces."""

SUBNET_INDEXES = range(7, 255)
"""Third octets a session may take; concurrent sessions each hold a different one."""

HOST_OFFSET = 10
"""Host i gets address .(HOST_OFFSET + i); .1 is the bridge."""

LEASE_DIR = Path("/run/kobot-test-hosts")
"""Lock files that say which subnet index a live session holds (tmpfs: gone after reboot)."""

SSH_PORT = 22
SSH_USER = "root"

SSHD_READY_TIMEOUT_SECONDS = 15.0
"""How long a freshly started sshd may take to show its banner."""

STOP_TIMEOUT_SECONDS = 5.0
"""How long a killed host's launcher may take to be reaped."""

COMMAND_TIMEOUT_SECONDS = 30.0
"""Upper bound of any one `ip`/`ssh-keygen` call the lab makes."""

DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
"""The only device nodes a host sees: it gets no access to this machine's disks."""


class LabError(RuntimeError):
    """The lab could not be set up; the message names the step."""


@dataclass(frozen=True)
class LabHost:
    """One SSH test host as a test (or an Ansible inventory) needs it."""

    name: str
    address: str
    port: int
    user: str
    key_path: Path
    """Private key authorized for `user` on every host of the session (generated per session)."""
    known_hosts_path: Path
    """known_hosts holding every lab host's key, for strict host key checking."""
    namespace: str

    def ssh_args(self) -> list[str]:
        """Arguments for the `ssh` client that reach this host with strict host key checking."""
        return [
            "ssh",
            "-i",
            str(self.key_path),
            "-p",
            str(self.port),
            "-o",
            f"UserKnownHostsFile={self.known_hosts_path}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            f"{self.user}@{self.address}",
        ]


@dataclass
class _Running:
    host: LabHost
    process: subprocess.Popen[bytes]
    veth: str
    log: IO[bytes]


@dataclass
class HostLab:
    """Starts and stops test hosts; `close()` removes every namespace, mount and process it made."""

    rootfs: Path
    work_dir: Path
    index: int = 0
    _lease: IO[str] | None = None
    _running: list[_Running] = field(default_factory=list)
    _started: int = 0
    """Hosts started so far: numbers are never reused, so a stopped host's name, address and
    directories are never handed to a new one."""
    key_path: Path = field(init=False)
    known_hosts_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.key_path = self.work_dir / "id_ed25519"
        self.known_hosts_path = self.work_dir / "known_hosts"

    @property
    def bridge(self) -> str:
        return f"kobr{self.index}"

    @property
    def gateway(self) -> str:
        return f"{SUBNET_PREFIX}.{self.index}.1"

    @property
    def hosts(self) -> list[LabHost]:
        return [running.host for running in self._running]

    def open(self) -> HostLab:
        """Take a free subnet, make the bridge and the session's client key."""
        self._lease, self.index = _take_subnet()
        _remove_leftovers(self.index)
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kobot-lab", "-f", str(self.key_path))
        self.known_hosts_path.write_text("")
        return self

    def start(self, *, count: int) -> list[LabHost]:
        """Start `count` more hosts and return them once each shows its SSH banner."""
        first = self._started + 1
        if HOST_OFFSET + first + count - 1 > 254:
            raise RuntimeError(f"a lab session can start {254 - HOST_OFFSET} hosts in all; ask for fewer")
        self._started += count
        numbers = range(first, first + count)
        names = {number: f"lab{self.index}-host{number}" for number in numbers}
        started = [self._start_one(number=number, name=names[number], peers=names) for number in numbers]
        for host in started:
            _wait_for_banner(host.address, host.port)
        return started

    def _start_one(self, *, number: int, name: str, peers: dict[int, str]) -> LabHost:
        namespace = f"kobot-{self.index}-{number}"
        address = f"{SUBNET_PREFIX}.{self.index}.{HOST_OFFSET + number}"
        veth, peer = f"kb{self.index}h{number}", f"kb{self.index}p{number}"
        _run("ip", "netns", "add", namespace)
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
        _run("ip", "link", "set", veth, "master", self.bridge, "up")
        _run("ip", "link", "set", peer, "netns", namespace)
        in_ns = ("ip", "netns", "exec", namespace)
        _run(*in_ns, "ip", "link", "set", peer, "name", "eth0")
        _run(*in_ns, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
        _run(*in_ns, "ip", "link", "set", "eth0", "up")
        _run(*in_ns, "ip", "link", "set", "lo", "up")
        _run(*in_ns, "ip", "route", "add", "default", "via", self.gateway)

        host_dir = self.work_dir / name
        upper, work, merged = host_dir / "upper", host_dir / "work", host_dir / "merged"
        for path in (upper, work, merged):
            path.mkdir(parents=True)
        host_key_pub = self._write_host_files(upper=upper, name=name, address=address, peers=peers)
        with self.known_hosts_path.open("a") as known:
            known.write(f"{address} {host_key_pub}\n")

        script = _boot_script(lower=self.rootfs, upper=upper, work=work, merged=merged, name=name)
        log = (host_dir / "sshd.log").open("wb")
        process = subprocess.Popen(
            [*in_ns, "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child",
             "--propagation", "private", "/bin/sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        host = LabHost(
            name=name,
            address=address,
            port=SSH_PORT,
            user=SSH_USER,
            key_path=self.key_path,
            known_hosts_path=self.known_hosts_path,
            namespace=namespace,
        )
        self._running.append(_Running(host=host, process=process, veth=veth, log=log))
        return host

    def _write_host_files(self, *, upper: Path, name: str, address: str, peers: dict[int, str]) -> str:
        etc_ssh = upper / "etc/ssh"
        (etc_ssh / "sshd_config.d").mkdir(parents=True)
        host_key = etc_ssh / "ssh_host_ed25519_key"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(host_key))
        (etc_ssh / "sshd_config.d/kobot-lab.conf").write_text(
            "HostKey /etc/ssh/ssh_host_ed25519_key\n"
            f"ListenAddress {address}:{SSH_PORT}\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
        )
        root_ssh = upper / "root/.ssh"
        root_ssh.mkdir(parents=True, mode=0o700)
        (upper / "root").chmod(0o700)
        authorized = root_ssh / "authorized_keys"
        authorized.write_text(self.key_path.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        lines = ["127.0.0.1 localhost"]
        net = f"{SUBNET_PREFIX}.{self.index}"
        lines += [f"{net}.{HOST_OFFSET + n} {peer}" for n, peer in sorted(peers.items())]
        (upper / "etc/hosts").write_text("\n".join(lines) + "\n")
        (upper / "etc/hostname").write_text(name + "\n")
        kind, key, _comment = host_key.with_suffix(".pub").read_text().split(maxsplit=2)
        return f"{kind} {key}"

    def stop(self, host: LabHost) -> None:
        """Stop one host: its processes, mounts and namespace go."""
        for running in list(self._running):
            if running.host == host:
                _stop(running)
                self._running.remove(running)

    def close(self) -> None:
        """Stop every host, remove the bridge and release the subnet."""
        try:
            for running in self._running:
                _stop(running)
            self._running.clear()
            if self.index:
                _run("ip", "link", "del", self.bridge, check=False)
            shutil.rmtree(self.work_dir, ignore_errors=True)
        finally:
            if self._lease is not None:
                self._lease.close()
                self._lease = None


def _boot_script(*, lower: Path, upper: Path, work: Path, merged: Path, name: str) -> str:
    """Mounts the host's root inside its own mount namespace, then execs sshd as its pid 1."""
    m = shlex.quote(str(merged))
    lines = [
        "set -e",
        f"mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} {m}",
        f"mount -t proc proc {m}/proc",
        f"mount -t sysfs -o ro sysfs {m}/sys",
        f"mount -t tmpfs -o mode=755,size=16m tmpfs {m}/dev",
    ]
    lines += [f"mknod -m 666 {m}/dev/{dev} c {major} {minor}" for dev, major, minor in DEVICES]
    lines += [
        f"mkdir {m}/dev/pts {m}/dev/shm",
        f"mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts {m}/dev/pts",
        f"ln -s pts/ptmx {m}/dev/ptmx",
        f"mount -t tmpfs -o mode=1777 tmpfs {m}/dev/shm",
        f"mount -t tmpfs -o mode=755 tmpfs {m}/run",
        f"mkdir -p {m}/run/sshd",
        f"mount -t tmpfs -o mode=1777 tmpfs {m}/tmp",
        f"hostname {shlex.quote(name)}",
        f"exec chroot {m} /usr/sbin/sshd -D -e",
    ]
    return "\n".join(lines)


def _take_subnet() -> tuple[IO[str], int]:
    LEASE_DIR.mkdir(parents=True, exist_ok=True)
    for index in SUBNET_INDEXES:
        lease = (LEASE_DIR / f"subnet-{index}.lock").open("w")
        try:
            fcntl.flock(lease.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lease.close()
            continue
        if _subnet_in_use(index):
            lease.close()
            continue
        return lease, index
    raise LabError(f"no free lab subnet in {SUBNET_PREFIX}.0.0/16")


def _subnet_in_use(index: int) -> bool:
    """A subnet some other interface of this machine already routes is never taken."""
    routes = _run("ip", "-4", "route", "show", "match", f"{SUBNET_PREFIX}.{index}.0/24", check=False)
    return any(line and not line.startswith("default") for line in routes.splitlines()) and not _ours(index)


def _ours(index: int) -> bool:
    links = _run("ip", "-o", "link", "show", f"kobr{index}", check=False)
    return bool(links.strip())


def _remove_leftovers(index: int) -> None:
    """A crashed session of this subnet (its lease lock is free now) may have left namespaces behind."""
    for line in _run("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(f"kobot-{index}-"):
            for pid in _run("ip", "netns", "pids", name, check=False).split():
                _kill(int(pid), signal.SIGKILL)
            _run("ip", "netns", "del", name, check=False)
    if _ours(index):
        _run("ip", "link", "del", f"kobr{index}", check=False)


def _stop(running: _Running) -> None:
    # unshare --fork ignores SIGTERM; SIGKILL on it takes its child (the host's pid 1) down through
    # --kill-child, and with pid 1 every process of the host and its mount namespace go.
    process = running.process
    if process.poll() is None:
        _kill(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    for pid in _run("ip", "netns", "pids", running.host.namespace, check=False).split():
        _kill(int(pid), signal.SIGKILL)
    _run("ip", "netns", "del", running.host.namespace, check=False)
    _run("ip", "link", "del", running.veth, check=False)
    running.log.close()


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_for_banner(address: str, port: int) -> None:
    deadline = time.monotonic() + SSHD_READY_TIMEOUT_SECONDS
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1.0) as conn:
                conn.settimeout(2.0)
                if conn.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.05)
    limit = SSHD_READY_TIMEOUT_SECONDS
    raise LabError(f"sshd on {address}:{port} did not answer within {limit}s: {last_error}")


def _run(*command: str, check: bool = True) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False
    )
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return result.stdout
