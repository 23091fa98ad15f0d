"""Paths in a bundle manifest are places under the bundle's folders, never outside: a manifest is a file
someone hands kobot, and the build writes (and the repository host serves) where it says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from kobot.errors import StepFailedError
from workers.addons.chart_repository import fetch_chart
from workers.bundle.manifest import (
    BuiltChart,
    BuiltFile,
    BuiltImage,
    ChecksumKind,
    ChecksumSource,
    PlannedChart,
    PlannedFile,
)

BAD_PATHS = [
    "../../etc/cron.d/kobot",
    "/etc/passwd",
    "kubernetes/../../x",
    "kubernetes//kubeadm",
    "./kubeadm",
    "kubernetes/kube adm",
    "kubernetes\\kubeadm",
    "",
]


def _planned_file(path: str) -> dict[str, Any]:
    unpublished = ChecksumSource(kind=ChecksumKind.UNPUBLISHED)
    return {
        "name": "kubeadm",
        "version": "1.32.8",
        "arch": "amd64",
        "path": path,
        "url": "u",
        "checksum": unpublished,
    }


def _built_file(path: str) -> dict[str, Any]:
    return {"path": path, "sha256": "0" * 64, "size": 1, "verified_by": ChecksumKind.SHA256_FILE}


def _built_chart(path: str) -> dict[str, Any]:
    return {"name": "loki", "version": "6.0.0", "path": path, "sha256": "0" * 64}


@pytest.mark.parametrize("path", BAD_PATHS)
@pytest.mark.parametrize(
    ("model", "fields"),
    [(PlannedFile, _planned_file), (BuiltFile, _built_file), (BuiltChart, _built_chart)],
    ids=["PlannedFile", "BuiltFile", "BuiltChart"],
)
def test_a_path_outside_the_bundle_or_of_odd_characters_is_refused(
    model: type[BaseModel], fields: Any, path: str
) -> None:
    with pytest.raises(
        ValidationError, match=re.escape("must be relative, of letters, digits and ._/- only")
    ):
        model.model_validate(fields(path))


@pytest.mark.parametrize("path", ["kubernetes/v1.32.8/amd64/kubeadm", "sha256/ab12", "charts/loki-6.0.0.tgz"])
def test_a_plain_relative_path_is_kept(path: str) -> None:
    assert BuiltFile.model_validate(_built_file(path)).path == path


@pytest.mark.parametrize("layout", ["..", ".", "a/b", "../images", "x y"])
def test_an_image_layout_is_one_plain_name(layout: str) -> None:
    with pytest.raises(ValidationError, match="must be one name"):
        BuiltImage(ref="registry.k8s.io/pause:3.10", layout=layout, digest="sha256:" + "0" * 64)


@pytest.mark.parametrize(
    ("name", "version"), [("loki", "../../../tmp/x"), ("../loki", "6.0.0"), ("loki", "..")]
)
def test_a_planned_chart_name_or_version_is_one_plain_name(name: str, version: str) -> None:
    with pytest.raises(ValidationError, match="must be one name"):
        PlannedChart(name=name, version=version, repository="https://charts.example", addon="logging")


@pytest.mark.parametrize("version", ["../../../tmp/evil", "..", "1.0/x"])
def test_fetch_chart_refuses_a_version_that_would_leave_its_folder_before_any_request(
    version: str, tmp_path: Path
) -> None:
    # port 9 on loopback (discard): nothing is contacted, the version is refused first
    with pytest.raises(StepFailedError, match="must be letters, digits and"):
        fetch_chart(repository="http://127.0.0.1:9/", name="loki", version=version, into=tmp_path / "charts")
    assert not (tmp_path / "charts").exists()
