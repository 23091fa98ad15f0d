"""A worker killed mid-attempt never removes its copy of an imported cluster's SSH key; the recovery
sweep (in every long-running kobot process) removes it once no live lease holds that job, and leaves a
running job's copy alone. Real Valkey for the leases."""

from __future__ import annotations

from pathlib import Path

from redis import Redis

from kobot import keys
from tests.workers.jobkit import job_settings
from workers.attempt_keys import ATTEMPT_KEY_FILE
from workers.worker import Sweeper


def _leave_key(jobs: Path, job_id: str, *, name: str = ATTEMPT_KEY_FILE) -> Path:
    folder = jobs / job_id
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = folder / name
    key.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    return key


def test_sweep_removes_keys_of_dead_attempts_and_keeps_a_running_one(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    settings = job_settings(redis_url, data_dir)
    jobs = settings.job_artifacts_dir()
    dead = _leave_key(jobs, "7")
    half_written = _leave_key(jobs, "8", name=f"{ATTEMPT_KEY_FILE}.part")
    running = _leave_key(jobs, "9")
    (jobs / "10").mkdir()  # a job dir without a key: nothing to do
    redis.set(keys.job_lease("9"), "worker-a", ex=60)

    sweeper = Sweeper(settings=settings, redis_url=redis_url)
    try:
        sweeper.sweep_once()
    finally:
        sweeper.stop()

    assert not dead.exists() and not half_written.exists()
    assert running.exists(), "a live lease keeps its attempt's key"
    assert (jobs / "7").is_dir(), "only the key goes; the job's artifacts stay"
