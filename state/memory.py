"""The in-memory FeatureStore for unit tests: the same logic and key layout as Redis, over dicts."""

from __future__ import annotations

import math
from collections.abc import Callable
from fnmatch import fnmatchcase

from features.config import FeatureConfig
from fraudstream.errors import StateStoreError
from state.engine import Commit, KeyValueFeatureStore


class InMemoryFeatureStore(KeyValueFeatureStore):
    def __init__(
        self,
        cfg: FeatureConfig | None = None,
        namespace: str = "fs",
        *,
        partitions: int = 6,
        label_partitions: int | None = None,
        user_key: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(
            namespace,
            cfg or FeatureConfig(),
            partitions=partitions,
            label_partitions=label_partitions,
            user_key=user_key,
        )
        self.strings: dict[str, bytes] = {}
        self.hashes: dict[str, dict[int, bytes]] = {}

    def _load(
        self, keys: list[str], hash_fields: dict[str, list[int]]
    ) -> tuple[list[bytes | None], dict[str, list[bytes | None]]]:
        values = [self.strings.get(k) for k in keys]
        fields = {k: [self.hashes.get(k, {}).get(f) for f in wanted] for k, wanted in hash_fields.items()}
        return values, fields

    def _commit(self, commits: list[Commit]) -> None:
        fenced = []
        for c in commits:
            current = self.strings.get(c.offset_key)
            expected = None if c.write.expected_offset is None else str(c.write.expected_offset).encode()
            if current != expected:
                fenced.append(c.offset_key)
                continue
            self.strings[c.offset_key] = str(c.write.new_offset).encode()
            table = self.hashes.setdefault(c.outputs_key, {})
            for offset in [o for o in table if o < c.write.prune_below]:
                del table[offset]
            table.update(c.outputs)
            self.strings.update(c.write.values)
        if fenced:
            raise StateStoreError(
                f"offsets moved under this worker for {', '.join(fenced)}: another worker owns the partition; "
                "this writer is fenced and must rejoin the consumer group"
            )

    def _ttls(self, keys: list[str]) -> list[float]:
        return [math.inf if k in self.strings else 0.0 for k in keys]  # nothing expires here

    def _sizes(self, pattern: str, limit: int) -> list[int]:
        return [len(k) + len(v) for k, v in self.strings.items() if fnmatchcase(k, pattern)][:limit]
