"""`kobot`'s command line: chat (terminal), serve (HTTP + chat adapters), worker (forking RQ worker),
parse TEXT, the offline bundle and cluster import. `bot.process.main` is the command itself.

Its commands are where a process exits (besides `bot.process` and `bot.serve`).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.process import main, settings_or_exit
from kobot.errors import CommandError, KobotError
from kobot.settings import Settings

if TYPE_CHECKING:  # the commands below import what they run when they run: `kobot --help` stays fast
    from collections.abc import Callable

    from bot.runtime import Runtime
    from kobot.clusters import ClusterRecord
    from kobot.conversations import Conversation, Identity
    from workers.bundle.apt_signing import RepositorySigner

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="kobot: run Kubernetes clusters from chat.",
)


@app.command()
def parse(text: str) -> None:
    """Print how kobot understands TEXT as one JSON object (exit 0), or why it does not (exit 2)."""
    from commands.parser import parse as parse_text

    try:
        parsed = parse_text(text)
    except CommandError as exc:
        typer.echo(exc.user_message, err=True)
        if exc.suggestions:
            typer.echo("did you mean: " + ", ".join(exc.suggestions), err=True)
        raise typer.Exit(code=2) from None
    typer.echo(parsed.model_dump_json())


@app.command()
def chat() -> None:
    """Terminal chat on the embedded default: commands from stdin, progress printed live."""
    settings = settings_or_exit(log_to_file=True)
    try:
        asyncio.run(_chat(settings))
    except KobotError as exc:
        typer.echo(f"kobot: {exc.user_message}", err=True)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        pass


async def _chat(settings: Settings) -> None:
    from bot.chat.terminal.adapter import TerminalAdapter
    from bot.runtime import build_runtime
    from bot.supervisor import Supervisor

    runtime = build_runtime(settings)
    terminal = TerminalAdapter()
    runtime.adapters[terminal.platform] = terminal
    supervisor = Supervisor(runtime=runtime, in_process_worker=settings.in_process_worker)
    try:
        await supervisor.start()
        await terminal.wait_closed()
    finally:
        try:
            await supervisor.stop()
            await runtime.audit.aclose()
        finally:
            runtime.close()


@app.command()
def serve() -> None:
    """HTTP app and every configured chat adapter (with an in-process worker unless disabled)."""
    from bot.serve import serve as serve_http

    serve_http()


@app.command()
def worker(burst: bool = typer.Option(False, help="Exit when the queue is empty.")) -> None:
    """A real forking RQ worker for kobot's queue."""
    from kobot.store import open_store
    from workers.worker import run_forking_worker

    settings = settings_or_exit()
    store = open_store(settings)
    try:
        run_forking_worker(settings=settings, redis_url=store.url, burst=burst)
    finally:
        store.close()


bundle_app = typer.Typer(no_args_is_help=True, help="The offline bundle: plan what a site needs, build it.")
app.add_typer(bundle_app, name="bundle")


_UPSTREAM_OPTION = typer.Option(None, help="PREFIX=REPLACEMENT for URLs and images (a site's mirror).")
_KEYRING_OPTION = typer.Option(
    None,
    help="URI_PREFIX=FILE: the keyring verifying an apt source's signed index (pkgs.k8s.io's Release.key, "
    "its fingerprint checked) or a dnf source's packages (Rocky's RPM-GPG-KEY-Rocky-9, Docker's gpg, "
    "pkgs.k8s.io's repomd.xml.key); Debian's and Ubuntu's archives default to their keyring packages.",
)


def _comma_list(value: str) -> list[str]:
    return [part for part in (p.strip() for p in value.split(",")) if part]


