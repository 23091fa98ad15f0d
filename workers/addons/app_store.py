"""The app store: any chart of the site's chart repository, installed by the addon mechanism.

An app is an addon entry built from the repository's index instead of the catalog: release
`app-<chart>` in its own namespace `<chart>`, the values a person sets with `--set key=value` (checked
for shape, since no catalog entry knows the chart), every image its render names rewritten to the
mirror, and its Deployments, StatefulSets and DaemonSets as what tells it is healthy.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

import yaml

from kobot.errors import KobotError
from workers.addons.catalog import VALUE_KEY, AddonEntry, AddonInputs
from workers.addons.defaults import USER_VALUE_MAX_CHARS

APP_PREFIX = "app-"
"""Release names of apps start with it, so they never meet a catalog addon's."""

IMAGES_ANNOTATION = "artifacthub.io/images"
"""Where a chart's index entry lists the images it runs (what the mirror needs)."""


@dataclass(frozen=True)
class AppChart:
    """One chart of the repository: its versions newest first, as the index lists them."""

    name: str
    description: str
    versions: tuple[str, ...]
    app_version: str
    images: tuple[str, ...]

    @property
    def latest(self) -> str:
        return self.versions[0]


def apps_of(index: dict[str, Any]) -> list[AppChart]:
    """Every chart of the index, by name."""
    found = []
    for name, entries in sorted((index.get("entries") or {}).items()):
        listed = [e for e in entries or [] if isinstance(e, dict) and e.get("version")]
        if not listed:
            continue
        newest = listed[0]
        found.append(
            AppChart(
                name=str(name),
                description=str(newest.get("description") or ""),
                versions=tuple(str(e["version"]) for e in listed),
                app_version=str(newest.get("appVersion") or ""),
                images=_images(newest),
            )
        )
    return found


def app_named(index: dict[str, Any], name: str) -> AppChart:
    """The chart by name; an unknown one is answered with the nearest names and where to see all."""
    apps = {app.name: app for app in apps_of(index)}
    if name in apps:
        return apps[name]
    nearest = get_close_matches(name, list(apps), n=3)
    hint = f"did you mean {' or '.join(nearest)}? " if nearest else ""
    raise KobotError(
        f"the chart repository has no app '{name}'; {hint}`list apps` shows the {len(apps)} it has"
    )


def version_of(app: AppChart, version: str | None) -> str:
    if version is None:
        return app.latest
    if version.lstrip("v") in app.versions:
        return version.lstrip("v")
    raise KobotError(f"{app.name} has no version {version}; the repository has {', '.join(app.versions)}")


def release_of(chart: str) -> str:
    return f"{APP_PREFIX}{chart}"


def settings_of(pairs: list[str]) -> dict[str, str]:
    """`key=value` pairs as a person gives them with `--set`, each key a value path."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not VALUE_KEY.fullmatch(key):
            raise KobotError(
                f"'{pair}' is not a value to set: say --set key=value, like --set auth.enabled=false"
            )
        if len(value) > USER_VALUE_MAX_CHARS:
            raise KobotError(f"the value of {key} is longer than {USER_VALUE_MAX_CHARS} characters")
        found[key] = value
    return found


def helm_values(settings: dict[str, str]) -> dict[str, Any]:
    """`a.b=2` → {"a": {"b": 2}}: YAML scalars (true, 3, 1.5) as YAML reads them, the rest as text."""
    values: dict[str, Any] = {}
    for key, raw in sorted(settings.items()):
        *parents, leaf = key.split(".")
        node = values
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = _scalar(raw)
    return values


def app_entry(*, chart: str, version: str) -> AddonEntry:
    """The addon entry an app installs as; nothing in it comes from chat but the chart and version."""

    def values(inputs: AddonInputs) -> dict[str, Any]:
        return helm_values(inputs.user_values)

    return AddonEntry(
        name=release_of(chart),
        summary=f"{chart} from the chart repository",
        chart=chart,
        version=version,
        namespace=chart,
        values=values,
        images=(),
        app=True,
    )


def _scalar(raw: str) -> Any:
    try:
        loaded = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return loaded if isinstance(loaded, (bool, int, float)) else raw


def _images(entry: dict[str, Any]) -> tuple[str, ...]:
    listed = (entry.get("annotations") or {}).get(IMAGES_ANNOTATION)
    try:
        parsed = yaml.safe_load(listed) if isinstance(listed, str) else None
    except yaml.YAMLError:
        return ()
    if not isinstance(parsed, list):
        return ()
    return tuple(str(i["image"]) for i in parsed if isinstance(i, dict) and i.get("image"))
