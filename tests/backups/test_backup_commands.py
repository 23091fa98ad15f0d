"""The backup commands through the real dispatcher, policy and store (real Valkey): schedule set, show and
off, list backups, a one-off backup to a named target, and the answers to what they refuse. Targets are
configured in settings; none is contacted here (the job tests and tests/backups/test_production_path*
reach real ones)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from kobot import keys
from kobot.cluster_spec import ClusterShape
from kobot.clusters import ClusterRecord, ClusterState, NodeRecord, NodeState
from kobot.conversations import Identity, InboundMessage
from kobot.job_records import JobKind
from kobot.messages import OutgoingMessage, Tone
from kobot.settings_backups import BackupSettings, DirectoryTarget, SftpTarget
from tests.bot.recording_adapter import RecordingAdapter
from tests.support.dispatching import OPERATOR, OPERATOR_ON_PROD, ROOM, dispatching_runtime
from workers import etcd
from workers.backup_schedule import ScheduleStore

VIEWER = Identity(platform="slack", user_id="U9", display_name="Vic")
POLICY = (
    OPERATOR_ON_PROD
    + """  - role: viewer
    subjects: ["slack:U9"]
"""
)


@pytest.fixture
def runtime(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    share = tmp_path / "share"
    share.mkdir()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    backups = BackupSettings(
        nfs={"share": DirectoryTarget(path=share)},
        sftp={
            "offsite": SftpTarget(
                host="backup.prod.test",
                user="kobot",
                path="/srv/kobot",
                password=SecretStr("sftp-password-never-shown"),
                known_hosts_file=known_hosts,
            )
        },
    )
    rt = dispatching_runtime(
        redis_url=redis_url, data_dir=data_dir, policy=POLICY, policy_dir=tmp_path, backups=backups
    )
    rt.clusters.save(
        ClusterRecord(
            name="prod",
            version="1.30.5",
            state=ClusterState.RUNNING,
            nodes=[NodeRecord(name="master-1", role="master", address="m1.prod.test", state=NodeState.READY)],
            spec=ClusterShape(version="1.30.5", masters=1, workers=0),
        )
    )
    yield rt
    rt.close()


async def tell(runtime: Runtime, text: str, *, who: Identity = OPERATOR) -> None:
    """A chat line to the dispatcher; a queued job's card comes later, from the notifier."""
    await Dispatcher(runtime=runtime).on_message(InboundMessage(identity=who, conversation=ROOM, text=text))


async def say(runtime: Runtime, text: str, *, who: Identity = OPERATOR) -> OutgoingMessage:
    """A chat line and the answer it got at once."""
    await tell(runtime, text, who=who)
    adapter = runtime.adapters["slack"]
    assert isinstance(adapter, RecordingAdapter)
    return adapter.deliveries[-1].message


def text_of(message: OutgoingMessage) -> str:
    return message.to_text()


def nothing_queued(runtime: Runtime) -> bool:
    return runtime.jobs.records.recent(limit=5) == [] and len(runtime.queue) == 0


# --- schedule set / show / off ---------------------------------------------------------------------------
async def test_schedule_set_show_and_off_answer_in_chat_and_change_only_the_schedule(
    runtime: Runtime,
) -> None:
    store = ScheduleStore(runtime.redis)

    answer = await say(runtime, "backup prod every day at 02:00 keep 14 target=offsite")
    assert answer.tone is Tone.SUCCESS and answer.title == "Backups of prod scheduled"
    body = answer.body or ""
    assert "prod: every day at 02:00 UTC to offsite, keep 14; next " in body
    assert "Target: offsite (sftp kobot@backup.prod.test:22 /srv/kobot)" in body
    assert "sftp-password-never-shown" not in text_of(answer)
    stored = store.get("prod")
    assert stored is not None
    assert (stored.every, stored.at, stored.keep, stored.target) == ("day", time(2, 0), 14, "offsite")
    assert stored.requested_by == OPERATOR and stored.reply_to == ROOM
    assert nothing_queued(runtime), "setting a schedule queues nothing now"

    replaced = await say(runtime, "备份 prod 每小时 00:15 保留 48 目标=share")
    assert "prod: every hour at :15 UTC to share, keep 48" in (replaced.body or "")
    assert "It replaces: prod: every day at 02:00 UTC to offsite, keep 14" in (replaced.body or "")

    shown = await say(runtime, "backup schedule prod")
    assert shown.title == "Backup schedules"
    shown_body = shown.body or ""
    assert shown_body.startswith("prod: every hour at :15 UTC to share, keep 48; next ")
    assert f"local (local {runtime.settings.data_dir / 'backups'})" in shown_body
    assert "share (nfs " in shown_body and "offsite (sftp kobot@backup.prod.test:22 /srv/kobot)" in shown_body
    assert "sftp-password-never-shown" not in text_of(shown)

    assert (await say(runtime, "备份计划", who=VIEWER)).title == "Backup schedules", "a viewer may look"

    off = await say(runtime, "backup prod off")
    assert off.tone is Tone.SUCCESS and off.title == "Scheduled backups of prod stopped"
    assert off.body == "Backups already taken stay."
    assert store.get("prod") is None

    again = await say(runtime, "取消定时备份 prod")
    assert "prod has no backup schedule (`backup schedule` lists them)" in text_of(again)
    none_left = await say(runtime, "backup schedule prod")
    assert none_left.title == "No backup schedule for prod"
    assert "Set one: `backup prod every day at 02:00 keep 14`." in (none_left.body or "")


