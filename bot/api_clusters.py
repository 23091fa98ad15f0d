"""Importing a cluster kobot did not build: `POST /api/v1/clusters/import` and the shared path the CLI's
`kobot import NAME --kubeconfig FILE` takes too (authorize, probe and store, audit); and giving it SSH
access to its hosts, at import or later (`POST /api/v1/clusters/{name}/ssh`, `kobot attach-ssh`).

Only who holds `cluster.import` on the new cluster's name may import (admins by default). The kubeconfig
travels in the body, never in a URL or a command line, is stored encrypted like a created cluster's and
is never echoed back. An API that cannot be reached is answered within IMPORT_PROBE_TIMEOUT_SECONDS;
with an SSH key, the SSH proof follows the probe, so the answer takes up to that plus
SSH_PROOF_TIMEOUT_SECONDS + SSH_PROOF_LOGIN_GRACE_SECONDS for each SSH_PROOF_WORKERS_MAX nodes (one such
round for up to 32 nodes: about 23 s). attach-ssh takes the proof's bound alone.
An SSH private key travels the same way, is proven on every node before it is kept, and is never echoed,
logged or audited; only the account it logs in as is.

No `from __future__ import annotations` here: FastAPI resolves the route's annotations at runtime.
"""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.api_audit import API_CONVERSATION, bearer_identity
from bot.runtime import Runtime
from kobot import automation_values, defaults
from kobot.access import CLUSTER_IMPORT_PERMISSION
from kobot.clusters import ClusterRecord
from kobot.conversations import Conversation, Identity
from kobot.errors import (
    CommandError,
    ConflictError,
    KobotError,
    NotFoundError,
    PermissionDeniedError,
    StoreUnavailableError,
)
from kobot.risk import Risk
from kobot.store import secret_key

if TYPE_CHECKING:
    # the import and the SSH proof (with the Kubernetes reader, the SSH runner and the secrets' cipher)
    # are imported on the thread that runs them: serve's start had no use for them
    from workers.cluster_import_ssh import SshAccess

IMPORT_PATH = "/api/v1/clusters/import"
IMPORT_ACTION = "cluster.import"
"""The audit action of an import, whether it succeeded or not."""
SSH_PATH = "/api/v1/clusters/{name}/ssh"
SSH_ACTION = "cluster.attach_ssh"
"""The audit action of giving an imported cluster SSH access, whether it succeeded or not."""
DEFAULT_SSH_USER = "root"
"""The account kobot logs in as on an imported cluster's hosts when none is named."""

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

    name: str = Field(
        min_length=1,
        max_length=automation_values.NAME_MAX_CHARS,
        description="The cluster's name in kobot (a DNS label starting with a letter).",
    )
    kubeconfig: str = Field(
        min_length=1,
        max_length=defaults.IMPORT_KUBECONFIG_MAX_BYTES,
        description="The admin kubeconfig as YAML text, credentials inline (`kubectl config view --raw "
        "--flatten`); programs (`exec`) and file paths are refused.",
    )
    ssh_key: str | None = Field(
        default=None,
        max_length=defaults.SSH_KEY_MAX_BYTES,
        description="Optional: a private key (no passphrase) that logs in to every node; proven on each "
        "before anything is stored, then kept encrypted. Without it only what needs the API is offered.",
    )
    ssh_user: str = Field(
        default=DEFAULT_SSH_USER,
        min_length=1,
        max_length=defaults.SSH_USER_MAX_CHARS,
        description="The account `ssh_key` logs in as.",
    )

    def access(self) -> "SshAccess | None":
        if self.ssh_key is None:
            return None
        from workers.cluster_import_ssh import SshAccess

        return SshAccess(private_key=self.ssh_key.encode(), user=self.ssh_user)


class SshRequest(BaseModel):
    """SSH access to an imported cluster's hosts: a private key and the account it logs in as."""

    model_config = ConfigDict(extra="forbid")

    ssh_key: str = Field(
        min_length=1,
        max_length=defaults.SSH_KEY_MAX_BYTES,
        description="The private key (OpenSSH or PEM, no passphrase) that logs in to every node.",
    )
    ssh_user: str = Field(
        default=DEFAULT_SSH_USER,
        min_length=1,
        max_length=defaults.SSH_USER_MAX_CHARS,
        description="The account the key logs in as.",
    )

    def access(self) -> "SshAccess":
        from workers.cluster_import_ssh import SshAccess

        return SshAccess(private_key=self.ssh_key.encode(), user=self.ssh_user)


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
    (NotFoundError, 404),
    (CommandError, 422),
    (StoreUnavailableError, 503),
)
"""HTTP status of an expected error, first match wins; any other (the cluster's API unreachable or
refusing) is a 502: the failure is the cluster's, not the request's."""


