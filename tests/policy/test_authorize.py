"""Table tests of the policy: users × roles × clusters × commands, globs, channels, person join."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from redis import Redis

from bot.policy import PolicyStore
from kobot.conversations import Conversation, Identity
from kobot.risk import Risk

READ, CHANGE, RISKY = Risk.READ, Risk.CHANGE, Risk.RISKY

SAMPLE = Path(__file__).with_name("sample_policy.yaml")

ALICE_SLACK = Identity(platform="slack", user_id="U1ALICE", display_name="Alice")
ALICE_DINGTALK = Identity(platform="dingtalk", user_id="0231")
BOB_SLACK = Identity(platform="slack", user_id="U2BOB", email="Bob@Example.com")
CAROL = Identity(platform="slack", user_id="U3CAROL")
DAVE = Identity(platform="dingtalk", user_id="dave01")
ERIN = Identity(platform="wecom", user_id="erin")
MALLORY = Identity(platform="slack", user_id="U9MAL")
ROOT_TERMINAL = Identity(platform="terminal", user_id="root")

SLACK_OPS = Conversation(platform="slack", conversation_id="C0PROD")
DING_OPS = Conversation(platform="dingtalk", conversation_id="cid-ops-1")
DING_OTHER = Conversation(platform="dingtalk", conversation_id="cid-random")
WECOM_DM = Conversation(platform="wecom", conversation_id="erin", is_direct=True)
TERMINAL = Conversation(platform="terminal", conversation_id="tty")


@pytest.fixture
def store(redis: Redis) -> PolicyStore:
    return PolicyStore(path=SAMPLE, redis=redis)


# identity, conversation, command, risk, cluster, allowed, approvals required, break glass
CASES = [
    ("admin delete needs 2", ALICE_SLACK, SLACK_OPS, "cluster.delete", RISKY, "prod-eu", True, 2, True),
    ("same person dingtalk", ALICE_DINGTALK, DING_OTHER, "cluster.delete", RISKY, "prod-eu", True, 2, True),
    ("admin change no approval", ALICE_SLACK, SLACK_OPS, "workers.scale", CHANGE, "prod-eu", True, 0, True),
    ("risky default rule", ALICE_SLACK, SLACK_OPS, "node.remove", RISKY, "prod-eu", True, 1, True),
    ("person group off prod", ALICE_SLACK, SLACK_OPS, "workers.scale", CHANGE, "dev", True, 0, False),
    ("operator via group", CAROL, SLACK_OPS, "cluster.delete", RISKY, "prod-eu", True, 2, False),
    ("operator no audit", CAROL, SLACK_OPS, "audit", READ, "prod-eu", False, 0, False),
    ("everyone views", MALLORY, SLACK_OPS, "cluster.show", READ, "prod-eu", True, 0, False),
    ("viewer cannot change", MALLORY, SLACK_OPS, "workers.scale", CHANGE, "prod-eu", False, 0, False),
    ("viewer cannot audit", MALLORY, SLACK_OPS, "audit", READ, None, False, 0, False),
    ("email identity joins", BOB_SLACK, SLACK_OPS, "workers.scale", CHANGE, "staging", True, 0, False),
    ("rule exempts staging", BOB_SLACK, SLACK_OPS, "cluster.delete", RISKY, "staging", True, 0, False),
    ("cluster glob excludes", BOB_SLACK, SLACK_OPS, "workers.scale", CHANGE, "prod-eu", False, 0, False),
    ("channel-bound role", DAVE, DING_OPS, "workers.scale", CHANGE, "staging", True, 0, False),
    ("not in that channel", DAVE, DING_OTHER, "workers.scale", CHANGE, "staging", False, 0, False),
    ("custom role command glob", ERIN, WECOM_DM, "etcd.backup", CHANGE, "prod-eu", True, 0, False),
    ("custom role other cluster", ERIN, WECOM_DM, "etcd.backup", CHANGE, "prod-us", False, 0, False),
    ("platform wildcard subject", ERIN, WECOM_DM, "audit", READ, "lab", True, 0, False),
    ("custom role not risky", ERIN, WECOM_DM, "cluster.delete", RISKY, "prod-eu", False, 0, False),
    ("admin audits", ALICE_SLACK, SLACK_OPS, "audit", READ, "prod-eu", True, 0, True),
    ("no cluster any binding", CAROL, SLACK_OPS, "cluster.list", READ, None, True, 0, False),
    ("terminal not special", ROOT_TERMINAL, TERMINAL, "cluster.create", CHANGE, "dev", False, 0, False),
    ("alice terminal joins", Identity(platform="terminal", user_id="alice"), TERMINAL, "cluster.delete",
     RISKY, "prod-eu", True, 2, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("identity", "conversation", "command", "risk", "cluster", "allowed", "approvals", "break_glass"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_authorize_table(
    store: PolicyStore,
    identity: Identity,
    conversation: Conversation,
    command: str,
    risk: Risk,
    cluster: str | None,
    allowed: bool,
    approvals: int,
    break_glass: bool,
) -> None:
    decision = store.authorize(
        identity=identity, conversation=conversation, command_id=command, risk=risk, cluster=cluster
    )
    assert decision.allowed is allowed, decision.reason
    assert decision.approvals_required == approvals
    assert decision.needs_approval is (approvals > 0)
    assert decision.approver_role == ("admin" if approvals else None)
    assert decision.break_glass_allowed is (break_glass and allowed)
    assert decision.missing_permission == (None if allowed else command)
    assert (
        store.can_run(
            identity=identity, conversation=conversation, command_id=command, risk=risk, cluster=cluster
        )
        is allowed
    )


def test_refusal_names_permission_and_admins(store: PolicyStore) -> None:
    decision = store.authorize(
        identity=MALLORY,
        conversation=SLACK_OPS,
        command_id="workers.scale",
        risk=Risk.CHANGE,
        cluster="prod-eu",
    )
    assert not decision.allowed
    assert "workers.scale permission" in decision.reason
    assert "viewer" in decision.reason
    assert "Admins on prod-eu who can grant it: person:alice." in decision.reason


def test_refusal_without_admin_on_cluster_names_the_file(store: PolicyStore) -> None:
    decision = store.authorize(
        identity=MALLORY, conversation=SLACK_OPS, command_id="cluster.delete", risk=Risk.RISKY, cluster="dev"
    )
    assert "No admin is bound on dev" in decision.reason
    assert str(SAMPLE) in decision.reason


def test_roles_for_and_default_cluster(store: PolicyStore) -> None:
    assert store.roles_for(identity=ALICE_SLACK, cluster="prod-eu", conversation=SLACK_OPS) == [
        "admin",
        "operator",
        "viewer",
    ]
    assert store.roles_for(identity=MALLORY, cluster="prod-eu", conversation=SLACK_OPS) == ["viewer"]
    assert store.default_cluster(conversation=SLACK_OPS) == "prod-eu"
    assert store.default_cluster(conversation=DING_OPS) == "staging"
    assert store.default_cluster(conversation=DING_OTHER) is None


def test_person_join_across_platforms(store: PolicyStore) -> None:
    assert store.person_of(identity=ALICE_SLACK) == "alice"
    assert store.person_of(identity=ALICE_DINGTALK) == "alice"
    assert store.person_of(identity=BOB_SLACK) == "bob"
    assert store.person_of(identity=Identity(platform="wecom", user_id="bob")) == "bob"
    assert store.person_of(identity=MALLORY) is None


def test_describe_shows_person_groups_roles(store: PolicyStore) -> None:
    who = store.describe(identity=ALICE_DINGTALK, conversation=DING_OTHER, cluster="prod-eu")
    assert who.identity == "dingtalk:0231"
    assert who.person == "alice"
    assert "slack:U1ALICE" in who.identities
    assert who.groups == ("sre",)
    assert who.roles == ("admin", "operator", "viewer")
    assert str(SAMPLE) in who.policy_source


def test_api_token_maps_to_identity(tmp_path: Path, redis: Redis) -> None:
    token = "t0k3n-" + "x" * 40
    path = tmp_path / "policy.yaml"
    path.write_text(
        "people:\n  ci:\n    identities: ['api:deployer']\n"
        f"api_users:\n  deployer:\n    token_sha256: {hashlib.sha256(token.encode()).hexdigest()}\n"
        "    person: ci\n"
        "bindings:\n  - role: admin\n    subjects: ['person:ci']\n"
    )
    store = PolicyStore(path=path, redis=redis)
    identity = store.api_identity(token=token)
    assert identity is not None and identity.key == "api:deployer"
    assert store.api_identity(token=token + "x") is None
    assert store.api_identity(token="") is None
    api = Conversation(platform="api", conversation_id="rest")
    assert store.can_run(
        identity=identity, conversation=api, command_id="audit", risk=Risk.READ, cluster=None
    )


class TestWithoutPolicyFile:
    def test_terminal_user_is_admin_without_approval(self, redis: Redis) -> None:
        store = PolicyStore(path=None, redis=redis)
        decision = store.authorize(
            identity=ROOT_TERMINAL,
            conversation=TERMINAL,
            command_id="cluster.delete",
            risk=Risk.RISKY,
            cluster="p",
        )
        assert decision.allowed and not decision.needs_approval and decision.break_glass_allowed

    def test_chat_user_views_only_and_is_told_how_to_get_more(self, redis: Redis) -> None:
        store = PolicyStore(path=None, redis=redis)
        read = store.authorize(
            identity=MALLORY, conversation=SLACK_OPS, command_id="cluster.show", risk=Risk.READ, cluster="p"
        )
        assert read.allowed
        change = store.authorize(
            identity=MALLORY,
            conversation=SLACK_OPS,
            command_id="workers.scale",
            risk=Risk.CHANGE,
            cluster="p",
        )
        assert not change.allowed
        assert "slack:U9MAL" in change.reason and "KOBOT_POLICY_FILE" in change.reason
        assert store.describe(
            identity=MALLORY, conversation=SLACK_OPS, cluster=None
        ).policy_source.startswith("built-in")


def test_api_token_holds_only_bindings_that_name_it(tmp_path: Path, redis: Redis) -> None:
    token = "t0k3n-" + "y" * 40
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"api_users:\n  auditor:\n    token_sha256: {hashlib.sha256(token.encode()).hexdigest()}\n"
        "bindings:\n"
        "  - {role: viewer, subjects: ['*']}\n"
        "  - {role: admin, subjects: ['api:auditor'], clusters: ['dev-*']}\n"
    )
    store = PolicyStore(path=path, redis=redis)
    identity = store.api_identity(token=token)
    assert identity is not None
    api = Conversation(platform="api", conversation_id="rest")
    assert store.roles_for(identity=identity, cluster="prod-eu", conversation=api) == []
    assert store.roles_for(identity=identity, cluster="dev-1", conversation=api) == ["admin"]
    assert not store.can_run(
        identity=identity, conversation=api, command_id="job.status", risk=Risk.READ, cluster="prod-eu"
    )
