"""Every entry playbook checks the inventory first through the shared boilerplate.yml (kubespray's
pattern), and a day-2 playbook refuses a bad inventory before any host is touched.

The refusals run for real through the Ansible runner with local connection. Runs that would pass
the check are limited to a tag no role carries, in check mode: only the `always`-tagged boilerplate
runs, so nothing is changed on this machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kobot.job_records import JobEvent, JobEventType
from workers.ansible import PlaybookResult, PlaybookRun, PlaybookStatus, run_playbook

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
BOILERPLATE = "boilerplate.yml"
ENTRY_PLAYBOOKS = sorted(path.name for path in PLAYBOOKS.glob("*.yml") if path.name != BOILERPLATE)
HOST_PLAYBOOKS = {"repository_host.yml"}
"""Entry playbooks that play on one host outside any cluster (no masters, no etcd to count): the cluster
inventory checks do not apply, and their role checks its own variables first."""
CLUSTER_PLAYBOOKS = [name for name in ENTRY_PLAYBOOKS if name not in HOST_PLAYBOOKS]
VALIDATE_ROLE = "validate_inventory"
NO_ROLE_TAG = "kobot_no_role_has_this_tag"
"""Limits a run to the `always`-tagged boilerplate."""


def _plays(playbook: str) -> list[dict[str, Any]]:
    plays = yaml.safe_load((PLAYBOOKS / playbook).read_text(encoding="utf-8"))
    assert isinstance(plays, list) and plays, f"{playbook} holds no plays"
    return plays


def _imported(play: dict[str, Any]) -> str | None:
    name = play.get("ansible.builtin.import_playbook")
    return str(name) if name is not None else None


def _starts_with_boilerplate(playbook: str) -> bool:
    first = _imported(_plays(playbook)[0])
    if first is None:
        return False
    return first == BOILERPLATE or _starts_with_boilerplate(first)


def test_the_host_playbooks_exist() -> None:
    assert set(ENTRY_PLAYBOOKS) >= HOST_PLAYBOOKS


@pytest.mark.parametrize("playbook", CLUSTER_PLAYBOOKS)
def test_every_entry_playbook_checks_the_inventory_first(playbook: str) -> None:
    assert _starts_with_boilerplate(playbook), f"{playbook} must import {BOILERPLATE} (directly or first)"


@pytest.mark.parametrize("playbook", ENTRY_PLAYBOOKS)
def test_no_entry_playbook_keeps_its_own_asserts(playbook: str) -> None:
    inline = [
        task.get("name")
        for play in _plays(playbook)
        for section in ("pre_tasks", "tasks", "post_tasks")
        for task in play.get(section) or []
        if {"ansible.builtin.assert", "assert", "ansible.builtin.fail", "fail"} & set(task)
    ]
    assert inline == [], f"{playbook}: checks belong in the validate_inventory role, found {inline}"


def test_the_boilerplate_runs_on_every_tag_and_only_it_uses_the_validation_role() -> None:
    (play,) = _plays(BOILERPLATE)
    assert play["tags"] == ["always"], "a run limited to some roles' tags must still be checked"
    assert play["hosts"] == "all" and play["gather_facts"] is False
    assert [role["role"] for role in play["roles"]] == ["cluster_defaults", VALIDATE_ROLE]
    for playbook in ENTRY_PLAYBOOKS:
        text = (PLAYBOOKS / playbook).read_text(encoding="utf-8")
        assert f"role: {VALIDATE_ROLE}" not in text and f"name: {VALIDATE_ROLE}" not in text, playbook


# --- real runs ------------------------------------------------------------------------------------
def inventory(
    tmp_path: Path,
    *,
    masters: list[str],
    workers: list[str],
    groups: tuple[str, ...] = ("kube_control_plane", "kube_node", "etcd"),
) -> Path:
    """Local-connection hosts in kubespray's groups; etcd is the masters, as kobot writes it."""
    members = {"kube_control_plane": masters, "kube_node": workers or masters, "etcd": masters}
    content = {
        "all": {
            "vars": {"apiserver_loadbalancer_vip": "192.168.77.200"},
            "hosts": {name: {"ansible_connection": "local"} for name in masters + workers},
            "children": {
                **{group: {"hosts": {name: None for name in members[group]}} for group in groups},
                "k8s_cluster": {"children": {group: None for group in groups if group != "etcd"}},
            },
        }
    }
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def run(
    tmp_path: Path,
    playbook: str,
    inventory_path: Path,
    *,
    extravars: dict[str, Any] | None = None,
    tags: tuple[str, ...] = (NO_ROLE_TAG,),
) -> tuple[PlaybookResult, list[JobEvent]]:
    events: list[JobEvent] = []
    result = run_playbook(
        PlaybookRun(
            job_id="9",
            step=playbook.removesuffix(".yml"),
            attempt=1,
            playbook=playbook,
            playbooks_dir=PLAYBOOKS,
            inventory=inventory_path,
            artifacts_root=tmp_path / "jobs",
            extravars=extravars or {},
            tags=tags,
            check_mode=True,
        ),
        on_event=events.append,
        should_cancel=lambda: False,
    )
    return result, events


