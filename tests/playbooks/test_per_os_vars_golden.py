"""Per-OS role variables and package lists, rendered for EL 8/9 and Ubuntu 22.04/24.04 on x86_64 and
aarch64, against a golden file.

One Ansible run (local connection, no host contacted) with one inventory host per OS × architecture
whose facts are the ones that OS reports. The package lists and repository definitions are the very
expressions of the role tasks (read from the tasks files, not copied), evaluated with those facts,
so a change to a task's package list shows up here. Set UPDATE_GOLDEN=1 to rewrite the golden file
after an intended change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from tests.playbooks.install_render import ROLES
from workers.ansible import PlaybookRun, PlaybookStatus, run_playbook

GOLDEN = Path(__file__).parent / "golden" / "per-os-vars.json"
OFFLINE = {
    "offline_repo_url": "http://10.10.0.5/repo",
    "offline_files_url": "http://10.10.0.5/files",
    "offline_registry": "10.10.0.5:5000",
    # what a kobot bundle records (its EL upstream keys): EL nodes get its el<N>/<arch> repositories
    "offline_file_sha256": {f"packages/el{n}/keys/0123ABCD.asc": "a" * 64 for n in (8, 9)},
}
"""An offline site, as a cluster spec names it (nothing connects to it)."""

OS_FACTS: dict[str, dict[str, str]] = {
    "rocky-8": {"ansible_os_family": "RedHat", "ansible_distribution": "Rocky",
                "ansible_distribution_major_version": "8", "ansible_distribution_version": "8.10",
                "ansible_distribution_release": "Green Obsidian"},
    "rocky-9": {"ansible_os_family": "RedHat", "ansible_distribution": "Rocky",
                "ansible_distribution_major_version": "9", "ansible_distribution_version": "9.4",
                "ansible_distribution_release": "Blue Onyx"},
    "ubuntu-22.04": {"ansible_os_family": "Debian", "ansible_distribution": "Ubuntu",
                     "ansible_distribution_major_version": "22", "ansible_distribution_version": "22.04",
                     "ansible_distribution_release": "jammy"},
    "ubuntu-24.04": {"ansible_os_family": "Debian", "ansible_distribution": "Ubuntu",
                     "ansible_distribution_major_version": "24", "ansible_distribution_version": "24.04",
                     "ansible_distribution_release": "noble"},
}  # fmt: skip
"""The facts each OS's setup module reports that the roles read."""
ARCHITECTURES = ("x86_64", "aarch64")
FAMILY_ONLY = {
    "kube_packages_debian": "Debian",
    "offline_apt_source": "Debian",
    "kube_packages_el": "RedHat",
    "offline_dnf_baseurl": "RedHat",
}
"""Values that only one OS family's tasks use."""


def _task_arg(role: str, tasks_file: str, task: str, module: str, arg: str) -> str:
    """The Jinja expression of one argument of one role task, as the role has it."""
    tasks = yaml.safe_load((ROLES / role / "tasks" / tasks_file).read_text())
    found = next(t for t in tasks if t["name"] == task)
    value: str = found[module][arg]
    return value


def _expressions() -> dict[str, str]:
    """Name in the golden file → the expression that yields it (a role default or a task's argument)."""
    packages = "Install kubeadm, kubelet, kubectl and cri-tools ({family} family)"
    repository = "Add the offline repository (signature checks on)"
    return {
        "preflight_supported": "{{ preflight_supported_os | selectattr('distribution', 'equalto',"
        " ansible_distribution) | map(attribute='versions') | flatten"
        " | select('in', [ansible_distribution_version, ansible_distribution_major_version])"
        " | list | length > 0 }}",
        "time_sync_package": "{{ base_os_time_sync_package }}",
        "time_sync_service": "{{ base_os_time_sync_service }}",
        "chrony_config": _task_arg("base_os", "main.yml", "Point chrony at the datacenter's NTP servers",
                                   "ansible.builtin.template", "dest"),
        "containerd_package": "{{ containerd_package }}",
        "kube_packages_debian": _task_arg("kube_packages", "main.yml", packages.format(family="Debian"),
                                          "ansible.builtin.apt", "name"),
        "kube_packages_el": _task_arg("kube_packages", "main.yml", packages.format(family="EL"),
                                      "ansible.builtin.dnf", "name"),
        "offline_apt_source": _task_arg("base_os", "repo_debian.yml", repository,
                                        "ansible.builtin.apt_repository", "repo"),
        "offline_dnf_baseurl": _task_arg("base_os", "repo_redhat.yml", repository,
                                         "ansible.builtin.yum_repository", "baseurl"),
        "offline_gpg_key": "{{ offline_repo_gpg_key_url }}",
        "etcd_tools_url": "{{ etcd_tools_base_url }}/{{ etcd_tools_archive }}",
        "etcd_tools_sums": "{{ etcd_tools_base_url }}/SHA256SUMS",
    }  # fmt: skip


