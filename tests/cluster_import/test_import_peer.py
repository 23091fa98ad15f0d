"""Importing a cluster kobot did not build, against the Kubernetes API peer over real sockets: the REST
route on the real app under uvicorn, the `kobot import` CLI as a process, a real Valkey; and what an
imported cluster may and may not do afterwards, through the same REST commands route as chat."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr
from redis import Redis

from bot.api_clusters import IMPORT_PATH, SSH_PATH
from bot.app import create_app
from bot.runtime import Runtime
from kobot import defaults, keys
from kobot.clusters import ClusterStore
from kobot.errors import CommandError
from kobot.settings import Settings
from kobot.store import secret_key
from tests.peers.kubernetes import KubernetesApiPeer
from tests.support.asgi import serve
from tests.workers.jobkit import FIXTURE_PLAYBOOKS
from workers.cluster_import import import_cluster
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets

ADMIN_TOKEN = "root-" + "a" * 40
OPERATOR_TOKEN = "ops-" + "o" * 40


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


POLICY = f"""
version: 1
bindings:
  - role: admin
    subjects: ["api:root", "terminal:{os.environ.get("USER", "root")}"]
  - role: operator
    subjects: ["api:ops"]
api_users:
  root:
    token_sha256: "{_digest(ADMIN_TOKEN)}"
  ops:
    token_sha256: "{_digest(OPERATOR_TOKEN)}"
