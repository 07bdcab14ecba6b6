"""Helpers for the streamer tests: a tiny real model in a real registry, simulated transactions, raw records."""

from __future__ import annotations

from fraudstream.contracts import SCHEMA_VERSION, SCHEMA_VERSION_HEADER, Transaction

# The tiny model lives in the package (models/tiny.py) so the benchmarks use it without importing tests.
from models.tiny import TINY_FEATURES, publish_tiny_model

__all__ = ["TINY_FEATURES", "publish_tiny_model", "simulated_transactions", "txn_headers"]


def simulated_transactions(customers: int = 40, merchants: int = 30, days: int = 3, seed: int = 1) -> list[Transaction]:
    from bankbus.frames import frame_to_transactions
    from bankbus.simulator import SimulationConfig, simulate_frame

    frame = simulate_frame(SimulationConfig(customers=customers, merchants=merchants, days=days, seed=seed))
    return list(frame_to_transactions(frame))


def txn_headers() -> list[tuple[str, bytes | None]]:
    return [(SCHEMA_VERSION_HEADER, SCHEMA_VERSION.encode()), ("record-type", b"transaction")]