def _render(work: Path) -> dict[str, dict[str, Any]]:
    hosts = {
        f"{os_name}-{arch}": {"ansible_connection": "local", "ansible_architecture": arch, **facts}
        for os_name, facts in OS_FACTS.items()
        for arch in ARCHITECTURES
    }
    evaluated = _expressions()
    out = work / "per-os.json"
    play = [
        {
            "name": "Evaluate the per-OS variables",
            "hosts": "all",
            "gather_facts": False,
            "vars_files": [str(ROLES / "cluster_defaults" / "defaults" / "main.yml")]
            + [
                str(ROLES / role / "defaults" / "main.yml")
                for role in ("base_os", "containerd", "kube_packages", "preflight")
            ],
            "tasks": [
                {"name": "Evaluate", "ansible.builtin.set_fact": {"kobot_per_os": evaluated}},
                {
                    "name": "Write every host's values",
                    "ansible.builtin.copy": {
                        "content": "{{ dict(ansible_play_hosts | zip(ansible_play_hosts"
                        " | map('extract', hostvars, 'kobot_per_os'))) | to_nice_json }}",
                        "dest": str(out),
                        "mode": "0600",
                    },
                    "run_once": True,
                    "delegate_to": "localhost",
                },
            ],
        }
    ]
    (work / "per_os.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    inventory = work / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    result = run_playbook(
        PlaybookRun(
            job_id="per-os",
            step="render",
            attempt=1,
            playbook="per_os.yml",
            playbooks_dir=work,
            inventory=inventory,
            artifacts_root=work / "jobs",
            extravars=OFFLINE,
        ),
        on_event=lambda event: None,
        should_cancel=lambda: False,
    )
    assert result.status is PlaybookStatus.SUCCESSFUL, (result.failed_task, result.error)
    rendered: dict[str, dict[str, Any]] = json.loads(out.read_text())
    # a package list or repository definition applies to its own family only
    return {
        host: {
            name: value
            for name, value in values.items()
            if FAMILY_ONLY.get(name, hosts[host]["ansible_os_family"]) == hosts[host]["ansible_os_family"]
        }
        for host, values in rendered.items()
    }


def test_per_os_role_variables_and_package_lists_match_golden(tmp_path: Path) -> None:
    rendered = _render(tmp_path)

    text = json.dumps(rendered, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "per-OS values changed; UPDATE_GOLDEN=1 rewrites the golden file"
    for host, values in rendered.items():
        os_name, arch = host.rsplit("-", 1)
        el = os_name.startswith("rocky")
        assert values["preflight_supported"] is True, host
        assert values["containerd_package"] == ("containerd.io" if el else "containerd"), host
        assert values["time_sync_service"] == ("chronyd" if el else "chrony"), host
        upstream_arch = {"x86_64": "amd64", "aarch64": "arm64"}[arch]
        assert values["etcd_tools_url"].endswith(f"-linux-{upstream_arch}.tar.gz"), host
        assert values["etcd_tools_url"].startswith(OFFLINE["offline_files_url"] + "/etcd/"), host
        if el:
            assert "kube_packages_debian" not in values and values["kube_packages_el"][0] == "kubelet-1.32.8"
        else:
            release = OS_FACTS[os_name]["ansible_distribution_release"]
            assert values["offline_apt_source"].endswith(f"{OFFLINE['offline_repo_url']} {release} main"), (
                host
            )
            assert values["kube_packages_debian"][0] == "kubelet=1.32.8-*"
