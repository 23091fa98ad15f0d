"""The repository host for real on the SSH test hosts: `repository_host.yml` installs (copies in) and
starts docker-registry and Python's file server on one host and loads a bundle built from the local
upstream; kobot pushes the bundle's images with skopeo; a client on another host, configured by the
containerd role's mirror config, fetches a file by its sha256 and pulls an image through the mirror.

The hosts have no init system and no package mirror (`kobot_manage_services` and
`kobot_manage_packages` off): the role starts the servers with its start script and takes the
registry binary from this machine, and the test says so in its name.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kobot.cluster_spec import OfflineRepository
from kobot.job_records import JobEvent, JobEventType
from tests.bundle.conftest import Upstream
from tests.hosts.lab import HostLab, LabHost
from workers.ansible import PlaybookResult, PlaybookRun, run_playbook
from workers.bundle.build import build_bundle
from workers.bundle.load import push_images, repository_of
from workers.inventory import render_inventory, write_inventory

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
CLIENT_SCRIPT = Path(__file__).with_name("client_pull.py")
SSH_TIMEOUT_SECONDS = 60.0
"""Upper bound of one ssh command to a test host."""
FILES_PORT = 8080
REGISTRY_PORT = 5000


@dataclass
class Site:
    repo: LabHost
    client: LabHost
    inventory: Path
    work: Path
    bundle: Path
    first: PlaybookResult | None = None
    pushed: tuple[str, ...] = ()
    runs: int = 0

    @property
    def repository(self) -> OfflineRepository:
        return repository_of(host=self.repo.address, files_port=FILES_PORT, registry_port=REGISTRY_PORT)

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
def site(host_lab: HostLab, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The repository host set up and loaded once, its images pushed, the client's containerd mirror
    config written: what every test here reads."""
    work = tmp_path_factory.mktemp("repository-site")
    bundle = work / "bundle"
    # one architecture's files: the role copies file by file, and the other's add only time
    amd64 = tuple(f for f in upstream.manifest.files if f.arch in ("amd64", None))
    build_bundle(
        upstream.manifest.model_copy(update={"files": amd64}), into=bundle, progress=lambda _line: None
    )
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
            bundle=bundle,
        )
        site.first, _ = site.run("repository_host.yml", _repository_vars(site))
        site.pushed = tuple(push_images(into=bundle, registry=site.repository.image_registry))
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


def _repository_vars(site: Site) -> dict[str, Any]:
    binary = shutil.which("docker-registry")
    assert binary is not None, "tests/apt-packages.txt lists docker-registry"
    return {
        "kobot_manage_services": False,
        "kobot_manage_packages": False,
        "repository_host_bundle_dir": str(site.bundle),
        "repository_host_registry_binary_src": binary,
        "repository_host_files_port": FILES_PORT,
        "repository_host_registry_port": REGISTRY_PORT,
    }


def test_repository_host_second_run_changes_nothing_real_on_test_hosts_without_init_or_package_mirror(
    site: Site,
) -> None:
    assert site.first is not None and site.first.changed > 0
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
    assert site.pushed == (f"{registry}/pause:3.10", f"{registry}/coredns/coredns:v1.11.3")
    for image in upstream.manifest.images:
        pulled = site.answer("pull", image.ref)
        assert pulled["endpoint"] == f"http://{registry}"
        assert pulled["digest"] == upstream.digests[image.ref]
        assert pulled["content"] == f"image {image.ref}"


def test_client_pull_of_an_image_the_bundle_lacks_fails_real_on_test_hosts(site: Site) -> None:
    done = site.on_client("pull", "registry.k8s.io/kube-apiserver:v1.32.8")
    assert done.returncode != 0
    assert "404" in done.stderr
