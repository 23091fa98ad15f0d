"""`bundle plan`: the exact list of what an offline site needs for one Kubernetes version, its OS
families, architectures, CNI and addons.

Versions come from where the install takes them: the roles' defaults (etcd tools, Calico, flannel,
the pause tag per minor), kubeadm's own image list per minor, and the addon catalog (its charts, and
the images their renders name). Nothing is fetched while planning; the files' sha256 are read from
their upstream checksum files at build time, and the plan says where each one comes from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from kobot import validation
from kobot.cluster_spec import Arch, Cni
from kobot.errors import KobotError
from workers.addons.catalog import CATALOG, entry_named
from workers.bundle.manifest import (
    BundleManifest,
    ChecksumKind,
    ChecksumSource,
    PackageSource,
    PlannedChart,
    PlannedFile,
    PlannedImage,
    PlannedPackage,
)
from workers.compliance.kube_bench import KUBE_BENCH_VERSION  # the release `scan` installs and reads

ROLES_DIR = Path(__file__).resolve().parents[2] / "playbooks" / "roles"
"""The roles whose defaults name the versions the install uses."""

OS_FAMILIES: dict[str, str] = {
    "debian12": "deb",
    "ubuntu22.04": "deb",
    "ubuntu24.04": "deb",
    "el8": "rpm",
    "el9": "rpm",
}
"""Package families a bundle is planned for → their package format."""

OS_ALIASES: dict[str, str] = {"rocky8": "el8", "alma8": "el8", "rocky9": "el9", "alma9": "el9"}
"""kobot's cluster OS names that share one package family."""

DISTRO_ARCHIVES: dict[str, str] = {
    "debian12": "http://deb.debian.org/debian bookworm",
    "ubuntu22.04": "http://archive.ubuntu.com/ubuntu jammy",
    "ubuntu24.04": "http://archive.ubuntu.com/ubuntu noble",
    "el8": "the EL 8 BaseOS and AppStream repositories",
    "el9": "the EL 9 BaseOS and AppStream repositories",
}
"""Where each family's distribution packages (chrony, haproxy, ...) come from."""

APT_SUITES: dict[str, str] = {"debian12": "bookworm", "ubuntu22.04": "jammy", "ubuntu24.04": "noble"}
"""Each apt family's release: the suite its nodes name (`ansible_distribution_release`), so the bundle's
apt repository serves each family under `dists/<suite>`."""

DISTRO_APT_SOURCES: dict[str, tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...]] = {
    "debian12": (
        ("http://deb.debian.org/debian", ("bookworm", "bookworm-updates"), ("main",), ()),
        ("http://deb.debian.org/debian-security", ("bookworm-security",), ("main",), ()),
    ),
    "ubuntu22.04": (
        ("http://archive.ubuntu.com/ubuntu", ("jammy", "jammy-updates"), ("main", "universe"), ("amd64",)),
        ("http://security.ubuntu.com/ubuntu", ("jammy-security",), ("main", "universe"), ("amd64",)),
        (
            "http://ports.ubuntu.com/ubuntu-ports",
            ("jammy", "jammy-updates", "jammy-security"),
            ("main", "universe"),
            ("arm64",),
        ),
    ),
    "ubuntu24.04": (
        ("http://archive.ubuntu.com/ubuntu", ("noble", "noble-updates"), ("main", "universe"), ("amd64",)),
        ("http://security.ubuntu.com/ubuntu", ("noble-security",), ("main", "universe"), ("amd64",)),
        (
            "http://ports.ubuntu.com/ubuntu-ports",
            ("noble", "noble-updates", "noble-security"),
            ("main", "universe"),
            ("arm64",),
        ),
    ),
}
"""(URI, suites, components, architectures) of each apt family's distribution archive: what chrony,
haproxy, containerd and every dependency are resolved against (Ubuntu's arm64 lives on its ports
archive)."""

DISTRO_KEYRINGS: dict[str, str] = {
    "debian12": "/usr/share/keyrings/debian-archive-keyring.gpg",
    "ubuntu22.04": "/usr/share/keyrings/ubuntu-archive-keyring.gpg",
    "ubuntu24.04": "/usr/share/keyrings/ubuntu-archive-keyring.gpg",
}
"""The keyring (Debian's `debian-archive-keyring`, `ubuntu-keyring`) that verifies each distribution
archive's signed index, unless the plan names another (`--keyring`). pkgs.k8s.io's key is in no
package: the plan names it or the build refuses that source."""

