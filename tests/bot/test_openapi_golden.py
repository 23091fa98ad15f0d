"""The routes and OpenAPI schema of the whole app, every surface enabled, compared with a golden file.

What `kobot serve` imports, and when, changes for start-up time; what it serves must not change with it.
Every chat platform is configured (their adapters are built, never started: nothing here connects to
one), so every router the app can mount is in the schema. Set UPDATE_GOLDEN=1 to rewrite the golden
file after an intended change to the API.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import SecretStr

from bot.app import create_app
from kobot.settings import Settings
from kobot.settings_dingtalk import DingTalkSettings
from kobot.settings_slack import SlackSettings
from kobot.settings_wecom import WeComSettings
from tests.support.fresh_python import run_fresh
from tests.support.network import LOOPBACK
from tests.workers.jobkit import FIXTURE_PLAYBOOKS

GOLDEN = Path(__file__).resolve().parent / "openapi.golden.json"
UNREACHABLE = f"http://{LOOPBACK}:9/"
"""Where the platforms' APIs would be: the discard port, never dialled (the adapters are not started)."""


def _every_surface(redis_url: str, data_dir: Path) -> Settings:
    return Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        playbooks_dir=FIXTURE_PLAYBOOKS,
        in_process_worker=False,
        http_docs=True,
        slack=SlackSettings(
            bot_token=SecretStr("xoxb-golden"), signing_secret=SecretStr("s" * 32), api_base_url=UNREACHABLE
        ),
        dingtalk=DingTalkSettings(
            client_id="golden", client_secret=SecretStr("d" * 32), openapi_endpoint=UNREACHABLE
        ),
        wecom=WeComSettings(
            corp_id="golden",
            agent_id=1,
            secret=SecretStr("w" * 32),
            token=SecretStr("t" * 16),
            encoding_aes_key=SecretStr("a" * 43),
            api_base_url=UNREACHABLE,
        ),
    )


def _served(app: FastAPI) -> dict[str, Any]:
    """Every route (chat callbacks kept out of the schema included, through the routers FastAPI
    includes lazily) and the schema itself."""
    routes = [
        {
            "path": route.path,
            "name": route.name,
            "methods": sorted(route.methods or []),
            "in_schema": bool(getattr(route, "include_in_schema", False)),
        }
        for route in iter_route_contexts(app.routes)
    ]
    return {"routes": sorted(routes, key=lambda r: (r["path"], r["methods"])), "openapi": app.openapi()}


def test_routes_and_openapi_schema_match_the_golden_file(redis_url: str, data_dir: Path) -> None:
    app = create_app(_every_surface(redis_url, data_dir))
    try:
        served = json.dumps(_served(app), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    finally:
        app.state.runtime.close()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(served, encoding="utf-8")
    assert served == GOLDEN.read_text(encoding="utf-8"), (
        "the routes or the OpenAPI schema changed; if the API change is intended, rerun with UPDATE_GOLDEN=1"
    )


def test_the_golden_file_holds_every_surface() -> None:
    """The comparison is worth something only if the chat callbacks stand beside the REST API."""
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    paths = {route["path"] for route in golden["routes"]}
    assert {"/healthz", "/metrics", "/api/v1/commands", "/alerts/alertmanager"} <= paths
    assert {"/healthz", "/api/v1/commands", "/alerts/alertmanager"} <= set(golden["openapi"]["paths"])
    for platform in ("slack", "wecom"):
        assert any(path.startswith(f"/{platform}/") for path in paths), (platform, sorted(paths))


def test_the_schema_is_the_same_when_serve_imported_fastapi_with_its_models_deferred(
    redis_url: str, data_dir: Path
) -> None:
    """`kobot serve` imports FastAPI with its OpenAPI models' build deferred (`bot.serve`): the document is
    built from them on its first request, and must come out the same. The deferral covers that import
    alone: a model defined afterwards is built at once."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "import bot.serve\n"
        "bot.serve._import_fastapi_deferring_its_models()\n"
        "import fastapi.openapi.models\n"
        "from pydantic import BaseModel\n"
        "class DefinedAfter(BaseModel):\n"
        "    name: str\n"
        "deferred = not fastapi.openapi.models.OpenAPI.__pydantic_complete__\n"
        "print(deferred, 'defer_build' not in BaseModel.model_config, DefinedAfter.__pydantic_complete__)\n"
        "from bot.app import create_app\n"
        "from tests.bot.test_openapi_golden import GOLDEN, _every_surface, _served\n"
        "app = create_app(_every_surface(sys.argv[1], Path(sys.argv[2])))\n"
        "served = json.dumps(_served(app), indent=2, sort_keys=True, ensure_ascii=False) + '\\n'\n"
        "app.state.runtime.close()\n"
        "print(served == GOLDEN.read_text(encoding='utf-8'))\n"
    )
    assert run_fresh(code, redis_url, str(data_dir)).splitlines() == ["True True True", "True"]
