"""`KOBOT_HEALTH__...`: the health check's schedule time zone and when certificate-expiry notices go."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kobot import defaults
from kobot.validation import time_zone


class HealthSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schedule_timezone: str = "UTC"
    """The zone `check prod every day at 08:00` is read in, unless the command names one (`tz=`)."""
    cert_notice_days: tuple[int, ...] = Field(default=defaults.CERT_EXPIRY_NOTICE_DAYS, min_length=1)
    """Days before a certificate expires when `notify … certificate` channels hear of it, each once."""

    @field_validator("schedule_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return time_zone(value)

    @field_validator("cert_notice_days")
    @classmethod
    def _days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for days in value:
            most = defaults.CERT_NOTICE_DAYS_MAX
            if not 1 <= days <= most:
                raise ValueError(f"{days} is no notice threshold: days from 1 to {most}")
        return tuple(sorted(set(value), reverse=True))
