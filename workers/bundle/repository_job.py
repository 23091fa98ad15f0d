"""The `repository.setup` job (`setup repository on <host>`): the repository host's file server and
registry installed, started and loaded with the bundle kobot built, and the repository recorded for
new clusters.

Both registry listeners speak TLS with a certificate kobot's repository CA signs for the host
(`repository_tls`); the recorded repository carries the CA certificate, so new clusters' containerd
verifies the registry with it and the push credential only ever travels inside TLS.

The bundle is the one in kobot's data folder (`kobot bundle build --into <data_dir>/bundle`), so no
path from chat reaches the worker. The job's scope (its lock and its place in `jobs`) is
`REPOSITORY_SCOPE`: one repository setup at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bcrypt
from redis import Redis

from kobot import automation_values, keys
from kobot.cluster_spec import OfflineRepository
from kobot.errors import StepFailedError
from kobot.job_records import JobEventType, JobSpec
from kobot.settings import Settings
from kobot.store import synced
from workers.bundle.build import BUNDLE_FILE, read_built
from workers.bundle.fetch import sha256_of
from workers.bundle.files_archive import files_archive
from workers.bundle.load import PushCredential, push_htpasswd_line, repository_of
from workers.bundle.repository_tls import RepositoryCa, ServerCertificate, repository_ca, server_certificate
from workers.bundle.repository_tls_push import push_images_trusting
from workers.cluster_secrets import ClusterSecrets, cluster_secrets_for
from workers.context import StepContext
from workers.inventory import render_inventory, write_inventory
from workers.operations import Operation, Step, operation

KIND = "repository.setup"
"""commands.definitions.repository.REPOSITORY_SETUP: the command that queues it."""

REPOSITORY_SCOPE = automation_values.OFFLINE_REPOSITORY_SCOPE
"""The `cluster` of a repository job: what its lock, approvals and job listing are keyed by (a name no
cluster may take)."""

BUNDLE_FOLDER = "bundle"
"""Folder under settings.data_dir the job loads from."""

FILES_PORT = 8080
"""Port of the repository host's file server (the role's default)."""

REGISTRY_PORT = 5000
"""Port of the repository host's registry (the role's default): read-only, anonymous pulls, over TLS."""

REGISTRY_PUSH_PORT = 5001
"""Port of the repository host's push listener (the role's default): the same storage, writes only
with kobot's push credential (htpasswd), over TLS so the credential never crosses the network in clear."""

TLS_KEY_ENV = "KOBOT_REPOSITORY_TLS_KEY"
"""Environment variable the playbook reads the server key from (a secret: never an extra var)."""

PUSH_PASSWORD_SECRET = "registry-push-password"  # nosec B105  # a secret's name in the store, not its value
PUSH_HTPASSWD_SECRET = "registry-push-htpasswd"  # nosec B105  # a secret's name in the store, not its value

INVENTORY = "repository-inventory.yml"

PACKAGES_NOTE = (
    "the bundle's OS packages are served under files/packages, the package_repo_url new clusters use: "
    "a signed apt repository for Debian/Ubuntu and a signed dnf repository per EL release and "
    "architecture (el9/x86_64, ...)"
)
"""Said when the job succeeds: where the nodes find the packages."""


class RepositoryStore:
    """The offline repository new clusters use, as the last successful setup recorded it."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def get(self) -> OfflineRepository | None:
        raw: bytes | None = synced(self._redis.get(keys.OFFLINE_REPOSITORY))
        return None if raw is None else OfflineRepository.model_validate_json(raw)

    def put(self, repository: OfflineRepository) -> None:
        self._redis.set(keys.OFFLINE_REPOSITORY, repository.model_dump_json())


def bundle_folder(settings: Settings) -> Path:
    """Where the job loads the bundle from: `kobot bundle build --into` this folder."""
    return settings.data_dir / BUNDLE_FOLDER


def bundle_dir(ctx: StepContext) -> Path:
    return bundle_folder(ctx.settings)


def _host(ctx: StepContext) -> str:
    return str(ctx.params["host"])


def _repository(ctx: StepContext) -> OfflineRepository:
    checksums = {item.path: item.sha256 for item in read_built(bundle_dir(ctx)).files}
    plain = repository_of(
        host=_host(ctx), files_port=FILES_PORT, registry_port=REGISTRY_PORT, file_sha256=checksums
    )
    ca = tls_ca(cluster_secrets_for(ctx))
    return OfflineRepository.model_validate({**plain.model_dump(), "ca_certificate": ca.certificate_pem})


def tls_ca(secrets: ClusterSecrets) -> RepositoryCa:
    """kobot's repository CA (made on the first setup, its key kept encrypted with the other secrets)."""
    return repository_ca(secrets, scope=REPOSITORY_SCOPE)


def tls_certificate(secrets: ClusterSecrets, *, host: str) -> ServerCertificate:
    """The repository host's server certificate for `host`: the stored one while it fits, else reissued."""
    return server_certificate(secrets, scope=REPOSITORY_SCOPE, ca=tls_ca(secrets), names=[host])


