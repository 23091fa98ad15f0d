"""Which of kobot's environment variables a provider's Terraform run may see."""

from __future__ import annotations

from collections.abc import Mapping

PROVIDER_ENV_PREFIXES: Mapping[str, tuple[str, ...]] = {
    "vsphere": ("VSPHERE_",),
    "openstack": ("OS_",),
    "testhosts": (),
}
"""Environment variables each provider reads its credentials from; only these reach Terraform."""


def provider_credentials(provider: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The part of `environ` that holds this provider's credentials."""
    prefixes = PROVIDER_ENV_PREFIXES.get(provider, ())
    return {name: value for name, value in environ.items() if prefixes and name.startswith(prefixes)}
