"""Certificate filters for cert_renew: expiry is read on the controller with `cryptography` (which
ansible-core itself depends on), so a node needs no openssl binary to be checked.

`x509_expiring(slurped, days)`: the `source` of each `ansible.builtin.slurp` result whose certificate
stops being valid within `days` days (or already has).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ansible.errors import AnsibleFilterError
from cryptography import x509


def x509_expiring(slurped: list[dict[str, Any]], days: Any) -> list[str]:
    limit = datetime.now(UTC) + timedelta(days=int(days))
    expiring: list[str] = []
    for result in slurped:
        source = str(result.get("source", "?"))
        try:
            certificate = x509.load_pem_x509_certificate(base64.b64decode(str(result["content"])))
        except (KeyError, ValueError):
            raise AnsibleFilterError(f"{source} holds no PEM certificate") from None
        if certificate.not_valid_after_utc < limit:
            expiring.append(source)
    return expiring


class FilterModule:
    """Registers the filters under short names (playbook-adjacent filter_plugins are loaded by Ansible)."""

    def filters(self) -> dict[str, Callable[..., list[str]]]:
        return {"x509_expiring": x509_expiring}
