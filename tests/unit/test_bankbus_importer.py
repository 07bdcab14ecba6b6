"""The importer: handbook round trip, column mappings, rejects with reasons, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bankbus.frames import read_canonical, transaction_records
from bankbus.importer import HANDBOOK, ColumnMapping, import_file, import_frame
from fraudstream.contracts import Transaction
from fraudstream.errors import InputError
from tests.cli_helpers import run_cli
from tests.shared_data import handbook_dir

ROWS = 50_000


@pytest.fixture(scope="module")
def handbook_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = next(handbook_dir().glob("transactions_*.parquet"))
    path = tmp_path_factory.mktemp("hb") / "slice.parquet"
    pd.read_parquet(source).iloc[:ROWS].to_parquet(path, index=False)
    return path


def test_handbook_import_round_trips(handbook_slice: Path, tmp_path: Path) -> None:
    result = import_file(handbook_slice, tmp_path / "canonical.parquet", HANDBOOK)
    assert len(result.rejects) == 0 and result.source_rows == ROWS
    canonical = read_canonical(tmp_path / "canonical.parquet", require_labels=True)
    source = pd.read_parquet(handbook_slice)
    # Back through the inverse mapping, the canonical file gives the source columns again.
    back = canonical[list(HANDBOOK.columns)].rename(columns=HANDBOOK.columns)
    for column in ("TRANSACTION_ID", "CUSTOMER_ID", "TERMINAL_ID"):
        back[column] = back[column].astype("int64")
    back["TX_DATETIME"] = back["TX_DATETIME"].dt.tz_localize(None)
    back = back.astype({"TX_FRAUD": "int64", "TX_FRAUD_SCENARIO": "int64"})
    expected = source[list(back.columns)].sort_values("TX_DATETIME", kind="stable").reset_index(drop=True)
    expected["TX_DATETIME"] = expected["TX_DATETIME"].dt.as_unit("ns")
    pd.testing.assert_frame_equal(back, expected)


def test_accepted_rows_pass_the_pydantic_contract(handbook_slice: Path) -> None:
    result = import_frame(pd.read_parquet(handbook_slice), HANDBOOK)
    for record in transaction_records(result.frame.sample(300, random_state=1)):
        assert Transaction.model_validate(record).transaction_id == record["transaction_id"]


MAPPED = ColumnMapping(columns={
    "transaction_id": "ID", "timestamp": "WHEN", "user_id": "WHO", "merchant_id": "SHOP", "amount": "AMT",
    "channel": "CH", "latitude": "LAT", "longitude": "LON", "country": "CC", "is_fraud": "FRAUD",
})


def _source(**changes: list[object]) -> pd.DataFrame:
    rows = {
        "ID": ["a", "b", "c"], "WHEN": ["2024-01-01T10:00:00Z", "2024-01-01 11:00:00", "2024-01-01T12:00:00+01:00"],
        "WHO": ["u1", "u2", "u1"], "SHOP": ["m1", "m2", "m3"], "AMT": ["10.5", "0", "99.99"],
        "CH": ["online", "ATM", None], "LAT": ["50.1", None, None], "LON": ["4.3", None, None],
        "CC": ["be", None, "FR"], "FRAUD": ["0", "1", "true"],
    }
    rows.update(changes)
    return pd.DataFrame(rows)


def test_mapping_cleans_and_the_contract_agrees() -> None:
    result = import_frame(_source(), MAPPED)
    assert len(result.rejects) == 0
    frame = result.frame
    assert frame["timestamp"].tolist() == list(pd.to_datetime(
        ["2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z", "2024-01-01T11:00:00Z"], utc=True))
    assert frame["fraud_scenario"].tolist() == [0, -1, -1] and frame["is_fraud"].tolist() == [0, 1, 1]
    assert frame["channel"].tolist()[:2] == ["online", "atm"] and frame["country"].tolist()[0] == "BE"
    transactions = [Transaction.model_validate(r) for r in transaction_records(frame)]
    assert transactions[0].latitude == 50.1 and transactions[1].latitude is None


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("WHEN", "not a date", "unparseable timestamp 'not a date'"),
        ("WHEN", "1999-12-31T00:00:00Z", "timestamp outside"),
        ("AMT", "-1", "negative amount"),
        ("AMT", "nan", "amount is not a number"),
        ("AMT", None, "missing amount"),
        ("AMT", "inf", "amount is not finite"),
        ("AMT", "20000000", "amount above"),
        ("WHO", None, "missing user_id"),
        ("ID", "x\x01", "control characters"),
        ("CH", "pigeon", "unknown channel"),
        ("LAT", "91", "latitude outside"),
        ("CC", "B1", "country is not like"),
        ("CC", "BEL", "country longer than 2"),
        ("FRAUD", "maybe", "is_fraud is not 0/1"),
    ],
)
def test_each_bad_row_is_rejected_with_its_reason(column: str, value: object, reason: str) -> None:
    values = _source()[column].tolist()
    values[1] = value
    if column == "LAT":
        values_lon = ["4.3", "5.0", None]
        result = import_frame(_source(LAT=values, LON=values_lon), MAPPED)
    else:
        result = import_frame(_source(**{column: values}), MAPPED)
    assert result.rejects["source_row"].tolist() == [1]
    assert reason in result.rejects["reject_reason"].iloc[0]
    assert result.frame["transaction_id"].tolist() == ["a", "c"]


def test_one_coordinate_and_duplicates_are_rejected() -> None:
    result = import_frame(_source(LON=["4.3", "5.0", None], ID=["a", "b", "a"]), MAPPED)
    assert result.rejects["reject_reason"].tolist() == ["latitude and longitude must come together",
                                                        "duplicate transaction_id"]


def test_missing_mapped_column_is_one_clear_error() -> None:
    with pytest.raises(InputError, match="has no column NOPE"):
        import_frame(_source(), MAPPED.with_pairs(["amount=NOPE"]))
    with pytest.raises(InputError, match="no source column for amount"):
        import_frame(_source(), ColumnMapping(columns={"transaction_id": "ID"}).with_pairs(
            ["timestamp=WHEN", "user_id=WHO", "merchant_id=SHOP"]))


def test_mapping_file(tmp_path: Path) -> None:
    mapping = tmp_path / "map.yaml"
    mapping.write_text("columns:\n  transaction_id: ID\n  timestamp: WHEN\n  user_id: WHO\n  merchant_id: SHOP\n"
                       "  amount: AMT\ndefaults:\n  currency: USD\ntimezone: Europe/Brussels\n")
    src = tmp_path / "src.csv"
    _source().to_csv(src, index=False)
    result = import_file(src, tmp_path / "out.parquet", ColumnMapping.from_file(mapping))
    assert set(result.frame["currency"]) == {"USD"}
    assert result.frame["timestamp"].iloc[1] == pd.Timestamp("2024-01-01T10:00:00Z")  # 11:00 Brussels
    (tmp_path / "bad.yaml").write_text("columns: [1, 2")
    with pytest.raises(InputError, match="not a readable mapping"):
        ColumnMapping.from_file(tmp_path / "bad.yaml")


def test_rejects_file_is_written_and_all_rejected_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "src.csv"
    _source(AMT=["1", "-5", "2"]).to_csv(src, index=False)
    result = import_file(src, tmp_path / "out.csv", MAPPED)
    rejects = pd.read_csv(tmp_path / "out.rejects.csv")
    assert len(result.frame) == 2 and rejects["reject_reason"].tolist() == ["negative amount"]
    assert len(read_canonical(tmp_path / "out.csv")) == 2
    _source(AMT=["-1", "-5", "-2"]).to_csv(src, index=False)
    with pytest.raises(InputError, match="all 3 rows were rejected"):
        import_file(src, tmp_path / "none.csv", MAPPED, tmp_path / "r.csv")
    assert len(pd.read_csv(tmp_path / "r.csv")) == 3


@pytest.mark.parametrize(("case", "code"), [("missing", 2), ("empty", 65), ("header-only", 65), ("missing-column", 65)])
def test_cli_bad_input_is_one_line_with_its_exit_code(case: str, code: int, tmp_path: Path) -> None:
    """No such file is a usage mistake (2); a file whose contents cannot be used is a data error (65)."""
    src = tmp_path / "src.csv"
    if case == "empty":
        src.write_text("")
    elif case == "header-only":
        src.write_text("TRANSACTION_ID,TX_DATETIME\n")
    elif case == "missing-column":
        src.write_text("TRANSACTION_ID,TX_DATETIME\n1,2024-01-01\n")
    result = run_cli("import", str(src), "--format", "handbook", "--out", str(tmp_path / "o.parquet"))
    assert result.code == code, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fraudstream: error: "), result.err
    assert "Traceback" not in result.err
