"""A Dockerfile read as data: its instructions, per stage, with continuation lines joined.

Enough of Docker's grammar for the checks in this folder (exec-form JSON arguments, ENV pairs, COPY
sources and flags); hadolint checks the rest.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper case: FROM, RUN, COPY, ..."""
    text: str
    """Everything after the keyword, continuation lines joined."""
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction (ENTRYPOINT ["tini", ...]), or None."""
        text = self.text
        if self.keyword == "HEALTHCHECK":
            text = text.partition(" CMD ")[2].strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(part, str) for part in value), self
        return value

    def words(self) -> list[str]:
        return shlex.split(self.text)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [instruction for instruction in self.instructions if instruction.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """ENV pairs of this stage (`ENV A=1 B=2`; the legacy `ENV A 1` form too), later ones winning."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            words = instruction.words()
            if words and "=" not in words[0]:
                values[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                name, _, value = word.partition("=")
                values[name] = value
        return values

    def copies(self) -> list[tuple[list[str], str, dict[str, str]]]:
        """(sources, destination, flags) of each COPY.

        `COPY --from=build /a /b` gives ([/a], /b, {from: build})."""
        result = []
        for instruction in self.all("COPY"):
            words = instruction.exec_form() or instruction.words()
            flags = {}
            while words and words[0].startswith("--"):
                name, _, value = words.pop(0)[2:].partition("=")
                flags[name] = value
            result.append((words[:-1], words[-1], flags))
        return result


@dataclass
class Dockerfile:
    global_args: list[Instruction]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def instructions(self) -> list[Instruction]:
        return self.global_args + [i for stage in self.stages for i in stage.instructions]


def parse(text: str) -> Dockerfile:
    """Instructions grouped by stage; comments and blank lines inside a continued instruction are skipped
    as Docker skips them."""
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if continued:
            continue
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, rest = joined.partition(" ")
        instruction = Instruction(keyword=keyword.upper(), text=rest.strip(), line=start)
        if instruction.keyword == "FROM":
            words = instruction.words()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append(instruction)
        else:
            global_args.append(instruction)
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return Dockerfile(global_args=global_args, stages=stages)
