"""Every command and subcommand as a user meets it, as real `fraudstream` subprocesses: never a traceback, one
message that names the thing to fix, an exit code of the documented class (README, "Command line").

The commands are discovered from the typer app (tests/cli_discovery.py), so a new command is covered without
editing this file; only the table of how to make each command reach Kafka or Redis (UNREACHABLE / OFFLINE) must
name every command, and a test fails when it does not. Kafka and Redis point at a port where nothing listens
(127.0.0.1:1) with short client timeouts, so no server is needed and nothing is started. The runs go through a
small thread pool. Bad values and bogus options for every parameter are checked in-process (test_cli_usage_errors),
with a few of them here as subprocesses too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from fraudstream import __version__
from tests.cli_discovery import COMMANDS, GROUPS, LEAVES, command_name, hints

FRAUDSTREAM = Path(sys.executable).with_name("fraudstream")  # the console script of the venv running the tests
KAFKA = "127.0.0.1:1"
REDIS = "redis://127.0.0.1:1/0"
USAGE, DATA, UNAVAILABLE = 2, 65, 69
DOCUMENTED_CODES = {0, 1, USAGE, 3, DATA, UNAVAILABLE, 70, 130}

#: How to make each command reach a dependency (Kafka, Redis or both); `{csv}` is a small canonical file.
UNREACHABLE: dict[tuple[str, ...], tuple[str, ...]] = {
    ("up",): (),
    ("status",): (),
    ("topics",): (),
    ("publish",): ("{csv}",),
    ("replay",): ("{csv}", "--to-topic", "cli-test-replay"),
    ("train",): ("--from-topics", "--days", "1"),
    ("stream",): ("--wait-timeout", "1"),
    ("label",): ("T1", "fraud", "--user", "C1"),
    ("backtest",): ("--from-topic", "--start", "2024-01-01", "--end", "2024-01-02"),
    ("alerts", "tail"): ("--no-follow",),
    ("dlq", "tail"): (),
    ("late", "tail"): (),
    ("demo", "watch"): ("--truth", "{csv}", "--since-ms", "0"),
    ("api", "serve"): (),
}
#: Commands that never talk to Kafka or Redis, and why.
OFFLINE: dict[tuple[str, ...], str] = {
    ("config",): "prints the settings",
    ("schemas",): "writes or checks the JSON Schema files in the package",
    ("simulate",): "writes a local file",
    ("tune",): "reads a history file and writes tune.json/tune.md",
    ("import",): "reads and writes local files",
    ("demo", "split"): "reads and writes local files",
    ("down",): "stops local processes by their pid files",
    ("api", "create-key"): "writes the local API keys file",
    ("api", "revoke-key"): "writes the local API keys file",
    ("api", "keys"): "reads the local API keys file",
    ("models", "list"): "reads the registry folder",
    ("models", "show"): "reads the registry folder",
    ("models", "promote"): "writes the registry folder's current pointer and audit trail",
    ("models", "rollback"): "writes the registry folder's current pointer and audit trail",
    ("bootstrap",): "trains on simulated history into the local registry, or does nothing when it has a current model",
    ("console", "create-user"): "writes the console's database (a SQLite file in the state folder by default)",
    ("console", "migrate"): "migrates the console's database (a SQLite file in the state folder by default)",
}
#: Commands left out of the no-arguments run, and why (each is in the unreachable run, bounded, or offline).
NO_ARGS_EXCLUDED: dict[tuple[str, ...], str] = {
    ("stream",): "a worker without --idle-exit or --wait-timeout waits for Kafka and Redis without end, by design",
    ("schemas",): "with no arguments it rewrites the committed schema files of the repository",
    ("console",): "a group that serves the web console until stopped when no subcommand is given, by design "
    "(its pages are tested through TestClient and a browser: tests/unit/test_console_web.py, integration)",
}
#: The usage mistakes of the issue, end to end through the console script: argv -> (whose usage, what the error says).
ISSUE_MISTAKES: dict[tuple[str, ...], tuple[tuple[str, ...], str]] = {
    ("nosuchcmd",): ((), "No such command 'nosuchcmd'."),
    ("strem",): ((), "No such command 'strem'. Did you mean 'stream'?"),
    ("label",): (("label",), "Missing argument 'TRANSACTION_ID'."),
    ("stream", "--engine", "spark"): (
        ("stream",), "Invalid value for '--engine': 'spark' is not one of 'kafka', 'faust'."
    ),
    ("up", "--bogus"): (("up",), "No such option: --bogus"),
    ("alerts", "--bogus"): (("alerts",), "No such option: --bogus"),
    ("label", "T1", "maybe"): (("label",), "Invalid value for 'VERDICT': 'maybe' is not one of 'fraud', 'legit'."),
    ("simulate", "--out", "x.csv", "--customers", "-3"): (("simulate",), "Invalid value for '--customers'"),
}
DEBUG_RUNS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "--debug": (("--debug", "topics"), {}),
    "FRAUD_LOG_LEVEL=DEBUG": (("topics",), {"FRAUD_LOG_LEVEL": "DEBUG"}),
}
STREAM_WARNING = ("stream", "--idle-exit", "2")

Run = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]  # argv, extra environment


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-every-command")


@pytest.fixture(scope="module")
def env(workdir: Path) -> dict[str, str]:
    from tests.streamer_support import publish_tiny_model

    registry = workdir / "registry"
    # The streamer checks that the registry's current version is trusted (signature, hashes) before it waits for
    # Kafka and Redis; the model itself is loaded after that wait. This registry is unsigned (development).
    publish_tiny_model(registry)
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    base.update({
        "FRAUD_KAFKA__BOOTSTRAP_SERVERS": KAFKA,
        "FRAUD_REDIS__URL": REDIS,
        "FRAUD_KAFKA__REQUEST_TIMEOUT_S": "1",
        "FRAUD_REDIS__SOCKET_TIMEOUT_S": "1",
        "FRAUD_EMBEDDED__START_TIMEOUT_S": "2",
        "FRAUD_EMBEDDED__STATE_DIR": str(workdir / "state"),
        "FRAUD_REGISTRY__PATH": str(registry),
        "FRAUD_REGISTRY__ALLOW_UNSIGNED": "true",
    })
    return base


def _run(argv: tuple[str, ...], env: dict[str, str], cwd: Path) -> Outcome:
    began = time.perf_counter()
    proc = subprocess.run([str(FRAUDSTREAM), *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=90, check=False)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - began)


def _all_runs() -> list[Run]:
    runs: list[Run] = [(path, ()) for path in COMMANDS if path not in NO_ARGS_EXCLUDED]
    runs += [((*path, *argv), ()) for path, argv in UNREACHABLE.items()]
    runs += [(argv, ()) for argv in ISSUE_MISTAKES]
    runs += [(argv, tuple(extra.items())) for argv, extra in DEBUG_RUNS.values()]
    runs += [(STREAM_WARNING, ()), (("--version",), ()), (("--show-completion", "bash"), ())]
    return list(dict.fromkeys(runs))


@pytest.fixture(scope="module")
def outcomes(env: dict[str, str], workdir: Path) -> dict[Run, Outcome]:
    """Every run of this module, in a small thread pool (the subprocesses mostly wait on imports and timeouts)."""
    csv = workdir / "small.csv"
    made = _run(("simulate", "--out", str(csv), "--customers", "20", "--merchants", "40", "--days", "1"), env, workdir)
    assert made.code == 0, made.text
    runs = _all_runs()

    def one(run: Run) -> Outcome:
        return _run(tuple(a.replace("{csv}", str(csv)) for a in run[0]), {**env, **dict(run[1])}, workdir)

    with ThreadPoolExecutor(max_workers=min(4, 2 * (os.cpu_count() or 1))) as pool:
        return dict(zip(runs, pool.map(one, runs), strict=True))


def _assert_no_traceback(result: Outcome) -> None:
    assert "Traceback" not in result.text and 'File "' not in result.text, result.text


def _error_line(result: Outcome) -> str:
    lines = [line for line in result.err.splitlines() if line.startswith(("Error: ", "fraudstream: error: "))]
    assert len(lines) == 1, result.err
    return lines[0]


def _assert_usage_error(result: Outcome, path: tuple[str, ...]) -> None:
    """Click's form: the usage line of the command, a pointer to its --help, then the error; exit code 2."""
    assert result.code == USAGE, result.text
    assert f"Usage: {command_name(path)}" in result.err, result.err
    assert f"Try '{command_name(path)} --help' for help." in result.err, result.err


