"""Importing a cluster kobot did not build: `POST /api/v1/clusters/import` and the shared path the CLI's
`kobot import NAME --kubeconfig FILE` takes too (authorize, probe and store, audit).

Only who holds `cluster.import` on the new cluster's name may import (admins by default). The kubeconfig
travels in the body, never in a URL or a command line, is stored encrypted like a created cluster's and
is never echoed back. An API that cannot be reached is answered within IMPORT_PROBE_TIMEOUT_SECONDS.

No `from __future__ import annotations` here: FastAPI resolves the route's annotations at runtime.
"""

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.api_audit import API_CONVERSATION, bearer_identity
from bot.runtime import Runtime
from kobot import defaults
from kobot.access import CLUSTER_IMPORT_PERMISSION
from kobot.clusters import ClusterRecord
from kobot.conversations import Conversation, Identity
from kobot.errors import (
    CommandError,
    ConflictError,
    KobotError,
    PermissionDeniedError,
    StoreUnavailableError,
)
from kobot.risk import Risk
from kobot.store import secret_key
from workers.cluster_import import import_cluster, summary_lines

IMPORT_PATH = "/api/v1/clusters/import"
IMPORT_ACTION = "cluster.import"
"""The audit action of an import, whether it succeeded or not."""

_KUBECONFIG_EXAMPLE = """apiVersion: v1
kind: Config
clusters:
- name: legacy
  cluster:
    server: https://10.0.0.10:6443
    certificate-authority-data: LS0tLS1CRUdJTi...
users:
- name: admin
  user:
    client-certificate-data: LS0tLS1CRUdJTi...
    client-key-data: LS0tLS1CRUdJTi...
contexts:
- name: admin@legacy
  context: {cluster: legacy, user: admin}
current-context: admin@legacy
"""


class ImportRequest(BaseModel):
    """The new cluster's name in kobot and its admin kubeconfig (self-contained: data, not file paths)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The cluster's name in kobot (a DNS label starting with a letter).")
    kubeconfig: str = Field(
        min_length=1,
        max_length=defaults.IMPORT_KUBECONFIG_MAX_BYTES,
        description="The admin kubeconfig as YAML text, credentials inline (`kubectl config view --raw "
        "--flatten`); programs (`exec`) and file paths are refused.",
    )


IMPORT_EXAMPLES: dict[str, Any] = {
    "import": {
        "summary": "Import a kubeadm cluster with its admin kubeconfig",
        "value": {"name": "legacy", "kubeconfig": _KUBECONFIG_EXAMPLE},
    }
}


class ImportAnswer(BaseModel):
    """The record kobot keeps of the imported cluster, and what the import read, in words."""

    cluster: ClusterRecord
    summary: list[str]


class ImportProblem(BaseModel):
    detail: str


IMPORT_STATUS: tuple[tuple[type[KobotError], int], ...] = (
    (PermissionDeniedError, 403),
    (ConflictError, 409),
    (CommandError, 422),
    (StoreUnavailableError, 503),
)
"""HTTP status of an expected error, first match wins; any other (the cluster's API unreachable or
refusing) is a 502: the failure is the cluster's, not the request's."""


def run_import(
    runtime: Runtime, *, identity: Identity, conversation: Conversation, name: str, kubeconfig: bytes
) -> ClusterRecord:
    """Authorize, import and audit; raise KobotError (safe to show) when refused or failed."""
    decision = runtime.policy.authorize(
        identity=identity,
        conversation=conversation,
        command_id=CLUSTER_IMPORT_PERMISSION,
        risk=Risk.CHANGE,
        cluster=name,
    )
    if not decision.allowed:
        _audit(runtime, identity, conversation, name, {}, f"refused: {decision.reason}")
        raise PermissionDeniedError(decision.reason)
    try:
        record = import_cluster(
            name=name,
            kubeconfig=kubeconfig,
            by=identity.key,
            redis=runtime.redis,
            secret=secret_key(runtime.settings),
        )
    except KobotError as exc:
        _audit(runtime, identity, conversation, name, {}, f"failed: {exc.user_message}")
        raise
    info = record.imported
    detail = {
        "server": info.server if info else None,
        "version": record.version,
        "nodes": len(record.nodes),
        "network_plugin": info.network_plugin if info else None,
    }
    _audit(runtime, identity, conversation, record.name, detail, "imported")
    return record


def _audit(
    runtime: Runtime,
    identity: Identity,
    conversation: Conversation,
    name: str,
    detail: dict[str, Any],
    result: str,
) -> None:
    runtime.audit.record(
        who=identity, where=conversation, action=IMPORT_ACTION, cluster=name, detail=detail, result=result
    )


def clusters_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()
    caller = bearer_identity(runtime.policy)

    @router.post(
        IMPORT_PATH,
        status_code=201,
        response_model=ImportAnswer,
        responses={
            403: {
                "model": ImportProblem,
                "description": "The caller may not import (admins only by default).",
            },
            409: {"model": ImportProblem, "description": "A cluster of that name exists already."},
            422: {
                "model": ImportProblem,
                "description": "The name or the kubeconfig is refused; `detail` says why.",
            },
            502: {
                "model": ImportProblem,
                "description": "The cluster's API could not be reached or refused.",
            },
        },
        summary="Import a cluster kobot did not build, from its admin kubeconfig",
    )
    async def import_route(
        identity: Annotated[Identity, Depends(caller)],
        body: Annotated[ImportRequest, Body(openapi_examples=IMPORT_EXAMPLES)],
    ) -> JSONResponse:
        try:
            record = await asyncio.to_thread(
                run_import,
                runtime,
                identity=identity,
                conversation=API_CONVERSATION,
                name=body.name,
                kubeconfig=body.kubeconfig.encode(),
            )
        except KobotError as exc:
            status = next((code for kind, code in IMPORT_STATUS if isinstance(exc, kind)), 502)
            return JSONResponse(ImportProblem(detail=exc.user_message).model_dump(), status_code=status)
        answer = ImportAnswer(cluster=record, summary=summary_lines(record))
        return JSONResponse(answer.model_dump(mode="json"), status_code=201)

    return router
