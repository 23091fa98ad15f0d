"""The Tigera operator manifest comes from the offline file server over plain HTTP and its upstream
publishes no checksum: the cni role checks it against the sha256 the bundle build recorded, and on an
offline site refuses it when that sha256 is unknown. Real ansible-playbook on this machine against a
loopback file server, the role's folder under the test's tmp; no pod subnet is given, so the play stops
at rendering the network manifest and nothing is ever applied."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kobot.cluster_spec import OfflineRepository
from workers.cluster_inputs import offline_vars

ROOT = Path(__file__).resolve().parents[2]
CALICO = "v3.29.1"
MANIFEST_PATH = f"calico/{CALICO}/tigera-operator.yaml"
_ANSIBLE_PLAYBOOK = (str(ROOT / ".venv" / "bin" / "ansible-playbook"),)
PLAYBOOK_TIMEOUT_SECONDS = 120.0
"""Upper bound of one ansible-playbook run of the cni role here."""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the base class's name
        pass


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A loopback file server holding the manifest; its URL and the manifest's sha256."""
    root = tmp_path_factory.mktemp("files")
    manifest = root / MANIFEST_PATH
    manifest.parent.mkdir(parents=True)
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tigera-operator\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", hashlib.sha256(manifest.read_bytes()).hexdigest()
    finally:
        server.shutdown()
        server.server_close()


def _run_cni(tmp_path: Path, extravars: dict[str, object]) -> str:
    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  connection: local\n  gather_facts: false\n  roles: [cni]\n")
    variables = {
        "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
        "kube_network_plugin": "calico",
        "calico_version": CALICO,
        "offline_registry": "",
        "kube_image_repo": "registry.k8s.io",
        "cni_manifest_path": str(tmp_path / "network.yaml"),
        "cni_addons_dir": str(tmp_path / "addons"),
        **extravars,
    }
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROOT / "playbooks" / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
    }
    done = subprocess.run(
        [*_ANSIBLE_PLAYBOOK, "-i", "localhost,", str(play), "-e", json.dumps(variables)],
        capture_output=True,
        text=True,
        env=env,
        timeout=PLAYBOOK_TIMEOUT_SECONDS,
        check=False,
    )
    return done.stdout + done.stderr


def _result_of(output: str, task: str) -> str:
    """The first result line (ok/changed/fatal/skipping) after the task's header."""
    after = output.split(f"TASK [cni : {task}]", 1)[1]
    return next(
        line for line in after.splitlines() if line.startswith(("ok:", "changed:", "fatal:", "skipping:"))
    )


def test_an_offline_site_without_the_recorded_sha256_refuses_the_manifest(
    file_server: tuple[str, str], tmp_path: Path
) -> None:
    url, _sha = file_server
    output = _run_cni(tmp_path, {"offline_files_url": url})
    refused = _result_of(
        output, "Refuse the Tigera operator manifest without its recorded sha256 on an offline site"
    )
    assert refused.startswith("fatal:") and "publishes no checksum" in refused, output
    assert "TASK [cni : Install the Tigera operator for calico]" not in output


def test_a_manifest_that_is_not_the_one_the_bundle_recorded_is_refused(
    file_server: tuple[str, str], tmp_path: Path
) -> None:
    url, _sha = file_server
    output = _run_cni(tmp_path, {"offline_files_url": url, "offline_file_sha256": {MANIFEST_PATH: "a" * 64}})
    fetched = _result_of(output, "Install the Tigera operator for calico")
    assert fetched.startswith("fatal:") and "did not match" in fetched, output


def test_the_recorded_sha256_reaches_the_role_through_the_repository_and_the_manifest_passes(
    file_server: tuple[str, str], tmp_path: Path
) -> None:
    url, sha = file_server
    repository = OfflineRepository(
        package_repo_url=f"{url}/packages",
        image_registry="registry.offline.test:5000",  # named in templates, never contacted
        files_url=url,
        file_sha256={MANIFEST_PATH: sha},
    )
    output = _run_cni(tmp_path, offline_vars(repository))
    fetched = _result_of(output, "Install the Tigera operator for calico")
    assert fetched.startswith(("ok:", "changed:")), output
