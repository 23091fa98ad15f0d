"""The Ansible runner against real ansible-runner and ansible-playbook, on local-connection fixture plays."""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import pytest
import yaml

from kobot import defaults
from kobot.job_records import JobEvent, JobEventType
from workers.ansible import PlaybookRun, PlaybookStatus, run_playbook, syntax_check
from workers.ansible.artifacts import prune_job_dirs
from workers.masking import MASK

FIXTURE_PLAYBOOKS = Path(__file__).resolve().parent.parent / "fixtures" / "playbooks"
SECRET = "Tr0ub4dor&3-correct-horse"
CANCEL_BOUND_SECONDS = 20.0
"""Far below the 61.7 s sleep: a cancel that did not work cannot pass, a slow machine still does."""


def local_inventory(tmp_path: Path, *hosts: str) -> Path:
    path = tmp_path / f"inventory-{'-'.join(hosts)}.yml"
    content = {"all": {"hosts": {host: {"ansible_connection": "local"} for host in hosts}}}
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def make_run(tmp_path: Path, *, playbook: str, inventory: Path, **overrides: object) -> PlaybookRun:
    fields: dict[str, object] = {
        "job_id": "42",
        "step": "preflight",
        "attempt": 1,
        "playbook": playbook,
        "playbooks_dir": FIXTURE_PLAYBOOKS,
        "inventory": inventory,
        "artifacts_root": tmp_path / "jobs",
    }
    fields.update(overrides)
    return PlaybookRun(**fields)  # type: ignore[arg-type]


def processes_mentioning(*needles: str) -> list[str]:
    """Live processes whose command line contains any of `needles`."""
    found: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(needle in cmdline for needle in needles):
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def never() -> bool:
    return False


def test_success_publishes_task_events_in_order(tmp_path: Path) -> None:
    events: list[JobEvent] = []
    run = make_run(tmp_path, playbook="ok.yml", inventory=local_inventory(tmp_path, "node-a", "node-b"))

    result = run_playbook(run, on_event=events.append, should_cancel=never)

    assert result.status is PlaybookStatus.SUCCESSFUL
    assert (result.rc, result.ok, result.changed, result.failed, result.unreachable) == (0, 4, 2, 0, 0)
    assert result.error is None and result.failed_task is None
    assert all(event.job_id == "42" and event.step == "preflight" for event in events)
    sequence = [(event.type, event.task) for event in events]
    assert sequence[0] == (JobEventType.TASK_STARTED, "Say hello")
    assert sorted((e.host or "") for e in events[1:3]) == ["node-a", "node-b"]
    assert {e.type for e in events[1:3]} == {JobEventType.TASK_OK}
    assert sequence[3] == (JobEventType.TASK_STARTED, "Report a change")
    assert {(e.type, e.host) for e in events[4:6]} == {
        (JobEventType.TASK_CHANGED, "node-a"),
        (JobEventType.TASK_CHANGED, "node-b"),
    }
    assert len(events) == 6
    assert events[1].message == f"hello from {events[1].host}"
    private_dir = tmp_path / "jobs" / "42" / "preflight-a1"
    assert private_dir.is_dir() and (private_dir.stat().st_mode & 0o777) == 0o700
    assert (private_dir / "artifacts" / "42-preflight-a1" / "status").read_text() == "successful"


