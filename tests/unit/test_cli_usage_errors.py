"""Usage mistakes for every command and parameter, discovered from the typer app, run in-process through
`fraudstream.cli.run` (the console script's body; test_cli_every_command runs a sample as real subprocesses).

Every command gets a bogus option; every enum gets a value outside its choices; every number gets a non-number and,
when it has a range, a value outside it; every date gets a non-date. Each must end with click's usage line, a
pointer to `--help` and one error naming the parameter (and the allowed choices), exit code 2, no traceback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fraudstream.cli import run
from tests.cli_discovery import COMMANDS, BadValue, bad_value_cases, choice_values, command_name, hints

BOGUS = "--no-such-option-anywhere"
BAD_VALUES = bad_value_cases()

Invoke = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Invoke]:
    """run(argv) with Kafka and Redis unreachable and private folders; the root logger is restored afterwards."""
    for name in [k for k in os.environ if k.startswith("FRAUD_")]:
        monkeypatch.delenv(name)
    for name, value in {
        "FRAUD_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "FRAUD_REDIS__URL": "redis://127.0.0.1:1/0",
        "FRAUD_EMBEDDED__STATE_DIR": str(tmp_path / "state"),
        "FRAUD_REGISTRY__PATH": str(tmp_path / "registry"),
    }.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def invoke(*argv: str) -> tuple[int, str, str]:
        code = run(argv)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield invoke
    root.handlers[:] = handlers
    root.setLevel(level)


def _check_usage_error(code: int, out: str, err: str, path: tuple[str, ...]) -> str:
    """Click's form (usage line, pointer to --help, one error line), exit code 2, no traceback; the error line."""
    assert "Traceback" not in out + err and 'File "' not in out + err, err
    assert code == 2, err
    assert f"Usage: {command_name(path)}" in err, err
    assert f"Try '{command_name(path)} --help' for help." in err, err
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize("path", list(COMMANDS), ids=command_name)
def test_a_bogus_option(path: tuple[str, ...], cli: Invoke) -> None:
    code, out, err = cli(*path, BOGUS)
    assert _check_usage_error(code, out, err, path) == f"Error: No such option: {BOGUS}"


@pytest.mark.parametrize("case", BAD_VALUES, ids=lambda c: c.id)
def test_a_bad_value(case: BadValue, cli: Invoke) -> None:
    code, out, err = cli(*case.argv)
    line = _check_usage_error(code, out, err, case.path)
    assert line.startswith("Error: Invalid value for ") and "Value error" not in line, line
    assert any(h.lower() in line.lower() for h in hints(case.param)), line
    for choice in choice_values(case.param) or []:  # the message lists what is allowed
        assert f"'{choice}'" in line, line


def test_the_discovery_finds_the_enums_and_ranges_the_issue_names() -> None:
    found = {(c.path, c.param.name, c.value) for c in BAD_VALUES}
    assert {
        (("stream",), "engine", "not-a-choice"),
        (("label",), "verdict", "not-a-choice"),
        (("label",), "source", "not-a-choice"),
        (("backtest",), "protocol", "not-a-choice"),
        (("simulate",), "customers", "not-a-number"),
        (("simulate",), "customers", "0"),
        (("stream",), "idle_exit", "-1.0"),
        (("alerts", "tail"), "min_score", "2.0"),
        (("label",), "at", "not-a-date"),
    } <= found


def test_an_unknown_command_suggests_the_closest(cli: Invoke) -> None:
    code, out, err = cli("backtets")
    assert _check_usage_error(code, out, err, ()) == "Error: No such command 'backtets'. Did you mean 'backtest'?"
