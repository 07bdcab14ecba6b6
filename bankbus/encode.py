"""Fast JSON for whole frames: the bytes Transaction/Label.model_dump_json() would give, without pydantic per row.

Each column is encoded once per distinct value (pandas.factorize + json.dumps); rows are then joined with
one format string. Only for frames that already passed the contract (read_canonical / the importer).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import numpy as np
import pandas as pd

from bankbus.frames import CANONICAL_COLUMNS
from fraudstream.contracts import LabelSource

_TRANSACTION_FORMAT = "{" + ",".join(f'"{c}":%s' for c in CANONICAL_COLUMNS) + "}"
_LABEL_FORMAT = (
    '{"transaction_id":%s,"user_id":%s,"is_fraud":%s,"source":"' + LabelSource.dataset.value
    + '","labelled_at":%s,"merchant_id":%s,"transaction_timestamp":%s}'
)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of small acyclic objects (tuples, bytes)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def json_tokens(values: pd.Series) -> np.ndarray:
    """Each value as a JSON token ('null' for missing), encoding every distinct value once."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if pd.api.types.is_float_dtype(uniques):
        tokens = [repr(u) for u in uniques.tolist()]  # what json.dumps writes for a finite float
    elif pd.api.types.is_string_dtype(uniques) or pd.api.types.is_object_dtype(uniques):
        text = pd.Series(uniques, dtype="str")
        needs_escape = text.str.contains(r'["\\\x00-\x1f]', regex=True, na=False).to_numpy()
        tokens = [json.dumps(u, ensure_ascii=False) if esc else f'"{u}"'
                  for u, esc in zip(text.tolist(), needs_escape.tolist(), strict=True)]
    else:
        tokens = [json.dumps(_plain(u), ensure_ascii=False) for u in uniques]
    table = np.array([*tokens, "null"], dtype=object)
    picked: np.ndarray = table[codes]  # the NA code -1 picks the trailing 'null'
    return picked


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def iso_tokens(stamps: pd.Series) -> np.ndarray:
    """Quoted ISO-8601 UTC times as pydantic writes them: seconds, '.ffffff' only when non-zero, then 'Z'."""
    ns = stamps.dt.tz_convert("UTC").dt.as_unit("ns").array.asi8
    seconds = np.datetime_as_string((ns // 1_000_000_000).astype("datetime64[s]"), unit="s")
    micros = (ns // 1_000) % 1_000_000
    tokens = np.array([f'"{s}Z"' for s in seconds.tolist()], dtype=object)
    fractional = np.flatnonzero(micros)
    if len(fractional):
        tokens[fractional] = [f'"{s}.{m:06d}Z"' for s, m in
                              zip(seconds[fractional].tolist(), micros[fractional].tolist(), strict=True)]
    return tokens


def transaction_values(frame: pd.DataFrame) -> list[bytes]:
    """One Transaction JSON document per row, in row order."""
    columns = [iso_tokens(frame[c]) if c == "timestamp" else json_tokens(frame[c]) for c in CANONICAL_COLUMNS]
    with paused_gc():
        return [(_TRANSACTION_FORMAT % row).encode() for row in zip(*columns, strict=True)]


def label_values(frame: pd.DataFrame, delay: timedelta) -> list[bytes]:
    """One Label JSON document per row (source=dataset), labelled `delay` after the transaction."""
    verdict = np.where(frame["is_fraud"].to_numpy() > 0, "true", "false")
    columns = [
        json_tokens(frame["transaction_id"]), json_tokens(frame["user_id"]), verdict,
        iso_tokens(frame["timestamp"] + pd.Timedelta(delay)), json_tokens(frame["merchant_id"]),
        iso_tokens(frame["timestamp"]),
    ]
    with paused_gc():
        return [(_LABEL_FORMAT % row).encode() for row in zip(*columns, strict=True)]


def keys_of(users: pd.Series) -> list[bytes]:
    """Kafka keys: the user_id, UTF-8, encoded once per user."""
    codes, uniques = pd.factorize(users)
    table = [str(u).encode() for u in uniques]
    return [table[c] for c in codes.tolist()]
