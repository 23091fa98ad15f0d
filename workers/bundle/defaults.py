"""Timeouts and limits of planning, building and loading offline bundles."""

from __future__ import annotations

FETCH_TIMEOUT_SECONDS = 60.0
"""Longest wait for any one read of an upstream download (connect, or between two chunks)."""

CHECKSUM_FILE_MAX_BYTES = 1_048_576
"""A `.sha256` or SHA256SUMS file larger than this is not a checksum file: refused."""

FILE_MAX_BYTES = 2 * 1024**3
"""Largest file a bundle takes (kubelet and etcd archives are ~100 MB): a bigger answer is refused."""

DOWNLOAD_CHUNK_BYTES = 1_048_576
"""Bytes read and written at a time while downloading, so a 100 MB binary never sits in memory."""

IMAGE_COPY_TIMEOUT_SECONDS = 1800.0
"""Longest one `skopeo copy` of an image (all its architectures) may take."""

IMAGE_INSPECT_TIMEOUT_SECONDS = 60.0
"""Longest one `skopeo inspect` of a copied layout may take."""

TARBALL_NAME = "kobot-bundle.tar"
"""The tarball `bundle build --tarball` writes beside the bundle folder."""

REPOSITORY_CA_VALIDITY_DAYS = 3650
"""Lifetime of kobot's repository CA: every cluster node trusts it, so it outlives many server certs."""

REPOSITORY_CERT_VALIDITY_DAYS = 397
"""Lifetime of the repository host's server certificate (the longest browsers accept for a leaf)."""

REPOSITORY_CERT_RENEW_BEFORE_DAYS = 30
"""A server certificate with fewer days left than this is reissued by the next `setup repository`."""

REPOSITORY_CLOCK_SKEW_SECONDS = 300
"""A new certificate is valid from this long before its issue, so a node whose clock lags still takes it."""
