"""Timeouts and limits of fetching a bundle's OS packages (apt for Debian and Ubuntu, dnf for EL) and of
writing its signed apt and dnf repositories (apt-ftparchive, createrepo_c, gpg)."""

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

DNF_METADATA_TIMEOUT_SECONDS = 600.0
"""Longest one `dnf makecache` of a family's upstream repodata (AppStream's is tens of MB)."""

DNF_RESOLVE_TIMEOUT_SECONDS = 120.0
"""Longest one resolution of a family's planned packages (`install --assumeno`) over the cached repodata."""

DNF_DOWNLOAD_TIMEOUT_SECONDS = 3600.0
"""Longest one `dnf install --downloadonly` of a family's closure for one architecture (hundreds of MB)."""

RPM_CHECKSIG_TIMEOUT_SECONDS = 120.0
"""Longest one `rpmkeys` call: importing an upstream key, or checking one batch of packages' signatures."""

CREATEREPO_TIMEOUT_SECONDS = 600.0
"""Longest one `createrepo_c` run over one family's and architecture's packages."""

REPODATA_MAX_BYTES = 1024**3
"""Largest uncompressed primary.xml the build reads (AppStream's is ~100 MB): a bigger one is refused."""
