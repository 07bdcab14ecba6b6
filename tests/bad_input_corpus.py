"""A deterministic corpus of malformed transaction records (value bytes, key, headers), each of which must be
dead-lettered: broken JSON, wrong types, missing fields, NaN/Infinity/negative/huge amounts, years 1 and 9999, megabyte
payloads, invalid UTF-8, empty and missing keys, non-object JSON, unknown fields; and the strict contract's classes
(issue 13): duplicate JSON keys (plain, escaped, spaced), lax coercion (booleans and strings as numbers, epoch and lax
timestamps, nanoseconds), control/format/bidi/zero-width characters and surrounding spaces in identifiers and text,
a Kafka key that is not the user_id, bad `schema-version` / `record-type` headers, and values that are not exactly
one object (two objects, an array of one, trailing garbage) so that the per-batch decoder cannot be fooled."""

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


#: Characters no identifier or text field may hold (controls, DEL, NEL, bidi, zero-width, BOM, line separators).
BAD_CHARACTERS = ("\x00", "\x1b", "\t", "\n", "\x7f", "\x85", "\u202e", "\u202a", "\u2066", "\u200b",
                  "\u200d", "\u2060", "\ufeff", "\u2028", "\u00ad", "\ue000")
#: Numbers pydantic's lax mode would coerce.
LAX_NUMBERS: tuple[Any, ...] = (True, False, "12.5", " 12.5 ", "1_000", "1e3", "0", "  7")
#: Timestamps in forms the strict contract refuses (epoch numbers, digit strings, lowercase, nanoseconds, ...).
LAX_TIMESTAMPS: tuple[Any, ...] = (
    1704067200, 1704067200000, 1704067200.5, "1704067200", "1704067200000", "2024-01-01t00:00:00Z",
    "2024-01-01T00:00:00z", "2024-01-01t00:00:00z", "2024-01-01 00:00:00Z", "2024-01-01T00:00:00.1234567Z",
    "2024-01-01T00:00:00.123456789Z", "2024-01-01T00:00Z", "2024-01-01T00:00:00+0100", "2024-01-01T00:00:00,5Z",
    "2024-01-01T00:00:00Z ", " 2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z\n", "20240101T000000Z",
    "2024-001T00:00:00Z", "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00+01", True,
)
BAD_HEADERS: tuple[tuple[tuple[str, bytes | None], ...], ...] = (
    (("schema-version", b"999"),), (("schema-version", b"\xff\xfe"),), (("schema-version", None),),
    (("schema-version", b""),), (("schema-version", b"1 "),),
    (("schema-version", b"2"), ("record-type", b"transaction")),
    (("schema-version", b"1"), ("record-type", b"label")), (("record-type", b"score"),), (("record-type", None),),
    (("record-type", b"\xc3\x28"),), (("schema-version", b"1"), ("schema-version", b"999")),
)


@dataclass(frozen=True)
class BadRecord:
    kind: str
    value: bytes | None
    key: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


def _dump(data: Any) -> bytes:
    return json.dumps(data, allow_nan=True).encode()


def _with_amount_token(base: dict[str, Any], token: str) -> bytes:
    marker = 987654.321
    return _dump({**base, "amount": marker}).replace(str(marker).encode(), token.encode())


