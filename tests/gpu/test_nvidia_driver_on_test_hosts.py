"""The NVIDIA driver role in `--check` mode on the SSH test hosts (Debian 12, no GPU, no systemd):
only the node the inventory marks `gpu: true` would get the driver, nouveau's blacklist, the module
list, the container toolkit and containerd's nvidia runtime; the other node would get none of it, and
check mode leaves both hosts as they were. The NVIDIA packages live only in a site's offline mirror, so
Debian packages stand in for them (the role installs whatever `nvidia_driver_packages` lists)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kobot.automation_yaml import dump_yaml, load_yaml
from tests.hosts.lab import HostLab
from tests.playbooks.roles_lab import RolesLab, changed_tasks, open_roles_lab

NAMES = ("master-1", "worker-1")
STAND_INS = {"nvidia_driver_packages": ["dkms"], "containerd_nvidia_packages": ["pciutils"]}
"""Debian packages in the driver's and the toolkit's place (not installed on the test hosts)."""


@pytest.fixture(scope="module")
def lab(host_lab: HostLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolesLab]:
    with open_roles_lab(host_lab, tmp_path_factory.mktemp("nvidia-lab"), names=NAMES) as opened:
        inventory = load_yaml(opened.inventory.read_text())
        inventory["all"]["hosts"]["worker-1"]["gpu"] = True
        opened.inventory.write_text(dump_yaml(inventory))
        yield opened


def test_gpu_node_gets_driver_toolkit_and_nvidia_runtime_check_mode_on_test_hosts(lab: RolesLab) -> None:
    result, events = lab.run(
        "container_runtime.yml",
        extravars={"kobot_manage_services": False, "kobot_manage_kernel": False, **STAND_INS},
        check_mode=True,
    )

    assert result.succeeded, (result.failed_task, result.failed_host, result.error)
    would_change = changed_tasks(events)
    gpu_tasks = {
        "Keep nouveau off the GPU",
        "Install the NVIDIA driver on GPU nodes",
        "Load the NVIDIA kernel modules at boot",
        "Install the NVIDIA Container Toolkit on GPU nodes",
    }
    assert {f"worker-1: {task}" for task in gpu_tasks} <= would_change
    assert not {f"master-1: {task}" for task in gpu_tasks} & would_change
    seen = {(event.host, event.task) for event in events}
    assert ("master-1", "Install the NVIDIA driver on GPU nodes") in seen  # reached, and skipped
    for name in NAMES:
        left = lab.ssh(
            name, "ls /etc/modprobe.d/kobot-blacklist-nouveau.conf 2>/dev/null; command -v dkms; true"
        )
        assert left == "", "check mode changes nothing"


NOUVEAU_STAND_IN = "/tmp/kobot-stand-in-nouveau"
"""A directory shaped like /sys/module/nouveau (its `refcnt` counts users): the test hosts run no GPU."""
KERNEL_CHECK = {"kobot_manage_services": False, "nvidia_driver_nouveau_sysfs": NOUVEAU_STAND_IN, **STAND_INS}
"""The role with kernel management on, in check mode: it reads nouveau's state and touches no kernel."""
REBUILD = "Rebuild the initramfs without nouveau"
STOP = "Stop when nouveau cannot be unloaded"


def test_the_blacklist_rebuilds_the_initramfs_of_the_gpu_node_only_check_mode_on_test_hosts(
    lab: RolesLab,
) -> None:
    result, events = lab.run(
        "container_runtime.yml", extravars=KERNEL_CHECK, check_mode=True, tags=("nvidia_driver",)
    )

    assert result.succeeded, (result.failed_task, result.failed_host, result.error)
    seen = {(event.host, event.task) for event in events}
    assert ("worker-1", REBUILD) in seen, "the new blacklist notified the rebuild"
    assert ("master-1", REBUILD) not in seen
    assert ("worker-1", STOP) in seen and "worker-1: " + STOP not in changed_tasks(events)


@pytest.mark.parametrize(
    ("refcnt", "reason"),
    [("1", "in use: refcnt 1"), (None, "built into the kernel")],
    ids=["in-use", "built-in"],
)
def test_a_nouveau_that_cannot_be_unloaded_stops_the_run_asking_for_a_reboot_check_mode_on_test_hosts(
    lab: RolesLab, refcnt: str | None, reason: str
) -> None:
    setup = f"mkdir -p {NOUVEAU_STAND_IN}" + (
        f" && echo {refcnt} > {NOUVEAU_STAND_IN}/refcnt" if refcnt else ""
    )
    for name in NAMES:
        lab.ssh(name, setup)
    try:
        result, events = lab.run(
            "container_runtime.yml", extravars=KERNEL_CHECK, check_mode=True, tags=("nvidia_driver",)
        )
    finally:
        for name in NAMES:
            lab.ssh(name, f"rm -rf {NOUVEAU_STAND_IN}")

    assert not result.succeeded
    assert (result.failed_host, result.failed_task) == ("worker-1", STOP), (
        "only the GPU node needs nouveau gone"
    )
    assert reason in str(result.error) and "reboot the node" in str(result.error)
    assert ("worker-1", REBUILD) in {(event.host, event.task) for event in events}, "rebuilt before stopping"
    assert "worker-1: Unload nouveau" not in changed_tasks(events), "nothing was unloaded"
