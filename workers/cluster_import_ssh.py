"""SSH access to an imported cluster's hosts: a private key and an account, proven on every node before
anything is recorded, kept encrypted among the cluster's secrets, and handed to a job's inventory as a
0600 file in the job's private dir for one attempt only.

The nodes are reached at the addresses the import read (InternalIP first). Host keys are pinned the way
created clusters' are: on first contact into the known_hosts every playbook run checks against
(workers.ansible.runner), so a later job refuses a host whose key changed since access was proven.
"""

from __future__ import annotations

import os
import re
import subprocess  # nosec B404  # the OpenSSH client, argument lists only, never a shell
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from redis.exceptions import WatchError

from kobot import automation_values, defaults, keys
from kobot.clock import utcnow
from kobot.clusters import ClusterRecord, ClusterStore, NodeRecord
from kobot.errors import CommandError, ConflictError, StepFailedError
from kobot.settings import Settings
from kobot.store import synced
from workers.ansible.runner import KNOWN_HOSTS_FILE
from workers.attempt_keys import ATTEMPT_KEY_FILE
from workers.cluster_secrets import ClusterSecrets, cluster_secrets_for
from workers.context import StepContext

SSH_KEY_SECRET = "imported-ssh-key"  # nosec B105  # a secret's name in the store, not its value
"""The cluster secret holding the private key of an imported cluster's hosts."""

SSH_PORT = 22
"""The port nodes are reached on: the import reads addresses, not ports, and Ansible uses 22 too."""

SSH_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
"""POSIX account names as useradd takes them; nothing an ssh option or a shell could read otherwise."""


@dataclass(frozen=True)
class SshAccess:
    """What a person hands kobot for an imported cluster's hosts; the key stays in memory until stored."""

    private_key: bytes
    user: str = "root"


def check_access(access: SshAccess) -> SshAccess:
    """The access with its user and key checked; a clear CommandError otherwise (never quoting the key)."""
    if not SSH_USER.match(access.user):
        raise CommandError(
            f"ssh user {access.user!r} is not an account name: lowercase letters, digits, `_` and `-`, "
            "starting with a letter or `_`, at most 32"
        )
    key = access.private_key
    if len(key) > defaults.SSH_KEY_MAX_BYTES:
        raise CommandError(
            f"the SSH key is {len(key)} bytes; at most {defaults.SSH_KEY_MAX_BYTES} are accepted"
        )
    text = key.strip()
    if not (text.startswith(b"-----BEGIN ") and b"PRIVATE KEY-----" in text):
        raise CommandError(
            "the SSH key is not a private key file (-----BEGIN OPENSSH PRIVATE KEY----- or PEM); "
            "give the private key, not the .pub"
        )
    with _key_file(key) as path:
        done = subprocess.run(  # nosec B603 B607  # OpenSSH's ssh-keygen from PATH, the key as a 0600 file
            ["ssh-keygen", "-y", "-P", "", "-f", str(path)],
            capture_output=True,
            timeout=defaults.KEYGEN_TIMEOUT_SECONDS,
            check=False,
        )
    if done.returncode != 0:
        raise CommandError(
            "the SSH key cannot be read without a passphrase; kobot runs unattended, so give a key "
            "without one (`ssh-keygen -p -N '' -f KEY` on a copy)"
        )
    return SshAccess(private_key=key.rstrip(b"\n") + b"\n", user=access.user)


@contextmanager
def _key_file(key: bytes, *, directory: Path | None = None) -> Iterator[Path]:
    """The key in a fresh 0700 dir as a 0600 file, removed on leaving."""
    folder = Path(tempfile.mkdtemp(prefix="kobot-ssh-", dir=directory))
    path = folder / "key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.rstrip(b"\n") + b"\n")
        yield path
    finally:
        path.unlink(missing_ok=True)
        folder.rmdir()


def known_hosts_path(settings: Settings) -> Path:
    """The known_hosts every playbook run checks host keys against (workers.ansible.runner)."""
    return settings.job_artifacts_dir() / KNOWN_HOSTS_FILE


