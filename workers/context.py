"""What a step function gets: its job, a way to report events, cancel checks and the playbook runner."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis

from kobot.errors import JobCancelledError, StepFailedError
from kobot.job_records import JobEvent, JobEventType, JobRecord, StepRecord
from kobot.settings import Settings
from workers.events import EventPublisher
from workers.job_store import JobStore


@dataclass
class StepContext:
    """Per-step view of a running job. Steps report through `emit` and never touch chat."""

    record: JobRecord
    step: StepRecord
    settings: Settings
    redis: Redis
    jobs: JobStore
    events: EventPublisher
    scratch: dict[str, Any] = field(default_factory=dict)
    """Values earlier steps of this attempt left for later ones (e.g. the inventory path)."""
    lease_lost: threading.Event | None = None
    """Set when this worker no longer holds the job: the steps stop as if cancelled."""

    @property
    def job_id(self) -> str:
        return self.record.job_id

    @property
    def params(self) -> dict[str, Any]:
        return self.record.spec.params

    @property
    def cluster(self) -> str:
        return self.record.spec.cluster

    @property
    def work_dir(self) -> Path:
        """This job's private directory under the data directory (mode 0700)."""
        path = self.settings.job_artifacts_dir() / self.job_id
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def should_cancel(self) -> bool:
        if self.lease_lost is not None and self.lease_lost.is_set():
            return True
        return self.jobs.cancel_requested(self.job_id)

    def check_cancel(self) -> None:
        if self.should_cancel():
            raise JobCancelledError("cancelled on request")

    def emit(self, type: JobEventType, **fields: Any) -> None:
        self.events.publish(JobEvent(job_id=self.job_id, type=type, step=self.step.name, **fields))

    def on_runner_event(self, event: JobEvent) -> None:
        """Runner events (Ansible, Terraform) pass through here so the step's counters stay current."""
        if event.type is JobEventType.TASK_STARTED:
            self.step.task = event.task
            self.record.current_task = event.task
        elif event.type is JobEventType.TASK_CHANGED:
            self.step.changed += 1
        elif event.type in (JobEventType.TASK_FAILED, JobEventType.HOST_UNREACHABLE):
            self.step.failed += 1
            self.step.host = event.host
        self.events.publish(event.model_copy(update={"step": self.step.name}))

    def run_playbook(
        self,
        playbook: str,
        *,
        inventory: Path,
        extravars: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        tags: tuple[str, ...] = (),
        check_mode: bool = False,
    ) -> None:
        """Run one playbook as this step; raise StepFailedError naming the task, host and error."""
        # imported by the first playbook a worker runs: every long-running process imports this module
        # for its recovery sweep, and the runner brings ansible-runner's artifacts, YAML and masking
        from workers.ansible import PlaybookRun, PlaybookStatus, run_playbook

        result = run_playbook(
            PlaybookRun(
                job_id=self.job_id,
                step=self.step.name,
                attempt=self.record.attempt,
                playbook=playbook,
                playbooks_dir=self.settings.playbooks_dir,
                inventory=inventory,
                artifacts_root=self.settings.job_artifacts_dir(),
                extravars=dict(extravars or {}),
                site_vars=self.settings.ansible_extra_vars,
                secrets=dict(secrets or {}),
                tags=tags,
                check_mode=check_mode,
            ),
            on_event=self.on_runner_event,
            should_cancel=self.should_cancel,
        )
        if result.status is PlaybookStatus.CANCELED:
            raise JobCancelledError("cancelled on request")
        if result.status is not PlaybookStatus.SUCCESSFUL:
            raise StepFailedError(
                f"{self.step.title} failed"
                + (f" at task '{result.failed_task}'" if result.failed_task else ""),
                task=result.failed_task,
                host=result.failed_host,
                error=result.error or f"ansible-playbook ended {result.status.value} (rc {result.rc})",
            )
