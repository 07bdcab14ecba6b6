"""The Redis FeatureStore: one pipelined read per batch, one Lua compare-and-set write per partition."""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.cluster import RedisCluster

from features.config import FeatureConfig
from fraudstream.errors import StateStoreError
from state.engine import Commit, KeyValueFeatureStore
from state.output_seal import OutputSeal

# KEYS: offset key, outputs hash, then state keys. ARGV: expected offset ('' = none), new offset, ttl, prune-below
# offset, prune mode ('scan': this writer does not know the hash's fields, so it reads them and gets back those it
# kept; 'list': it does, and names the ones to drop), number of fields to drop, those fields, number of outputs,
# then (offset, bytes) pairs, then one value per state key. Whole lists go to one call each (unpack, in chunks
# below Lua's stack limit), so a batch costs one HDEL and one HSET, not one call per event.
_COMMIT_LUA = """
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then
  return redis.error_reply('FENCED offset is ' .. (current == '' and 'unset' or current) .. ', expected ' ..
    (ARGV[1] == '' and 'unset' or ARGV[1]))
end
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
local prune = tonumber(ARGV[4])
local kept = {}
if ARGV[5] == 'scan' then
  local drop = {}
  for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
    if tonumber(field) < prune then drop[#drop + 1] = field else kept[#kept + 1] = field end
  end
  for c = 1, #drop, 4000 do redis.call('HDEL', KEYS[2], unpack(drop, c, math.min(c + 3999, #drop))) end
end
local i = 7
local upto = i + tonumber(ARGV[6]) - 1
for c = i, upto, 4000 do redis.call('HDEL', KEYS[2], unpack(ARGV, c, math.min(c + 3999, upto))) end
i = upto + 1
local n = tonumber(ARGV[i])
i = i + 1
local last = i + 2 * n - 1
for c = i, last, 4000 do redis.call('HSET', KEYS[2], unpack(ARGV, c, math.min(c + 3999, last))) end
i = last + 1
if n > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
for k = 3, #KEYS do
  redis.call('SET', KEYS[k], ARGV[i], 'EX', ttl)
  i = i + 1
end
if ARGV[5] == 'scan' then return kept end
return 'OK'
"""


@dataclass
class _KnownFields:
    """The fields (offsets) of one outputs hash as this writer left it at offset `at` (ascending)."""

    at: int
    fields: deque[int]


def _ttl_s(ms: int) -> float:
    """A PTTL reply in seconds: -1 no expiry (inf), -2 gone (0: never served from the cache)."""
    return math.inf if ms == -1 else max(int(ms), 0) / 1000.0


def _tag(key: str) -> str:
    start = key.index("{")
    return key[start : key.index("}", start) + 1]