def prove_ssh(*, nodes: Sequence[NodeRecord], access: SshAccess, settings: Settings) -> None:
    """Log in to every node as `access.user` with the key and run `true`, pinning each host's key on
    first contact; raise CommandError naming every node that did not let kobot in, and why."""
    if not nodes:
        raise CommandError("the cluster has no nodes to reach over SSH")
    allow_local = settings.allow_local_hosts
    problems: dict[str, str] = {}
    targets: list[tuple[NodeRecord, str]] = []
    for node in nodes:
        try:
            address = automation_values.host_address(node.address, allow_local=allow_local)
            automation_values.check_resolved(address, allow_local=allow_local)
        except automation_values.UnsafeValueError as exc:
            problems[node.name] = f"kobot will not connect to {node.address or 'no address'}: {exc}"
            continue
        targets.append((node, address))
    known_hosts = known_hosts_path(settings)
    known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    workers = max(1, min(defaults.SSH_PROOF_WORKERS_MAX, len(targets)))
    with (
        _key_file(access.private_key, directory=settings.data_dir) as key_path,
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        answers = {
            (node.name, address): pool.submit(
                _log_in,
                address=address,
                user=access.user,
                key_path=key_path,
                known_hosts=known_hosts,
            )
            for node, address in targets
        }
        for (name, address), answer in answers.items():
            problem = answer.result()
            if problem is not None:
                problems[name] = f"{address}: {problem}"
    if problems:
        listed = "; ".join(f"{name} ({why})" for name, why in sorted(problems.items()))
        raise CommandError(f"SSH as {access.user} did not work on {len(problems)} node(s): {listed}")


def _log_in(*, address: str, user: str, key_path: Path, known_hosts: Path) -> str | None:
    """None when `true` ran on the host, else the client's last words (they never hold the key)."""
    command = [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(key_path),
        "-p",
        str(SSH_PORT),
        "-l",
        user,
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"ConnectTimeout={int(defaults.SSH_PROOF_TIMEOUT_SECONDS)}",
        "--",
        address,
        "true",
    ]
    bound = defaults.SSH_PROOF_TIMEOUT_SECONDS + defaults.SSH_PROOF_LOGIN_GRACE_SECONDS
    try:
        done = subprocess.run(  # nosec B603  # OpenSSH's ssh, an argv list of checked values, no shell
            command,
            capture_output=True,
            timeout=bound,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"no answer within {bound:g}s"
    if done.returncode == 0:
        return None
    words = [line.strip() for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
    said = [w for w in words if not w.startswith("Warning: Permanently added")]
    return said[-1] if said else f"ssh ended with status {done.returncode}"


def store_access(*, redis: Redis, secret: bytes, record: ClusterRecord, access: SshAccess) -> ClusterRecord:
    """Keep the key encrypted and the user on the record (which the caller saves)."""
    assert record.imported is not None
    ClusterSecrets(redis=redis, secret=secret).put(
        cluster=record.name, name=SSH_KEY_SECRET, value=access.private_key
    )
    record.imported = record.imported.model_copy(update={"ssh_user": access.user})
    return record


def attach_ssh(
    *, name: str, access: SshAccess, redis: Redis, secret: bytes, settings: Settings
) -> ClusterRecord:
    """Give an imported cluster SSH access: the key and user checked, every node proven, then stored.
    A node that does not let kobot in is named and nothing changes."""
    access = check_access(access)
    record = ClusterStore(redis).require(name)
    _require_imported(record)
    prove_ssh(nodes=record.nodes, access=access, settings=settings)
    # the proof takes seconds: what a job recorded meanwhile (a node, a version) is read again and kept,
    # only the account changes, and a record changed during the write is read once more
    key = keys.cluster_record(name)
    while True:
        with redis.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                raw: bytes | None = synced(pipe.get(key))
                if raw is None:
                    raise ConflictError(f"{name} was deleted while SSH was being proven")
                record = ClusterRecord.model_validate_json(raw)
                _require_imported(record)
                pipe.multi()
                record = store_access(redis=pipe, secret=secret, record=record, access=access)
                record.updated_at = utcnow()
                pipe.set(key, record.model_dump_json())
                pipe.execute()
                return record
            except WatchError:
                continue


def _require_imported(record: ClusterRecord) -> None:
    if record.imported is None:
        raise ConflictError(
            f"{record.name} was built by kobot: its hosts are reached with kobot's own key "
            "(setting ssh_key_file)"
        )


def attempt_identity(ctx: StepContext, record: ClusterRecord) -> tuple[str, Path]:
    """(user, key path) for this attempt's inventory of an imported cluster: the stored key written
    0600 into the job's private dir, removed when the attempt ends (`workers.attempt_keys`)."""
    info = record.imported
    key = cluster_secrets_for(ctx).get(cluster=record.name, name=SSH_KEY_SECRET) if info else None
    if info is None or info.ssh_user is None or key is None:
        raise StepFailedError(
            f"{record.name} was imported without SSH access to its hosts",
            error=f"give it with `kobot attach-ssh {record.name} --ssh-key FILE`",
        )
    path = ctx.work_dir / ATTEMPT_KEY_FILE
    partial = path.with_suffix(".part")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    partial.replace(path)
    return info.ssh_user, path
