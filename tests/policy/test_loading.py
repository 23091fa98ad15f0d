"""Policy files: errors that name the line, reload on change, last good policy kept on a bad reload."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from redis import Redis

from bot.policy import PolicyError, PolicyStore
from bot.policy.loader import parse_policy
from kobot.conversations import Conversation, Identity
from kobot.risk import Risk

MALLORY = Identity(platform="slack", user_id="U9MAL")
HERE = Conversation(platform="slack", conversation_id="C1")

BAD_FILES = [
    (
        "unknown role",
        "bindings:\n  - role: viewer\n    subjects: ['*']\n  - role: root\n    subjects: ['*']\n",
        "line 4 (bindings.1.role): unknown role 'root'",
    ),
    (
        "bad risk",
        "roles:\n  ops:\n    risks:\n      - read\n      - dangerous\n",
        "line 5 (roles.ops.risks.1)",
    ),
    ("duplicate key", "roles:\n  ops: {}\n  ops: {}\n", "line 3: 'ops' appears twice (first on line 2)"),
    ("yaml syntax", "roles:\n  ops: [read\nbindings: []\n", "line 3: not valid YAML"),
    (
        "identity twice",
        "people:\n  a:\n    identities: ['slack:U1']\n  b:\n    identities: ['slack:u1']\n",
        "line 5 (people.b.identities.0): 'slack:u1' already belongs to person 'a'",
    ),
    ("unknown section", "version: 1\nrolez: {}\n", "line 2 (rolez): Extra inputs are not permitted"),
    (
        "too many approvals",
        "approvals:\n  - risks: [risky]\n    approvals: 9\n",
        "line 3 (approvals.0.approvals)",
    ),
    (
        "bad subject",
        "bindings:\n  - role: admin\n    subjects: ['alice']\n",
        "line 3 (bindings.0.subjects.0)",
    ),
    ("unknown person", "bindings:\n  - role: admin\n    subjects: ['person:zed']\n", "unknown person 'zed'"),
    ("bad token hash", "api_users:\n  ci:\n    token_sha256: secret\n", "line 3 (api_users.ci.token_sha256)"),
    ("bad ldap url", "ldap:\n  url: http://x\n  user_base: o=x\n  group_base: o=x\n", "line 2 (ldap.url)"),
    (
        "missing identities",
        "people:\n  a:\n    groups: [x]\n",
        "line 2 (people.a.identities): Field required",
    ),
    ("top level list", "- a\n- b\n", "line 1: the top level must be a mapping"),
    ("wrong version", "version: 2\n", "line 1 (version)"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_file_names_the_line(tmp_path: Path, redis: Redis, text: str, expected: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        PolicyStore(path=path, redis=redis)
    assert expected in caught.value.user_message
    assert str(path) in caught.value.user_message


def test_empty_file_is_an_empty_policy() -> None:
    policy = parse_policy("")
    assert set(policy.roles) == {"viewer", "operator", "admin"}
    assert policy.binding_count == 0


def test_missing_file_fails_the_start(tmp_path: Path, redis: Redis) -> None:
    with pytest.raises(PolicyError, match="cannot be read"):
        PolicyStore(path=tmp_path / "absent.yaml", redis=redis)


def _write(path: Path, text: str, *, bump: int) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump * 1_000_000_000))


VIEWER_ONLY = "bindings:\n  - role: viewer\n    subjects: ['*']\n"
MALLORY_OPERATOR = VIEWER_ONLY + "  - role: operator\n    subjects: ['slack:U9MAL']\n"


def _may_scale(store: PolicyStore) -> bool:
    return store.can_run(
        identity=MALLORY, conversation=HERE, command_id="workers.scale", risk=Risk.CHANGE, cluster="dev"
    )


def test_reload_on_change_and_keep_last_good(
    tmp_path: Path, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, VIEWER_ONLY, bump=0)
    store = PolicyStore(path=path, redis=redis, reload_check_seconds=0)
    assert not _may_scale(store)

    _write(path, MALLORY_OPERATOR, bump=1)
    assert _may_scale(store)
    assert store.last_error is None

    _write(path, MALLORY_OPERATOR + "  - role: nosuchrole\n    subjects: ['*']\n", bump=2)
    assert _may_scale(store), "a bad reload must keep the last good policy"
    assert store.last_error is not None and "line 6" in store.last_error
    assert any(
        r.levelname == "ERROR" and "keeping the last good policy" in r.getMessage() for r in caplog.records
    )

    path.unlink()
    assert _may_scale(store)
    assert store.last_error is not None and "cannot be read" in store.last_error

    _write(path, VIEWER_ONLY, bump=3)
    assert not _may_scale(store)
    assert store.last_error is None


def test_mtime_is_checked_at_most_once_per_interval(tmp_path: Path, redis: Redis) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, VIEWER_ONLY, bump=0)
    store = PolicyStore(path=path, redis=redis, reload_check_seconds=3600)
    _write(path, MALLORY_OPERATOR, bump=1)
    assert not _may_scale(store), "no file check before the interval has passed"
    assert store.reload_if_changed()
    assert _may_scale(store)
    assert not store.reload_if_changed(), "an unchanged file is not reloaded"


def test_shipped_example_policy_is_valid(redis: Redis) -> None:
    import bot.policy

    example = Path(bot.policy.__file__).with_name("example-policy.yaml")
    store = PolicyStore(path=example, redis=redis)
    alice = Identity(platform="wecom", user_id="alice")
    assert store.roles_for(identity=alice, cluster="prod-eu", conversation=HERE) == [
        "admin",
        "operator",
        "viewer",
    ]
    decision = store.authorize(
        identity=alice, conversation=HERE, command_id="cluster.delete", risk=Risk.RISKY, cluster="prod-eu"
    )
    assert decision.allowed and decision.approvals_required == 2
