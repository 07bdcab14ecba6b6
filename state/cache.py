"""A per-process cache of decoded state records, valid exactly while each partition's offset is unchanged.

Every write to a partition's keys happens in one atomic script together with a bump of that partition's
offset, so a record cached at offset O is still what the backend holds whenever the offset still reads O.
Entries also carry a lower bound of the backend key's expiry (TTL), so an expired key is never served.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

#: Entries kept at most (all partitions together); past it a partition's entries are dropped, never made stale.
DEFAULT_MAX_ENTRIES = 400_000
#: Seconds taken off every expiry bound: covers clock rate drift between this process and the backend.
EXPIRY_MARGIN_S = 60.0
NEVER = math.inf


class _Partition:
    __slots__ = ("entries", "version")

    def __init__(self, version: int | None) -> None:
        self.version = version
        self.entries: dict[str, tuple[object, float]] = {}


class StateCache:
    """Decoded records by key, grouped by partition tag, each group valid at one stored offset (its version)."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._parts: dict[str, _Partition] = {}
        self._size = 0
        self.hits = 0
        self.misses = 0

    def versions(self, tags: Iterable[str]) -> dict[str, int | None] | None:
        """The offset each tag's records were cached at, or None unless every tag has been synced."""
        parts = self._parts
        out: dict[str, int | None] = {}
        for tag in tags:
            part = parts.get(tag)
            if part is None:
                return None
            out[tag] = part.version
        return out

    def sync(self, tag: str, version: int | None) -> None:
        """The backend holds offset `version` for `tag` now: drop the group if it was cached at another."""
        part = self._parts.get(tag)
        if part is None or part.version != version:
            self._drop(tag)
            self._parts[tag] = _Partition(version)

    def lookup(self, tag: str, keys: Iterable[str], now: float) -> tuple[dict[str, object], list[str]]:
        """(cached records by key, keys to read from the backend). Call `sync` for the tag first."""
        entries = self._parts[tag].entries
        found: dict[str, object] = {}
        missing: list[str] = []
        for key in keys:
            hit = entries.get(key)
            if hit is not None and hit[1] > now:
                found[key] = hit[0]
            else:
                missing.append(key)
        self.hits += len(found)
        self.misses += len(missing)
        return found, missing

    def store(self, tag: str, records: dict[str, tuple[object, float]]) -> None:
        """Remember records read at the group's current version, each with its expiry bound."""
        part = self._parts[tag]
        before = len(part.entries)
        part.entries.update(records)
        self._size += len(part.entries) - before
        if self._size > self.max_entries:
            self._drop(tag)
            self._parts[tag] = _Partition(part.version)

    def committed(self, tag: str, expected: int | None, new: int, records: dict[str, object], expires: float) -> None:
        """An atomic write moved `tag` from offset `expected` to `new`, writing `records` (expiring after `expires`).

        Other cached records of the group stay valid: the compare-and-set proved nobody wrote in between.
        """
        part = self._parts.get(tag)
        if part is None or part.version != expected:
            self._drop(tag)
            part = self._parts[tag] = _Partition(new)
        part.version = new
        self.store(tag, {key: (value, expires) for key, value in records.items()})

    def clear(self) -> None:
        self._parts.clear()
        self._size = 0

    def _drop(self, tag: str) -> None:
        part = self._parts.pop(tag, None)
        if part is not None:
            self._size -= len(part.entries)
