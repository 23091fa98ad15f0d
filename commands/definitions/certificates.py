"""Certificates of a cluster's control plane: renew them (kubeadm, one master at a time)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from commands.definitions.common import Args, BreakGlass
from commands.grammar import Arg
from commands.registry import command
from kobot.job_records import JobKind
from kobot.risk import Risk


@command(
    "certs.renew",
    aliases=(
        "renew certificates",
        "renew certs",
        "renew certificate",
        "certificates renew",
        "续期证书",
        "证书续期",
        "更新证书",
    ),
    risk=Risk.RISKY,
    summary="Renew the control plane's certificates: one master at a time, its static pods restarted, "
    "kobot's kubeconfig refreshed and the new expiry shown.",
    examples=("renew certificates on prod", "renew certs on prod force=true", "续期证书 prod"),
    cluster="required",
    job_kind=JobKind.CERTS_RENEW.value,
)
class CertsRenewArgs(Args):
    """Certificates expiring within 30 days (the site's kube_cert_renew_before_days) are renewed; with
    force, all of them. The API server of the master being renewed is down for a few seconds."""

    force: Annotated[
        bool,
        Arg(names=("all", "强制", "全部")),
        Field(description="renew even when no certificate expires soon"),
    ] = False
    break_glass: BreakGlass = None
