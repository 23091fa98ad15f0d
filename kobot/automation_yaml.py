"""Inventory and extra-vars YAML for Ansible, with `kobot.automation_values.Untrusted` strings tagged
`!unsafe`, so a value from a user or a record is never rendered as a Jinja template.

A module apart from the value checks: every start imports those (for the settings and records), while
PyYAML, and the Unicode pattern its reader compiles on import, load only with the first inventory a job
writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from kobot.automation_values import Untrusted


class AutomationDumper(yaml.SafeDumper):
    """YAML for Ansible: `Untrusted` strings get the `!unsafe` tag Ansible's loader understands."""


def _represent_untrusted(dumper: yaml.SafeDumper, value: Untrusted) -> yaml.Node:
    text = str(value)
    if not text:
        # ansible-core 2.19 loads `!unsafe ""` as None, so an empty value would reach the roles as
        # null (`| length` fails on it). An empty string holds no template to guard against.
        return dumper.represent_str("")
    return dumper.represent_scalar("!unsafe", text, style='"')


AutomationDumper.add_representer(Untrusted, _represent_untrusted)


def dump_yaml(data: Mapping[str, Any]) -> str:
    """YAML text of inventory or extra vars, untrusted strings tagged `!unsafe`."""
    return yaml.dump(dict(data), Dumper=AutomationDumper, sort_keys=False, default_flow_style=False)


class AutomationLoader(yaml.SafeLoader):
    """Reads what `dump_yaml` wrote: `!unsafe` strings come back as `Untrusted`."""


def _construct_untrusted(loader: yaml.SafeLoader, node: yaml.Node) -> Untrusted:
    return Untrusted(loader.construct_scalar(node))  # type: ignore[arg-type]


AutomationLoader.add_constructor("!unsafe", _construct_untrusted)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=AutomationLoader)  # nosec B506  # AutomationLoader is a SafeLoader
