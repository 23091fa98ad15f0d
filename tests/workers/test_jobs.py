"""The job spine with real Valkey, real RQ workers and real ansible-runner on fixture playbooks."""

from __future__ import annotations

import threading
from pathlib import Path

from redis import Redis

from kobot.job_records import JobEventType, JobState, StepState
from tests.workers.jobkit import job_service, job_settings, reload, run_queue, spec, task_started, wait_for
from workers.events import read_job_events


def _step_states(record) -> list[str]:  # type: ignore[no-untyped-def]
    return [step.state.value for step in record.steps]


def test_job_runs_every_step_and_releases_its_cluster(redis_url: str, redis: Redis, data_dir: Path) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    marker = data_dir / "marker"
    marker.touch()
    record = service.submit(spec(service, kind="test.steps", marker=str(marker)))
    assert record.state is JobState.QUEUED

    run_queue(service)

    done = reload(service, record)
    assert done.state is JobState.SUCCEEDED, done.error
    assert _step_states(done) == ["succeeded"] * 4
    assert done.changed_total() == 2  # ok.yml reports one change per host, two hosts
    assert service.locks.holder("demo") is None
    types = [event.type for event in read_job_events(redis, record.job_id)]
    assert types[0] is JobEventType.JOB_QUEUED and types[-1] is JobEventType.JOB_SUCCEEDED
    assert types.count(JobEventType.STEP_SUCCEEDED) == 4
    assert JobEventType.TASK_STARTED in types