async def test_schedule_refuses_an_unknown_target_naming_the_configured_ones(runtime: Runtime) -> None:
    answer = await say(runtime, "backup prod every day at 03:00 target=elsewhere")
    assert "no backup target 'elsewhere'; configured: local, share, offsite" in text_of(answer)
    assert ScheduleStore(runtime.redis).get("prod") is None


async def test_a_viewer_may_not_set_or_stop_a_schedule(runtime: Runtime) -> None:
    await say(runtime, "backup prod every day at 02:00")
    before = ScheduleStore(runtime.redis).get("prod")
    assert before is not None
    for text in ("backup prod every hour at 00:30", "backup prod off"):
        answer = await say(runtime, text, who=VIEWER)
        assert answer.title == "Not allowed", text
        assert "etcd.schedule" in text_of(answer), text
    assert ScheduleStore(runtime.redis).get("prod") == before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("backup prod every week", "every must be one of day | hour, got 'week'"),
        ("backup prod every fortnight at 02:00 keep 3", "every must be one of day | hour, got 'fortnight'"),
        ("backup prod every day at 25:00", "at: Input should be in a valid time format"),
        ("backup prod every day keep 0", "keep must be from 1 to "),
        (
            "backup prod every day target=Off_site",
            "target 'Off_site' is no target name: `local` or a configured",
        ),
    ],
)
async def test_a_schedule_that_cannot_be_is_answered_with_what_is_allowed(
    runtime: Runtime, text: str, expected: str
) -> None:
    answer = await say(runtime, text)
    assert expected in text_of(answer)
    assert "Two clusters" not in text_of(answer)
    assert ScheduleStore(runtime.redis).get("prod") is None


# --- list backups ------------------------------------------------------------------------------------------
def _recorded(runtime: Runtime, backup_id: str, data: bytes, *, at: datetime) -> etcd.EtcdBackup:
    backup = etcd.EtcdBackup(
        id=backup_id,
        cluster="prod",
        file=f"{backup_id}.db",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        created_at=at,
    )
    etcd.save_backup(redis=runtime.redis, backup=backup)
    runtime.redis.zadd(keys.etcd_backups("prod"), {backup_id: at.timestamp()})
    return backup


async def test_list_backups_shows_where_each_lives_newest_first(runtime: Runtime) -> None:
    empty = await say(runtime, "list backups prod")
    assert empty.title == "prod has no backups yet" and empty.body == "Take one: `backup prod`."

    # records as a backup job leaves them (the job tests take real snapshots)
    older = _recorded(
        runtime, "prod-20260301-020000", b"old snapshot", at=datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    )
    newer = _recorded(
        runtime, "prod-20260302-020000", b"new snapshot", at=datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    )
    moved = newer.model_copy(update={"target": "offsite", "key": f"prod/{newer.id}.db", "scheduled": True})
    etcd.save_backup(redis=runtime.redis, backup=moved)

    listed = await say(runtime, "备份列表 prod")
    assert listed.title == "Backups of prod"
    lines = (listed.body or "").splitlines()
    assert lines[0].startswith(f"{newer.id}  ") and lines[1].startswith(f"{older.id}  ")
    assert f"at offsite (scheduled)  sha256 {newer.sha256[:16]}" in lines[0]
    assert f"at local  sha256 {older.sha256[:16]}" in lines[1]
    assert lines[-1] == (
        "Restore one with `restore prod from ID`: it is fetched and checked before anything stops."
    )


# --- one-off backup to a target -----------------------------------------------------------------------------
async def test_a_one_off_backup_names_its_target_and_queues_it_with_the_job(runtime: Runtime) -> None:
    await tell(runtime, "backup prod target=offsite")
    [record] = runtime.jobs.records.recent(limit=5)
    assert record.spec.kind == JobKind.ETCD_BACKUP.value and record.spec.cluster == "prod"
    assert record.spec.params == {"target": "offsite"}

    await tell(runtime, "备份 prod")
    default = runtime.jobs.records.recent(limit=5)[0]
    assert default.spec.params == {"target": "local"}, "without a target the snapshot stays on kobot's disk"


async def test_a_one_off_backup_to_an_unknown_target_is_refused_naming_the_configured_ones(
    runtime: Runtime,
) -> None:
    answer = await say(runtime, "backup prod target=elsewhere")
    assert answer.title == "Cannot do that"
    assert "no backup target 'elsewhere'; configured: local, share, offsite" in text_of(answer)
    assert nothing_queued(runtime)
