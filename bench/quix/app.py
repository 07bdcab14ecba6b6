"""The quix-streams reference pipeline: what a user would write with quix-streams' documented idioms.

Runs only inside its own virtualenv (bench/quix/requirements.txt, built by bench/quix_run.py): it must not import
fraudstream, whose pins (confluent-kafka, pydantic) quixstreams 3.28.1 cannot share. Per record:

1. validate the JSON value with a pydantic model of its own (the fields and rules of fraudstream.contracts.Transaction);
   a bad record goes to the dead-letter topic with its reason;
2. per-user state in quix's RocksDB State (`sdf.apply(..., stateful=True)`, changelog-backed): a small ring of
   (event time, amount) over the last 30 days, from which counts and mean amounts over 1h/1d/7d/30d are read.
   quix's `sliding_window(...).agg(...).current()` replaces each record by one window's aggregate, so four windows
   plus the record's own fields would take four branches joined back through topics (`join_asof` joins topics);
   the State API's per-key value is the documented way to keep one pass per record;
3. a feature vector, scored by the registry version's MLP from its exported weights (NumPy);
4. a compact score JSON to the output topic (dynamic topic selection sends errors to the DLQ instead).

Exactly-once: `processing_guarantee="exactly-once"` (outputs, changelog and offsets in one Kafka transaction per
checkpoint, every `commit_interval` seconds).

    python bench/quix/app.py --broker 127.0.0.1:9092 --input T --output S --dlq D --group G \
        --state-dir DIR --model-dir REGISTRY/versions/VERSION
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import sys
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from quixstreams import Application, State

# ---------------------------------------------------------------------------------------------- the contract
# The same fields and rules as fraudstream.contracts.Transaction (copied: this process cannot import fraudstream).
_PRINTABLE = r"\p{L}\p{M}\p{N}\p{P}\p{S}"
IDENTIFIER_PATTERN = rf"^[{_PRINTABLE}](?:[{_PRINTABLE} ]*[{_PRINTABLE}])?$"
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})$"
)
MAX_AMOUNT = 10_000_000.0
MIN_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_EVENT_TIME = datetime(2100, 1, 1, tzinfo=UTC)

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN)]
ShortText = Annotated[str, Field(min_length=1, max_length=64, pattern=IDENTIFIER_PATTERN)]
Text = Annotated[str, Field(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN)]
Number = Annotated[float, Strict()]  # a JSON number, never a bool or a string


def _strict_timestamp(value: Any) -> Any:
    import re

    if isinstance(value, datetime) or (isinstance(value, str) and re.fullmatch(TIMESTAMP_PATTERN, value)):
        return value
    raise ValueError(f"timestamp must be an RFC 3339 string with a timezone, not {str(value)[:40]!r}")


Timestamp = Annotated[AwareDatetime, BeforeValidator(_strict_timestamp)]


class Channel(StrEnum):
    card_present = "card_present"
    online = "online"
    atm = "atm"
    transfer = "transfer"
    contactless = "contactless"
    other = "other"


CHANNELS = tuple(c.value for c in Channel)


class Transaction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    transaction_id: Identifier
    user_id: Identifier
    timestamp: Timestamp
    amount: Number = Field(ge=0.0, le=MAX_AMOUNT)
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    merchant_id: Identifier
    merchant_category: ShortText | None = None
    channel: Channel | None = None
    latitude: Number | None = Field(default=None, ge=-90.0, le=90.0)
    longitude: Number | None = Field(default=None, ge=-180.0, le=180.0)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    device_id: Text | None = None

    @field_validator("amount")
    @classmethod
    def _finite_amount(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("amount must be a finite number")
        return value

    @field_validator("timestamp")
    @classmethod
    def _timestamp_in_range(cls, value: datetime) -> datetime:
        value = value.astimezone(UTC)
        if not MIN_EVENT_TIME <= value < MAX_EVENT_TIME:
            raise ValueError(f"timestamp {value.isoformat()} is outside [2000-01-01, 2100-01-01)")
        return value

    @model_validator(mode="after")
    def _coordinates_together(self) -> Transaction:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude must be given together or not at all")
        return self


def validate(raw: bytes) -> Transaction | dict[str, Any]:
    """The record as a Transaction, or a dead-letter dict with the reason (never raised: the app keeps going)."""
    try:
        return Transaction.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = f"{'.'.join(str(p) for p in first['loc']) or 'record'}: {first['msg']}"
        return {"error": reason, "original": raw.decode("utf-8", errors="replace")[:2000]}


# ---------------------------------------------------------------------------------------------- the features
WINDOWS = (("1h", 3600), ("1d", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400))
LONGEST_S = WINDOWS[-1][1]
DAY_S = 86_400
NIGHT_END_HOUR = 6
#: The feature names features() computes (a subset of fraudstream's vector, same definitions).
COMPUTED = [*(f"count_{w}" for w, _ in WINDOWS), *(f"mean_amount_{w}" for w, _ in WINDOWS), "amount", "log_amount",
            "hour_sin", "hour_cos", "is_weekend", "is_night", *(f"channel_{c}" for c in CHANNELS), "channel_missing",
            "category_missing", "device_missing", "country_missing", "first_transaction", "seconds_since_last"]
RING = "ring"  # state key: [[event times, sorted], [amounts]] of the user's last 30 days


def features(txn: Transaction | dict[str, Any], state: State) -> tuple[Transaction, dict[str, float]] | dict[str, Any]:
    """Fold the event into the user's ring (event time, late events in order) and read the windows from it."""
    if isinstance(txn, dict):
        return txn  # a dead letter passes through to the DLQ
    t = txn.timestamp.timestamp()
    times, amounts = state.get(RING, default=[[], []])
    first = not times
    previous_t = max(times) if times else None  # the latest event so far, before this one
    at = bisect.bisect_right(times, t)
    times.insert(at, t)
    amounts.insert(at, txn.amount)
    horizon = times[-1] - LONGEST_S
    cut = bisect.bisect_right(times, horizon)
    if cut:
        del times[:cut], amounts[:cut]
    state.set(RING, [times, amounts])
    end = bisect.bisect_right(times, t)  # windows (t - w, t], this event included
    out: dict[str, float] = {}
    for name, seconds in WINDOWS:
        start = bisect.bisect_right(times, t - seconds)
        n = end - start
        out[f"count_{name}"] = float(n)
        out[f"mean_amount_{name}"] = sum(amounts[start:end]) / n if n else 0.0
    second = int(t) % DAY_S
    out.update({
        "amount": txn.amount, "log_amount": math.log1p(txn.amount),
        "hour_sin": math.sin(2 * math.pi * second / DAY_S), "hour_cos": math.cos(2 * math.pi * second / DAY_S),
        "is_weekend": float((int(t) // DAY_S + 3) % 7 >= 5), "is_night": float(second // 3600 <= NIGHT_END_HOUR),
        "channel_missing": float(txn.channel is None), "category_missing": float(txn.merchant_category is None),
        "device_missing": float(txn.device_id is None), "country_missing": float(txn.country is None),
        "first_transaction": float(first),
        "seconds_since_last": float(LONGEST_S) if previous_t is None else max(t - previous_t, 0.0),
    })
    for channel in CHANNELS:
        out[f"channel_{channel}"] = float(txn.channel is not None and txn.channel.value == channel)
    return txn, out


# ---------------------------------------------------------------------------------------------- the model
class MLP:
    """The registry version's exported Dense weights (mlp_weights.npz) and preprocessing (preprocessor.json)."""

    def __init__(self, version_dir: Path) -> None:
        manifest = json.loads((version_dir / "manifest.json").read_text())
        if "mlp_weights.npz" not in manifest.get("files", {}):
            raise SystemExit(f"quix app: model version {version_dir.name} has no exported MLP weights")
        self.version = str(manifest["version"])
        self.output, self.activation = manifest["mlp_output"], manifest["mlp_activation"]
        self.threshold = float(manifest["thresholds"].get("mlp", 0.5))
        with np.load(version_dir / "mlp_weights.npz", allow_pickle=False) as npz:
            self.weights = [npz[f"arr_{i}"] for i in range(len(npz.files))]
        names: list[str] = list(manifest["feature_names"])  # the MLP's input columns, in order
        pre = json.loads((version_dir / "preprocessor.json").read_text())
        stat = {k: np.array([float(v) if v is not None else np.nan for v in pre[k]]) for k in pre}
        # The MLP's input is wider than what this app computes (it was trained on fraudstream's full feature
        # vector: distances, novelty, merchant risk...). The columns computed here are preprocessed as the model
        # was trained (impute, clip, standardise); every other column is 0 after standardisation, i.e. the
        # training mean. So scores differ from the streamer's; the cost per event (the point here) does not.
        self.names = names
        self.computed: list[tuple[int, str]] = []
        self.low, self.high = stat["clip_low"], stat["clip_high"]
        self.center, self.scale, self.means = stat["center"], stat["scale"], stat["means"]
        self.width = len(names)
        if self.weights[0].shape[0] != self.width:
            raise SystemExit(f"quix app: MLP input width {self.weights[0].shape[0]} != {self.width} feature names")

    def bind(self, computed_names: list[str]) -> None:
        self.computed = [(i, n) for i, n in enumerate(self.names) if n in computed_names]

    def score(self, values: dict[str, float]) -> float:
        z = np.zeros((1, self.width))
        for i, name in self.computed:
            v = values[name]
            v = self.means[i] if not math.isfinite(v) else v
            z[0, i] = (min(max(v, self.low[i]), self.high[i]) - self.center[i]) / self.scale[i]
        h = z
        layers = len(self.weights) // 2
        for k in range(layers):
            h = h @ self.weights[2 * k] + self.weights[2 * k + 1]
            if k < layers - 1:
                h = np.maximum(h, 0.0) if self.activation == "relu" else np.tanh(h)
        if self.output == "sigmoid":
            return float(1.0 / (1.0 + math.exp(-min(max(float(h[0, 0]), -500.0), 500.0))))
        e = np.exp(h[0] - h[0].max())
        return float(e[1] / e.sum())


def scorer(model: MLP) -> Any:
    def score(item: tuple[Transaction, dict[str, float]] | dict[str, Any]) -> dict[str, Any]:
        if isinstance(item, dict):
            return item
        txn, values = item
        p = model.score(values)
        return {"transaction_id": txn.transaction_id, "user_id": txn.user_id,
                "timestamp": txn.timestamp.isoformat(), "score": p, "alerted": p >= model.threshold,
                "model_version": model.version}

    return score


# ---------------------------------------------------------------------------------------------- the app
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--input", required=True, help="transactions topic")
    parser.add_argument("--output", required=True, help="scores topic")
    parser.add_argument("--dlq", required=True, help="dead-letter topic")
    parser.add_argument("--group", required=True, help="consumer group (also names the state and changelogs)")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--model-dir", required=True, type=Path, help="REGISTRY/versions/VERSION")
    parser.add_argument("--commit-interval", type=float, default=5.0, help="seconds (quix-streams' default)")
    parser.add_argument("--idle-exit", type=float, default=0.0, help="stop after this many idle seconds (0: never)")
    args = parser.parse_args(argv)

    model = MLP(args.model_dir)
    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(args.input, value_deserializer="bytes")  # pydantic parses and validates the JSON itself
    scores = app.topic(args.output, value_serializer="json")
    dead = app.topic(args.dlq, value_serializer="json")

    sdf = app.dataframe(source)
    sdf = sdf.apply(validate)
    sdf = sdf.apply(features, stateful=True)
    model.bind(COMPUTED)
    sdf = sdf.apply(scorer(model))
    # the output's Kafka timestamp is when it was scored (quix keeps the input's by default), as the streamer's are
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: time.time_ns() // 1_000_000)
    sdf.to_topic(lambda value, key, timestamp, headers: dead if "error" in value else scores)
    app.run(timeout=args.idle_exit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
