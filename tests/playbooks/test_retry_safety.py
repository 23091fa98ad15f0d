"""What a retry after a failed or killed run finds: each step that must happen once success is known
happens on every run, or is keyed to a marker that only success writes (read from the roles' tasks).

A handler runs only at the end of a play and only after a change in that run: a run killed between
writing a config and its handler leaves a file that no longer changes, so the next run would never
apply, restart or flush it. kubeadm writes admin.conf and kubelet.conf midway through init and join,
so neither says the node is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ROLES = PLAYBOOKS / "roles"


def _tasks(path: Path) -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []

    def walk(tasks: list[dict[str, Any]]) -> None:
        for task in tasks or []:
            flat.append(task)
            for key in ("block", "rescue", "always"):
                walk(task.get(key) or [])

    walk(yaml.safe_load(path.read_text(encoding="utf-8")) or [])
    return flat


def _named(path: Path, name: str) -> dict[str, Any]:
    return next(task for task in _tasks(path) if task.get("name") == name)


def test_the_pod_network_and_addons_are_applied_on_every_run_not_by_handlers() -> None:
    assert not (ROLES / "cni" / "handlers").exists()
    for path in (ROLES / "cni" / "tasks" / "main.yml", ROLES / "addons" / "tasks" / "main.yml"):
        for task in _tasks(path):
            assert "notify" not in task, (path, task.get("name"))
    applies = [
        task
        for path in (ROLES / "cni" / "tasks" / "main.yml", ROLES / "addons" / "tasks" / "main.yml")
        for task in _tasks(path)
        if "apply" in task.get("ansible.builtin.command", {}).get("argv", [])
    ]
    assert len(applies) == 2
    for task in applies:
        assert "--server-side" in task["ansible.builtin.command"]["argv"]
        assert "selectattr('changed')" not in str(task.get("loop")), "every manifest, not the changed ones"


def test_a_containerd_restart_survives_a_killed_run_through_a_marker() -> None:
    tasks = ROLES / "containerd" / "tasks" / "main.yml"
    assert not (ROLES / "containerd" / "handlers").exists()
    assert all("notify" not in task for task in _tasks(tasks))
    restart = _named(tasks, "Restart containerd on its new config")
    assert "containerd_restart_pending.stat.exists" in restart["when"]
    names = [task.get("name") for task in _tasks(tasks)]
    assert names.index("Remember that containerd must restart") < names.index(
        "Restart containerd on its new config"
    )
    assert names.index("Restart containerd on its new config") < names.index("Forget the pending restart")


def test_init_and_join_are_done_only_when_their_success_marker_is() -> None:
    for path, command in (
        (ROLES / "control_plane" / "tasks" / "init.yml", "Run kubeadm init"),
        (ROLES / "kubeadm_join" / "tasks" / "main.yml", "Run kubeadm join"),
    ):
        tasks = _tasks(path)
        names = [task.get("name") for task in tasks]
        run = _named(path, command)
        assert "creates" not in run["ansible.builtin.command"], "kubeadm's own files are not a success marker"
        marker = next(t for t in tasks if str(t.get("name", "")).startswith("Record that"))
        assert marker["ansible.builtin.copy"]["dest"] == "{{ kubeadm_done_marker }}"
        assert names.index(command) < names.index(marker["name"])
        reset = next(t for t in tasks if str(t.get("name", "")).startswith("Reset what a failed"))
        assert names.index(reset["name"]) < names.index(command), "a half-done node is reset before a retry"
        validate = next(
            t for t in tasks if "validate" in t.get("ansible.builtin.command", {}).get("argv", [])
        )
        assert names.index(validate["name"]) < names.index(command), "kubeadm config validate runs first"


def test_a_reset_node_forgets_the_success_marker() -> None:
    loop = _named(ROLES / "kube_reset" / "tasks" / "main.yml", "Remove what kubeadm reset leaves behind")[
        "loop"
    ]
    assert "kubeadm_done_marker" in loop


def test_etcd_restore_follows_the_recovery_guide() -> None:
    restore = _named(
        ROLES / "etcd_restore" / "tasks" / "restore.yml", "Restore the snapshot into a new data directory"
    )
    assert restore["vars"]["etcd_restore_bump_argv"][0] == "--bump-revision"
    assert "--mark-compacted" in restore["vars"]["etcd_restore_bump_argv"]
    defaults = yaml.safe_load((ROLES / "etcd_restore" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    assert int(defaults["etcd_restore_bump_revision"]) >= 1_000_000_000
    assert {"kube-controller-manager", "kube-scheduler"} <= set(defaults["etcd_restore_restart_pods"])
    names = [task.get("name") for task in _tasks(ROLES / "etcd_restore" / "tasks" / "start.yml")]
    assert names.index(
        "Restart the controllers, which still cache the state before the restore"
    ) > names.index("Start etcd, then the API server, each once the previous one listens")


def test_a_leaving_master_is_removed_from_etcd_by_a_member_that_stays() -> None:
    tasks = _tasks(ROLES / "kube_reset" / "tasks" / "etcd_member.yml")
    remove = next(t for t in tasks if "remove" in t.get("ansible.builtin.command", {}).get("argv", []))
    assert remove["delegate_to"] == "{{ kube_reset_etcd_survivor }}"
    defaults = yaml.safe_load((ROLES / "kube_reset" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    # inventory order (difference() reorders): the first member that stays, unless one answers sooner
    assert "reject('in', nodes_to_remove" in defaults["kube_reset_etcd_survivor"]
    names = [task.get("name") for task in _tasks(ROLES / "kube_reset" / "tasks" / "main.yml")]
    assert names.index("Remove a leaving master's etcd member from a member that stays") < names.index(
        "Run kubeadm reset"
    )
    plays = yaml.safe_load((PLAYBOOKS / "node_remove.yml").read_text(encoding="utf-8"))
    reset = next(
        task for play in plays for task in play.get("tasks") or [] if task.get("name") == "Reset the node"
    )
    assert reset["ansible.builtin.include_role"]["apply"]["ignore_unreachable"] is True, (
        "a dead master leaves too"
    )


def test_kubelet_serving_requests_are_approved_at_install_and_renewal() -> None:
    post = [task.get("name") for task in _tasks(ROLES / "post" / "tasks" / "main.yml")]
    assert "Approve the kubelets' serving certificates" in post
    renew = _tasks(ROLES / "cert_renew" / "tasks" / "main.yml")
    included = {
        (t["ansible.builtin.include_role"]["name"], t["ansible.builtin.include_role"]["tasks_from"])
        for t in renew
        if "ansible.builtin.include_role" in t
    }
    assert ("post", "approve_serving_csrs") in included
    assert ("addons", "metrics_server_tls") in included, (
        "metrics-server's certificate renews with the cluster's"
    )


def test_node_add_restarts_the_load_balancer_one_master_at_a_time() -> None:
    plays = yaml.safe_load((PLAYBOOKS / "node_add.yml").read_text(encoding="utf-8"))
    balancer = next(
        play for play in plays if play.get("name") == "The API load balancer knows every control-plane node"
    )
    assert balancer["serial"] == 1
    names = [task.get("name") for task in _tasks(ROLES / "load_balancer" / "tasks" / "main.yml")]
    assert names[0] == "Require the VRRP password"
    assert "Restart keepalived now, not at the end of the play" in names
