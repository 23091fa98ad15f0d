"""Directory (LDAP / Active Directory) group lookup with a cache shared through Redis.

Groups found become `group:ldap:<name>` subjects. A lookup is cached for `cache_seconds`; when the
directory is down a cached answer up to `LDAP_STALE_SECONDS` old is still used, and callers get the
error text so a refusal can say the directory did not answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass

from pydantic import SecretStr
from redis import Redis
from redis.exceptions import RedisError

from bot.policy import defaults
from bot.policy.document import LdapSpec
from kobot.errors import KobotError

log = logging.getLogger(__name__)


class DirectoryUnavailableError(KobotError):
    """The directory did not answer or refused kobot's bind; roles from directory groups are unknown."""


@dataclass(frozen=True)
class DirectoryGroups:
    groups: tuple[str, ...]
    error: str | None = None
    """Why the directory could not be asked (safe for chat); set even when a stale answer is used."""
    stale: bool = False


def read_password(spec: LdapSpec) -> SecretStr | None:
    """The bind password from its own file (never from the policy file itself)."""
    if spec.bind_password_file is None:
        return None
    try:
        return SecretStr(spec.bind_password_file.read_text().strip())
    except OSError as exc:
        raise DirectoryUnavailableError(
            f"the directory bind password file {spec.bind_password_file} cannot be read ({exc.strerror})"
        ) from None


class DirectoryClient:
    """Looks users' groups up in one directory."""

    def __init__(self, *, spec: LdapSpec, password: SecretStr | None, redis: Redis) -> None:
        self._spec = spec
        self._password = password
        self._redis = redis

    def groups_for(self, *, uid: str | None, email: str | None) -> DirectoryGroups:
        """The user's directory groups: cached, fresh from the directory, or stale with the error."""
        if not uid and not email:
            return DirectoryGroups(groups=())
        key = self._cache_key(uid=uid, email=email)
        cached = self._cached(key)
        if cached is not None and time.time() - cached[1] < self._spec.cache_seconds:
            return DirectoryGroups(groups=cached[0])
        try:
            groups = self.lookup(uid=uid, email=email)
        except DirectoryUnavailableError as exc:
            log.warning("directory lookup failed: %s", exc)
            if cached is not None:
                return DirectoryGroups(groups=cached[0], error=exc.user_message, stale=True)
            return DirectoryGroups(groups=(), error=exc.user_message)
        self._store(key, groups)
        return DirectoryGroups(groups=groups)

    def lookup(self, *, uid: str | None, email: str | None) -> tuple[str, ...]:
        """Ask the directory now (no cache). Raises DirectoryUnavailableError with a chat-safe message."""
        import ldap3
        from ldap3.core.exceptions import LDAPException
        from ldap3.utils.conv import escape_filter_chars

        spec = self._spec
        values = {"uid": escape_filter_chars(uid or ""), "email": escape_filter_chars(email or "")}
        server = ldap3.Server(spec.url, connect_timeout=spec.timeout_seconds, get_info=ldap3.NONE)
        password = self._password.get_secret_value() if self._password is not None else None
        connection = ldap3.Connection(
            server,
            user=spec.bind_dn,
            password=password,
            auto_bind=ldap3.AUTO_BIND_NONE,
            receive_timeout=math.ceil(spec.timeout_seconds),
            raise_exceptions=True,
            read_only=True,
        )
        try:
            connection.open()
            if spec.start_tls:
                connection.start_tls()
            connection.bind()
            connection.search(spec.user_base, spec.user_filter.format(**values), attributes=[])
            if len(connection.entries) != 1:
                return ()
            dn = escape_filter_chars(connection.entries[0].entry_dn)
            connection.search(
                spec.group_base, spec.group_filter.format(dn=dn, **values), attributes=[spec.group_attribute]
            )
            names = {
                str(value) for entry in connection.entries for value in entry[spec.group_attribute].values
            }
        except LDAPException as exc:
            raise DirectoryUnavailableError(
                f"the directory at {spec.url} could not be asked ({type(exc).__name__})", detail=str(exc)
            ) from None
        finally:
            if not connection.closed:
                connection.unbind()
        return tuple(sorted(names))

    def _cache_key(self, *, uid: str | None, email: str | None) -> str:
        ident = hashlib.sha256(f"{self._spec.url}\0{uid or ''}\0{email or ''}".encode()).hexdigest()[:40]
        return defaults.LDAP_CACHE_PREFIX + ident

    def _cached(self, key: str) -> tuple[tuple[str, ...], float] | None:
        try:
            raw: bytes | None = self._redis.get(key)  # type: ignore[assignment]
        except RedisError:
            return None
        if raw is None:
            return None
        data = json.loads(raw)
        return tuple(data["groups"]), float(data["at"])

    def _store(self, key: str, groups: tuple[str, ...]) -> None:
        payload = json.dumps({"groups": list(groups), "at": time.time()})
        try:
            self._redis.set(key, payload, ex=defaults.LDAP_STALE_SECONDS)
        except RedisError as exc:
            log.warning("cannot cache directory groups: %s", exc)