RPM_ARCHES: dict[str, str] = {Arch.AMD64.value: "x86_64", Arch.ARM64.value: "aarch64"}
"""rpm's name of each architecture kobot names (the `$basearch` of EL nodes, the bundle's `el9/x86_64`):
the one map the bundle build, its tests and the upgrade check read."""

DNF_RELEASES: dict[str, str] = {"el8": "8", "el9": "9"}
"""Each EL family's `$releasever`: what its nodes' dnf names, so the bundle's dnf repository serves
each family under `el<release>/`."""

DISTRO_DNF_SOURCES: dict[str, tuple[str, ...]] = {
    family: (
        f"https://dl.rockylinux.org/pub/rocky/{release}/BaseOS/$basearch/os/",
        f"https://dl.rockylinux.org/pub/rocky/{release}/AppStream/$basearch/os/",
        f"https://download.docker.com/linux/centos/{release}/$basearch/stable/",
    )
    for family, release in DNF_RELEASES.items()
}
"""The dnf baseurls of each EL family's distribution (Rocky's BaseOS and AppStream: chrony, haproxy,
container-selinux and every dependency) and of Docker's repository (containerd.io). None of their keys
is in a Debian package: the plan names them (`--keyring`) or the build refuses the source."""

DISTRO_PACKAGES = ("chrony", "ipvsadm", "haproxy", "keepalived")
"""What base_os and load_balancer install from the distribution (their defaults and tasks)."""

CNI_PLUGINS_VERSION = "v1.6.2"
"""containernetworking/plugins release the bundle carries (the kubelet's bridge/loopback/portmap)."""

KUBEADM_IMAGES: dict[str, dict[str, str]] = {
    "1.29": {"etcd": "3.5.16-0", "coredns": "v1.11.1"},
    "1.30": {"etcd": "3.5.16-0", "coredns": "v1.11.3"},
    "1.31": {"etcd": "3.5.16-0", "coredns": "v1.11.3"},
    "1.32": {"etcd": "3.5.16-0", "coredns": "v1.11.3"},
}
"""kubeadm's DefaultEtcdVersion and CoreDNSVersion of each minor's newest patch: what
`kubeadm config images list` names besides the control plane and pause."""

CONTROL_PLANE_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")

CALICO_OPERATOR_VERSIONS: dict[str, str] = {"v3.29.1": "v1.36.2"}
"""The Tigera operator release that ships each Calico release."""

CALICO_IMAGES = (
    "node",
    "cni",
    "kube-controllers",
    "typha",
    "pod2daemon-flexvol",
    "csi",
    "node-driver-registrar",
    "apiserver",
)
"""Images the Tigera operator deploys for a Calico installation, under the Calico registry."""

CHART_REPOSITORIES: dict[str, str] = {
    "kube-prometheus-stack": "https://prometheus-community.github.io/helm-charts",
    "loki": "https://grafana.github.io/helm-charts",
    "kubernetes-dashboard": "https://kubernetes.github.io/dashboard",
    "nfs-subdir-external-provisioner": "https://kubernetes-sigs.github.io/nfs-subdir-external-provisioner",
    "nvidia-device-plugin": "https://nvidia.github.io/k8s-device-plugin",
    "f5-bigip-ctlr": "https://f5networks.github.io/charts/stable",
    "ceph-csi-rbd": "https://ceph.github.io/csi-charts",
    "openstack-cinder-csi": "https://kubernetes.github.io/cloud-provider-openstack",
}
"""Each catalog chart's upstream repository, used unless a site names its own chart repository."""

K8S_RELEASE = "https://dl.k8s.io/release"
GITHUB = "https://github.com"


class BundlePlanError(ValueError):
    """A plan input kobot cannot plan for; the message names the allowed values."""