def test_failure_names_task_host_and_error_then_retry_resumes(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    inventory = local_inventory(tmp_path, "master-1")
    events: list[JobEvent] = []
    run = make_run(
        tmp_path, playbook="fail_unless_marker.yml", inventory=inventory, extravars={"marker": str(marker)}
    )

    failed = run_playbook(run, on_event=events.append, should_cancel=never)

    assert failed.status is PlaybookStatus.FAILED
    assert failed.rc == 2 and failed.failed == 1
    assert failed.failed_task == "Require the marker"
    assert failed.failed_host == "master-1"
    assert failed.error == f"marker {marker} is missing"
    failures = [event for event in events if event.type is JobEventType.TASK_FAILED]
    assert [(e.task, e.host, e.message) for e in failures] == [
        ("Require the marker", "master-1", failed.error)
    ]

    marker.touch()
    retried = run_playbook(
        make_run(
            tmp_path,
            playbook="fail_unless_marker.yml",
            inventory=inventory,
            extravars={"marker": str(marker)},
            attempt=2,
        ),
        on_event=lambda event: None,
        should_cancel=never,
    )
    assert retried.status is PlaybookStatus.SUCCESSFUL
    assert sorted(path.name for path in (tmp_path / "jobs" / "42").iterdir()) == [
        "preflight-a1",
        "preflight-a2",
    ]


def test_ignored_errors_are_not_failures(tmp_path: Path) -> None:
    events: list[JobEvent] = []
    run = make_run(tmp_path, playbook="ignored.yml", inventory=local_inventory(tmp_path, "node-a"))

    result = run_playbook(run, on_event=events.append, should_cancel=never)

    assert result.status is PlaybookStatus.SUCCESSFUL
    assert result.failed == 0 and result.failed_task is None
    assert [event.type for event in events] == [JobEventType.TASK_STARTED]


def test_check_mode_skips_commands(tmp_path: Path) -> None:
    events: list[JobEvent] = []
    run = make_run(
        tmp_path, playbook="ok.yml", inventory=local_inventory(tmp_path, "node-a"), check_mode=True
    )

    result = run_playbook(run, on_event=events.append, should_cancel=never)

    assert result.status is PlaybookStatus.SUCCESSFUL
    skipped = [event for event in events if event.type is JobEventType.TASK_SKIPPED]
    assert [event.task for event in skipped] == ["Report a change"]
    assert result.changed == 0


def test_tags_limit_the_tasks_run(tmp_path: Path) -> None:
    events: list[JobEvent] = []
    run = make_run(
        tmp_path, playbook="tagged.yml", inventory=local_inventory(tmp_path, "node-a"), tags=("second",)
    )

    result = run_playbook(run, on_event=events.append, should_cancel=never)

    assert result.status is PlaybookStatus.SUCCESSFUL
    assert [e.task for e in events if e.type is JobEventType.TASK_STARTED] == ["Second"]


def test_secret_never_leaves_the_runner(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[JobEvent] = []
    run = make_run(
        tmp_path,
        playbook="secret.yml",
        inventory=local_inventory(tmp_path, "node-a"),
        secrets={"DB_ADMIN_PASSWORD": SECRET},
        extravars={"fail_with_secret": True},
    )

    result = run_playbook(run, on_event=events.append, should_cancel=never)

    assert result.status is PlaybookStatus.FAILED
    assert result.error == f"cannot log in with {MASK}"
    printed = [event for event in events if event.task == "Print the secret (a careless playbook)"]
    assert any(event.message == f"password is {MASK}" for event in printed)
    for event in events:
        assert SECRET not in event.model_dump_json()
    assert SECRET not in repr(result)
    assert SECRET not in caplog.text
    private_dir = tmp_path / "jobs" / "42" / "preflight-a1"
    files = [path for path in private_dir.rglob("*") if path.is_file()]
    assert any(path.parent.name == "job_events" for path in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    assert not (private_dir / "artifacts" / "42-preflight-a1" / "command").exists()
    assert not (private_dir / "env" / "envvars").exists()


def test_secret_names_must_be_environment_names(tmp_path: Path) -> None:
    run = make_run(
        tmp_path, playbook="ok.yml", inventory=local_inventory(tmp_path, "a"), secrets={"PATH": "x"}
    )
    with pytest.raises(ValueError, match="PATH"):
        run_playbook(run, on_event=lambda event: None, should_cancel=never)


def test_cancel_mid_task_stops_every_ansible_process(tmp_path: Path) -> None:
    sleep_started: list[float] = []

    def on_event(event: JobEvent) -> None:
        if event.type is JobEventType.TASK_STARTED and event.task == "Sleep":
            sleep_started.append(time.monotonic())

    def should_cancel() -> bool:
        # Half a second in, the sleep runs inside an Ansible worker of its own session.
        return bool(sleep_started) and time.monotonic() - sleep_started[0] > 0.5

    run = make_run(
        tmp_path,
        playbook="slow.yml",
        inventory=local_inventory(tmp_path, "node-a"),
        extravars={"seconds": 61.7},
    )
    begin = time.monotonic()
    result = run_playbook(run, on_event=on_event, should_cancel=should_cancel)
    elapsed = time.monotonic() - begin

    assert result.status is PlaybookStatus.CANCELED
    assert result.error == "canceled"
    assert elapsed < CANCEL_BOUND_SECONDS
    assert (
        processes_mentioning(str(run.private_data_dir), str(FIXTURE_PLAYBOOKS / "slow.yml"), "sleep 61.7")
        == []
    )


def test_unreachable_host_is_reported(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    inventory = tmp_path / "ssh.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "ghost": {
                            "ansible_host": "127.0.0.1",
                            "ansible_port": closed_port,
                            "ansible_user": "nobody",
                        }
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    events: list[JobEvent] = []

    result = run_playbook(
        make_run(tmp_path, playbook="unreachable.yml", inventory=inventory),
        on_event=events.append,
        should_cancel=never,
    )

    assert result.status is PlaybookStatus.FAILED
    assert result.unreachable == 1
    assert (result.failed_task, result.failed_host) == ("Ping", "ghost")
    assert result.error is not None and "Connection refused" in result.error
    assert [event.host for event in events if event.type is JobEventType.HOST_UNREACHABLE] == ["ghost"]


def test_missing_playbook_fails_with_a_reason(tmp_path: Path) -> None:
    run = make_run(tmp_path, playbook="no_such.yml", inventory=local_inventory(tmp_path, "a"))
    result = run_playbook(run, on_event=lambda event: None, should_cancel=never)
    assert result.status is PlaybookStatus.FAILED
    assert result.error is not None and "no_such.yml" in result.error


def test_retention_prunes_the_oldest_job_dirs(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    keep = defaults.ANSIBLE_ARTIFACTS_KEEP
    now = time.time()
    for index in range(keep + 5):
        job_dir = root / f"old-{index:04d}"
        job_dir.mkdir(parents=True)
        os.utime(job_dir, (now - 10_000 + index, now - 10_000 + index))

    run = make_run(tmp_path, playbook="ok.yml", inventory=local_inventory(tmp_path, "a"))
    assert run_playbook(run, on_event=lambda event: None, should_cancel=never).succeeded

    remaining = sorted(path.name for path in root.iterdir() if path.is_dir())
    assert len(remaining) == keep
    assert "42" in remaining
    assert "old-0000" not in remaining and "old-0005" not in remaining
    assert f"old-{keep + 4:04d}" in remaining


def test_syntax_check_names_the_problem(tmp_path: Path) -> None:
    syntax_check(FIXTURE_PLAYBOOKS / "ok.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "- hosts: all\n  tasks:\n    - ansible.builtin.nonexistent_module: {}\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"broken\.yml"):
        syntax_check(broken)


def test_retention_never_prunes_the_running_job(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    for index, name in enumerate(["running", "b", "c", "d"]):
        (root / name).mkdir(parents=True)
        os.utime(root / name, (1_000 + index, 1_000 + index))
    removed = prune_job_dirs(artifacts_root=root, keep=2, protect="running")
    assert sorted(path.name for path in removed) == ["b", "c"]
    assert sorted(path.name for path in root.iterdir()) == ["d", "running"]