def _names_a_dependency(result: Outcome) -> bool:
    kafka = KAFKA in result.text and "FRAUD_KAFKA__BOOTSTRAP_SERVERS" in result.text
    redis = REDIS in result.text and "FRAUD_REDIS__URL" in result.text
    registry = "FRAUD_REGISTRY__PATH" in result.text  # the model registry is a dependency too (no versions yet)
    return kafka or redis or registry


def test_every_command_is_classified() -> None:
    """A new command must say how it reaches a dependency (or that it never does) to be covered below."""
    assert set(UNREACHABLE).isdisjoint(OFFLINE)
    assert set(LEAVES) == set(UNREACHABLE) | set(OFFLINE)
    for path in NO_ARGS_EXCLUDED:  # left out of one run only
        assert path in UNREACHABLE or path in OFFLINE or path in GROUPS
    assert {("stream",), ("label",), ("alerts", "tail"), ("simulate",)} <= set(LEAVES)
    assert {(), ("alerts",)} <= set(GROUPS)


@pytest.mark.parametrize("path", [p for p in COMMANDS if p not in NO_ARGS_EXCLUDED], ids=command_name)
def test_no_arguments(path: tuple[str, ...], outcomes: dict[Run, Outcome]) -> None:
    result = outcomes[path, ()]
    _assert_no_traceback(result)
    command = COMMANDS[path]
    if path in GROUPS:  # click shows the group's help, with every subcommand, and exits 2
        assert result.code == USAGE, result.text
        for name in command.commands:
            assert name in result.text, result.text
        return
    required = [p for p in command.params if p.required]
    if required:
        _assert_usage_error(result, path)
        line = _error_line(result)
        assert "Missing" in line and any(h.lower() in line.lower() for p in required for h in hints(p)), line
        return
    assert result.code in DOCUMENTED_CODES, result.text
    if result.code == 0:
        assert path in OFFLINE, f"{command_name(path)} succeeded without arguments and without Kafka or Redis"
    elif result.code == UNAVAILABLE:
        assert _names_a_dependency(result), result.text
    else:  # a usage or data error without arguments: the message names one of the command's options
        line = _error_line(result)
        options = [o for p in command.params for o in p.opts if o.startswith("--")]
        assert any(o in line for o in options), line


