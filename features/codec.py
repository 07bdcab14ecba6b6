"""Compact binary helpers: unsigned varints and fixed-width ints, for the state encodings."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from fraudstream.errors import StateStoreError

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")


def put_uvarint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError(f"uvarint cannot encode a negative value ({value})")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def put_u32(out: bytearray, value: int) -> None:
    out += _U32.pack(value)


def put_i32(out: bytearray, value: int) -> None:
    out += _I32.pack(value)


class Reader:
    """Sequential reader over an encoded record; any overrun is a corrupt record."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def uvarint(self) -> int:
        data, pos, shift, result = self.data, self.pos, 0, 0
        try:
            while True:
                byte = data[pos]
                pos += 1
                result |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
        except IndexError:
            raise StateStoreError("state record is truncated; delete the key or restore a backup") from None
        self.pos = pos
        return result

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise StateStoreError("state record is truncated; delete the key or restore a backup")
        self.pos += 1
        return self.data[self.pos - 1]

    def u32(self) -> int:
        return int(self._fixed(_U32))

    def i32(self) -> int:
        return int(self._fixed(_I32))

    def _fixed(self, fmt: struct.Struct) -> int:
        end = self.pos + fmt.size
        if end > len(self.data):
            raise StateStoreError("state record is truncated; delete the key or restore a backup")
        (value,) = fmt.unpack_from(self.data, self.pos)
        self.pos = end
        return int(value)

    def done(self) -> None:
        if self.pos != len(self.data):
            raise StateStoreError("state record has trailing bytes; delete the key or restore a backup")


def put_packed(out: bytearray, code: str, values: Sequence[int]) -> None:
    """Fixed-width little-endian array (struct code B, H or I) in one C call."""
    out += struct.pack(f"<{len(values)}{code}", *values)


def read_packed(reader: Reader, code: str, count: int) -> tuple[int, ...]:
    size = struct.calcsize(code) * count
    if reader.pos + size > len(reader.data):
        raise StateStoreError("state record is truncated; delete the key or restore a backup")
    values = struct.unpack_from(f"<{count}{code}", reader.data, reader.pos)
    reader.pos += size
    return values