def plan_bundle(
    *,
    version: str,
    os: Sequence[str],
    arch: Sequence[str],
    cni: str,
    addons: Sequence[str] = (),
    chart_repository: str | None = None,
    upstream: dict[str, str] | None = None,
    keyrings: dict[str, str] | None = None,
) -> BundleManifest:
    """The manifest for these inputs; the same inputs always give the same manifest.

    `keyrings` maps a source URI prefix to the keyring file that verifies it (`https://pkgs.k8s.io` →
    the Kubernetes `Release.key` the site checked), for the apt and dnf sources the build resolves
    against."""
    try:
        version = validation.kubernetes_version(version)
    except ValueError as exc:
        raise BundlePlanError(str(exc)) from None
    families = _families(os)
    arches = _choices(arch, allowed=[a.value for a in Arch], what="arch")
    network = _choices([cni], allowed=[c.value for c in Cni], what="cni")[0]
    entries = [_addon(name) for name in addons]
    minor = version.rsplit(".", 1)[0]
    return BundleManifest(
        kubernetes_version=version,
        os=tuple(families),
        arch=tuple(arches),
        cni=network,
        addons=tuple(entry.name for entry in entries),
        packages=tuple(p for family in families for p in _packages(family, version=version, minor=minor)),
        package_sources=tuple(
            source
            for family in families
            for source in [
                *_apt_sources(family, minor=minor, keyrings=keyrings or {}),
                *_dnf_sources(family, minor=minor, keyrings=keyrings or {}),
            ]
        ),
        files=tuple(_files(version=version, minor=minor, arches=arches, cni=network)),
        images=tuple(_unique_images(_images(version=version, minor=minor, cni=network, addons=entries))),
        charts=tuple(
            PlannedChart(
                name=entry.chart,
                version=entry.version,
                repository=_chart_repository(entry.chart, chart_repository),
                addon=entry.name,
            )
            for entry in entries
            if entry.chart  # an addon kobot writes as plain objects has no chart
        ),
        upstream=dict(upstream or {}),
    )


def _chart_repository(chart: str, site: str | None) -> str:
    if site:
        return site.rstrip("/")
    if chart not in CHART_REPOSITORIES:
        raise BundlePlanError(
            f"kobot knows no upstream repository of chart {chart}: name the site's (--chart-repository URL)"
        )
    return CHART_REPOSITORIES[chart]


def _choices(values: Iterable[str], *, allowed: Sequence[str], what: str) -> list[str]:
    chosen: list[str] = []
    for raw in values:
        value = raw.strip().lower()
        if value not in allowed:
            raise BundlePlanError(f"{what} {raw!r} is not one kobot plans for; allowed: {', '.join(allowed)}")
        if value not in chosen:
            chosen.append(value)
    if not chosen:
        raise BundlePlanError(f"name at least one {what}: {', '.join(allowed)}")
    return chosen


def _families(os: Sequence[str]) -> list[str]:
    allowed = [*OS_FAMILIES, *OS_ALIASES]
    named = _choices(os, allowed=allowed, what="os")
    return list(dict.fromkeys(OS_ALIASES.get(value, value) for value in named))


def _addon(name: str) -> Any:
    try:
        return entry_named(name)
    except KobotError:
        raise BundlePlanError(
            f"addon {name!r} is not in the catalog; allowed: {', '.join(sorted(CATALOG))}"
        ) from None


def _packages(family: str, *, version: str, minor: str) -> list[PlannedPackage]:
    pkgs_k8s = f"https://pkgs.k8s.io/core:/stable:/v{minor}/{OS_FAMILIES[family]}/"
    distro = DISTRO_ARCHIVES[family]
    rpm = OS_FAMILIES[family] == "rpm"
    containerd = (
        PlannedPackage(
            family=family,
            name="containerd.io",
            repository=f"https://download.docker.com/linux/centos/{family[2:]}/",
        )
        if rpm
        else PlannedPackage(family=family, name="containerd", repository=distro)
    )
    # the pins kube_packages writes: `kubeadm=1.32.8-*` for apt, `kubeadm-1.32.8` for dnf
    pin = version if rpm else f"{version}-*"
    kube = [PlannedPackage(family=family, name=n, version=pin, repository=pkgs_k8s) for n in _kube_packages()]
    tools = PlannedPackage(family=family, name="cri-tools", version=f"{minor}.*", repository=pkgs_k8s)
    distro_packages = [PlannedPackage(family=family, name=n, repository=distro) for n in DISTRO_PACKAGES]
    return [containerd, *kube, tools, *distro_packages]


