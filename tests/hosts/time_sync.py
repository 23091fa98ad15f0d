"""A time-sync service on SSH test hosts, as a host without systemd has one: Debian's chrony package
installed with dpkg and started by its init script, so `service --status-all` (what Ansible's
service_facts reads on such a host) lists `chrony` as running.

The hosts' init is sshd: nothing starts services at boot, so `start_time_sync` starts chrony the way an
init would, through `service`. A host shares this machine's clock (there is no clock namespace), so
chronyd runs with `-x`: it keeps time like any chronyd but never steers the clock. The lab reaches no
NTP server, as an air-gapped host would not without the site's own; chrony runs unsynchronised then,
and preflight asks only that a time-sync service runs.

Hosts get it only when a test asks: the shared session hosts stay without one, so the tests that show
preflight stopping a create at the missing time sync keep meaning that.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from tests.hosts.lab import LabHost
from tests.hosts.rootfs import CACHE_DIR, RootfsError

PACKAGE = "chrony"
"""Debian's NTP daemon; every library it needs is in the hosts' root already."""

DAEMON_OPTS = "-F 1 -x"
"""Debian's default seccomp filter, plus `-x`: never adjust the clock this machine shares."""

DOWNLOAD_TIMEOUT_SECONDS = 300.0
"""Upper bound of `apt-get download` of the package (once per machine, like the hosts' root)."""

HOST_COMMAND_TIMEOUT_SECONDS = 120.0
"""Upper bound of copying, installing and starting the package on one host."""

INSTALL = f"""set -e
# as in an image build: a package's postinst starts no daemon; the init script below does
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/{PACKAGE}.deb >/dev/null
rm -f /usr/sbin/policy-rc.d /tmp/{PACKAGE}.deb
echo 'DAEMON_OPTS="{DAEMON_OPTS}"' > /etc/default/{PACKAGE}
service {PACKAGE} start >/dev/null
service {PACKAGE} status >/dev/null
"""


def ensure_time_sync_package(*, cache_dir: Path = CACHE_DIR) -> Path:
    """The chrony .deb for the hosts' release, fetched once into the cache by this machine's apt."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    debs = cache_dir / "debs"
    with (cache_dir / "debs.lock").open("w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        found = sorted(debs.glob(f"{PACKAGE}_*.deb"))
        if found:
            return found[-1]
        partial = Path(tempfile.mkdtemp(prefix="debs-", dir=cache_dir))
        try:
            partial.chmod(0o755)  # apt's unprivileged downloader writes here
            result = subprocess.run(
                ["apt-get", "download", PACKAGE],
                cwd=partial,
                capture_output=True,
                text=True,
                timeout=DOWNLOAD_TIMEOUT_SECONDS,
                check=False,
            )
            fetched = sorted(partial.glob(f"{PACKAGE}_*.deb"))
            if result.returncode != 0 or not fetched:
                raise RootfsError(f"apt-get download {PACKAGE} failed: {result.stderr.strip()[-2000:]}")
            debs.mkdir(exist_ok=True)
            return fetched[-1].rename(debs / fetched[-1].name)
        finally:
            shutil.rmtree(partial, ignore_errors=True)


def start_time_sync(hosts: list[LabHost]) -> None:
    """Install chrony on every host and start it through its init script (hosts in parallel)."""
    deb = ensure_time_sync_package()
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        for done in [pool.submit(_install, host, deb) for host in hosts]:
            done.result()


def _install(host: LabHost, deb: Path) -> None:
    with deb.open("rb") as data:
        _ssh(host, f"cat > /tmp/{PACKAGE}.deb", stdin=data)
    _ssh(host, INSTALL)


def _ssh(host: LabHost, command: str, *, stdin: IO[bytes] | int = subprocess.DEVNULL) -> None:
    completed = subprocess.run(
        [*host.ssh_args(), command],
        stdin=stdin,
        capture_output=True,
        timeout=HOST_COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(f"{host.name}: starting {PACKAGE} failed: {completed.stderr.decode()[-2000:]}")
