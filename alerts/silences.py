"""Silences through Alertmanager's API v2, made from a group's labels by the person who clicked."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from pydantic import SecretStr

from alerts import defaults
from kobot.errors import KobotError


class SilenceError(KobotError):
    """Alertmanager did not create the silence; the message says why without secrets."""


async def create_silence(
    *,
    base_url: str,
    labels: dict[str, str],
    created_by: str,
    comment: str,
    starts_at: datetime,
    duration_seconds: int,
    token: SecretStr | None = None,
    client: httpx.AsyncClient | None = None,
) -> tuple[str, datetime]:
    """POST /api/v2/silences with one equality matcher per label; returns (silence id, end)."""
    if not labels:
        raise SilenceError("this alert group has no labels to silence by")
    ends_at = starts_at + timedelta(seconds=duration_seconds)
    body = {
        "matchers": [
            {"name": name, "value": value, "isRegex": False, "isEqual": True}
            for name, value in sorted(labels.items())
        ],
        "startsAt": starts_at.isoformat(),
        "endsAt": ends_at.isoformat(),
        "createdBy": created_by,
        "comment": comment,
    }
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}
    url = f"{base_url.rstrip('/')}/api/v2/silences"
    own = client is None
    http = client or httpx.AsyncClient(timeout=defaults.ALERTMANAGER_TIMEOUT_SECONDS)
    try:
        response = await http.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise SilenceError(
            "Alertmanager did not answer; the silence was not created", detail=str(exc)
        ) from exc
    finally:
        if own:
            await http.aclose()
    if response.status_code != 200:
        raise SilenceError(
            f"Alertmanager refused the silence (HTTP {response.status_code})", detail=response.text[:500]
        )
    try:
        silence_id = str(response.json()["silenceID"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SilenceError("Alertmanager answered without a silence id") from exc
    return silence_id, ends_at
