"""A deterministic corpus of malformed transaction records (value bytes, key), each of which must be dead-lettered:
broken JSON, wrong types, missing fields, NaN/Infinity/negative/huge amounts, years 1 and 9999, megabyte payloads,
invalid UTF-8, empty and missing keys, non-object JSON, unknown fields."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from fraudstream.contracts import Transaction

REQUIRED = ("transaction_id", "user_id", "timestamp", "amount", "merchant_id")
NON_STRINGS: tuple[Any, ...] = ([], {}, [1, 2], {"a": 1}, 12.5, False, 7)
NON_NUMBERS: tuple[Any, ...] = ("lots", [], {}, [1.0], "", "1,5", {"v": 1})
#: field -> values of a wrong JSON type for it (None only where the field is required)
WRONG_TYPES: dict[str, tuple[Any, ...]] = {
    **{name: (*NON_STRINGS, None) for name in ("transaction_id", "user_id", "merchant_id")},
    "currency": NON_STRINGS, "country": NON_STRINGS, "device_id": NON_STRINGS, "channel": NON_STRINGS,
    "timestamp": ([], {}, "lots", False, None), "amount": (*NON_NUMBERS, None), "latitude": NON_NUMBERS,
}
BAD_AMOUNT_TOKENS = ("NaN", "Infinity", "-Infinity", "-0.01", "-1e300", "1e12", "1e400", "10000000.01", '"12,50"')
BAD_TIMESTAMPS = (
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1999-12-31T23:59:59Z", "2024-13-01T00:00:00Z",
    "2024-02-30T00:00:00Z", "2024-01-01T00:00:00", "yesterday", "", "-62135596800", "2024-01-01T25:00:00Z",
)
MEGABYTE = 900_000  # under the broker's 1 MB record limit, so the record itself can be published


@dataclass(frozen=True)
class BadRecord:
    kind: str
    value: bytes | None
    key: bytes | None


def _dump(data: Any) -> bytes:
    return json.dumps(data, allow_nan=True).encode()


def _with_amount_token(base: dict[str, Any], token: str) -> bytes:
    marker = 987654.321
    return _dump({**base, "amount": marker}).replace(str(marker).encode(), token.encode())


def corpus(good: list[Transaction], size: int = 1200, seed: int = 5) -> list[BadRecord]:
    """At least `size` malformed records built from valid transactions (every family represented)."""
    rng = random.Random(seed)
    out: list[BadRecord] = []
    i = 0
    while len(out) < size:
        txn = good[i % len(good)]
        i += 1
        base = json.loads(txn.model_dump_json())
        key = txn.user_id.encode()
        raw = txn.model_dump_json().encode()
        family = i % 12
        if family == 0:
            out.append(BadRecord("broken json", raw[: rng.randrange(1, len(raw) - 1)], key))
        elif family == 1:
            name = rng.choice(sorted(WRONG_TYPES))
            changed = {**base, name: rng.choice(WRONG_TYPES[name])}
            if name == "latitude":
                changed["longitude"] = 1.0
            out.append(BadRecord(f"wrong type {name}", _dump(changed), key))
        elif family == 2:
            missing = rng.choice(REQUIRED)
            out.append(BadRecord(f"missing {missing}", _dump({k: v for k, v in base.items() if k != missing}), key))
        elif family == 3:
            out.append(BadRecord("bad amount", _with_amount_token(base, rng.choice(BAD_AMOUNT_TOKENS)), key))
        elif family == 4:
            out.append(BadRecord("bad timestamp", _dump({**base, "timestamp": rng.choice(BAD_TIMESTAMPS)}), key))
        elif family == 5:
            cut = rng.randrange(1, len(raw))
            out.append(BadRecord("invalid utf-8", raw[:cut] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"])
                                 + raw[cut:], key))
        elif family == 6:
            value = rng.choice([b"", b"   ", None, b"null", b"[]", b"42", b'"text"', b"{}", b"\x00\x01"])
            out.append(BadRecord("empty or non-object", value, rng.choice([key, b"", None])))
        elif family == 7:
            out.append(BadRecord("unknown field", _dump({**base, f"extra_{i}": 1}), key))
        elif family == 8:
            out.append(BadRecord("empty key and bad value", raw[: len(raw) // 2], rng.choice([b"", None])))
        elif family == 9:
            change = rng.choice([{"latitude": 10.0, "longitude": None}, {"currency": "euro"}, {"country": "FRA"},
                                 {"channel": "pigeon"}, {"transaction_id": ""}, {"latitude": 91.0, "longitude": 0.0}])
            out.append(BadRecord("bad field value", _dump({**base, **change}), key))
        elif family == 10 and i % 48 == 10:  # a few megabyte payloads (they are slow to move around)
            kind = rng.choice(["huge field", "huge garbage", "huge array"])
            if kind == "huge field":
                value = _dump({**base, "merchant_id": "m" * MEGABYTE})
            elif kind == "huge garbage":
                value = bytes(rng.getrandbits(8) for _ in range(1000)) * (MEGABYTE // 1000)
            else:
                value = b"[" + b"1," * (MEGABYTE // 2) + b"1]"
            out.append(BadRecord(kind, value, key))
        elif family == 11:
            out.append(BadRecord("duplicated json key amount", raw[:-1] + b',"amount":-1}', key))
    return out