def push_password(secrets: ClusterSecrets) -> str:
    """kobot's push password for the repository host: generated once, kept encrypted with the others."""
    return secrets.get_or_create_password(cluster=REPOSITORY_SCOPE, name=PUSH_PASSWORD_SECRET)


def push_htpasswd(secrets: ClusterSecrets) -> str:
    """The htpasswd line of the push password, hashed once and kept, so a second setup changes nothing."""
    password = push_password(secrets)
    stored = secrets.get(cluster=REPOSITORY_SCOPE, name=PUSH_HTPASSWD_SECRET)
    if stored is not None and bcrypt_matches(password, stored.decode()):
        return stored.decode()
    line = push_htpasswd_line(password)
    secrets.put(cluster=REPOSITORY_SCOPE, name=PUSH_HTPASSWD_SECRET, value=line.encode())
    return line


def bcrypt_matches(password: str, line: str) -> bool:
    _user, _, hashed = line.partition(":")
    return bool(hashed) and bcrypt.checkpw(password.encode(), hashed.encode())


def bundle_sha256(folder: Path) -> str:
    """sha256 of the bundle's `bundle.json` (its files' checksums, its images' digests): what an approval
    of `setup repository` is given for."""
    path = folder / BUNDLE_FILE
    if not path.is_file():
        raise StepFailedError(
            f"{folder} holds no {BUNDLE_FILE}: build the bundle first (`kobot bundle build`)"
        )
    return sha256_of(path)


def check_bundle_step(ctx: StepContext) -> None:
    approved = ctx.params.get("bundle_sha256")
    if approved != bundle_sha256(bundle_dir(ctx)):
        raise StepFailedError(
            f"the bundle changed since approval (its {BUNDLE_FILE} is not the one approved): "
            "ask for `setup repository` again to approve the bundle there now",
            task="bundle",
        )
    built = read_built(bundle_dir(ctx))
    manifest = built.manifest
    ctx.emit(
        JobEventType.LOG,
        message=f"bundle for Kubernetes {manifest.kubernetes_version}: {len(built.files)} files, "
        f"{len(built.images)} images, {len(built.charts)} charts",
    )


def serve_step(ctx: StepContext) -> None:
    host = _host(ctx)
    allow_local = ctx.settings.allow_local_hosts
    inventory: dict[str, Any] = render_inventory(
        nodes=[("repository", "master", host)],
        ssh_user=ctx.settings.ssh_user,
        ssh_key_path=ctx.settings.ssh_key_file,
        allow_local_hosts=allow_local,
    )
    automation_values.check_hosts_resolved([host], allow_local=allow_local)
    # the host is checked and written as a node would be, but it belongs to no cluster group
    inventory["all"]["children"] = {"repository_host": {"hosts": {"repository": None}}}
    path = write_inventory(ctx.work_dir / INVENTORY, inventory)
    secrets = cluster_secrets_for(ctx)
    certificate = tls_certificate(secrets, host=host)
    ctx.run_playbook(
        "repository_host.yml",
        inventory=path,
        extravars={
            "repository_host_files_archive": str(
                files_archive(bundle_dir(ctx), bundle_sha256=bundle_sha256(bundle_dir(ctx)))
            ),
            "repository_host_files_port": FILES_PORT,
            "repository_host_registry_port": REGISTRY_PORT,
            "repository_host_registry_push_port": REGISTRY_PUSH_PORT,
            "repository_host_push_htpasswd": push_htpasswd(secrets),
            "repository_host_tls_certificate": certificate.certificate_pem,
        },
        secrets={TLS_KEY_ENV: certificate.key_pem},
    )


def images_step(ctx: StepContext) -> None:
    secrets = cluster_secrets_for(ctx)
    credential = PushCredential(password=push_password(secrets), private_dir=ctx.work_dir)
    pushed = push_images_trusting(
        into=bundle_dir(ctx),
        registry=f"{_host(ctx)}:{REGISTRY_PUSH_PORT}",
        credential=credential,
        ca_pem=tls_ca(secrets).certificate_pem,
    )
    ctx.emit(JobEventType.LOG, message=f"{len(pushed)} images in {_repository(ctx).image_registry}")


def record_step(ctx: StepContext) -> None:
    repository = _repository(ctx)
    RepositoryStore(ctx.redis).put(repository)
    ctx.emit(
        JobEventType.LOG,
        message=f"new clusters use files {repository.files_url}, images {repository.image_registry}",
    )


@operation(KIND)
def repository_setup(spec: JobSpec) -> Operation:
    return Operation(
        kind=KIND,
        steps=(
            Step("bundle", "Check the built bundle", check_bundle_step),
            Step("serve", "Install and start the file server and registry, load the files", serve_step),
            Step("images", "Push the bundle's images into the registry", images_step),
            Step("record", "Record the repository for new clusters", record_step),
        ),
        final_note=PACKAGES_NOTE,
    )