def test_failed_step_is_reported_and_retry_resumes_there(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    marker = data_dir / "marker"
    record = service.submit(spec(service, kind="test.steps", marker=str(marker)))
    run_queue(service)

    failed = reload(service, record)
    assert failed.state is JobState.FAILED
    assert _step_states(failed) == ["succeeded", "succeeded", "failed", "pending"]
    assert failed.failed_task == "Require the marker"
    assert failed.failed_host in {"node-a", "node-b"}
    assert failed.error is not None and "is missing" in failed.error
    assert service.locks.holder("demo") is None

    marker.touch()
    first_attempt_events = len(read_job_events(redis, record.job_id))
    retried = service.retry(record.job_id)
    assert retried.attempt == 2
    run_queue(service)

    done = reload(service, record)
    assert done.state is JobState.SUCCEEDED
    second = read_job_events(redis, record.job_id)[first_attempt_events:]
    started = [event.step for event in second if event.type is JobEventType.STEP_STARTED]
    assert started == ["check", "finish"], "retry must resume at the failed step"


def test_second_job_on_a_cluster_waits_and_starts_after(redis_url: str, redis: Redis, data_dir: Path) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    marker = data_dir / "marker"
    marker.touch()
    first = service.submit(spec(service, kind="test.steps", marker=str(marker)))
    second = service.submit(spec(service, kind="test.steps", marker=str(marker)))
    other_cluster = service.submit(spec(service, kind="test.steps", cluster="other", marker=str(marker)))
    assert second.state is JobState.WAITING and second.waiting_for == first.job_id
    assert other_cluster.state is JobState.QUEUED
    waiting_events = [e for e in read_job_events(redis, second.job_id) if e.type is JobEventType.JOB_WAITING]
    assert waiting_events and f"job {first.job_id}" in (waiting_events[0].message or "")

    run_queue(service)

    assert reload(service, first).state is JobState.SUCCEEDED
    assert reload(service, second).state is JobState.SUCCEEDED
    assert reload(service, other_cluster).state is JobState.SUCCEEDED
    assert service.locks.holder("demo") is None


def test_cancelling_a_waiting_job_leaves_the_queue(redis_url: str, redis: Redis, data_dir: Path) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    marker = data_dir / "marker"
    marker.touch()
    first = service.submit(spec(service, kind="test.steps", marker=str(marker)))
    second = service.submit(spec(service, kind="test.steps", marker=str(marker)))
    service.cancel(second.job_id)
    assert reload(service, second).state is JobState.CANCELLED
    assert service.locks.waiting("demo") == []
    run_queue(service)
    assert reload(service, first).state is JobState.SUCCEEDED
    assert reload(service, second).state is JobState.CANCELLED


def test_cancel_mid_task_stops_ansible_and_leaves_no_process(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    record = service.submit(spec(service, kind="test.slow", seconds=60))
    worker = threading.Thread(target=run_queue, args=(service,), daemon=True)
    worker.start()

    wait_for(task_started(redis, record.job_id, "Sleep"), timeout=30, what="the Sleep task to start")
    service.cancel(record.job_id)
    worker.join(timeout=15)
    assert not worker.is_alive(), "the job did not stop after cancel"

    done = reload(service, record)
    assert done.state is JobState.CANCELLED
    assert [s.state for s in done.steps] == [StepState.SUCCEEDED, StepState.CANCELLED]
    assert _processes_mentioning(str(data_dir)) == []
    assert service.locks.holder("demo") is None


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def test_a_crashing_step_fails_the_job_without_its_exception_text(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    record = service.submit(spec(service, kind="test.crash"))
    run_queue(service)
    failed = reload(service, record)
    assert failed.state is JobState.FAILED and failed.summary == "Crash crashed"
    assert "RuntimeError in step crash" in (failed.error or "")
    everything = failed.model_dump_json() + "".join(
        e.model_dump_json() for e in read_job_events(redis, record.job_id)
    )
    assert "hunter2" not in everything


def test_a_second_create_of_a_name_does_not_take_over_the_cluster(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    from kobot.clusters import ClusterRecord, ClusterState, ClusterStore

    service = job_service(job_settings(redis_url, data_dir), redis)
    ClusterStore(redis).save(ClusterRecord(name="prod", state=ClusterState.RUNNING, creating_job="0"))
    record = service.submit(
        spec(service, kind="cluster.create", cluster="prod", masters=1, workers=0, hosts=["localhost"])
    )
    run_queue(service)
    failed = reload(service, record)
    assert failed.state is JobState.FAILED and "already exists (running)" in (failed.summary or "")
    kept = ClusterStore(redis).require("prod")
    assert kept.state is ClusterState.RUNNING and kept.creating_job == "0" and kept.nodes == []


def test_the_sweep_unsticks_waiting_jobs_a_crash_left_outside_the_queue(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    from datetime import timedelta

    from workers.recovery import sweep

    service = job_service(job_settings(redis_url, data_dir), redis)
    marker = data_dir / "marker"
    marker.touch()
    first = service.submit(spec(service, kind="test.steps", marker=str(marker)))
    second = service.submit(spec(service, kind="test.steps", marker=str(marker)))
    # A crash after the cluster was handed to `second` but before it was queued:
    redis.delete("rq:queue:kobot")
    first_done = reload(service, first)
    first_done.state = JobState.CANCELLED
    service.records.save(first_done)
    service.locks.release(cluster="demo", job_id=first.job_id)
    stuck = reload(service, second)
    stuck.updated_at = stuck.updated_at - timedelta(minutes=1)
    redis.set(f"kobot:job:{stuck.job_id}", stuck.model_dump_json())
    assert service.locks.holder("demo") == second.job_id and reload(service, second).state is JobState.WAITING

    sweep(service)
    run_queue(service)
    assert reload(service, second).state is JobState.SUCCEEDED
    assert service.locks.holder("demo") is None


def test_a_worker_that_lost_its_job_stops_working_on_it(redis_url: str, redis: Redis, data_dir: Path) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    record = service.submit(spec(service, kind="test.slow", seconds=60))
    worker = threading.Thread(target=run_queue, args=(service,), daemon=True)
    worker.start()

    wait_for(task_started(redis, record.job_id, "Sleep"), timeout=30, what="the Sleep task to start")
    # What the sweep does when it judges the worker dead (its lease lapsed while it was cut off):
    assert service.finish(reload(service, record), state=JobState.FAILED, summary="judged dead")
    worker.join(timeout=15)
    assert not worker.is_alive(), "the worker must stop working on a job it no longer holds"
    ended = reload(service, record)
    assert ended.state is JobState.FAILED and ended.summary == "judged dead", (
        "its late finish changes nothing"
    )
    assert _processes_mentioning(str(data_dir)) == []
