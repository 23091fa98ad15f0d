"""An image is pushed into the repository only as the digest its build recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kobot.errors import StepFailedError
from workers.bundle.images import push_to_registry, write_policy
from workers.bundle.manifest import BuiltImage


def test_a_layout_whose_index_is_not_the_recorded_digest_is_not_pushed(tmp_path: Path) -> None:
    """The recorded digest is the image's checksum: a layout swapped after the build never reaches the
    registry (refused before skopeo runs, so no registry is needed here)."""
    layout = tmp_path / "images" / "registry.k8s.io_pause_3.10"
    layout.mkdir(parents=True)
    swapped = "sha256:" + "b" * 64
    (layout / "index.json").write_text(json.dumps({"manifests": [{"digest": swapped}]}))
    image = BuiltImage(ref="registry.k8s.io/pause:3.10", layout=layout.name, digest="sha256:" + "a" * 64)
    with pytest.raises(StepFailedError, match=r"not sha256:a{64} as the build recorded"):
        push_to_registry(
            image,
            images_dir=tmp_path / "images",
            registry="registry.offline.test:5001",
            policy=write_policy(tmp_path / "policy.json"),
            tls=False,
        )