def _validation_tasks() -> set[str]:
    tasks = yaml.safe_load((PLAYBOOKS / "roles" / VALIDATE_ROLE / "tasks" / "main.yml").read_text("utf-8"))
    return {str(task["name"]) for block in tasks for task in [block, *block.get("block", [])]}


def _ran_past_the_check(events: list[JobEvent]) -> set[str]:
    """Tasks that started and are not the inventory check's own."""
    started = {event.task or "" for event in events if event.type is JobEventType.TASK_STARTED}
    assert "Report the problems found" in started, "the check itself ran"
    return started - _validation_tasks()


def _refused(result: PlaybookResult) -> str:
    assert result.status is PlaybookStatus.FAILED, result
    assert result.failed_task is not None and result.failed_task.endswith("Report the problems found")
    assert result.failed == 1, "refused once, not once per host"
    return result.error or ""


# kube_version as kobot passes it (without the v)
UPGRADE_VARS = {"kube_version": "1.32.0", "kubeconfig_path": "/nonexistent/admin.conf"}


def test_an_upgrade_refuses_an_even_etcd_count_whatever_tags_it_runs(tmp_path: Path) -> None:
    even = inventory(tmp_path, masters=["cp-1", "cp-2"], workers=["node-1"])

    result, events = run(
        tmp_path, "cluster_upgrade.yml", even, extravars=UPGRADE_VARS, tags=("kube_upgrade",)
    )

    error = _refused(result)
    assert error == "inventory refused: etcd group has 2 members, need an odd number (1, 3, 5)"
    assert _ran_past_the_check(events) == set()


def test_the_same_upgrade_with_an_odd_etcd_count_passes_the_check(tmp_path: Path) -> None:
    odd = inventory(tmp_path, masters=["cp-1", "cp-2", "cp-3"], workers=["node-1"])

    result, events = run(tmp_path, "cluster_upgrade.yml", odd, extravars=UPGRADE_VARS)

    assert result.succeeded, (result.failed_task, result.error)
    assert "Gathering Facts" in _ran_past_the_check(events), "the run went on past the check"
    assert any(
        event.type is JobEventType.TASK_OK and (event.task or "").endswith("Report the problems found")
        for event in events
    )


def test_node_add_refuses_an_inventory_without_kube_node(tmp_path: Path) -> None:
    missing = inventory(tmp_path, masters=["cp-1"], workers=["node-1"], groups=("kube_control_plane", "etcd"))

    result, events = run(tmp_path, "node_add.yml", missing, extravars={"nodes_to_add": ["node-1"]}, tags=())

    error = _refused(result)
    assert "group kube_node is missing or empty" in error
    assert "nodes_to_add must list inventory hosts of k8s_cluster" in error, "node-1 is in no cluster group"
    assert _ran_past_the_check(events) == set()


def test_node_add_passes_through_an_even_etcd_count_as_masters_join_one_at_a_time(tmp_path: Path) -> None:
    joining = inventory(tmp_path, masters=["cp-1", "cp-2"], workers=["node-1"])

    result, events = run(tmp_path, "node_add.yml", joining, extravars={"nodes_to_add": ["cp-2"]})

    assert result.succeeded, (result.failed_task, result.error)
    assert "Gathering Facts" in _ran_past_the_check(events), "the run went on past the check"


