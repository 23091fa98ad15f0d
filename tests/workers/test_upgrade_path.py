"""The upgrade rules kubeadm enforces, decided once (day2_ops.upgrade_rules) for the command and the job."""

from __future__ import annotations

import pytest

from kobot.cluster_spec import NodeRole
from kobot.clusters import ClusterRecord, NodeRecord
from workers.day2_ops.upgrade_rules import (
    KubeVersion,
    UpgradeRefusedError,
    check_kubelets,
    check_upgrade,
    upgrade_batches,
    upgrade_path,
)


def refusal(current: str | None, target: str) -> str:
    with pytest.raises(UpgradeRefusedError) as caught:
        check_upgrade(cluster="prod", current=current, target=target)
    return caught.value.user_message


@pytest.mark.parametrize(
    ("current", "target"),
    [("1.30.2", "1.30.5"), ("1.30.14", "1.31.0"), ("1.31.0", "1.32.8"), ("v1.29.1", "1.30.1")],
)
def test_a_patch_or_the_next_minor_is_accepted(current: str, target: str) -> None:
    assert str(check_upgrade(cluster="prod", current=current, target=target)) == target.lstrip("v")


def test_a_downgrade_is_refused_even_within_a_minor() -> None:
    assert "kubeadm does not downgrade" in refusal("1.31.4", "1.31.3")
    assert "kubeadm does not downgrade" in refusal("1.31.4", "1.30.9")


def test_the_same_version_is_refused_as_nothing_to_do() -> None:
    assert refusal("1.31.4", "v1.31.4") == "prod already runs 1.31.4; nothing to upgrade"


def test_a_skipped_minor_is_refused_with_the_path_and_the_first_command() -> None:
    answer = refusal("1.30.5", "1.32.1")
    assert "one minor version at a time: 1.30.5 → 1.31.12 → 1.32.1" in answer
    assert "`upgrade prod 1.31.12` first" in answer


def test_a_path_through_a_minor_kobot_does_not_carry_is_refused_naming_it() -> None:
    with pytest.raises(UpgradeRefusedError, match=r"passes 1\.28"):
        upgrade_path(current=KubeVersion.parse("1.27.3"), target=KubeVersion.parse("1.29.1"))


def test_an_unknown_running_version_or_a_major_change_is_refused() -> None:
    assert "does not know which version prod runs" in refusal(None, "1.31.1")
    assert "major version" in refusal("1.31.1", "2.0.0")


def test_a_kubelet_newer_than_the_api_server_is_refused_naming_it() -> None:
    check_kubelets(api_server="1.31.2", kubelets={"worker-1": "1.31.2", "worker-2": "1.30.9"})
    with pytest.raises(UpgradeRefusedError, match=r"worker-2 \(v1.32.0\)"):
        check_kubelets(api_server="v1.31.2", kubelets={"worker-1": "v1.31.2", "worker-2": "v1.32.0"})


def test_batches_take_a_fifth_of_the_workers_by_number_and_masters_in_record_order() -> None:
    nodes = [NodeRecord(name=f"master-{i}", role=NodeRole.MASTER, address=f"m{i}") for i in (2, 1, 3)]
    nodes += [NodeRecord(name=f"worker-{i}", role=NodeRole.WORKER, address=f"w{i}") for i in range(11, 0, -1)]
    batches = upgrade_batches(ClusterRecord(name="prod", nodes=nodes))
    assert batches.masters == ("master-2", "master-1", "master-3")
    assert batches.workers == (
        ("worker-1", "worker-2", "worker-3"),
        ("worker-4", "worker-5", "worker-6"),
        ("worker-7", "worker-8", "worker-9"),
        ("worker-10", "worker-11"),
    )
