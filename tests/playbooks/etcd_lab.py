"""This machine's real etcd and etcdctl on SSH test hosts, with kubeadm's certificate layout.

One home for what the etcd backup, restore, master replace and production backup tests put on their
hosts: the certificates, the binaries, starting and stopping a member, and the kubelet stand-in that
runs static pods from /etc/kubernetes/manifests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.playbooks.roles_lab import RolesLab

ETCD_PKI = "/etc/kubernetes/pki/etcd"
ETCD_BINARIES = (Path("/usr/bin/etcd"), Path("/usr/bin/etcdctl"))
ETCD_CERTIFICATE_FILES = (
    "ca.crt",
    "server.crt",
    "server.key",
    "healthcheck-client.crt",
    "healthcheck-client.key",
)
"""What a member and its health check read from ETCD_PKI."""
ETCD_CLIENT_ENV = (
    f"ETCDCTL_API=3 ETCDCTL_ENDPOINTS=https://127.0.0.1:2379 ETCDCTL_CACERT={ETCD_PKI}/ca.crt "
    f"ETCDCTL_CERT={ETCD_PKI}/healthcheck-client.crt ETCDCTL_KEY={ETCD_PKI}/healthcheck-client.key"
)
ETCD_READY_ATTEMPTS = 50
"""Polls (0.2 s apart) for a freshly started etcd to answer."""
OPENSSL_TIMEOUT_SECONDS = 30
"""Upper bound of one openssl command making a test certificate."""
MANIFESTS = "/etc/kubernetes/manifests"
RUNNER_PATH = "/root/static-pods.sh"
STATIC_POD_RUNNER = """
while true; do
  if [ -f /etc/kubernetes/manifests/etcd.yaml ]; then
    pgrep -x etcd >/dev/null || {etcd}
  else
    pkill -x etcd
  fi
  if [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; then
    pgrep -f '^python3 -m http.server 6443' >/dev/null ||
      setsid -f python3 -m http.server 6443 --bind 127.0.0.1 >/dev/null 2>&1
  else
    pkill -f '^python3 -m http.server 6443'
  fi
  sleep 0.2
done
"""
"""What the kubelet does with static pods, as far as a restore sees it: a manifest in
/etc/kubernetes/manifests runs its process, a manifest moved away stops it. etcd is the real etcd;
the API server is represented by a listener on its port (no API server binary exists here)."""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, timeout=OPENSSL_TIMEOUT_SECONDS, check=True
    )


def etcd_pki(directory: Path, *, addresses: tuple[str, ...] = ()) -> Path:
    """A CA, a server certificate for 127.0.0.1 and `addresses`, and a client certificate, kubeadm's names."""
    directory.mkdir()
    new_key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-x509", *new_key, "-days", "2", "-subj", "/CN=etcd-ca", "-keyout", "ca.key",
             "-out", "ca.crt", cwd=directory)  # fmt: skip
    sans = ",".join(f"IP:{address}" for address in ("127.0.0.1", *addresses))
    for name, usage in (("server", "serverAuth"), ("healthcheck-client", "clientAuth")):
        (directory / f"{name}.cnf").write_text(f"subjectAltName={sans}\nextendedKeyUsage={usage}\n")
        _openssl("req", *new_key, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 cwd=directory)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", f"{name}.cnf", "-out", f"{name}.crt", cwd=directory)  # fmt: skip
    return directory


def install_etcd(lab: RolesLab, name: str, *, pki: Path) -> None:
    """etcd and etcdctl in /usr/local/bin, the certificates of `pki` in ETCD_PKI as kubeadm lays them out."""
    lab.ssh(name, f"mkdir -p {ETCD_PKI} && chmod 700 {ETCD_PKI}")
    for binary in ETCD_BINARIES:
        lab.copy_in(name, source=binary, dest=f"/usr/local/bin/{binary.name}", mode="0755")
    for file in ETCD_CERTIFICATE_FILES:
        lab.copy_in(name, source=pki / file, dest=f"{ETCD_PKI}/{file}", mode="0600")


def start_etcd(lab: RolesLab, name: str) -> None:
    """A one-member etcd on the host's loopback, answering before this returns."""
    lab.ssh(
        name,
        "setsid -f /usr/local/bin/etcd --name " + name + " --data-dir /var/lib/etcd"
        " --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379"
        " --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380"
        f" --initial-cluster {name}=http://127.0.0.1:2380"
        f" --cert-file {ETCD_PKI}/server.crt --key-file {ETCD_PKI}/server.key --client-cert-auth"
        f" --trusted-ca-file {ETCD_PKI}/ca.crt >/var/log/etcd.log 2>&1 </dev/null",
    )
    for _ in range(ETCD_READY_ATTEMPTS):
        if "is healthy" in lab.ssh(
            name, f"{ETCD_CLIENT_ENV} /usr/local/bin/etcdctl endpoint health 2>&1", check=False
        ):
            return
        subprocess.run(["sleep", "0.2"], check=True)
    raise AssertionError(lab.ssh(name, "tail -20 /var/log/etcd.log"))


def stop_etcd(lab: RolesLab, name: str) -> None:
    """Stop the host's etcd and wait (about 5 s at most) until it is gone."""
    lab.ssh(
        name,
        "pkill -x etcd; for i in $(seq 50); do pgrep -x etcd >/dev/null || exit 0; sleep 0.1; done; exit 1",
    )
