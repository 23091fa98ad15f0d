"""Settings of the health check: the schedule's time zone and the certificate-notice thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError
from redis import Redis

from kobot import defaults
from kobot.settings import Settings
from kobot.settings_health import HealthSettings
from workers.health_certs import CertificateSeen
from workers.health_schedule import expiry_notices_due

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def cert(days: float) -> CertificateSeen:
    return CertificateSeen(
        name="API server serving certificate", subject="CN=x", not_after=NOW + timedelta(days=days)
    )


def test_defaults_are_30_14_7_days_and_utc() -> None:
    health = HealthSettings()
    assert health.cert_notice_days == defaults.CERT_EXPIRY_NOTICE_DAYS == (30, 14, 7)
    assert health.schedule_timezone == "UTC"


def test_thresholds_are_kept_largest_first_once_and_checked() -> None:
    assert HealthSettings(cert_notice_days=(7, 60, 7)).cert_notice_days == (60, 7)
    with pytest.raises(ValidationError, match="0 is no notice threshold: days from 1 to 365"):
        HealthSettings(cert_notice_days=(30, 0))
    # the bound is a named limit of the defaults module, like every other
    assert defaults.CERT_NOTICE_DAYS_MAX == 365
    assert HealthSettings(cert_notice_days=(365,)).cert_notice_days == (365,)
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Base'"):
        HealthSettings(schedule_timezone="Mars/Base")


def test_settings_read_them_from_the_environment(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.setenv("KOBOT_HEALTH__CERT_NOTICE_DAYS", "[45, 10]")
    monkeypatch.setenv("KOBOT_HEALTH__SCHEDULE_TIMEZONE", "Asia/Shanghai")
    health = Settings(redis_url=SecretStr(redis_url)).health
    assert (health.cert_notice_days, health.schedule_timezone) == ((45, 10), "Asia/Shanghai")


def test_a_certificate_is_due_only_past_a_configured_threshold(redis: Redis) -> None:
    assert expiry_notices_due(redis, cluster="prod", certificates=[cert(20)], now=NOW, thresholds=(10,)) == []
    [(seen, marks)] = expiry_notices_due(
        redis, cluster="prod", certificates=[cert(5)], now=NOW, thresholds=(30, 14, 7)
    )
    assert seen == cert(5) and [m.rsplit("|", 1)[1] for m in marks] == ["30", "14", "7"]
