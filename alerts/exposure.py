"""Whether the Alertmanager webhook may run as configured: checked when kobot starts, before anything is
built, so a webhook that would be open to the network stops the start (and costs no import of the alert
pipeline, which `kobot serve` builds once it answers)."""

from __future__ import annotations

import ipaddress
import logging

from alerts import defaults
from kobot.errors import SettingsError
from kobot.settings_alerts import AlertsSettings

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost",)
"""Host names `http_host` may use for a loopback-only bind, besides loopback addresses."""


def loopback_only(host: str) -> bool:
    """Whether a server bound to `host` is reachable from this machine only."""
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_webhook_exposure(settings: AlertsSettings, *, http_host: str) -> None:
    """A webhook reachable beyond loopback needs credentials, or an explicit opt-out (logged). On loopback
    an open webhook starts with a warning: a reverse proxy or tunnel in front of the port makes it public,
    and kobot cannot tell (every request then comes from loopback)."""
    if settings.auth_required:
        return
    if loopback_only(http_host):
        log.warning(
            "the Alertmanager webhook %s has no credentials; kobot listens on %s only, but a reverse proxy "
            "or tunnel forwarding this port exposes it: anyone reaching the proxy can post alerts into the "
            "chat and fill the alert store. Set KOBOT_ALERTS__WEBHOOK_BEARER_TOKEN (or "
            "KOBOT_ALERTS__WEBHOOK_USERNAME and KOBOT_ALERTS__WEBHOOK_PASSWORD) when anything forwards to it",
            defaults.WEBHOOK_PATH,
            http_host,
        )
        return
    if settings.allow_unauthenticated:
        log.warning(
            "the Alertmanager webhook accepts posts without credentials on %s "
            "(KOBOT_ALERTS__ALLOW_UNAUTHENTICATED=true): anyone who reaches the port can post alerts",
            http_host,
        )
        return
    raise SettingsError(
        f"kobot listens on {http_host!r} (KOBOT_HTTP_HOST), beyond loopback, and the Alertmanager webhook "
        "has no credentials: set KOBOT_ALERTS__WEBHOOK_BEARER_TOKEN (or KOBOT_ALERTS__WEBHOOK_USERNAME "
        "and KOBOT_ALERTS__WEBHOOK_PASSWORD), listen on 127.0.0.1, or accept anyone's alerts with "
        "KOBOT_ALERTS__ALLOW_UNAUTHENTICATED=true"
    )