def run_import(
    runtime: Runtime,
    *,
    identity: Identity,
    conversation: Conversation,
    name: str,
    kubeconfig: bytes,
    ssh: "SshAccess | None" = None,
) -> ClusterRecord:
    """Authorize, import and audit; raise KobotError (safe to show) when refused or failed."""
    from workers.cluster_import import import_cluster

    ssh_detail = {} if ssh is None else {"ssh_user": ssh.user}
    _authorize(runtime, identity, conversation, name, IMPORT_ACTION, ssh_detail)
    with _audited_failure(runtime, identity, conversation, name, IMPORT_ACTION, ssh_detail):
        record = import_cluster(
            name=name,
            kubeconfig=kubeconfig,
            by=identity.key,
            redis=runtime.redis,
            secret=secret_key(runtime.settings),
            ssh=ssh,
            settings=runtime.settings,
        )
    info = record.imported
    detail = {
        "server": info.server if info else None,
        "version": record.version,
        "nodes": len(record.nodes),
        "network_plugin": info.network_plugin if info else None,
        **ssh_detail,
    }
    _audit(runtime, identity, conversation, record.name, IMPORT_ACTION, detail, "imported")
    return record


def run_attach_ssh(
    runtime: Runtime, *, identity: Identity, conversation: Conversation, name: str, ssh: "SshAccess"
) -> ClusterRecord:
    """Authorize (as an import), prove SSH on every node, keep the key, audit; raise KobotError."""
    from workers.cluster_import_ssh import attach_ssh

    detail = {"ssh_user": ssh.user}
    _authorize(runtime, identity, conversation, name, SSH_ACTION, detail)
    with _audited_failure(runtime, identity, conversation, name, SSH_ACTION, detail):
        record = attach_ssh(
            name=name,
            access=ssh,
            redis=runtime.redis,
            secret=secret_key(runtime.settings),
            settings=runtime.settings,
        )
    _audit(
        runtime, identity, conversation, name, SSH_ACTION, {**detail, "nodes": len(record.nodes)}, "attached"
    )
    return record


def _authorize(
    runtime: Runtime,
    identity: Identity,
    conversation: Conversation,
    name: str,
    action: str,
    detail: dict[str, Any],
) -> None:
    """Importing and giving SSH access both hand kobot credentials of a cluster: `cluster.import`."""
    decision = runtime.policy.authorize(
        identity=identity,
        conversation=conversation,
        command_id=CLUSTER_IMPORT_PERMISSION,
        risk=Risk.CHANGE,
        cluster=name,
    )
    if not decision.allowed:
        _audit(runtime, identity, conversation, name, action, detail, f"refused: {decision.reason}")
        raise PermissionDeniedError(decision.reason)


@contextmanager
def _audited_failure(
    runtime: Runtime,
    identity: Identity,
    conversation: Conversation,
    name: str,
    action: str,
    detail: dict[str, Any],
) -> Iterator[None]:
    """A refused or failed import or attach-ssh is audited with its reason, then raised on."""
    try:
        yield
    except KobotError as exc:
        _audit(runtime, identity, conversation, name, action, detail, f"failed: {exc.user_message}")
        raise


def _audit(
    runtime: Runtime,
    identity: Identity,
    conversation: Conversation,
    name: str,
    action: str,
    detail: dict[str, Any],
    result: str,
) -> None:
    runtime.audit.record(
        who=identity, where=conversation, action=action, cluster=name, detail=detail, result=result
    )


def _problem(exc: KobotError) -> JSONResponse:
    status = next((code for kind, code in IMPORT_STATUS if isinstance(exc, kind)), 502)
    return JSONResponse(ImportProblem(detail=exc.user_message).model_dump(), status_code=status)


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
                "description": "The name, the kubeconfig or the SSH key is refused, or SSH did not work "
                "on a node; `detail` says why (naming each such node). Nothing was stored.",
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
        def imported() -> ImportAnswer:
            record = run_import(
                runtime,
                identity=identity,
                conversation=API_CONVERSATION,
                name=body.name,
                kubeconfig=body.kubeconfig.encode(),
                ssh=body.access(),
            )
            return _import_answer(record)

        try:
            answer = await asyncio.to_thread(imported)
        except KobotError as exc:
            return _problem(exc)
        return JSONResponse(answer.model_dump(mode="json"), status_code=201)

    @router.post(
        SSH_PATH,
        response_model=ImportAnswer,
        responses={
            403: {"model": ImportProblem, "description": "The caller may not (admins only by default)."},
            404: {"model": ImportProblem, "description": "There is no cluster of that name."},
            409: {"model": ImportProblem, "description": "The cluster was built by kobot, not imported."},
            422: {
                "model": ImportProblem,
                "description": "The key or user is refused, or SSH did not work on a node; `detail` names "
                "each such node and why. Nothing was stored.",
            },
        },
        summary="Give an imported cluster SSH access to its hosts, proven on every node first",
    )
    async def ssh_route(
        name: str,
        identity: Annotated[Identity, Depends(caller)],
        body: SshRequest,
    ) -> JSONResponse:
        def attached() -> ImportAnswer:
            record = run_attach_ssh(
                runtime, identity=identity, conversation=API_CONVERSATION, name=name, ssh=body.access()
            )
            return _import_answer(record)

        try:
            answer = await asyncio.to_thread(attached)
        except KobotError as exc:
            return _problem(exc)
        return JSONResponse(answer.model_dump(mode="json"), status_code=200)

    return router


def _import_answer(record: ClusterRecord) -> ImportAnswer:
    """Built on the thread that imported or attached (it imports what the summary needs)."""
    from workers.cluster_import import summary_lines

    return ImportAnswer(cluster=record, summary=summary_lines(record))