@bundle_app.command("plan")
def bundle_plan(
    version: str = typer.Option(..., help="Kubernetes version, like 1.32.8."),
    os: str = typer.Option(..., "--os", help="OS families, comma-separated: debian12, ubuntu22.04, el9, ..."),
    arch: str = typer.Option("amd64", help="Architectures, comma-separated: amd64, arm64."),
    cni: str = typer.Option("calico", help="calico or flannel."),
    addons: str = typer.Option("", help="Catalog addons, comma-separated: monitoring, logging, ..."),
    chart_repository: str | None = typer.Option(None, help="A site's chart repository instead of upstream."),
    upstream: list[str] | None = _UPSTREAM_OPTION,
    keyring: list[str] | None = _KEYRING_OPTION,
    output: str | None = typer.Option(None, help="Write the manifest (JSON) here; the summary is printed."),
    json_output: bool = typer.Option(False, "--json", help="Print the manifest as JSON instead."),
) -> None:
    """The exact list of OS packages, files, images and charts an offline site needs."""
    from pathlib import Path

    from workers.bundle.plan import BundlePlanError, plan_bundle

    malformed = [item for item in upstream or [] if "=" not in item or not item.partition("=")[0]]
    if malformed:
        typer.echo(
            f"kobot: --upstream {malformed[0]!r} is not PREFIX=REPLACEMENT "
            "(like https://dl.k8s.io=http://mirror.example/dl.k8s.io or registry.k8s.io=mirror.example:5000)",
            err=True,
        )
        raise typer.Exit(code=2)
    rewrites = dict(item.split("=", 1) for item in upstream or [])
    keyrings = _keyrings(keyring or [])
    try:
        manifest = plan_bundle(
            version=version,
            os=_comma_list(os),
            arch=_comma_list(arch),
            cni=cni,
            addons=_comma_list(addons),
            chart_repository=chart_repository,
            upstream=rewrites,
            keyrings=keyrings,
        )
    except BundlePlanError as exc:
        typer.echo(f"kobot: {exc}", err=True)
        raise typer.Exit(code=2) from None
    if output:
        Path(output).write_text(manifest.model_dump_json(indent=2) + "\n")
    typer.echo(manifest.model_dump_json(indent=2) if json_output else "\n".join(manifest.summary_lines()))


def _keyrings(items: list[str]) -> dict[str, str]:
    keyrings: dict[str, str] = {}
    for item in items:
        prefix, _, file = item.partition("=")
        if not prefix or not file:
            typer.echo(
                f"kobot: --keyring {item!r} is not URI_PREFIX=FILE "
                "(like https://pkgs.k8s.io=/etc/kobot/kubernetes-release.gpg)",
                err=True,
            )
            raise typer.Exit(code=2)
        if not Path(file).is_file():
            typer.echo(f"kobot: --keyring {prefix}: {file} is not a file", err=True)
            raise typer.Exit(code=2)
        keyrings[prefix] = str(Path(file).resolve())
    return keyrings


def _repository_signer() -> RepositorySigner:
    """kobot's repository signing key from the store (generated there on first use)."""
    from kobot.store import open_store, secret_key
    from workers.bundle.apt_signing import RepositorySigner, repository_signing_key
    from workers.cluster_secrets import ClusterSecrets

    settings = settings_or_exit()
    store = open_store(settings)
    try:
        secrets = ClusterSecrets(redis=store.client(), secret=secret_key(settings))
        return RepositorySigner(secret_key=repository_signing_key(secrets))
    finally:
        store.close()


@bundle_app.command("build")
def bundle_build(
    manifest: str = typer.Argument(..., help="The manifest `bundle plan --output` wrote."),
    into: str = typer.Option(..., help="Folder the bundle goes into (a second run resumes it)."),
    tarball: bool = typer.Option(False, help="Also write the bundle as one tar beside the folder."),
) -> None:
    """Fetch everything the manifest lists, verifying every checksum; images as OCI layouts (skopeo)."""
    from pathlib import Path

    from pydantic import ValidationError

    from workers.bundle.build import apt_families, build_bundle
    from workers.bundle.manifest import BundleManifest

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        planned = BundleManifest.model_validate_json(Path(manifest).read_text())
    except (OSError, ValidationError) as exc:
        typer.echo(f"kobot: {manifest} is not a bundle manifest: {str(exc).splitlines()[0]}", err=True)
        raise typer.Exit(code=2) from None
    try:
        signer = _repository_signer() if apt_families(planned) else None
        built = build_bundle(planned, into=Path(into), tarball=tarball, progress=typer.echo, signer=signer)
    except KobotError as exc:
        typer.echo(f"kobot: {exc.user_message}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(
        f"bundle in {into}: {len(built.files)} files, {len(built.images)} images, "
        f"{len(built.charts)} charts, {len(built.packages)} OS packages"
    )


