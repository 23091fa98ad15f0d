"""The offline repository host: `setup repository on <host>` (and 中文), a risky job that installs,
starts and loads the file server and registry there and records the repository for new clusters."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from commands.definitions.common import Args, BreakGlass
from commands.grammar import Arg
from commands.registry import command
from kobot import validation
from kobot.access import REPOSITORY_SETUP_PERMISSION
from kobot.risk import Risk

REPOSITORY_SETUP = "repository.setup"
"""The job kind (workers.bundle.repository_job registers its operation)."""


@command(
    REPOSITORY_SETUP,
    aliases=(
        "setup repository on",
        "set up repository on",
        "setup repository",
        "setup offline repository on",
        "搭建离线仓库",
        "部署离线仓库",
    ),
    risk=Risk.RISKY,
    permission=REPOSITORY_SETUP_PERMISSION,
    summary="Set up the offline repository on a host: file server and registry, loaded with kobot's bundle.",
    examples=("setup repository on repo1.example.com", "搭建离线仓库 repo1.example.com"),
    job_kind=REPOSITORY_SETUP,
)
class RepositorySetupArgs(Args):
    """Loads the bundle `kobot bundle build --into <data_dir>/bundle` built; new clusters then take
    their packages, files and images from this host."""

    host: Annotated[
        str,
        AfterValidator(validation.host_address_in_context),
        Arg(
            names=("address", "ip", "主机", "地址"),
            positional=True,
            shape=r"[0-9a-fA-F:.\[\]]+|[\w-]+(\.[\w-]+)+",
            kind="IP or hostname",
        ),
        Field(description="the machine that becomes the repository host (SSH as kobot's user)"),
    ]
    break_glass: BreakGlass = None