def _dump_exact(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8", errors="surrogatepass")


def _strict_families(family: int, i: int, txn: Transaction, base: dict[str, Any], raw: bytes,
                     rng: random.Random) -> BadRecord:
    key = txn.user_id.encode()
    if family == 12:  # duplicate keys, both values valid alone: plain, spaced, escaped, first or last
        name = rng.choice(["amount", "user_id", "transaction_id", "merchant_id", "timestamp", "currency"])
        other = {"amount": 9999999, "user_id": txn.user_id + "x", "transaction_id": txn.transaction_id + "x",
                 "merchant_id": "M-other", "timestamp": "2024-01-02T00:00:00Z", "currency": "USD"}[name]
        written = rng.choice([f'"{name}"', f'"{name}" ', "".join(f"\\u{ord(c):04x}" for c in name),
                              '"' + name.replace("_", "\\u005f").replace("a", "\\u0061") + '"'])
        if not written.startswith('"'):
            written = f'"{written}"'
        extra = f"{written}:{json.dumps(other)}".encode()
        value = (b"{" + extra + b"," + raw[1:]) if rng.random() < 0.5 else (raw[:-1] + b"," + extra + b"}")
        return BadRecord(f"duplicate key {name}", value, key)
    if family == 13:  # lax numbers
        name = rng.choice(["amount", "amount", "latitude", "longitude"])
        changed = {**base, "latitude": 1.0, "longitude": 1.0, name: rng.choice(LAX_NUMBERS)}
        return BadRecord(f"lax number {name}", _dump_exact(changed), key)
    if family == 14:  # lax timestamps
        return BadRecord("lax timestamp", _dump_exact({**base, "timestamp": rng.choice(LAX_TIMESTAMPS)}), key)
    if family in (15, 16, 17):  # bad characters or surrounding whitespace, in identifiers or text
        name = rng.choice(["transaction_id", "user_id", "merchant_id", "device_id", "merchant_category"])
        current = str(base.get(name) or "x1")
        if family == 16:
            bad = rng.choice([" " + current, current + " ", "\t" + current, current + "\n", "\u00a0" + current,
                              current + "\u3000", "  "])
            kind = f"surrounding space {name}"
        else:
            char = BAD_CHARACTERS[(i // 24) % len(BAD_CHARACTERS)]
            bad = rng.choice([current[:1] + char + current[1:], char + current, current + char, char])
            kind = f"bad character {name} U+{ord(char):04X}"
        changed = {**base, name: bad}
        return BadRecord(kind, _dump_exact(changed), bad.encode("utf-8") if name == "user_id" else key)
    if family == 18:  # the Kafka key is not the user_id
        wrong = rng.choice([None, b"", key + b" ", b" " + key, key.lower() if key.lower() != key else key + b"0",
                            b"\xff" + key, key[:-1], b"someone-else", key + b"\x00"])
        return BadRecord("key mismatch", raw, wrong)
    if family == 19:  # headers
        return BadRecord("bad header", raw, key, BAD_HEADERS[(i // 24) % len(BAD_HEADERS)])
    if family == 20:  # a label on the transactions topic (record-type label, or a label body)
        label = {"transaction_id": txn.transaction_id, "user_id": txn.user_id, "is_fraud": True, "source": "analyst",
                 "labelled_at": "2024-01-02T00:00:00Z"}
        if (i // 24) % 2:
            return BadRecord("label on transactions", _dump_exact(label), key, (("record-type", b"label"),))
        return BadRecord("label body on transactions", _dump_exact(label), key)
    if family == 21:  # not exactly one object: the per-batch decoder must not be fooled
        value = rng.choice([raw + b"," + raw, b"[" + raw + b"]", raw + b"}", raw + b" x", raw + b",", raw[:-1] + b",{",
                            b"," + raw, raw[:-1] + b',"x":"},{"}'])
        return BadRecord("not one object", value, key)
    if family == 22:  # number tokens JSON does not allow, or out of range, in a valid-looking record
        token = rng.choice(["012.5", "+12.5", ".5", "0x10", "1e999", "10000001", "-0.5", "12.", "1_000"])
        return BadRecord("bad number token", _with_amount_token(base, token), key)
    # 23: label-typed fields that lax mode accepts on a transaction, and a null for a required field
    name = rng.choice(REQUIRED)
    return BadRecord(f"null {name}", _dump_exact({**base, name: None}), key)


def corpus(good: list[Transaction], size: int = 2400, seed: int = 5) -> list[BadRecord]:
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
        family = i % 24
        if family >= 12:
            out.append(_strict_families(family, i, txn, base, raw, rng))
        elif family == 0:
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
            change: dict[str, Any] = rng.choice([
                {"latitude": 10.0, "longitude": None}, {"currency": "euro"}, {"country": "FRA"},
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
