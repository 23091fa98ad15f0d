"""Make outside text inert in DingTalk and WeCom markdown, as `slack.render.escape` does for mrkdwn.

Alert labels, echoed commands and reasons reach these renderers; written as-is they could add links
(`[approve](https://evil)`), tags (`<font>`, WeCom's `<@userid>` mentions), headings or bold lines
that pass for kobot's own. Neither platform documents backslash escapes, so the characters that
make structure are swapped for their full-width twins: they read the same, render as text, and
NFKC (which kobot's command parser applies) turns them back into the ASCII originals when someone
copies a value into a command. Only the text that comes from a message's fields goes through here;
the renderers' own markup does not.
"""

from __future__ import annotations

import re

_EVERYWHERE = str.maketrans({"<": "＜", ">": "＞", "*": "＊"})
"""Tags and autolinks (`<...>`), emphasis and `*` list items, wherever they appear."""

_LINK_JOINT = re.compile(r"\](?=[(\[:])")
"""`](` of a link or image, `][` of a reference link, `]:` of a link definition."""

_EDGE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
"""Underscores that can open or close emphasis; `node_exporter` keeps its own."""

_STRIKE = re.compile(r"~~")

_LINE_MARK = re.compile(r"(?m)^(\s*)([#=+-])")
"""Headings, setext underlines, rules and list items start a line."""

_MENTION = re.compile(r"(?<!\S)@")
"""`@all`, `@13800000000`: a mention starts a word (an e-mail address does not)."""

_FULL_WIDTH = {"#": "＃", "=": "＝", "+": "＋", "-": "－"}

SAFE_MENTION = re.compile(r"[A-Za-z0-9_.$:+-]{1,64}")
"""A platform user id kobot may write as a real mention; anything else is shown as escaped text."""


def escape_markdown(text: str) -> str:
    """`text` with every markdown or tag construct shown literally."""
    text = text.translate(_EVERYWHERE)
    text = _LINK_JOINT.sub("］", text)
    text = _EDGE_UNDERSCORE.sub("＿", text)
    text = _STRIKE.sub("～～", text)
    text = _MENTION.sub("＠", text)
    return _LINE_MARK.sub(lambda m: m.group(1) + _FULL_WIDTH[m.group(2)], text)