@pytest.mark.parametrize("path", list(UNREACHABLE), ids=command_name)
def test_unreachable_kafka_and_redis(path: tuple[str, ...], outcomes: dict[Run, Outcome]) -> None:
    result = outcomes[(*path, *UNREACHABLE[path]), ()]
    _assert_no_traceback(result)
    assert result.code == UNAVAILABLE, result.text
    assert result.err.count("fraudstream: error: ") == 1 or path == ("status",), result.err
    assert _names_a_dependency(result), result.text
    assert result.seconds < 30, f"{command_name(path)} took {result.seconds:.1f} s to give up"


@pytest.mark.parametrize("argv", list(ISSUE_MISTAKES), ids=" ".join)
def test_the_issues_usage_mistakes(argv: tuple[str, ...], outcomes: dict[Run, Outcome]) -> None:
    result = outcomes[argv, ()]
    _assert_no_traceback(result)
    path, expected = ISSUE_MISTAKES[argv]
    _assert_usage_error(result, path)
    assert expected in _error_line(result)


def test_a_worker_whose_dependencies_are_down_says_so_at_once_and_stops_at_the_bound(
    outcomes: dict[Run, Outcome],
) -> None:
    result = outcomes[STREAM_WARNING, ()]
    _assert_no_traceback(result)
    assert result.code == UNAVAILABLE, result.text
    warnings = [line for line in result.err.splitlines() if "WARNING" in line and "does not answer" in line]
    assert {w.split(" does not answer")[0].split(": ")[-1] for w in warnings} == {
        f"Kafka at {KAFKA}", f"Redis at {REDIS}"
    }, result.err
    for line in warnings:
        assert "retrying after 0.5 s, doubling up to every 4 s" in line and "giving up after 2 s (--idle-exit)" in line
    assert "did not answer within 2 s (--idle-exit)" in _error_line(result)
    assert result.seconds < 20


@pytest.mark.parametrize("how", list(DEBUG_RUNS))
def test_a_traceback_only_when_asked(how: str, outcomes: dict[Run, Outcome]) -> None:
    argv, extra = DEBUG_RUNS[how]
    result = outcomes[argv, tuple(extra.items())]
    assert result.code == UNAVAILABLE, result.text
    assert "Traceback (most recent call last)" in result.err, result.err
    assert result.err.strip().splitlines()[-1].startswith("fraudstream: error: cannot list topics at 127.0.0.1:1")


def test_version_and_shell_completion(outcomes: dict[Run, Outcome]) -> None:
    version = outcomes[("--version",), ()]
    assert (version.code, version.out.strip()) == (0, f"fraudstream {__version__}")
    completion = outcomes[("--show-completion", "bash"), ()]
    assert completion.code == 0 and "_FRAUDSTREAM_COMPLETE" in completion.out, completion.text


def test_readme_lists_every_command() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    for path in LEAVES:
        assert f"| `{command_name(path)}" in table, f"README's command table lacks {command_name(path)}"
    for code in sorted(DOCUMENTED_CODES):
        assert f"\n| {code} |" in table, f"README's exit-code table lacks {code}"
