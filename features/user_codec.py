"""Compiled decode/encode of the user state bytes (the format of `features.state.UserState`, byte for byte).

A decoded user lives in a header array (the int64 slots named below) and a few arrays while a batch is folded;
`UserState.to_bytes` and `UserState.from_bytes` stay the reference these kernels are tested against.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from features.jit import kernel
from features.state import MAX_CATEGORIES, MAX_DEVICES, MAX_MERCHANTS, USER_FORMAT

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

LAST_TS, LAST_CENTS, N_TOTAL = 0, 1, 2
HAS_PREV, PREV_LAT, PREV_LON, PREV_TS = 3, 4, 5, 6
HAS_HOME, HOME_LAT, HOME_LON, HOME_N = 7, 8, 9, 10
N_LOG, N_RECENT, N_MERCHANTS, N_CATEGORIES, N_DEVICES = 11, 12, 13, 14, 15
HEADER_SLOTS = 16

#: decode results
OK, TRUNCATED, TRAILING, BAD_FORMAT, TOO_LONG = 0, 1, 2, 3, 4
#: bytes an encoded user may take beyond its entries (fixed fields and the three id lists)
FIXED_BOUND = 64 + 4 * (MAX_MERCHANTS + MAX_CATEGORIES + MAX_DEVICES)
#: most bytes one log entry plus one recent-merchant entry may take
ENTRY_BOUND = 7 + 14
_GAP_LIMIT = 1 << 24


@kernel
def read_uvarint(buf: U8, pos: int, end: int) -> tuple[int, int]:
    """(value, next position); next position -1 when truncated."""
    result = 0
    shift = 0
    while True:
        if pos >= end or shift > 63:
            return 0, -1
        byte = int(buf[pos])
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


@kernel
def read_fixed(buf: U8, pos: int, width: int) -> int:
    value = 0
    for k in range(width):
        value |= int(buf[pos + k]) << (8 * k)
    return value


@kernel
def _i32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


@kernel
def decode_user(
    buf: U8, start: int, end: int, hdr: I64, log_ts: I64, log_cents: I64, rec_ts: I64, rec_m: I64,
    merchants: I64, categories: I64, devices: I64,
) -> int:  # fmt: skip
    """Decode buf[start:end] into the arrays (capacity end - start at least); an empty range is a new user."""
    hdr[:] = 0
    if start == end:
        return OK
    pos = start
    if buf[pos] != USER_FORMAT:
        return BAD_FORMAT
    pos += 1
    if pos + 4 > end:
        return TRUNCATED
    last = read_fixed(buf, pos, 4)
    pos += 4
    hdr[LAST_TS] = last
    hdr[LAST_CENTS], pos = read_uvarint(buf, pos, end)
    if pos < 0:
        return TRUNCATED
    hdr[N_TOTAL], pos = read_uvarint(buf, pos, end)
    if pos < 0 or pos >= end:
        return TRUNCATED
    flags = buf[pos]
    pos += 1
    if flags & 1:
        if pos + 8 > end:
            return TRUNCATED
        hdr[HAS_PREV] = 1
        hdr[PREV_LAT] = _i32(read_fixed(buf, pos, 4))
        hdr[PREV_LON] = _i32(read_fixed(buf, pos + 4, 4))
        age, pos = read_uvarint(buf, pos + 8, end)
        if pos < 0:
            return TRUNCATED
        hdr[PREV_TS] = last - age
    if flags & 2:
        if pos + 9 > end:
            return TRUNCATED
        hdr[HAS_HOME] = 1
        hdr[HOME_LAT] = _i32(read_fixed(buf, pos, 4))
        hdr[HOME_LON] = _i32(read_fixed(buf, pos + 4, 4))
        hdr[HOME_N] = buf[pos + 8]
        pos += 9
    n, pos = read_uvarint(buf, pos, end)
    if pos < 0:
        return TRUNCATED
    if n:
        if pos >= end:
            return TRUNCATED
        width = buf[pos]
        pos += 1
        cents_bytes = 4 if width == 2 else 3 if width == 1 else 2
        if n > len(log_ts) or pos + n * (3 + cents_bytes) > end:
            return TRUNCATED
        t = last
        for k in range(n):
            gap = read_fixed(buf, pos + 2 * k, 2) | (int(buf[pos + 2 * n + k]) << 16)
            t = last - gap if k == 0 else t + gap
            log_ts[k] = t
        pos += 3 * n
        if width == 2:
            for k in range(n):
                log_cents[k] = read_fixed(buf, pos + 4 * k, 4)
            pos += 4 * n
        else:
            for k in range(n):
                log_cents[k] = read_fixed(buf, pos + 2 * k, 2)
            pos += 2 * n
            if width == 1:
                for k in range(n):
                    log_cents[k] |= int(buf[pos + k]) << 16
                pos += n
    hdr[N_LOG] = n
    n, pos = read_uvarint(buf, pos, end)
    if pos < 0 or n > len(rec_ts):
        return TRUNCATED
    for k in range(n):
        age, pos = read_uvarint(buf, pos, end)
        if pos < 0 or pos + 4 > end:
            return TRUNCATED
        rec_ts[k] = last - age
        rec_m[k] = read_fixed(buf, pos, 4)
        pos += 4
    hdr[N_RECENT] = n
    for slot, ids in ((N_MERCHANTS, merchants), (N_CATEGORIES, categories), (N_DEVICES, devices)):
        if pos >= end:
            return TRUNCATED
        n = int(buf[pos])
        pos += 1
        if n > len(ids) or pos + 4 * n > end:
            return TRUNCATED
        for k in range(n):
            ids[k] = read_fixed(buf, pos + 4 * k, 4)
        pos += 4 * n
        hdr[slot] = n
    return OK if pos == end else TRAILING


@kernel
def put_uvarint_at(out: U8, pos: int, value: int) -> int:
    while value >= 0x80:
        out[pos] = (value & 0x7F) | 0x80
        pos += 1
        value >>= 7
    out[pos] = value
    return pos + 1


@kernel
def put_fixed_at(out: U8, pos: int, value: int, width: int) -> int:
    for k in range(width):
        out[pos + k] = (value >> (8 * k)) & 0xFF
    return pos + width


@kernel
def encode_user(
    hdr: I64, log_ts: I64, log_cents: I64, rec_ts: I64, rec_m: I64, merchants: I64, categories: I64,
    devices: I64, out: U8, pos: int,
) -> int:  # fmt: skip
    """Write the user at out[pos:]; returns the end position, or -1 when the log spans 2**24 s or more."""
    last = hdr[LAST_TS]
    out[pos] = USER_FORMAT
    pos = put_fixed_at(out, pos + 1, last, 4)
    pos = put_uvarint_at(out, pos, hdr[LAST_CENTS])
    pos = put_uvarint_at(out, pos, hdr[N_TOTAL])
    out[pos] = hdr[HAS_PREV] | (hdr[HAS_HOME] << 1)
    pos += 1
    if hdr[HAS_PREV]:
        pos = put_fixed_at(out, pos, hdr[PREV_LAT], 4)
        pos = put_fixed_at(out, pos, hdr[PREV_LON], 4)
        pos = put_uvarint_at(out, pos, last - hdr[PREV_TS])
    if hdr[HAS_HOME]:
        pos = put_fixed_at(out, pos, hdr[HOME_LAT], 4)
        pos = put_fixed_at(out, pos, hdr[HOME_LON], 4)
        out[pos] = hdr[HOME_N]
        pos += 1
    n = hdr[N_LOG]
    pos = put_uvarint_at(out, pos, n)
    if n:
        top = 0
        for k in range(n):
            top = max(top, log_cents[k])
            gap = last - log_ts[0] if k == 0 else log_ts[k] - log_ts[k - 1]
            if gap >= _GAP_LIMIT:
                return -1
        width = 0 if top < 1 << 16 else 1 if top < 1 << 24 else 2
        out[pos] = width
        pos += 1
        for k in range(n):
            gap = last - log_ts[0] if k == 0 else log_ts[k] - log_ts[k - 1]
            put_fixed_at(out, pos + 2 * k, gap & 0xFFFF, 2)
            out[pos + 2 * n + k] = gap >> 16
        pos += 3 * n
        if width == 2:
            for k in range(n):
                put_fixed_at(out, pos + 4 * k, log_cents[k], 4)
            pos += 4 * n
        else:
            for k in range(n):
                put_fixed_at(out, pos + 2 * k, log_cents[k] & 0xFFFF, 2)
            pos += 2 * n
            if width == 1:
                for k in range(n):
                    out[pos + k] = log_cents[k] >> 16
                pos += n
    n = hdr[N_RECENT]
    pos = put_uvarint_at(out, pos, n)
    for k in range(n):
        pos = put_uvarint_at(out, pos, last - rec_ts[k])
        pos = put_fixed_at(out, pos, rec_m[k], 4)
    for slot, ids in ((N_MERCHANTS, merchants), (N_CATEGORIES, categories), (N_DEVICES, devices)):
        n = hdr[slot]
        out[pos] = n
        pos += 1
        for k in range(n):
            pos = put_fixed_at(out, pos, ids[k], 4)
    return pos
