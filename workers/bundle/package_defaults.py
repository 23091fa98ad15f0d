"""Timeouts of fetching a bundle's OS packages and writing its signed apt repository."""

from __future__ import annotations

APT_UPDATE_TIMEOUT_SECONDS = 600.0
"""Longest one `apt-get update` of a family's upstream indexes (the distribution's are tens of MB)."""

APT_RESOLVE_TIMEOUT_SECONDS = 120.0
"""Longest one `apt-get --simulate` or `apt-cache show` over the upstream indexes may take."""

APT_DOWNLOAD_TIMEOUT_SECONDS = 3600.0
"""Longest one `apt-get --download-only` of a family's closure (hundreds of MB on a slow line)."""

APT_FTPARCHIVE_TIMEOUT_SECONDS = 600.0
"""Longest one `apt-ftparchive` run over the bundle's pool."""

GPG_TIMEOUT_SECONDS = 60.0
"""Longest one gpg call: generating, importing or exporting the signing key, signing one Release."""
