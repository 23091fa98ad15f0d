"""A failed Terraform apply reaches chat through the masker: its error text and its events never carry
a credential the run was given, plainly or base64-encoded."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from kobot.errors import StepFailedError
from kobot.job_records import JobEvent
from workers.masking import MASK
from workers.terraform import TerraformWorkspace

REPO = Path(__file__).resolve().parents[2]
SECRET = "vc-Pa55-word-for-the-test"


def test_a_failed_apply_masks_the_credential_in_its_error_and_events(tmp_path: Path) -> None:
    workspace = TerraformWorkspace(
        cluster="c1",
        module_dir=REPO / "tests" / "terraform" / "leaks_secret",
        work_root=tmp_path / "terraform",
        env={"VSPHERE_PASSWORD": SECRET},
    )
    events: list[JobEvent] = []
    nodes = {"c1-master-1": {"role": "master", "ip": "", "cpu": 2, "memory": 2048, "disk": 20, "zone": ""}}

    with pytest.raises(StepFailedError) as caught:
        workspace.apply(variables={"nodes": nodes}, job_id="7", on_event=events.append, should_cancel=None)

    failure = caught.value
    said = [failure.user_message, failure.error or "", *(event.model_dump_json() for event in events)]
    encoded = base64.b64encode(SECRET.encode()).decode()
    assert "login with" in failure.user_message and MASK in failure.user_message, "the output is there"
    for text in said:
        assert SECRET not in text and encoded not in text, text
