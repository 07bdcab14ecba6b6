"""`fraudstream models list|show|promote|rollback` over a real registry folder, and its append-only audit trail."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraudstream.cli import run
from fraudstream.clock import ManualClock
from models.audit import read_audit

UNAVAILABLE, USAGE, DATA = 69, 2, 65


def _registry(root: Path, clock: ManualClock) -> Any:
    from models.registry import ModelRegistry

    return ModelRegistry(root, clock, allow_unsigned=True)  # unsigned test versions


def publish(root: Path, when: datetime, ap: float, *, promote: bool) -> str:
    """A small real version (logistic regression as the bundle's stack) with the given average precision."""
    from sklearn.linear_model import LogisticRegression

    from features.spec import FEATURE_NAMES, feature_spec_hash
    from models.bundle import ModelBundle
    from models.preprocess import Preprocessor

    rng = np.random.default_rng(int(ap * 1000))
    used = ("amount", "count_1d")
    X = np.column_stack([rng.lognormal(3, 1, 300), rng.integers(1, 9, 300)])
    y = (X[:, 0] > 40).astype(int)
    pre = Preprocessor.fit(X)
    clf = LogisticRegression(max_iter=200).fit(pre.transform(X), y)
    bundle = ModelBundle(input_names=FEATURE_NAMES, used_features=used, preprocessor=pre, mlp=None, stack=clf,
                         thresholds={"stack": 0.5}, feature_spec_hash=feature_spec_hash(),
                         contribution_weights=np.array([0.5, 0.5]))  # fmt: skip
    return str(_registry(root, ManualClock(when)).publish(
        bundle, metrics={"average_precision": ap, "primary_scorer": "stack", "stack.roc_auc": 0.8},
        holdout_id="h1", data_range=(f"{when:%Y-%m-%d} 00:00:00", f"{when:%Y-%m-%d} 23:59:59"), seed=1,
        promote=promote, force=True,
    ))  # fmt: skip


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    for key in [k for k in __import__("os").environ if k.startswith("FRAUD_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("FRAUD_REGISTRY__PATH", str(tmp_path / "registry"))
    monkeypatch.setenv("FRAUD_REGISTRY__ALLOW_UNSIGNED", "true")
    monkeypatch.setenv("USER", "carol")
    monkeypatch.setenv("LOGNAME", "carol")

    def call(*argv: str) -> tuple[int, str, str]:
        code = run(["models", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


@pytest.fixture
def three(tmp_path: Path) -> list[str]:
    """v1 (AP 0.7, current by publishing), v2 (AP 0.8) and v3 (AP 0.6), published a day apart."""
    root, day = tmp_path / "registry", datetime(2024, 5, 1, tzinfo=UTC)
    return [publish(root, day, 0.7, promote=True), publish(root, day + timedelta(days=1), 0.8, promote=False),
            publish(root, day + timedelta(days=2), 0.6, promote=False)]  # fmt: skip


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("fraudstream: error: "), err
    return lines[0]


@pytest.mark.parametrize("argv", [("list",), ("show", "v1"), ("promote", "v1"), ("rollback",)])
def test_an_empty_registry_is_one_line_and_exit_69(cli: Any, argv: tuple[str, ...]) -> None:
    code, _, err = cli(*argv)
    assert code == UNAVAILABLE
    assert "has no versions; run `fraudstream train` first" in one_error_line(err)


def test_list_shows_every_version_with_metrics_data_range_and_current(cli: Any, three: list[str]) -> None:
    code, out, _ = cli("list")
    assert code == 0
    lines = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(three) <= set(lines)
    assert lines[three[0]].startswith("* ") and not lines[three[1]].startswith("*")
    assert "0.8000" in lines[three[1]] and "2024-05-02 00:00:00 .. 2024-05-02 23:59:59" in lines[three[1]]
    code, out, _ = cli("list", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["version"] for r in rows] == three and [r["current"] for r in rows] == [True, False, False]
    assert rows[2]["metrics"]["stack.roc_auc"] == 0.8 and rows[2]["average_precision"] == 0.6


def test_show_prints_the_manifest_and_an_unknown_version_is_a_usage_error(cli: Any, three: list[str]) -> None:
    code, out, _ = cli("show", three[1])
    shown = json.loads(out)
    assert code == 0 and shown["manifest"]["version"] == three[1] and shown["current"] is False
    assert shown["manifest"]["metrics"]["average_precision"] == 0.8 and "files" in shown["manifest"]
    code, out, _ = cli("show", "current")
    assert code == 0 and json.loads(out)["manifest"]["version"] == three[0]
    code, _, err = cli("show", "nope")
    assert code == USAGE and "no model version 'nope'" in one_error_line(err) and three[0] in err


def test_promote_and_rollback_move_current_and_every_move_is_audited(cli: Any, three: list[str],
                                                                     tmp_path: Path) -> None:  # fmt: skip
    root = tmp_path / "registry"
    v1, v2, v3 = three
    assert cli("promote", v2, "--actor", "alice")[0] == 0
    assert (root / "current").read_text().strip() == v2
    code, _, err = cli("promote", v3)  # worse than the champion: refused, stays published
    assert code == DATA and "worse than champion" in one_error_line(err) and "--force" in err
    assert cli("promote", v3, "--force")[0] == 0  # by $USER
    trail_before = (root / "audit.jsonl").read_bytes()
    code, out, _ = cli("rollback", "--actor", "bob")
    assert code == 0 and f"rolled back to {v2} (was {v3})" in out
    assert (root / "audit.jsonl").read_bytes().startswith(trail_before), "the audit trail was rewritten"
    assert cli("rollback")[0] == 0 and (root / "current").read_text().strip() == v1
    code, _, err = cli("rollback")
    assert code == DATA and "nothing to roll back to" in one_error_line(err)
    records = list(read_audit(root))
    assert [(r.action, r.actor, r.version, r.previous) for r in records] == [
        ("publish", "fraudstream", v1, None),
        ("promote", "alice", v2, v1),
        ("promote", "carol", v3, v2),
        ("rollback", "bob", v2, v3),
        ("rollback", "carol", v1, v2),
    ]
    assert records[2].forced and all(datetime.fromisoformat(r.at).tzinfo is not None for r in records)


def test_rollback_to_a_named_earlier_version_and_refusals(cli: Any, three: list[str], tmp_path: Path) -> None:
    v1, v2, v3 = three
    assert cli("promote", v2)[0] == 0 and cli("promote", v3, "--force")[0] == 0
    code, _, err = cli("rollback", "--to", v3)
    assert code == USAGE and "was not current before" in one_error_line(err)
    assert cli("rollback", "--to", v1)[0] == 0 and (tmp_path / "registry" / "current").read_text().strip() == v1
    assert cli("promote", v1) == (0, f"{v1} is already current in {tmp_path / 'registry'}; nothing changed\n", "")


def test_a_tampered_version_is_not_promoted(cli: Any, three: list[str], tmp_path: Path) -> None:
    folder = tmp_path / "registry" / "versions" / three[1]
    target = folder / "preprocessor.json"
    target.write_text(target.read_text().replace("[", "[ ", 1))
    code, _, err = cli("promote", three[1])
    assert code == DATA and three[1] in one_error_line(err)
    assert (tmp_path / "registry" / "current").read_text().strip() == three[0]
