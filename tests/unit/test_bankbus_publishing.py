"""Publishing without a broker: JSON equal to pydantic's, event-time merge of labels, pacing, CLI errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bankbus.cli import parse_duration
from bankbus.encode import label_values, transaction_values
from bankbus.frames import read_canonical, transaction_records, write_canonical
from bankbus.pacing import Pacer, Pacing
from bankbus.publisher import outbox_for
from bankbus.simulator import SimulationConfig, simulate_frame
from fraudstream.clock import ManualClock
from fraudstream.contracts import Label, LabelSource, Transaction
from fraudstream.errors import InputError
from tests.cli_helpers import run_cli


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return simulate_frame(SimulationConfig(customers=80, merchants=40, days=4, seed=9))


def test_fast_json_is_byte_equal_to_pydantic(frame: pd.DataFrame) -> None:
    odd = frame.copy()
    odd.loc[0, "merchant_category"] = 'quote " backslash \\ accent é'
    odd.loc[1, "timestamp"] = odd.loc[1, "timestamp"] + pd.Timedelta(microseconds=250)
    odd.loc[2, ["latitude", "longitude", "device_id", "channel"]] = [np.nan, np.nan, None, None]
    values = transaction_values(odd)
    for value, record in zip(values, transaction_records(odd), strict=True):
        assert value == Transaction.model_validate(record).model_dump_json().encode()


def test_label_json_is_a_valid_label(frame: pd.DataFrame) -> None:
    for value, (_, row) in zip(label_values(frame, timedelta(days=2)), frame.iterrows(), strict=True):
        label = Label.model_validate_json(value)
        assert label.model_dump_json().encode() == value
        assert label.source is LabelSource.dataset and label.is_fraud == bool(row["is_fraud"])
        assert label.labelled_at == row["timestamp"].to_pydatetime() + timedelta(days=2)


def test_outbox_merges_labels_in_event_time_order(frame: pd.DataFrame) -> None:
    outbox = outbox_for(frame, "tx", "lb", timedelta(hours=6))
    assert len(outbox) == 2 * len(frame)
    assert (np.diff(outbox.event_ns) >= 0).all()
    assert outbox.topics.count("lb") == len(frame)
    first_label = outbox.topics.index("lb")
    label = Label.model_validate_json(outbox.values[first_label] or b"")
    txn_position = [i for i, v in enumerate(outbox.values) if outbox.topics[i] == "tx"
                    and Transaction.model_validate_json(v or b"").transaction_id == label.transaction_id]
    assert txn_position and txn_position[0] < first_label
    with pytest.raises(InputError, match="label columns"):
        outbox_for(frame.drop(columns=["is_fraud", "fraud_scenario"]), "tx", "lb", timedelta(0))


def test_pacing_rate_and_speed_offsets() -> None:
    ns = np.array([0, 10, 10, 40], dtype=np.int64) * 1_000_000_000
    assert Pacing().offsets(ns) is None
    assert Pacing("rate", 2.0).offsets(ns).tolist() == [0.0, 0.5, 1.0, 1.5]  # type: ignore[union-attr]
    assert Pacing("speed", 10.0).offsets(ns).tolist() == [0.0, 1.0, 1.0, 4.0]  # type: ignore[union-attr]
    with pytest.raises(InputError, match="only one"):
        Pacing.from_options(rate=5, speed=2, fastest=False)
    with pytest.raises(InputError, match="positive"):
        Pacing.from_options(rate=-1, speed=None, fastest=False)


def test_pacer_waits_on_the_injected_clock() -> None:
    clock = ManualClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    pacer = Pacer(np.array([0.0, 1.0, 1.0, 3.0]), clock=clock, sleep=sleep, max_sleep_s=10)
    assert pacer.due(0, 4) == 1
    assert pacer.due(1, 4) == 3 and slept == [1.0]
    assert pacer.due(3, 4) == 4 and slept == [1.0, 2.0]


def test_parse_duration() -> None:
    assert parse_duration("3d") == timedelta(days=3)
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("45") == timedelta(seconds=45)
    with pytest.raises(InputError):
        parse_duration("soon")


def test_csv_and_parquet_round_trip(frame: pd.DataFrame, tmp_path: Path) -> None:
    parquet = read_canonical(write_canonical(frame, tmp_path / "f.parquet"), require_labels=True)
    csv = read_canonical(write_canonical(frame, tmp_path / "f.csv"), require_labels=True)
    pd.testing.assert_frame_equal(parquet, frame)
    pd.testing.assert_frame_equal(csv, frame)
    with pytest.raises(InputError, match="missing canonical column"):
        read_canonical(write_canonical_raw(frame.drop(columns=["amount"]), tmp_path / "bad.parquet"))


def write_canonical_raw(df: pd.DataFrame, path: Path) -> Path:
    df.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize(("case", "code"), [("missing", 2), ("empty", 65), ("wrong-columns", 65), ("bad-rate", 2)])
def test_publish_bad_input_is_one_line_and_its_exit_code(case: str, code: int, tmp_path: Path) -> None:
    """A usage mistake (no such file, a bad option value) exits 2; a file whose contents cannot be used, 65."""
    path = tmp_path / "in.csv"
    extra: list[str] = []
    if case == "empty":
        path.write_text("")
    elif case == "wrong-columns":
        path.write_text("a,b\n1,2\n")
    elif case == "bad-rate":
        path.write_text("a,b\n1,2\n")
        extra = ["--rate", "0"]
    # An unreachable broker: the command must fail on the input before it ever needs Kafka.
    result = run_cli("publish", str(path), *extra, env={"FRAUD_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert result.code == code, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fraudstream: error: ") and "Traceback" not in result.err
