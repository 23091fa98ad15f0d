"""The offline chart repository of the addon tests: ../shared/charts served over loopback HTTP."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

SHARED_CHARTS = Path(__file__).resolve().parents[3] / "shared" / "charts"
"""Real upstream charts with an index.yaml (see its README)."""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class ChartRepository:
    """A static HTTP chart repository on 127.0.0.1, as a site's offline mirror would serve it."""

    def __init__(self, folder: Path = SHARED_CHARTS) -> None:
        handler = functools.partial(_Quiet, directory=str(folder))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="chart-repo", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ChartRepository:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
