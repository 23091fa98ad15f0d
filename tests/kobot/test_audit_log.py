"""The audit stream on a real Valkey: append, filters, since, masking, export, persistence."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from redis import Redis

from kobot.audit import AUDIT_STREAM, AuditLog, mask_secrets, parse_since
from kobot.conversations import Conversation, Identity

ALICE = Identity(platform="slack", user_id="UALICE", display_name="alice")
BOB = Identity(platform="dingtalk", user_id="bob01", display_name="bob")
OPS = Conversation(platform="slack", conversation_id="COPS")


def _seed(log: AuditLog) -> list[str]:
    return [
        log.record(who=ALICE, where=OPS, action="command", cluster="prod-eu",
                   detail={"text": "scale workers 5 on prod-eu"}, result="queued"),
        log.record(who=BOB, where=None, action="command.refused", cluster="prod-us",
                   detail={"text": "delete cluster prod-us"}, result="missing cluster.delete"),
        log.record(who=ALICE, where=OPS, action="approval.approved", cluster="staging",
                   detail={"request": "3"}, result="approved"),
        log.record(who=None, where=None, action="job.outcome", cluster="prod-eu",
                   detail={"job": "7"}, result="succeeded"),
    ]  # fmt: skip


def test_record_and_query_newest_first(redis: Redis, redis_url: str) -> None:
    log = AuditLog(redis=redis, store_url=redis_url)
    ids = _seed(log)
    entries = log.query()
    assert [e.id for e in entries] == list(reversed(ids))
    first = entries[-1]
    assert first.actor == "slack:UALICE" and first.actor_name == "alice" and first.where == "slack:COPS"
    assert first.action == "command" and first.result == "queued"
    assert "scale workers 5 on prod-eu" in first.line()


@pytest.mark.parametrize(
    ("filters", "expected_actions"),
    [
        ({"cluster": "prod-eu"}, ["job.outcome", "command"]),
        ({"cluster": "prod-*"}, ["job.outcome", "command.refused", "command"]),
        ({"actor": "dingtalk:*"}, ["command.refused"]),
        ({"actor": "SLACK:UALICE"}, ["approval.approved", "command"]),
        ({"action": "approval.*"}, ["approval.approved"]),
        ({"cluster": "prod-*", "action": "command*", "limit": 1}, ["command.refused"]),
        ({"cluster": "nowhere"}, []),
    ],
)
def test_query_filters(
    redis: Redis, redis_url: str, filters: dict[str, object], expected_actions: list[str]
) -> None:
    log = AuditLog(redis=redis, store_url=redis_url)
    _seed(log)
    assert [e.action for e in log.query(**filters)] == expected_actions  # type: ignore[arg-type]


def test_since_excludes_older_entries(redis: Redis, redis_url: str) -> None:
    log = AuditLog(redis=redis, store_url=redis_url)
    log.record(who=ALICE, where=OPS, action="old", cluster="c", detail={}, result="ok")
    time.sleep(0.01)
    boundary = datetime.now(UTC)
    time.sleep(0.01)
    log.record(who=ALICE, where=OPS, action="new", cluster="c", detail={}, result="ok")
    assert [e.action for e in log.query(since=boundary)] == ["new"]
    assert [e.action for e in log.query(since=boundary - timedelta(hours=1))] == ["new", "old"]


def test_paging_beyond_one_page(redis: Redis, redis_url: str) -> None:
    log = AuditLog(redis=redis, store_url=redis_url)
    for index in range(1200):
        log.record(who=None, where=None, action="tick", cluster="even" if index % 2 == 0 else "odd",
                   detail={"n": index}, result="ok")  # fmt: skip
    odd = log.query(cluster="odd", limit=1000)
    assert len(odd) == 600 and odd[0].detail["n"] == 1199 and odd[-1].detail["n"] == 1
    some = log.query(cluster="odd", limit=550)
    assert len(some) == 550 and some[-1].detail["n"] == 101
    exported = [json.loads(line) for line in log.export_jsonl(cluster="even")]
    assert [item["detail"]["n"] for item in exported] == list(range(0, 1200, 2))


def test_export_jsonl_oldest_first_one_object_per_line(redis: Redis, redis_url: str) -> None:
    log = AuditLog(redis=redis, store_url=redis_url)
    ids = _seed(log)
    lines = list(log.export_jsonl())
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    parsed = [json.loads(line) for line in lines]
    assert [item["id"] for item in parsed] == ids
    assert [json.loads(line)["action"] for line in log.export_jsonl(actor="slack:*")] == [
        "command",
        "approval.approved",
    ]


def test_secrets_never_reach_the_stream(redis: Redis, redis_url: str) -> None:
    log = AuditLog(redis=redis, store_url=redis_url)
    log.record(
        who=ALICE,
        where=OPS,
        action="command",
        cluster="c",
        detail={"args": {"vsphere_password": "hunter2", "token": "xoxb-123", "workers": 3},
                "kubeconfig": "apiVersion: v1 ...", "note": SecretStr("s3cret")},
        result="ok",
    )  # fmt: skip
    raw = b"".join(fields[b"e"] for _, fields in redis.xrange(AUDIT_STREAM))
    for secret in (b"hunter2", b"xoxb-123", b"apiVersion", b"s3cret"):
        assert secret not in raw
    detail = log.query()[0].detail
    assert detail["args"] == {"vsphere_password": "***", "token": "***", "workers": 3}
    assert mask_secrets({"password": None, "items": ({"secret": "x"},)}) == {
        "password": None,
        "items": [{"secret": "***"}],
    }


def test_entries_survive_a_new_log_object(redis_url: str) -> None:
    ids = _seed(AuditLog(redis=Redis.from_url(redis_url), store_url=redis_url))
    again = AuditLog(redis=Redis.from_url(redis_url), store_url=redis_url)
    assert [e.id for e in again.query()] == list(reversed(ids))


def test_parse_since() -> None:
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now=now) == now - timedelta(minutes=30)
    assert parse_since("1h", now=now) == now - timedelta(hours=1)
    assert parse_since("2d", now=now) == now - timedelta(days=2)
    assert parse_since("1w", now=now) == now - timedelta(weeks=1)
    assert parse_since("2025-01-31", now=now) == datetime(2025, 1, 31, tzinfo=UTC)
    assert parse_since("2025-01-31T08:00:00+08:00", now=now) == datetime(2025, 1, 31, 0, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="'yesterday' is not a time"):
        parse_since("yesterday", now=now)


def test_lone_surrogates_never_stop_an_entry_from_being_written(redis: Redis, redis_url: str) -> None:
    """A JSON escape such as \\udfff in a chat payload decodes to a lone surrogate, which UTF-8 cannot
    encode: the entry is still written, with the broken halves dropped."""
    log = AuditLog(redis=redis, store_url=redis_url)
    who = Identity(platform="slack", user_id="U\udfffX", display_name="al\ud83dice")
    log.record(
        who=who,
        where=OPS,
        action="command",
        cluster="prod\udfff",
        detail={"text": "list clusters \udfff", "k\ud800": ["v\udfff"]},
        result="ok\udfff",
    )
    [entry] = log.query(cluster=None, since=None, actor=None, action=None, limit=10)
    assert (entry.actor, entry.actor_name, entry.cluster, entry.result) == ("slack:UX", "alice", "prod", "ok")
    assert entry.detail == {"text": "list clusters ", "k": ["v"]}