class RedisFeatureStore(KeyValueFeatureStore):
    """FeatureStore in Redis. Redis errors surface as StateStoreError: the caller retries, commits nothing."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        cfg: FeatureConfig,
        *,
        partitions: int = 6,
        label_partitions: int | None = None,
        user_key: Callable[[str], str] | None = None,
        output_seal: OutputSeal | None = None,
    ) -> None:
        """output_seal: encrypt the cached outputs (set with user_key, so no raw user id reaches Redis)."""
        super().__init__(namespace, cfg, partitions=partitions, label_partitions=label_partitions, user_key=user_key)
        self.client = client
        self.output_seal = output_seal
        #: A standalone Redis takes one MGET over every slot; a cluster needs one per hash tag (one slot per call).
        self._one_mget = not isinstance(client, RedisCluster)
        #: each outputs hash's fields as our last commit left them; a commit that does not start from that offset
        #: (first commit, another writer in between, a failure) has the script read the fields instead
        self._known_fields: dict[str, _KnownFields] = {}

    def _load(
        self, keys: list[str], hash_fields: dict[str, list[int]]
    ) -> tuple[list[bytes | None], dict[str, list[bytes | None]]]:
        if self._one_mget and keys and not any(hash_fields.values()):  # the scoring API's peek: one command
            try:
                return list(self.client.execute_command("MGET", *keys)), {k: [] for k in hash_fields}  # type: ignore[no-untyped-call]
            except redis.RedisError as exc:
                message = f"Redis read failed ({type(exc).__name__}: {exc}); retry when Redis is back"
                raise StateStoreError(message) from exc
        values, _, fields = self._load_with_ttls(keys, [], hash_fields)
        return values, fields

    def _load_with_ttls(
        self, keys: list[str], ttl_keys: list[str], hash_fields: dict[str, list[int]]
    ) -> tuple[list[bytes | None], list[float], dict[str, list[bytes | None]]]:
        """One pipeline: one MGET (one per slot on a cluster), a PTTL per `ttl_keys` key, an HMGET per hash."""
        by_tag: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            by_tag["" if self._one_mget else _tag(key)].append(key)
        hashes = [(k, f) for k, f in hash_fields.items() if f]
        try:
            pipe = self.client.pipeline(transaction=False)
            for group in by_tag.values():
                # one slot per call; execute_command, because redis-py refuses pipe.mget on a RedisCluster though one
                # slot is safe (its pipeline routes the command to the slot of its keys)
                pipe.execute_command("MGET", *group)  # type: ignore[no-untyped-call]
            for key in ttl_keys:
                pipe.pttl(key)
            for key, wanted in hashes:
                pipe.hmget(key, [str(f) for f in wanted])
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise StateStoreError(f"Redis read failed ({type(exc).__name__}: {exc}); retry when Redis is back") from exc
        found: dict[str, bytes | None] = {}
        for group, reply in zip(by_tag.values(), replies, strict=False):
            found.update(zip(group, reply, strict=True))
        at = len(by_tag)
        ttls = [_ttl_s(ms) for ms in replies[at : at + len(ttl_keys)]]
        at += len(ttl_keys)
        fields: dict[str, list[bytes | None]] = {k: [] for k in hash_fields}
        seal = self.output_seal
        for (key, wanted), reply in zip(hashes, replies[at:], strict=True):
            if seal is None:
                fields[key] = list(reply)
            else:
                fields[key] = [None if v is None else seal.open(key, f, v) for f, v in zip(wanted, reply, strict=True)]
        return [found[k] for k in keys], ttls, fields

    def _commit(self, commits: list[Commit]) -> None:
        plans = [self._prune_plan(c) for c in commits]
        try:
            pipe = self.client.pipeline(transaction=False)
            for c, (mode, drop) in zip(commits, plans, strict=True):
                w = c.write
                outputs = c.outputs if self.output_seal is None else self.output_seal.seal_all(c.outputs_key, c.outputs)
                keys = [c.offset_key, c.outputs_key, *w.values]
                args: list[bytes | str | int] = [
                    "" if w.expected_offset is None else str(w.expected_offset),
                    str(w.new_offset),
                    self.ttl_s,
                    str(w.prune_below),
                    mode,
                    len(drop),
                    *map(str, drop),
                    len(outputs),
                ]
                for offset, out in outputs.items():
                    args += [str(offset), out]
                args += list(w.values.values())
                # routed by its keys' slot (redis-py refuses pipe.eval on a RedisCluster pipeline)
                pipe.execute_command("EVAL", _COMMIT_LUA, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
            replies = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            self._known_fields.clear()
            raise StateStoreError(f"Redis write failed ({type(exc).__name__}: {exc}); retry the batch") from exc
        fenced = [f"{c.offset_key} ({r})" for c, r in zip(commits, replies, strict=True) if isinstance(r, Exception)]
        if fenced:
            self._known_fields.clear()
            raise StateStoreError(
                f"state write refused for {', '.join(fenced)}: another worker owns the partition or Redis "
                "failed; this writer is fenced and must rejoin the consumer group"
            )
        for c, (mode, _), reply in zip(commits, plans, replies, strict=True):
            self._remember_fields(c, reply if mode == "scan" else None)

    def _prune_plan(self, c: Commit) -> tuple[str, list[int]]:
        """('list', the fields below prune_below) when we know the hash as it is at the expected offset, else
        ('scan', []): the script reads the fields itself."""
        known = self._known_fields.get(c.outputs_key)
        if known is None or c.write.expected_offset != known.at:
            return "scan", []
        drop, fields, prune = [], known.fields, c.write.prune_below
        while fields and fields[0] < prune:
            drop.append(fields.popleft())
        return "list", drop

    def _remember_fields(self, c: Commit, kept: list[bytes] | None) -> None:
        """After a successful commit: the hash holds what was kept (or read and kept) plus this commit's outputs."""
        if kept is not None:
            fields = deque(sorted({int(f) for f in kept} | set(c.outputs)))
        else:
            fields = self._known_fields[c.outputs_key].fields
            fields.extend(sorted(c.outputs))
            if c.outputs and len(fields) > len(c.outputs) and fields[-len(c.outputs) - 1] >= min(c.outputs):
                fields = deque(sorted(set(fields)))  # a replayed offset written again: keep one, in order
        self._known_fields[c.outputs_key] = _KnownFields(c.write.new_offset, fields)

    def _ttls(self, keys: list[str]) -> list[float]:
        try:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.pttl(key)
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise StateStoreError(f"Redis read failed ({type(exc).__name__}: {exc}); retry when Redis is back") from exc
        return [_ttl_s(ms) for ms in replies]

    def _sizes(self, pattern: str, limit: int) -> list[int]:
        try:
            keys = []
            for key in self.client.scan_iter(match=pattern, count=1000):
                keys.append(key)
                if len(keys) >= limit:
                    break
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.memory_usage(key, samples=0)
            return [int(v) for v in pipe.execute() if v is not None]
        except redis.RedisError as exc:
            raise StateStoreError(f"Redis memory report failed ({type(exc).__name__}: {exc})") from exc
