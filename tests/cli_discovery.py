"""The commands and parameters of the `fraudstream` app, discovered from typer, and values each must refuse."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from typer.main import get_command

from fraudstream.cli import app

Path_ = tuple[str, ...]


def _walk(command: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


COMMANDS: dict[Path_, Any] = dict(_walk(get_command(app)))
GROUPS = {path: cmd for path, cmd in COMMANDS.items() if hasattr(cmd, "commands")}
LEAVES = {path: cmd for path, cmd in COMMANDS.items() if path not in GROUPS}


def command_name(path: Path_) -> str:
    return " ".join(("fraudstream", *path))


def hints(param: Any) -> list[str]:
    """The ways an error message may name a parameter: its option names, its metavar, its name."""
    return [h for h in (*param.opts, getattr(param, "metavar", None), param.name) if h]


def descriptor(param: Any) -> Any:
    return getattr(param, "type_descriptor", None)


def choice_values(param: Any) -> list[str] | None:
    desc = descriptor(param)
    if desc is None or desc.choices is None:
        return None
    return [str(getattr(choice, "value", choice)) for choice in desc.choices]


def bad_values(param: Any) -> list[str]:
    """Values the parameter must refuse: not one of its choices; not a number, and outside its range; not a date."""
    desc = descriptor(param)
    if desc is None or getattr(param, "is_flag", False) or desc.annotation is bool:
        return []
    if desc.choices is not None:
        return ["not-a-choice"]
    if desc.annotation in (int, float):
        values = ["not-a-number"]
        info = desc.parameter_info
        if info.min is not None:
            values.append(str(info.min - 1))
        if info.max is not None:
            values.append(str(info.max + 1))
        return values
    if desc.annotation is datetime:
        return ["not-a-date"]
    return []


@dataclass(frozen=True)
class BadValue:
    path: Path_
    argv: tuple[str, ...]
    param: Any = field(compare=False)
    value: str

    @property
    def id(self) -> str:
        return f"{command_name(self.path)} {self.param.name}={self.value}"


def _placeholder(param: Any) -> str:
    choices = choice_values(param)
    return choices[0] if choices else "x"


def bad_value_cases() -> list[BadValue]:
    """One run per refused value of every option and argument of every command; earlier arguments get fillers."""
    cases = []
    for path, command in LEAVES.items():
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        for param in command.params:
            for value in bad_values(param):
                if param.param_type_name == "argument":
                    before = [_placeholder(a) for a in arguments[: arguments.index(param)]]
                    argv = (*path, *before, value)
                else:
                    argv = (*path, param.opts[0], value)
                cases.append(BadValue(path, argv, param, value))
    return cases
