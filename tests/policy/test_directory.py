"""Directory groups against a real OpenLDAP slapd started by the test on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from bot.policy import PolicyError, PolicyStore
from bot.policy.directory import DirectoryClient
from bot.policy.document import LdapSpec
from commands.catalog import load_commands
from kobot.conversations import Conversation, Identity
from kobot.risk import Risk
from tests.peers.ldap import KOBOT_DN, SUFFIX, Slapd, start_slapd

ALICE = Identity(platform="slack", user_id="U1", email="alice@example.com")
BOB = Identity(platform="slack", user_id="U2", email="bob@example.com")
CAROL = Identity(platform="slack", user_id="U3", email="carol@example.com")
HERE = Conversation(platform="slack", conversation_id="C1")


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()


def _policy(
    path: Path, server: Slapd, *, cache_seconds: int = 300, password_file: Path | None = None
) -> Path:
    path.write_text(
        f"ldap:\n  url: {server.url}\n  bind_dn: '{KOBOT_DN}'\n"
        f"  bind_password_file: {password_file or server.kobot_password_file}\n"
        f"  user_base: 'ou=people,{SUFFIX}'\n  group_base: 'ou=groups,{SUFFIX}'\n"
        f"  cache_seconds: {cache_seconds}\n  timeout_seconds: 1\n"
        "people:\n  alice:\n    identities: ['terminal:ali']\n    directory_user: alice\n"
        "bindings:\n"
        "  - role: admin\n    subjects: ['group:ldap:k8s-admins']\n    clusters: ['prod-*']\n"
        "  - role: operator\n    subjects: ['group:ldap:k8s-ops']\n"
    )
    return path


def _client(server: Slapd, redis: Redis, **overrides: object) -> DirectoryClient:
    spec = LdapSpec.model_validate(
        {"url": server.url, "bind_dn": KOBOT_DN, "user_base": f"ou=people,{SUFFIX}",
         "group_base": f"ou=groups,{SUFFIX}", **overrides}
    )  # fmt: skip
    from pydantic import SecretStr

    return DirectoryClient(spec=spec, password=SecretStr(server.kobot_password_file.read_text()), redis=redis)


def test_lookup_by_email_and_uid(slapd: Slapd, redis: Redis) -> None:
    client = _client(slapd, redis)
    assert client.lookup(uid=None, email="alice@example.com") == ("k8s-admins", "k8s-ops")
    assert client.lookup(uid="bob", email=None) == ("k8s-ops",)
    assert client.lookup(uid=None, email="nobody@example.com") == ()


def test_filter_injection_is_escaped(slapd: Slapd, redis: Redis) -> None:
    client = _client(slapd, redis)
    assert client.lookup(uid="*", email=None) == ()
    assert client.lookup(uid="alice)(uid=*", email=None) == ()


def test_directory_groups_grant_roles(slapd: Slapd, redis: Redis, tmp_path: Path) -> None:
    store = PolicyStore(path=_policy(tmp_path / "p.yaml", slapd), redis=redis)
    delete = {"command_id": "cluster.delete", "risk": Risk.RISKY, "cluster": "prod-eu", "conversation": HERE}
    alice = store.authorize(identity=ALICE, **delete)  # type: ignore[arg-type]
    assert alice.allowed and alice.break_glass_allowed
    assert "admin" in alice.roles
    bob = store.authorize(identity=BOB, **delete)  # type: ignore[arg-type]
    assert bob.allowed and not bob.break_glass_allowed and bob.roles == ("operator",)
    carol = store.authorize(identity=CAROL, **delete)  # type: ignore[arg-type]
    assert not carol.allowed
    who = store.describe(
        identity=Identity(platform="terminal", user_id="ali"), conversation=HERE, cluster="prod-1"
    )
    assert who.person == "alice"
    assert who.groups == ("ldap:k8s-admins", "ldap:k8s-ops")
    assert who.roles == ("admin", "operator")


def test_cache_answers_while_directory_is_down(redis: Redis, tmp_path: Path) -> None:
    server = start_slapd(tmp_path / "ldap")
    try:
        store = PolicyStore(path=_policy(tmp_path / "p.yaml", server, cache_seconds=0), redis=redis)
        assert store.roles_for(identity=ALICE, cluster="prod-eu", conversation=HERE) == ["admin", "operator"]
    finally:
        server.stop()
    assert store.roles_for(identity=ALICE, cluster="prod-eu", conversation=HERE) == ["admin", "operator"]
    who = store.describe(identity=ALICE, conversation=HERE, cluster="prod-eu")
    assert who.directory_error is not None and server.url in who.directory_error

    refused = store.authorize(
        identity=BOB, conversation=HERE, command_id="workers.scale", risk=Risk.CHANGE, cluster="dev"
    )
    assert not refused.allowed
    assert "Directory groups were not counted" in refused.reason
    assert server.url in refused.reason


def test_fresh_cache_skips_the_directory(redis: Redis, tmp_path: Path) -> None:
    server = start_slapd(tmp_path / "ldap")
    try:
        store = PolicyStore(path=_policy(tmp_path / "p.yaml", server, cache_seconds=300), redis=redis)
        assert store.roles_for(identity=BOB, cluster="dev", conversation=HERE) == ["operator"]
    finally:
        server.stop()
    who = store.describe(identity=BOB, conversation=HERE, cluster="dev")
    assert who.directory_error is None and who.groups == ("ldap:k8s-ops",)


def test_allowed_commands_follow_a_change_of_directory_groups(redis: Redis, tmp_path: Path) -> None:
    server = start_slapd(tmp_path / "ldap")
    try:
        load_commands()
        store = PolicyStore(path=_policy(tmp_path / "p.yaml", server, cache_seconds=0), redis=redis)
        assert "workers.scale" in store.allowed_commands(identity=BOB, conversation=HERE, cluster="dev")
    finally:
        server.stop()
    # the directory is gone and so is every remembered lookup: BOB is in no group any more
    redis.flushdb()
    after = store.allowed_commands(identity=BOB, conversation=HERE, cluster="dev")
    assert "workers.scale" not in after


def test_wrong_bind_password_is_a_clear_error(slapd: Slapd, redis: Redis, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-the-password")
    store = PolicyStore(path=_policy(tmp_path / "p.yaml", slapd, password_file=wrong), redis=redis)
    who = store.describe(identity=ALICE, conversation=HERE, cluster="prod-eu")
    assert who.groups == ()
    assert who.directory_error is not None and "LDAPInvalidCredentialsResult" in who.directory_error
    assert "not-the-password" not in who.directory_error


def test_missing_password_file_fails_the_load(slapd: Slapd, redis: Redis, tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="bind password file"):
        PolicyStore(path=_policy(tmp_path / "p.yaml", slapd, password_file=tmp_path / "absent"), redis=redis)
