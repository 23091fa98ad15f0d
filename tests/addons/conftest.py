from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.addons.chart_server import ChartRepository
from tests.peers.kubernetes import KubernetesApiPeer


@pytest.fixture(scope="module")
def chart_repository() -> Iterator[ChartRepository]:
    with ChartRepository() as repository:
        yield repository


@pytest.fixture
def peer() -> Iterator[KubernetesApiPeer]:
    with KubernetesApiPeer() as server:
        yield server
