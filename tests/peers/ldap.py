"""A directory for the policy tests: a real OpenLDAP slapd on a free loopback port, with its own
config and database in a temp dir, seeded with two people and two groups.

Unlike the platform peers it is the real server (slapd speaks LDAP itself), so it is a child
process rather than a `LoopbackPeer`; it stands with them because kobot talks to it as a peer.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.network import LOOPBACK, free_port
from tests.support.waiting import wait_for

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
KOBOT_DN = f"cn=kobot,{SUFFIX}"
START_TIMEOUT_SECONDS = 10.0
"""Longest slapd may take to listen, and ldapadd to seed the directory."""

SCHEMAS = ("core", "cosine", "nis", "inetorgperson")

DIRECTORY = f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{SUFFIX}
objectClass: organizationalUnit
ou: groups

dn: {KOBOT_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: kobot
userPassword: {{kobot_password}}

dn: uid=alice,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
mail: alice@example.com

dn: uid=bob,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: B
mail: bob@example.com

dn: cn=k8s-admins,ou=groups,{SUFFIX}
objectClass: groupOfNames
cn: k8s-admins
member: uid=alice,ou=people,{SUFFIX}

dn: cn=k8s-ops,ou=groups,{SUFFIX}
objectClass: groupOfNames
cn: k8s-ops
member: uid=alice,ou=people,{SUFFIX}
member: uid=bob,ou=people,{SUFFIX}
"""


@dataclass
class Slapd:
    url: str
    process: subprocess.Popen[bytes]
    kobot_password_file: Path
    workdir: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_slapd(workdir: Path) -> Slapd:
    """Start slapd with a config of its own (never the system one) and seed the directory."""
    slapd = shutil.which("slapd") or "/usr/sbin/slapd"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "db").mkdir()
    root_password = secrets.token_urlsafe(16)
    kobot_password = secrets.token_urlsafe(16)
    includes = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS)
    config = workdir / "slapd.conf"
    config.write_text(
        f"{includes}\npidfile {workdir}/slapd.pid\nargsfile {workdir}/slapd.args\n"
        "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
        f'database mdb\nmaxsize 10485760\nsuffix "{SUFFIX}"\nrootdn "{ROOT_DN}"\n'
        f"rootpw {root_password}\ndirectory {workdir}/db\n"
    )
    config.chmod(0o600)
    port = free_port()
    url = f"ldap://{LOOPBACK}:{port}"
    log_path = workdir / "slapd.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [slapd, "-f", str(config), "-h", f"{url}/", "-d", "0"], stdout=log, stderr=subprocess.STDOUT
        )
    server = Slapd(url=url, process=process, kobot_password_file=workdir / "kobot.pw", workdir=workdir)
    server.kobot_password_file.write_text(kobot_password)
    root_password_file = workdir / "root.pw"
    root_password_file.write_text(root_password)
    os.chmod(root_password_file, 0o600)
    try:
        _wait_listening(port, process, log_path)
        ldif = workdir / "seed.ldif"
        ldif.write_text(DIRECTORY.format(kobot_password=kobot_password))
        subprocess.run(
            ["ldapadd", "-x", "-H", url, "-D", ROOT_DN, "-y", str(root_password_file), "-f", str(ldif)],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_SECONDS,
        )
    except BaseException:
        server.stop()
        raise
    return server


def _wait_listening(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_for(listening, timeout=START_TIMEOUT_SECONDS, what="slapd listening")