def _apt_sources(family: str, *, minor: str, keyrings: dict[str, str]) -> list[PackageSource]:
    if family not in APT_SUITES:
        return []
    kubernetes = PackageSource(
        family=family, uri=f"https://pkgs.k8s.io/core:/stable:/v{minor}/deb/", suite="/"
    )
    sources = [
        PackageSource(
            family=family,
            uri=uri,
            suite=suite,
            components=components,
            arch=arches,
            keyring=DISTRO_KEYRINGS[family],
        )
        for uri, suites, components, arches in DISTRO_APT_SOURCES[family]
        for suite in suites
    ]
    return [
        source.model_copy(update={"keyring": _longest_prefix(source.uri, keyrings) or source.keyring})
        for source in [*sources, kubernetes]
    ]


def _dnf_sources(family: str, *, minor: str, keyrings: dict[str, str]) -> list[PackageSource]:
    if family not in DNF_RELEASES:
        return []
    uris = [*DISTRO_DNF_SOURCES[family], f"https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/"]
    return [
        PackageSource(family=family, uri=uri, suite="", keyring=_longest_prefix(uri, keyrings) or "")
        for uri in uris
    ]


def _longest_prefix(location: str, mapping: dict[str, str]) -> str | None:
    for prefix in sorted(mapping, key=len, reverse=True):
        if location.startswith(prefix):
            return mapping[prefix]
    return None


def _files(*, version: str, minor: str, arches: Sequence[str], cni: str) -> list[PlannedFile]:
    files: list[PlannedFile] = []
    for arch in arches:
        for binary in ("kubeadm", "kubelet", "kubectl"):
            url = f"{K8S_RELEASE}/v{version}/bin/linux/{arch}/{binary}"
            files.append(
                PlannedFile(
                    name=binary,
                    version=f"v{version}",
                    arch=arch,
                    path=f"kubernetes/v{version}/bin/linux/{arch}/{binary}",
                    url=url,
                    checksum=ChecksumSource(kind=ChecksumKind.SHA256_FILE, url=f"{url}.sha256"),
                )
            )
        crictl = f"v{minor}.0"
        files.append(
            _release_file(
                name="crictl",
                version=crictl,
                arch=arch,
                base=f"{GITHUB}/kubernetes-sigs/cri-tools/releases/download/{crictl}",
                archive=f"crictl-{crictl}-linux-{arch}.tar.gz",
                folder=f"cri-tools/{crictl}",
            )
        )
        files.append(
            _release_file(
                name="cni-plugins",
                version=CNI_PLUGINS_VERSION,
                arch=arch,
                base=f"{GITHUB}/containernetworking/plugins/releases/download/{CNI_PLUGINS_VERSION}",
                archive=f"cni-plugins-linux-{arch}-{CNI_PLUGINS_VERSION}.tgz",
                folder=f"cni-plugins/{CNI_PLUGINS_VERSION}",
            )
        )
        etcd = f"v{_role_default('kube_packages', 'etcd_tools_version')}"
        etcd_base = f"{GITHUB}/etcd-io/etcd/releases/download/{etcd}"
        etcd_archive = f"etcd-{etcd}-linux-{arch}.tar.gz"
        files.append(
            _sums_file(
                name="etcd",
                version=etcd,
                arch=arch,
                url=f"{etcd_base}/{etcd_archive}",
                sums=f"{etcd_base}/SHA256SUMS",
                path=f"etcd/{etcd}/{etcd_archive}",  # where kube_packages' etcd_tools_base_url looks
            )
        )
        bench_base = f"{GITHUB}/aquasecurity/kube-bench/releases/download/v{KUBE_BENCH_VERSION}"
        bench_archive = f"kube-bench_{KUBE_BENCH_VERSION}_linux_{arch}.tar.gz"
        files.append(
            _sums_file(
                name="kube-bench",
                version=f"v{KUBE_BENCH_VERSION}",
                arch=arch,
                url=f"{bench_base}/{bench_archive}",
                sums=f"{bench_base}/kube-bench_{KUBE_BENCH_VERSION}_checksums.txt",
                path=f"kube-bench/v{KUBE_BENCH_VERSION}/{bench_archive}",
            )
        )
    if cni == Cni.CALICO.value:
        calico = str(_role_default("cni", "calico_version"))
        files.append(
            PlannedFile(
                name="tigera-operator.yaml",
                version=calico,
                arch=None,
                path=f"calico/{calico}/tigera-operator.yaml",  # the cni role's offline manifest URL
                url=f"https://raw.githubusercontent.com/projectcalico/calico/{calico}/manifests/tigera-operator.yaml",
                checksum=ChecksumSource(kind=ChecksumKind.UNPUBLISHED),
            )
        )
    return files


