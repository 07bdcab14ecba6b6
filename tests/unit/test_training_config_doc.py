"""Every training-config key is documented: a description on each field, `fraudstream train --describe-config`
prints the table, and the README holds the same table."""

from __future__ import annotations

from pathlib import Path

from tests.cli_helpers import run_cli
from training.config import PrequentialConfig, TrainingConfig, describe_config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_key_has_a_description_and_a_row() -> None:
    table = describe_config()
    for prefix, model in (("", TrainingConfig), ("prequential.", PrequentialConfig)):
        for name, info in model.model_fields.items():
            assert info.description, f"{prefix}{name} has no description"
            if info.annotation is not PrequentialConfig:
                assert f"| `{prefix}{name}` |" in table
    rows = [line for line in table.splitlines()[2:] if line]
    assert all(line.count(" | ") == 3 for line in rows), "a cell holds a '|' and splits the row"


def test_the_readme_table_is_the_described_config() -> None:
    text = README.read_text()
    start, end = "<!-- training-config:start -->\n", "<!-- training-config:end -->"
    assert start in text and end in text
    assert text.split(start, 1)[1].split(end, 1)[0] == describe_config(), (
        "README's training-config table is stale: paste `fraudstream train --describe-config` between its markers")


def test_the_cli_prints_the_table_without_reading_history() -> None:
    result = run_cli("train", "--describe-config")
    assert result.code == 0, result.err
    assert result.out == describe_config()
