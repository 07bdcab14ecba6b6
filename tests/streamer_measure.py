"""Measure the kafka engine: N simulated events published, one `fraudstream stream` subprocess, its summary line.

Run: .venv/bin/python -m tests.streamer_measure --customers 3500 --days 14   (about 100k events; test stack ports)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

from tests.conftest import make_test_settings
from tests.streamer_kafka_support import isolated_settings, publish
from tests.streamer_process import start_worker
from tests.streamer_support import publish_tiny_model, simulated_transactions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=3500)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--poll-batch-size", type=int, default=500)
    args = parser.parse_args()
    from fraudstream.infra.stack import up

    base = make_test_settings()
    up(base, create_topics=False)
    txns = simulated_transactions(customers=args.customers, merchants=1000, days=args.days, seed=11)
    registry = Path(tempfile.mkdtemp(prefix="registry-"))
    publish_tiny_model(registry)
    name = f"measure-{uuid.uuid4().hex[:8]}"
    settings = isolated_settings(base, name, registry, partitions=args.partitions, poll_batch_size=args.poll_batch_size)
    t0 = time.monotonic()
    publish(settings, list(txns))
    print(f"published {len(txns)} events in {time.monotonic() - t0:.1f} s", flush=True)
    worker = start_worker(settings, "measure", idle_exit_s=3.0)
    out, err = worker.communicate(timeout=1800)
    if worker.returncode != 0:
        raise SystemExit(f"worker failed ({worker.returncode}): {err[-2000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    print(json.dumps({"events_published": len(txns), "partitions": args.partitions, **summary}))


if __name__ == "__main__":
    main()
