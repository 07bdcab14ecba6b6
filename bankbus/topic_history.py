"""History from a time range of the transactions topic, with its verdicts from the labels topic: what
`fraudstream train --from-topics` trains on and `fraudstream backtest --from-topic` replays.

Both are read with assign() by a consumer that never commits (bankbus.replay), so no group is touched. A transaction
is a fraud when its latest verdict says so; records that fail the contract are counted and left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from pydantic import ValidationError

from fraudstream.contracts import Label, Transaction
from fraudstream.errors import InputError
from fraudstream.settings import Settings

FAR_FUTURE = datetime(2099, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class History:
    """The canonical frame (Transaction columns + is_fraud), sorted by time, and where it came from."""

    frame: pd.DataFrame
    source: str
    duplicates_dropped: int = 0
    rejected_rows: int = 0


def load_topic_history(settings: Settings, start: datetime, end: datetime) -> History:
    from bankbus.replay import read_range

    topics = settings.topics
    tx_box, _ = read_range(settings, topics.transactions, start, end, to_topic="unused")
    rows, rejected = [], 0
    for value in tx_box.values:
        try:
            rows.append(Transaction.model_validate_json(value or b"").model_dump())
        except ValidationError:
            rejected += 1
    if not rows:
        raise InputError(f"topic {topics.transactions} has no valid transactions in [{start}, {end})")
    frame = pd.DataFrame(rows)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["channel"] = frame["channel"].map(lambda c: None if c is None else str(getattr(c, "value", c)))
    label_box, _ = read_range(settings, topics.labels, start, FAR_FUTURE, to_topic="unused")
    verdicts: dict[str, tuple[datetime, bool]] = {}
    for value in label_box.values:
        try:
            label = Label.model_validate_json(value or b"")
        except ValidationError:
            continue
        previous = verdicts.get(label.transaction_id)
        if previous is None or label.labelled_at >= previous[0]:
            verdicts[label.transaction_id] = (label.labelled_at, label.is_fraud)
    if not verdicts:
        raise InputError(f"topic {topics.labels} has no labels for [{start}, {end}); a backtest needs verdicts")
    frame["is_fraud"] = frame["transaction_id"].map(lambda t: int(verdicts.get(t, (None, False))[1])).astype("int8")
    before = len(frame)
    frame = frame.drop_duplicates(subset="transaction_id", keep="first")
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return History(
        frame, f"topic {topics.transactions} [{start:%Y-%m-%d} .. {end:%Y-%m-%d})", before - len(frame), rejected
    )