_SSH_KEY_HELP = (
    "File holding a private key (no passphrase) that logs in to every node; never given on the line."
)
_SSH_USER_HELP = "The account the key logs in as."


@app.command("import")
def import_cluster(
    name: Annotated[str, typer.Argument(help="The cluster's name in kobot.")],
    kubeconfig: Annotated[
        Path,
        typer.Option(
            "--kubeconfig",
            exists=True,
            dir_okay=False,
            readable=True,
            help="File holding the cluster's admin kubeconfig, credentials inline (never given on the line).",
        ),
    ],
    ssh_key: Annotated[
        Path | None,
        typer.Option("--ssh-key", exists=True, dir_okay=False, readable=True, help=_SSH_KEY_HELP),
    ] = None,
    ssh_user: Annotated[str, typer.Option("--ssh-user", help=_SSH_USER_HELP)] = "root",
) -> None:
    """Import a cluster kobot did not build: probe its API, store its kubeconfig encrypted (admins only);
    with --ssh-key, SSH is proven on every node first and the key kept encrypted too."""
    from bot.api_clusters import run_import
    from workers.cluster_import import summary_lines
    from workers.cluster_import_ssh import SshAccess

    def act(runtime: Runtime, identity: Identity, conversation: Conversation) -> ClusterRecord:
        return run_import(
            runtime,
            identity=identity,
            conversation=conversation,
            name=name,
            kubeconfig=_read(kubeconfig),
            ssh=None if ssh_key is None else SshAccess(private_key=_read(ssh_key), user=ssh_user),
        )

    record = _as_admin(act)
    lines = summary_lines(record)
    for line in ["Imported " + lines[0], *lines[1:]]:
        typer.echo(line)


@app.command("attach-ssh")
def attach_ssh(
    name: Annotated[str, typer.Argument(help="The imported cluster's name in kobot.")],
    ssh_key: Annotated[
        Path,
        typer.Option("--ssh-key", exists=True, dir_okay=False, readable=True, help=_SSH_KEY_HELP),
    ],
    ssh_user: Annotated[str, typer.Option("--ssh-user", help=_SSH_USER_HELP)] = "root",
) -> None:
    """Give an imported cluster SSH access to its hosts: proven on every node first, then the key kept
    encrypted (admins only). Then certificate renewal, CIS scans and etcd backups run there."""
    from bot.api_clusters import run_attach_ssh
    from workers.cluster_import import summary_lines
    from workers.cluster_import_ssh import SshAccess

    def act(runtime: Runtime, identity: Identity, conversation: Conversation) -> ClusterRecord:
        access = SshAccess(private_key=_read(ssh_key), user=ssh_user)
        return run_attach_ssh(runtime, identity=identity, conversation=conversation, name=name, ssh=access)

    record = _as_admin(act)
    typer.echo(summary_lines(record)[-1])


class _Unreadable(Exception):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _Unreadable(path, exc.strerror or type(exc).__name__) from None


def _as_admin(act: Callable[[Runtime, Identity, Conversation], ClusterRecord]) -> ClusterRecord:
    """Run `act` as the terminal's user through a runtime; exit 1 on a refusal, 2 on an unreadable file."""
    from bot.runtime import build_runtime
    from kobot.conversations import Conversation, Identity

    settings = settings_or_exit()
    user = getpass.getuser()
    try:
        runtime = build_runtime(settings)
        try:
            return act(
                runtime,
                Identity(platform="terminal", user_id=user, display_name=user),
                Conversation(platform="terminal", conversation_id="cli"),
            )
        finally:
            runtime.close()
    except KobotError as exc:
        typer.echo(f"kobot: {exc.user_message}", err=True)
        raise typer.Exit(code=1) from None
    except _Unreadable as exc:
        typer.echo(f"kobot: {exc}", err=True)
        raise typer.Exit(code=2) from None


if __name__ == "__main__":
    main()