@pytest.mark.parametrize(
    ("extravars", "problem"),
    [
        ({}, "nodes_to_add is not set; this operation needs it"),
        ({"nodes_to_add": "node-1"}, 'nodes_to_add must list inventory hosts of k8s_cluster, got "node-1"'),
        (
            {"nodes_to_add": ["node-9"]},
            'nodes_to_add must list inventory hosts of k8s_cluster, got ["node-9"]',
        ),
    ],
)
def test_node_add_refuses_nodes_the_inventory_does_not_hold(
    tmp_path: Path, extravars: dict[str, Any], problem: str
) -> None:
    cluster = inventory(tmp_path, masters=["cp-1"], workers=["node-1"])
    result, _ = run(tmp_path, "node_add.yml", cluster, extravars=extravars, tags=())
    assert _refused(result) == f"inventory refused: {problem}"


@pytest.mark.parametrize(
    ("extravars", "problem"),
    [
        ({"kubeconfig_path": "/k"}, "nodes_to_remove is not set; this operation needs it"),
        ({"nodes_to_remove": ["node-1"]}, "kubeconfig_path is not set; this operation needs it"),
        (
            {"nodes_to_remove": ["node-9"], "kubeconfig_path": "/k"},
            'nodes_to_remove must list inventory hosts of k8s_cluster, got ["node-9"]',
        ),
        (
            {"nodes_to_remove": ["cp-1"], "kubeconfig_path": "/k"},
            'nodes_to_remove would leave no control-plane node, got ["cp-1"]',
        ),
    ],
)
def test_node_remove_refuses_what_it_cannot_do_before_any_drain(
    tmp_path: Path, extravars: dict[str, Any], problem: str
) -> None:
    cluster = inventory(tmp_path, masters=["cp-1"], workers=["node-1"])
    result, events = run(tmp_path, "node_remove.yml", cluster, extravars=extravars, tags=())
    assert _refused(result) == f"inventory refused: {problem}"
    assert _ran_past_the_check(events) == set(), "no node was drained"


def test_etcd_restore_refuses_a_missing_snapshot_before_any_api_server_stops(tmp_path: Path) -> None:
    cluster = inventory(tmp_path, masters=["cp-1"], workers=["node-1"])

    result, events = run(tmp_path, "etcd_restore.yml", cluster, tags=())

    assert _refused(result) == (
        "inventory refused: etcd_restore_snapshot is not set; this operation needs it; "
        "etcd_restore_sha256 is not set; this operation needs it"
    )
    assert _ran_past_the_check(events) == set()


def test_a_bad_node_name_is_refused_naming_the_rule(tmp_path: Path) -> None:
    cluster = inventory(tmp_path, masters=["cp-1"], workers=["Node_1"])

    result, _ = run(tmp_path, "etcd_backup.yml", cluster, extravars={"etcd_backup_dest": "/b"}, tags=())

    assert _refused(result) == (
        "inventory refused: node names must be lowercase letters, digits, - and . (RFC 1123): Node_1"
    )


def test_node_remove_refuses_to_leave_an_even_etcd_count(tmp_path: Path) -> None:
    cluster = inventory(tmp_path, masters=["cp-1", "cp-2", "cp-3"], workers=["node-1"])

    result, events = run(
        tmp_path,
        "node_remove.yml",
        cluster,
        extravars={"nodes_to_remove": ["cp-3"], "kubeconfig_path": "/k"},
        tags=(),
    )

    assert _refused(result) == (
        "inventory refused: removing cp-3 would leave 2 etcd members; an odd number (1, 3, 5) must stay"
    )
    assert _ran_past_the_check(events) == set(), "no node was drained"


def test_a_pod_network_too_small_for_the_nodes_is_refused(tmp_path: Path) -> None:
    cluster = inventory(tmp_path, masters=["cp-1"], workers=["node-1", "node-2", "node-3", "node-4"])

    result, _ = run(
        tmp_path,
        "etcd_backup.yml",
        cluster,
        extravars={
            "etcd_backup_dest": "/b",
            "kube_pods_subnet": "10.233.64.0/22",
            "kube_network_node_prefix": 24,
        },
        tags=(),
    )

    assert _refused(result) == (
        "inventory refused: kube_pods_subnet 10.233.64.0/22 with a /24 per node holds 4 nodes, "
        "the inventory has 5"
    )
