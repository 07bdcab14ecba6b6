"""With FRAUD_STREAMER__USER_ID_HMAC_KEY set, no raw user id is anywhere in Redis: a real `fraudstream stream`
against the real redis-server, then SCAN every key of its namespace and dump every value. The control run without
the key finds them (in key names and in the cached outputs), so the search can fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from fraudstream.settings import Settings
from state.output_seal import OutputSeal
from tests.fault_support import start_kafka_worker, traffic
from tests.integration.test_streamer_crash import _finish
from tests.streamer_kafka_support import isolated_settings, publish
from tests.streamer_support import publish_tiny_model, txn_headers

pytestmark = [pytest.mark.integration]

KEY = "hmac-key-for-the-test-0123456789"


def _everything(client: redis.Redis, namespace: str) -> list[tuple[bytes, bytes]]:
    """(key, value) for every key of the namespace; hashes field by field, other types as DUMP."""
    found = []
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        kind = client.type(key)
        if kind == b"string":
            found.append((key, client.get(key) or b""))
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                found.append((key, field + b"=" + value))
        else:
            found.append((key, client.dump(key) or b""))
    return found


def _run(stack: Settings, name: str, registry: Path, items: list[object], **streamer: object) -> Settings:
    settings = isolated_settings(stack, name, registry, **streamer)
    publish(settings, items)  # type: ignore[arg-type]
    _finish(start_kafka_worker(settings, "w", idle_exit_s=5.0), timeout_s=300)
    return settings


def test_no_raw_user_id_in_any_redis_key_or_value_with_the_hmac_key(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    txns = traffic(customers=60, seed=51)[:1500]
    users = sorted({t.user_id for t in txns})
    bad = [(t.user_id, t.model_dump_json().replace('"amount":', '"amount": "x", "amount2":'), txn_headers())
           for t in txns[:20]]  # dead letters carry the original bytes, user id included
    items: list[object] = [*txns, *bad]
    publish_tiny_model(tmp_path)
    client = redis.Redis.from_url(stack_settings.redis_url)
    try:
        hashed = _run(stack_settings, f"{unique_name}-h", tmp_path, items, user_id_hmac_key=KEY)
        dump = _everything(client, hashed.redis.namespace)
        assert len(dump) > len(users), "the worker wrote nothing to Redis"
        leaks = [(k, u) for k, v in dump for u in users if u.encode() in k or u.encode() in v]
        assert not leaks, f"{len(leaks)} raw user ids in Redis, e.g. {leaks[0]}"

        # the sealed outputs still open to the bytes a replay re-emits, raw ids inside
        seal = OutputSeal(KEY.encode())
        cached = [(k, v.split(b"=", 1)) for k, v in dump if k.endswith(b":out")]
        assert cached, "no cached outputs found"
        opened = [seal.open(k.decode(), int(f), v) for k, (f, v) in cached]
        assert any(u.encode() in o for o in opened for u in users), "the sealed outputs do not open to the outputs"

        control = _run(stack_settings, f"{unique_name}-c", tmp_path, items)
        plain = _everything(client, control.redis.namespace)
        assert any(users[0].encode() in k for k, _ in plain), "control: user ids expected in key names"
        assert any(k.endswith(b":out") and users[0].encode() in v for k, v in plain) or any(
            k.endswith(b":out") and u.encode() in v for k, v in plain for u in users
        ), "control: raw user ids expected in the cached outputs"
    finally:
        client.close()
