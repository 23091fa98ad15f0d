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
