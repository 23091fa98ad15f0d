"""Chat `kubectl` end to end: a Slack mention in, kobot reading the Kubernetes API peer, the answer posted
to the Slack peer; the permission, namespace scope, hidden Secret values and an unreachable API server."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis import Redis

from bot.app import create_app
from bot.chat.slack.defaults import EVENTS_PATH
from kobot import defaults
from kobot.clusters import ClusterRecord, ClusterState, ClusterStore
from kobot.settings import Settings
from kobot.store import secret_key
from tests.peers.kubernetes import KubernetesApiPeer
from tests.peers.slack import PeerMessage, SlackPeer, event_callback, mention_event, signed_headers
from tests.support.network import free_port
from tests.support.slack import settings_for
from tests.support.waiting import eventually
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets

POLICY = """
version: 1
roles:
  shop-reader:
    commands: ["kubectl:shop", "cluster.*"]
bindings:
  - role: operator
    subjects: ["slack:U0ALICE"]
  - role: shop-reader
    subjects: ["slack:U0SHOP"]
  - role: viewer
    subjects: ["*"]
"""
PASSWORD = "s3cret-value-never-in-chat"


@pytest.fixture
def kube() -> Iterator[KubernetesApiPeer]:
    with KubernetesApiPeer() as peer:
        peer.add_node("prod-worker-1")
        peer.add_pod("shop", "api-1", node="prod-worker-1", labels={"app": "api"})
        peer.add_pod("shop", "db-0", node="prod-worker-1", waiting_reason="CrashLoopBackOff", restarts=4)
        peer.add_pod("kube-system", "coredns-1", node="prod-worker-1")
        peer.add_secret("shop", "creds", data={"password": PASSWORD})
        yield peer


@pytest.fixture
def settings(peer: SlackPeer, signing_secret: str, redis_url: str, data_dir: Path) -> Settings:
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    return Settings(
        policy_file=policy,
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        slack=settings_for(peer, signing_secret),
    )


def add_cluster(settings: Settings, redis: Redis, name: str, kubeconfig: bytes) -> None:
    ClusterStore(redis).save(ClusterRecord(name=name, state=ClusterState.RUNNING, version="1.31.4"))
    ClusterSecrets(redis=redis, secret=secret_key(settings)).put(
        cluster=name, name=KUBECONFIG_SECRET, value=kubeconfig
    )


@pytest.fixture
async def kobot(
    settings: Settings, redis: Redis, kube: KubernetesApiPeer, data_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    add_cluster(settings, redis, "prod", kube.write_kubeconfig(data_dir / "peer.conf").read_bytes())
    app: FastAPI = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kobot.test") as client,
    ):
        yield client


async def ask(kobot: httpx.AsyncClient, peer: SlackPeer, secret: str, text: str, user: str) -> PeerMessage:
    event = mention_event(text=f"<@U0KOBOT> {text}", user=user)
    body = json.dumps(event_callback(event)).encode()
    headers = {"Content-Type": "application/json", **signed_headers(signing_secret=secret, body=body)}
    assert (await kobot.post(EVENTS_PATH, content=body, headers=headers)).status_code == 200
    await eventually(lambda: [m for m in peer.posted() if m.thread_ts == event["ts"]], what="a reply")
    [reply] = [m for m in peer.posted() if m.thread_ts == event["ts"]]
    return reply


def shown(message: PeerMessage) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


async def test_peer_kubectl_get_pods_is_answered_with_a_table(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str, kube: KubernetesApiPeer
) -> None:
    reply = shown(await ask(kobot, peer, signing_secret, "kubectl get pods -n shop on prod", "U0ALICE"))
    assert "2 pods in shop" in reply and "CrashLoopBackOff" in reply and "coredns" not in reply
    assert {call.method for call in kube.requests} == {"GET"}


async def test_peer_chinese_form_and_events_and_logs_run_through_slack(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str, kube: KubernetesApiPeer
) -> None:
    assert "prod-worker-1" in shown(await ask(kobot, peer, signing_secret, "查看 prod 节点", "U0ALICE"))
    kube.add_event("shop", kind="Pod", name="db-0", reason="BackOff", message="Back-off restarting")
    assert "BackOff" in shown(await ask(kobot, peer, signing_secret, "events -n shop on prod", "U0ALICE"))
    assert "Usage of 1 nodes" in shown(await ask(kobot, peer, signing_secret, "top nodes on prod", "U0ALICE"))


async def test_peer_viewers_may_not_read_inside_the_cluster(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str, kube: KubernetesApiPeer
) -> None:
    reply = shown(await ask(kobot, peer, signing_secret, "kubectl get pods -n shop on prod", "U0VIEWER"))
    assert "Not allowed" in reply and "kubectl" in reply
    # (kobot's node watch lists nodes on its own: only the reads of pods are the command's)
    assert kube.calls("GET", "/pods") == [], "a refused read never reaches the API server"


async def test_peer_a_namespace_grant_reads_that_namespace_only(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str, kube: KubernetesApiPeer
) -> None:
    assert "2 pods in shop" in shown(
        await ask(kobot, peer, signing_secret, "kubectl get pods -n shop on prod", "U0SHOP")
    )
    for text in (
        "kubectl get pods -n kube-system on prod",
        "kubectl get pods -A on prod",
        "top nodes on prod",
    ):
        reply = shown(await ask(kobot, peer, signing_secret, text, "U0SHOP"))
        assert "you may not read" in reply, text
    assert [call.path for call in kube.calls("GET", "/pods")] == ["/api/v1/namespaces/shop/pods"]


async def test_peer_secret_values_are_never_posted(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str
) -> None:
    for text in (
        "kubectl get secrets -n shop on prod",
        "kubectl get secret creds -n shop -o yaml on prod",
        "kubectl describe secret creds -n shop on prod",
    ):
        reply = shown(await ask(kobot, peer, signing_secret, text, "U0ALICE"))
        assert "never shown" in reply, text
    posted = "".join(shown(m) for m in peer.posted())
    assert PASSWORD not in posted and "czNjcmV0" not in posted  # neither plain nor base64


async def test_peer_an_unreachable_api_server_is_answered_clearly_and_fast(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str, settings: Settings, redis: Redis
) -> None:
    dead = f"apiVersion: v1\nkind: Config\nclusters: [{{name: d, cluster: {{server: 'http://127.0.0.1:{free_port()}'}}}}]\n"
    dead += "users: [{name: a, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: d, user: a}}]\n"
    add_cluster(settings, redis, "dead", (dead + "current-context: c\n").encode())
    started = time.monotonic()
    reply = shown(await ask(kobot, peer, signing_secret, "kubectl get nodes on dead", "U0ALICE"))
    assert "cannot reach the API server of dead" in reply
    assert time.monotonic() - started < 10


async def test_peer_a_stalled_api_server_is_answered_at_the_deadline(
    kobot: httpx.AsyncClient,
    peer: SlackPeer,
    signing_secret: str,
    kube: KubernetesApiPeer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(defaults, "KUBECTL_DEADLINE_SECONDS", 1.0)
    kube.slow(3)
    started = time.monotonic()
    reply = shown(await ask(kobot, peer, signing_secret, "kubectl get nodes on prod", "U0ALICE"))
    assert "did not answer within 1s" in reply
    assert time.monotonic() - started < 3


async def test_peer_a_cluster_without_a_stored_kubeconfig_says_why(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str, redis: Redis
) -> None:
    ClusterStore(redis).save(ClusterRecord(name="half", state=ClusterState.CREATING))
    reply = shown(await ask(kobot, peer, signing_secret, "kubectl get nodes on half", "U0ALICE"))
    assert "kobot holds no admin kubeconfig for half" in reply
