"""Images for the bundle, with skopeo (no container engine): copied into one OCI layout per image on the
connected machine, and pushed from those layouts into the repository host's registry.

Registry traffic is content-addressed: skopeo checks every blob and manifest against its digest while
copying, so the digest recorded here is the image's checksum.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from kobot.errors import StepFailedError
from workers.addons.manifests import mirrored_image
from workers.bundle import defaults
from workers.bundle.fetch import rewritten
from workers.bundle.manifest import BuiltImage

POLICY = {"default": [{"type": "insecureAcceptAnything"}]}
"""skopeo's signature policy for the copies: the images carry no signatures to check, and kobot's
own file keeps the build independent of this machine's /etc/containers/policy.json."""


def skopeo() -> str:
    found = shutil.which("skopeo")
    if found is None:
        raise StepFailedError("skopeo is not installed (Debian/Ubuntu: apt install skopeo)", task="images")
    return found


def layout_name(ref: str) -> str:
    """`registry.k8s.io/pause:3.10` → `registry.k8s.io_pause_3.10`: one folder per image."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", ref)


def tag_of(ref: str) -> str:
    name, _, tag = ref.rpartition(":")
    return tag if name and "/" not in tag else "latest"


def copy_to_layout(ref: str, *, images_dir: Path, upstream: dict[str, str], policy: Path) -> BuiltImage:
    """Copy `ref` (every architecture it lists) into `images_dir/<layout>`; kept when already copied."""
    layout = layout_name(ref)
    marker = images_dir / f"{layout}.json"
    if marker.is_file() and (images_dir / layout / "index.json").is_file():
        return BuiltImage.model_validate_json(marker.read_text())
    source, tls = _source(ref, upstream)
    target = images_dir / layout
    if target.exists():
        shutil.rmtree(target)  # a copy that did not finish: skopeo starts it over
    images_dir.mkdir(parents=True, exist_ok=True)
    _skopeo(
        "copy",
        "--policy",
        str(policy),
        "--multi-arch",
        "all",
        f"--src-tls-verify={'true' if tls else 'false'}",
        f"docker://{source}",
        f"oci:{target}:{tag_of(ref)}",
    )
    built = BuiltImage(ref=ref, layout=layout, digest=_layout_digest(target))
    marker.write_text(built.model_dump_json())
    return built


def push_to_registry(
    image: BuiltImage,
    *,
    images_dir: Path,
    registry: str,
    policy: Path,
    tls: bool,
    authfile: Path | None = None,
    ca_dir: Path | None = None,
) -> str:
    """Push a layout to `registry` under the path the clusters' containerd mirror asks for; the pushed
    name. The push credential, if any, is read by skopeo from `authfile` (never on its command line).

    With `ca_dir` (a folder holding one `ca.crt`) the push goes over TLS and trusts that CA only: not
    this machine's system CAs, so no other CA can vouch for the registry the credential goes to."""
    name = mirrored_image(image.ref, registry=registry)
    verify_layout(image, images_dir=images_dir)
    auth = () if authfile is None else ("--dest-authfile", str(authfile))
    trust = () if ca_dir is None else ("--dest-cert-dir", str(ca_dir))
    _skopeo(
        "copy",
        "--policy",
        str(policy),
        "--multi-arch",
        "all",
        *auth,
        *trust,
        f"--dest-tls-verify={'true' if tls or ca_dir is not None else 'false'}",
        f"oci:{images_dir / image.layout}:{tag_of(image.ref)}",
        f"docker://{name}",
        env=None if ca_dir is None else only_ca_environment(ca_dir),
    )
    return name


def only_ca_environment(ca_dir: Path) -> dict[str, str]:
    """skopeo's environment trusting the CA in `ca_dir` alone: Go reads its system roots from
    SSL_CERT_FILE/SSL_CERT_DIR, and `--dest-cert-dir` only adds to those."""
    return {**os.environ, "SSL_CERT_FILE": str(ca_dir / "ca.crt"), "SSL_CERT_DIR": str(ca_dir)}


def verify_layout(image: BuiltImage, *, images_dir: Path) -> None:
    """Refuse a layout whose image is not the one the build recorded: skopeo checks every blob against the
    layout's own index, so the index is what must match `bundle.json`."""
    found = _layout_digest(images_dir / image.layout)
    if found != image.digest:
        raise StepFailedError(
            f"image {image.ref}: its layout holds {found}, not {image.digest} as the build recorded "
            "(the bundle changed since it was built: build it again)",
            task="images",
        )


def write_authfile(path: Path, *, registry: str, user: str, password: str) -> Path:
    """A containers-auth.json for `registry`, mode 0600 from its creation: what skopeo pushes with."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"auths": {registry: {"auth": token}}}, handle)
    return path


def write_policy(path: Path) -> Path:
    path.write_text(json.dumps(POLICY))
    return path


def _source(ref: str, upstream: dict[str, str]) -> tuple[str, bool]:
    """Where to pull `ref` from and whether over TLS (an upstream mirror named `http://` is plain)."""
    moved = rewritten(ref, upstream)
    if moved.startswith("http://"):
        return moved.removeprefix("http://"), False
    return moved.removeprefix("https://"), True


def _layout_digest(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    manifests = index.get("manifests") or []
    if not manifests:
        raise StepFailedError(f"skopeo wrote no image into {layout.name}", task="images")
    return str(manifests[-1]["digest"])


def _skopeo(*args: str, env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(  # nosec B603  # skopeo by absolute path, an argv list, no shell
            [skopeo(), *args],
            capture_output=True,
            text=True,
            timeout=defaults.IMAGE_COPY_TIMEOUT_SECONDS,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise StepFailedError(
            f"skopeo {args[0]} did not finish in {defaults.IMAGE_COPY_TIMEOUT_SECONDS:.0f}s", task="images"
        ) from None
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise StepFailedError(f"skopeo {args[0]} {args[-2]} failed: {reason[0][:400]}", task="images")
