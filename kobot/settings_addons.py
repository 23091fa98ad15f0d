"""Addon settings: where charts come from, where images are mirrored, how clusters reach kobot."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class AddonSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    chart_repository: str | None = None
    """HTTP(S) chart repository (its `index.yaml` and archives), normally the site's offline mirror
    (KOBOT_ADDONS__CHART_REPOSITORY). Without it, addons cannot be installed."""
    image_registry: str | None = None
    """Registry (host[:port]) images are rewritten to when the cluster's spec names no offline
    registry of its own."""
    kobot_webhook_url: str | None = None
    """The URL a cluster's Alertmanager posts to: kobot's /alerts/alertmanager as the cluster reaches it."""
    credentials: dict[str, SecretStr] = Field(default_factory=dict)
    """Credentials addons need, by name (bigip-username, bigip-password, ceph-user-id, ceph-user-key,
    openstack-credential-id, openstack-credential-secret; KOBOT_ADDONS__CREDENTIALS as JSON). An
    install copies them into the cluster's encrypted secrets, so chat never carries them."""

    @field_validator("chart_repository", "kobot_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value