"""
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def _settings(redis_url: str, data_dir: Path) -> Settings:
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    return Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        playbooks_dir=FIXTURE_PLAYBOOKS,
        in_process_worker=False,
        policy_file=policy,
        http_docs=True,
        allow_local_hosts=True,  # the peers listen on loopback
    )


@pytest.fixture
def peer() -> Iterator[KubernetesApiPeer]:
    with KubernetesApiPeer(tls=True) as server:
        server.add_node("legacy-cp-1", role="master")
        server.add_node("legacy-w-1")
        server.add_node("legacy-w-2")
        for number, name in enumerate(("legacy-cp-1", "legacy-w-1", "legacy-w-2")):
            # documentation addresses (RFC 5737): data the record keeps, nothing connects to them
            server.set_node_network(name, address=f"192.0.2.{10 + number}", pod_cidr=f"10.244.{number}.0/24")
        server.add_daemon_set("kube-system", "kube-proxy")
        server.add_daemon_set("kube-system", "calico-node")
        yield server


@pytest.fixture
def kubeconfig(peer: KubernetesApiPeer, tmp_path: Path) -> bytes:
    return peer.write_kubeconfig(tmp_path / "legacy.kubeconfig").read_bytes()


@pytest.fixture
def served(redis_url: str, data_dir: Path) -> Iterator[tuple[httpx.Client, Runtime]]:
    app = create_app(_settings(redis_url, data_dir))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http, app.state.runtime


def _import(
    http: httpx.Client, name: str, kubeconfig: bytes, headers: dict[str, str] = ADMIN
) -> httpx.Response:
    return http.post(IMPORT_PATH, json={"name": name, "kubeconfig": kubeconfig.decode()}, headers=headers)


def _audit(runtime: Runtime) -> list[Any]:
    return list(reversed(runtime.audit.query(action="cluster.import", limit=50)))


def test_rest_import_peer_reads_nodes_version_network_and_keeps_the_kubeconfig_encrypted(
    served: tuple[httpx.Client, Runtime], peer: KubernetesApiPeer, kubeconfig: bytes
) -> None:
    http, runtime = served

    response = _import(http, "legacy", kubeconfig)

    assert response.status_code == 201, response.text
    assert peer.token not in response.text, "the kubeconfig's credentials are never echoed"
    answer = response.json()
    record = runtime.clusters.require("legacy")
    assert answer["cluster"]["name"] == "legacy" and record.provider == "imported"
    assert record.version == "1.30.2" and record.state.value == "running"
    assert [(n.name, n.role.value, n.address) for n in record.nodes] == [
        ("legacy-cp-1", "master", "192.0.2.10"),
        ("legacy-w-1", "worker", "192.0.2.11"),
        ("legacy-w-2", "worker", "192.0.2.12"),
    ]
    assert (record.spec.masters, record.spec.workers) == (1, 2)
    assert record.imported is not None
    assert record.imported.by == "api:root" and record.imported.server == peer.url
    assert record.imported.network_plugin == "calico"
    assert record.imported.pod_cidrs == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    assert answer["summary"] == [
        "legacy: kubernetes 1.30.2, 1 control-plane and 2 worker nodes",
        f"API {peer.url} · calico · pods 10.244.0.0/24, 10.244.1.0/24, 10.244.2.0/24",
    ]
    secrets = ClusterSecrets(redis=runtime.redis, secret=secret_key(runtime.settings))
    assert secrets.get(cluster="legacy", name=KUBECONFIG_SECRET) == kubeconfig
    stored = runtime.redis.hget(keys.cluster_secrets("legacy"), KUBECONFIG_SECRET)
    assert stored is not None and peer.token.encode() not in stored and b"BEGIN CERTIFICATE" not in stored
    [entry] = _audit(runtime)
    assert (entry.actor, entry.cluster, entry.result) == ("api:root", "legacy", "imported")
    assert peer.token not in entry.model_dump_json()


def test_rest_import_peer_is_for_admins_and_a_taken_name_is_refused(
    served: tuple[httpx.Client, Runtime], kubeconfig: bytes
) -> None:
    http, runtime = served

    refused = _import(http, "legacy", kubeconfig, headers=OPERATOR)
    assert refused.status_code == 403, refused.text
    assert runtime.clusters.get("legacy") is None
    assert http.post(IMPORT_PATH, json={"name": "legacy", "kubeconfig": "x"}).status_code == 401

    assert _import(http, "legacy", kubeconfig).status_code == 201
    again = _import(http, "legacy", kubeconfig)
    assert again.status_code == 409
    assert again.json()["detail"] == "there is already a cluster legacy; import under another name"
    assert [e.result.split(":")[0] for e in _audit(runtime)] == ["refused", "imported", "failed"]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            {"exec": {"command": "/bin/sh", "apiVersion": "client.authentication.k8s.io/v1"}},
            "running a program (`exec`)",
        ),
        ({"client-key": "/etc/kubernetes/pki/admin.key"}, "points to a file (`client-key`)"),
    ],
    ids=["exec-plugin", "file-path"],
)
def test_rest_import_peer_refuses_a_kubeconfig_that_runs_programs_or_reads_files(
    served: tuple[httpx.Client, Runtime], kubeconfig: bytes, change: dict[str, Any], says: str
) -> None:
    http, runtime = served
    document = yaml.safe_load(kubeconfig)
    document["users"][0]["user"].update(change)

    response = _import(http, "legacy", yaml.safe_dump(document).encode())

    assert response.status_code == 422
    assert says in response.json()["detail"]
    assert runtime.clusters.get("legacy") is None


def _kubeconfig_at(url: str) -> bytes:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "gone", "cluster": {"server": url}}],
            "users": [{"name": "admin", "user": {"token": "t"}}],
            "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "admin"}}],
            "current-context": "gone",
        }
    ).encode()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://cluster.example.com:6443", "plain http: its credentials would cross the network in clear"),
        ("https://127.0.0.1:6443", "kobot will not connect to the kubeconfig's server: host '127.0.0.1'"),
        (
            "https://169.254.169.254",
            "kobot will not connect to the kubeconfig's server: host '169.254.169.254'",
        ),
        ("https://localhost:6443", "kobot will not connect to the kubeconfig's server: host 'localhost'"),
    ],
    ids=["plain-http", "loopback", "metadata", "local-name"],
)
def test_import_refuses_a_server_in_clear_or_at_an_address_kobot_does_not_reach(
    redis: Redis, redis_url: str, data_dir: Path, url: str, says: str
) -> None:
    settings = _settings(redis_url, data_dir).model_copy(update={"allow_local_hosts": False})

    with pytest.raises(CommandError) as refused:
        import_cluster(
            name="legacy",
            kubeconfig=_kubeconfig_at(url),
            by="api:root",
            redis=redis,
            secret=secret_key(settings),
            settings=settings,
        )

    assert says in refused.value.user_message
    assert ClusterStore(redis).get("legacy") is None


def test_rest_import_peer_refused_by_the_server_names_its_status_not_its_body(
    served: tuple[httpx.Client, Runtime], peer: KubernetesApiPeer, kubeconfig: bytes
) -> None:
    http, runtime = served
    peer.fail_next(status=403, path="/version", body="internal gateway 10.1.2.3 says: token abc")

    response = _import(http, "legacy", kubeconfig)

    assert response.status_code == 502, response.text
    assert response.json()["detail"] == (
        "the API server of legacy answered with status 403; check that the kubeconfig names the cluster's "
        "API server and carries admin credentials"
    )
    assert "gateway" not in response.text
    assert runtime.clusters.get("legacy") is None


def test_rest_import_peer_of_an_api_that_never_answers_is_a_clear_error_within_10_seconds(
    served: tuple[httpx.Client, Runtime],
) -> None:
    http, runtime = served
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections are accepted by the kernel and then never answered
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        response = _import(http, "legacy", _kubeconfig_at(url))
        took = time.monotonic() - started

    assert response.status_code == 502, response.text
    assert "API server of legacy" in response.json()["detail"]
    assert took < 10.0 and took >= defaults.IMPORT_PROBE_TIMEOUT_SECONDS - 1
    assert runtime.clusters.get("legacy") is None
    assert runtime.redis.exists(keys.cluster_secrets("legacy")) == 0


def test_an_imported_cluster_peer_gets_api_commands_and_refuses_ssh_ones(
    served: tuple[httpx.Client, Runtime], kubeconfig: bytes
) -> None:
    http, runtime = served
    assert _import(http, "legacy", kubeconfig).status_code == 201

    nodes = http.post("/api/v1/commands", json={"text": "kubectl get nodes on legacy"}, headers=ADMIN)
    assert nodes.status_code == 200, nodes.text
    assert "legacy-w-2" in nodes.json()["replies"][-1]["text"]
    for text, kind in (
        ("renew certificates on legacy", "certs.renew"),
        ("backup legacy", "etcd.backup"),
        ("backup legacy every day at 02:00 keep 14", "etcd.backup"),
    ):
        refused = http.post("/api/v1/commands", json={"text": text}, headers=ADMIN)
        assert refused.status_code == 409, (text, refused.text)
        assert refused.json()["detail"] == (
            "legacy was imported: kobot holds only its kubeconfig, no SSH access to its hosts and no "
            f"Terraform state, so it cannot run `{kind}` there. What needs only the API works: kubectl, "
            "health checks, alerts, notices, addons and apps. An admin gives SSH access with "
            "`kobot attach-ssh legacy --ssh-key FILE`."
        )
    assert runtime.jobs.records.recent(limit=5) == []


# every Day 2 command whose playbooks build their inventory and variables from the record's spec, which
# holds kobot's defaults, not the imported cluster's own configuration (documentation addresses only)
RECONFIGURING_COMMANDS = (
    ("scale workers 5 on legacy", "workers.scale"),
    ("scale workers 1 on legacy", "workers.scale"),
    ("add node legacy host=192.0.2.20", "node.add"),
    ("add node legacy", "node.add"),
    ("remove node legacy-w-2 from legacy", "node.remove"),
    ("replace node legacy-w-1 on legacy host=192.0.2.21", "node.replace"),
    ("upgrade legacy 1.31.4", "cluster.upgrade"),
    ("restore etcd legacy backup=legacy-20250131-0200", "etcd.restore"),
    ("delete cluster legacy", "cluster.delete"),
)


@pytest.mark.parametrize(("text", "kind"), RECONFIGURING_COMMANDS, ids=[c[0] for c in RECONFIGURING_COMMANDS])
def test_an_imported_cluster_peer_refuses_every_reconfiguring_job_even_with_ssh(
    served: tuple[httpx.Client, Runtime], kubeconfig: bytes, text: str, kind: str
) -> None:
    http, runtime = served
    assert _import(http, "legacy", kubeconfig).status_code == 201
    record = runtime.clusters.require("legacy")
    assert record.imported is not None
    record.imported.ssh_user = "root"  # what a proven `kobot attach-ssh` records
    runtime.clusters.save(record)

    refused = http.post("/api/v1/commands", json={"text": text}, headers=ADMIN)

    assert refused.status_code == 409, (text, refused.text)
    assert refused.json()["detail"] == (
        "legacy was imported: kobot did not build it and does not know its configuration (network plugin, "
        f"pod and service ranges, kube-proxy mode, OS, ingress), so it will not run `{kind}` there, which "
        "would apply kobot's defaults instead. On an imported cluster kobot runs only `certs.renew`, "
        "`cis.scan`, `etcd.backup` (with SSH access) and what needs only the API: kubectl, health checks, "
        "alerts, notices, addons and apps. Change the cluster itself with the tools that built it."
    )
    assert runtime.jobs.records.recent(limit=5) == []


def test_openapi_shows_the_import_route_with_its_example(served: tuple[httpx.Client, Runtime]) -> None:
    http, _ = served
    schema = http.get("/openapi.json").json()
    route = schema["paths"][IMPORT_PATH]["post"]
    example = route["requestBody"]["content"]["application/json"]["examples"]["import"]["value"]
    assert example["name"] == "legacy" and "current-context" in example["kubeconfig"]
    assert {"201", "403", "409", "422", "502"} <= set(route["responses"])
    ssh = schema["paths"][SSH_PATH]["post"]
    assert {"200", "403", "404", "409", "422"} <= set(ssh["responses"])
    assert ssh["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/SshRequest")
    models = schema["components"]["schemas"]
    limits = {
        (model, field): models[model]["properties"][field].get("maxLength")
        or max(
            (v.get("maxLength", 0) for v in models[model]["properties"][field].get("anyOf", [])), default=0
        )
        for model, fields in (
            ("ImportRequest", ("name", "ssh_key", "ssh_user")),
            ("SshRequest", ("ssh_key", "ssh_user")),
        )
        for field in fields
    }
    assert limits == {
        ("ImportRequest", "name"): 63,
        ("ImportRequest", "ssh_key"): defaults.SSH_KEY_MAX_BYTES,
        ("ImportRequest", "ssh_user"): 32,
        ("SshRequest", "ssh_key"): defaults.SSH_KEY_MAX_BYTES,
        ("SshRequest", "ssh_user"): 32,
    }, "every field of the import bodies shows its limit"


def test_cli_import_peer_reads_the_kubeconfig_from_its_file(
    redis_url: str, data_dir: Path, kubeconfig: bytes, tmp_path: Path
) -> None:
    settings = _settings(redis_url, data_dir)
    path = tmp_path / "admin.conf"
    path.write_bytes(kubeconfig)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "USER": os.environ.get("USER", "root"),
        "KOBOT_REDIS_URL": redis_url,
        "KOBOT_DATA_DIR": str(data_dir),
        "KOBOT_POLICY_FILE": str(settings.policy_file),
        "KOBOT_ALLOW_LOCAL_HOSTS": "true",
    }
    kobot = [sys.executable, "-m", "bot.cli"]

    done = subprocess.run(
        [*kobot, "import", "legacy", "--kubeconfig", str(path)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.splitlines()[0]
        == "Imported legacy: kubernetes 1.30.2, 1 control-plane and 2 worker nodes"
    )
    missing = subprocess.run(
        [*kobot, "import", "other", "--kubeconfig", str(tmp_path / "absent")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    # the CLI's error box wraps a long path at the terminal's width: read it without the box and breaks
    unboxed = "".join(missing.stderr.replace("│", " ").split())
    assert missing.returncode == 2 and "absent" in unboxed
    inline = subprocess.run(
        [*kobot, "import", "other", "--kubeconfig", kubeconfig.decode()],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert inline.returncode != 0, "a kubeconfig given on the command line is not read"
