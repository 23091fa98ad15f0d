"""kobot's one settings object: KOBOT_ environment variables plus an optional YAML file.

Built once at start (`load_settings`) and passed in; nothing reads the environment later.
A bad value stops the start with a message naming the setting (`SettingsError`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from kobot import defaults
from kobot.errors import SettingsError
from kobot.settings_addons import AddonSettings
from kobot.settings_alerts import AlertsSettings
from kobot.settings_backups import BackupSettings
from kobot.settings_dingtalk import DingTalkSettings
from kobot.settings_health import HealthSettings
from kobot.settings_ip_pools import IpPoolConfig
from kobot.settings_slack import SlackSettings
from kobot.settings_wecom import WeComSettings

CONFIG_FILE_ENV = "KOBOT_CONFIG_FILE"
MIN_SECRET_KEY_CHARS = 32
"""The secret key signs buttons and encrypts kubeconfigs: a short one would be guessable."""


class Settings(BaseSettings):
    """Everything kobot can be told. Secrets are SecretStr and never logged."""

    model_config = SettingsConfigDict(
        env_prefix="KOBOT_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    redis_url: SecretStr | None = None
    """With none, kobot starts an embedded Valkey with AOF persistence under data_dir."""
    valkey_maxmemory: str = Field(
        default=defaults.VALKEY_MAXMEMORY_DEFAULT, pattern=r"^[1-9][0-9]*(b|kb|mb|gb)?$"
    )
    """Memory limit of the embedded Valkey (`512mb`, `2gb`), with `maxmemory-policy noeviction`: past the
    limit writes fail and kobot reports them, and nothing stored is dropped. Not a volatile-* policy: job
    records and approval requests carry TTLs, so those policies would evict exactly them first; not an
    allkeys-* policy: it would drop approvals and the audit trail. A configured Redis (redis_url) is
    limited by its own configuration (docker-compose.yml sets the same policy)."""
    data_dir: Path = Path(defaults.DATA_DIR_DEFAULT)
    """Created owner-only (0700) with owner-only files (0600): see `secure_data_dir`."""
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=defaults.HTTP_PORT_DEFAULT, ge=1, le=65535)
    http_docs: bool = False
    """Serve /docs, /redoc and /openapi.json. Off by default: the schema is a map of the HTTP surface for
    anyone who can reach the port, and operators have the README (KOBOT_HTTP_DOCS)."""
    metrics_token: SecretStr | None = None
    """Bearer token that GET /metrics requires. Without one, /metrics answers only while kobot listens on a
    loopback address (http_host), so a public bind never publishes job and queue figures to anyone
    (KOBOT_METRICS_TOKEN)."""
    queue_name: str = defaults.QUEUE_NAME
    in_process_worker: bool = True
    """`kobot serve` and `kobot chat` run jobs in a thread of their own unless this is false."""
    job_lease_seconds: float = Field(default=defaults.JOB_LEASE_SECONDS, gt=0.5, le=600)
    progress_edit_interval: float = Field(default=defaults.PROGRESS_EDIT_INTERVAL_SECONDS, ge=0, le=60)
    secret_key: SecretStr | None = None
    """Signs button payloads and encrypts stored kubeconfigs; generated into data_dir when unset."""
    policy_file: Path | None = None
    approval_ttl_seconds: int = Field(default=1800, ge=1, le=7 * 24 * 3600)
    """An approval request not decided within this many seconds expires and says so on its card."""
    playbooks_dir: Path = Path(__file__).resolve().parent.parent / "playbooks"
    terraform_dir: Path = Path(__file__).resolve().parent.parent / "terraform"
    ssh_user: str = "root"
    """The account Ansible and the SSH wait use on cluster hosts."""
    ssh_key_file: Path | None = None
    """Private key for cluster hosts (a path; the key itself never enters kobot's data)."""
    allow_local_hosts: bool = False
    """Test-only: let cluster hosts be this machine (loopback addresses, `localhost`), reached through
    Ansible's local connection. Never set it in production: a host in chat would then run playbooks
    as kobot's own user on kobot's own machine (KOBOT_ALLOW_LOCAL_HOSTS)."""
    ansible_extra_vars: dict[str, Any] = Field(default_factory=dict)
    """Site-wide Ansible variables for every play: offline repository URLs, preflight minimums, ..."""
    ip_pools: list[IpPoolConfig] = Field(default_factory=list)
    """Per-zone address pools for machines kobot creates on vSphere/OpenStack (applied at start)."""
    terraform_variables: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per provider (vsphere, openstack): the module's non-secret variables (datacenter, template, network,
    flavors, ssh_public_key...). Credentials come from the environment only (VSPHERE_*, OS_*)."""
    terraform_mirror_dir: Path | None = None
    """Offline provider mirror for Terraform (filesystem_mirror); none means providers must be cached."""
    log_level: str = "INFO"
    plugins: list[str] = Field(default_factory=list)
    """Modules imported at start that register extra commands, operations or adapters."""

    slack: SlackSettings | None = None
    dingtalk: DingTalkSettings | None = None
    wecom: WeComSettings | None = None
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    """Alertmanager webhook auth, silences API and alert routes (KOBOT_ALERTS__...)."""
    backups: BackupSettings = Field(default_factory=BackupSettings)
    """Where etcd backups may be kept besides kobot's disk: SFTP, S3, NFS (KOBOT_BACKUPS__...)."""
    addons: AddonSettings = Field(default_factory=AddonSettings)
    """Chart repository, image registry and kobot's webhook URL for addons (KOBOT_ADDONS__...)."""
    health: HealthSettings = Field(default_factory=HealthSettings)
    """Health-check schedule time zone and certificate-expiry notice days (KOBOT_HEALTH__...)."""

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        allowed = ("DEBUG", "INFO", "WARNING", "ERROR")
        if value.upper() not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value.upper()

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        # The embedded Valkey and ansible-runner run in other working directories: paths must not be relative.
        return value.expanduser().resolve()

    @field_validator("secret_key")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_KEY_CHARS:
            raise ValueError(f"must be at least {MIN_SECRET_KEY_CHARS} characters (or unset to generate one)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    def job_artifacts_dir(self) -> Path:
        return self.data_dir / "jobs"


def secure_data_dir(data_dir: Path) -> None:
    """Create the data dir owner-only, or make an existing one so: the dir 0700, and no group or other
    permission on what lies directly in it (kobot.log, secret.key) or in the embedded Valkey's dir.
    Deeper trees (job artifacts) are closed by their parent's mode."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=defaults.DATA_DIR_MODE)
    data_dir.chmod(defaults.DATA_DIR_MODE)
    for entry in data_dir.iterdir():
        _owner_only(entry)
    valkey_dir = data_dir / "valkey"
    if valkey_dir.is_dir() and not valkey_dir.is_symlink():
        for entry in valkey_dir.rglob("*"):
            _owner_only(entry)


def _owner_only(path: Path) -> None:
    """Drop group and other permission bits (0700 dirs, 0600 files); symlinks are left alone."""
    try:
        if path.is_symlink():
            return
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(mode & 0o700)
    except FileNotFoundError:
        pass  # a temporary file (an AOF rewrite's) that went away meanwhile


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (and KOBOT_CONFIG_FILE), or fail naming the setting."""
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"setting {CONFIG_FILE_ENV}: no such file {config_file!r}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "KOBOT_" + "__".join(str(part) for part in error["loc"]).upper()
            problems.append(f"setting {name}: {error['msg']}")
        raise SettingsError("; ".join(problems)) from None