def _release_file(*, name: str, version: str, arch: str, base: str, archive: str, folder: str) -> PlannedFile:
    return PlannedFile(
        name=name,
        version=version,
        arch=arch,
        path=f"{folder}/{archive}",
        url=f"{base}/{archive}",
        checksum=ChecksumSource(kind=ChecksumKind.SHA256_FILE, url=f"{base}/{archive}.sha256"),
    )


def _sums_file(*, name: str, version: str, arch: str, url: str, sums: str, path: str) -> PlannedFile:
    return PlannedFile(
        name=name,
        version=version,
        arch=arch,
        path=path,
        url=url,
        checksum=ChecksumSource(kind=ChecksumKind.SUMS_FILE, url=sums, entry=url.rsplit("/", 1)[1]),
    )


def _images(*, version: str, minor: str, cni: str, addons: Sequence[Any]) -> Iterable[PlannedImage]:
    for name in CONTROL_PLANE_IMAGES:
        yield PlannedImage(ref=f"registry.k8s.io/{name}:v{version}", group="control-plane")
    pause = _role_default("cluster_defaults", "kube_pause_tags")[minor]
    yield PlannedImage(ref=f"registry.k8s.io/pause:{pause}", group="control-plane")
    kubeadm = KUBEADM_IMAGES[minor]
    yield PlannedImage(ref=f"registry.k8s.io/etcd:{kubeadm['etcd']}", group="control-plane")
    yield PlannedImage(ref=f"registry.k8s.io/coredns/coredns:{kubeadm['coredns']}", group="dns")
    if cni == Cni.CALICO.value:
        calico = str(_role_default("cni", "calico_version"))
        yield PlannedImage(ref=f"quay.io/tigera/operator:{CALICO_OPERATOR_VERSIONS[calico]}", group="cni")
        for name in CALICO_IMAGES:
            yield PlannedImage(ref=f"quay.io/calico/{name}:{calico}", group="cni")
    else:
        for variable in ("flannel_image", "flannel_cni_plugin_image"):
            yield PlannedImage(ref="docker.io" + _after_template(_role_default("cni", variable)), group="cni")
    for entry in addons:
        for image in entry.images:
            yield PlannedImage(ref=qualified_image(image), group=f"addon:{entry.name}")


def _unique_images(images: Iterable[PlannedImage]) -> list[PlannedImage]:
    seen: dict[str, PlannedImage] = {}
    for image in images:
        seen.setdefault(image.ref, image)
    return list(seen.values())


def qualified_image(image: str) -> str:
    """`kong:3.8` → `docker.io/library/kong:3.8`: the name a registry mirror stores it under."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        return f"docker.io/library/{image}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{image}"
    return image


def _after_template(value: str) -> str:
    """`{{ repo }}/flannel/flannel:v0.26.1` → `/flannel/flannel:v0.26.1`."""
    return re.sub(r"^\{\{.*?\}\}", "", value)


def _kube_packages() -> list[str]:
    return [str(name) for name in _role_default("kube_packages", "kube_packages")]


def _role_default(role: str, name: str) -> Any:
    defaults = _role_defaults(role)
    if name not in defaults:
        raise KeyError(f"playbooks/roles/{role}/defaults/main.yml has no {name}")
    return defaults[name]


@cache
def _role_defaults(role: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROLES_DIR / role / "defaults" / "main.yml").read_text())
    return dict(loaded or {})
