"""What each supported OS family needs from the roles, read from the roles themselves: EL names its
containerd package containerd.io, enforces SELinux and runs firewalld; every host needs its NTP servers
and its Kubernetes packages held at their version; swap is base_os's to turn off, not preflight's to
refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment

ROLES = Path(__file__).resolve().parents[2] / "playbooks" / "roles"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _task(path: Path, name: str) -> dict[str, Any]:
    return next(task for task in _yaml(path) if task.get("name") == name)


def test_el_installs_containerd_io_and_debian_family_containerd() -> None:
    expression = _yaml(ROLES / "containerd" / "defaults" / "main.yml")["containerd_package"]
    render = Environment(autoescape=False).from_string(expression)  # nosec B701  # not HTML
    assert render.render(ansible_os_family="RedHat") == "containerd.io"
    assert render.render(ansible_os_family="Debian") == "containerd"


def test_el_hosts_get_selinux_permissive_and_firewalld_stopped() -> None:
    base = ROLES / "base_os" / "tasks"
    include = _task(base / "main.yml", "EL hosts (SELinux, firewalld)")
    assert include["when"] == "ansible_os_family == 'RedHat'"
    names = {task["name"]: task for task in _yaml(base / "el_host.yml")}
    assert names["Make SELinux permissive now"]["ansible.builtin.command"]["argv"] == ["setenforce", "0"]
    assert (
        names["Keep SELinux permissive after a reboot"]["ansible.builtin.lineinfile"]["path"]
        == "/etc/selinux/config"
    )
    firewalld = names["Stop firewalld"]["ansible.builtin.service"]
    assert (firewalld["name"], firewalld["state"], firewalld["enabled"]) == ("firewalld", "stopped", False)
    assert _yaml(ROLES / "base_os" / "defaults" / "main.yml")["base_os_selinux_state"] == "permissive"


def test_el_locks_the_kubernetes_packages_and_the_upgrade_lifts_the_lock_for_itself() -> None:
    lock = _task(
        ROLES / "kube_packages" / "tasks" / "main.yml",
        "Lock the Kubernetes packages at their version (EL family)",
    )
    assert lock["ansible.builtin.lineinfile"]["path"] == "/etc/dnf/dnf.conf"
    assert "excludepkgs=" in lock["ansible.builtin.lineinfile"]["line"]
    upgrade = next(
        task
        for task in _yaml(ROLES / "kube_upgrade" / "tasks" / "packages.yml")
        if "ansible.builtin.dnf" in task
    )
    assert upgrade["ansible.builtin.dnf"]["disable_excludes"] == "main"


def test_the_ntp_servers_reach_chrony() -> None:
    template = (ROLES / "base_os" / "templates" / "chrony.conf.j2").read_text(encoding="utf-8")
    text = (
        Environment(autoescape=False, trim_blocks=True)  # trim_blocks as Ansible sets it
        .from_string(template)
        .render(  # nosec B701  # not HTML
            ansible_managed="kobot", base_os_ntp_servers=["ntp1.dc.example", "192.0.2.1"]
        )
    )
    assert "server ntp1.dc.example iburst\nserver 192.0.2.1 iburst\n" in text
    task = _task(ROLES / "base_os" / "tasks" / "main.yml", "Point chrony at the datacenter's NTP servers")
    assert task["when"] == "base_os_ntp_servers | length > 0"


def test_preflight_leaves_swap_to_base_os_when_kobot_manages_the_kernel() -> None:
    swap = _task(
        ROLES / "preflight" / "tasks" / "system.yml", "Require swap off, unless base_os turns it off"
    )
    assert "not kobot_manage_kernel | bool" in swap["when"]
