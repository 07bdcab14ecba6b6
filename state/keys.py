"""Every Redis key name, the state schema version and the TTL, in one place.

Cluster-ready: every key one batch writes carries the hash tag of its Kafka partition, `{t<p>}` for the
transactions topic and `{l<p>}` for the labels topic, so one atomic write stays in one slot.
"""

from __future__ import annotations

from features.config import DAY_S, FeatureConfig

STATE_SCHEMA_VERSION = 1
WIDEST_WINDOW_S = 30 * DAY_S
TTL_MARGIN_S = 2 * DAY_S


def ttl_seconds(cfg: FeatureConfig) -> int:
    """Widest window + label delay + grace + margin: a key idle that long holds nothing any feature reads."""
    return WIDEST_WINDOW_S + cfg.delay_s + cfg.grace_s + TTL_MARGIN_S


class Keys:
    """Key names under one namespace (a backtest uses its own namespace, never the live one)."""

    def __init__(self, namespace: str) -> None:
        self.prefix = f"{namespace}:v{STATE_SCHEMA_VERSION}"

    def txn_tag(self, partition: int) -> str:
        return f"{self.prefix}:{{t{partition}}}"

    def label_tag(self, partition: int) -> str:
        return f"{self.prefix}:{{l{partition}}}"

    def user(self, partition: int, user_key: str) -> str:
        return f"{self.txn_tag(partition)}:u:{user_key}"

    def merchant_tx(self, partition: int, merchant_id: str) -> str:
        return f"{self.txn_tag(partition)}:m:{merchant_id}"

    def seen(self, partition: int, transaction_hash: str) -> str:
        """A transaction id applied on this partition (its hash: no raw id in a key name); the value says where
        (`<partition>@<offset>`). Lives as long as the state it changed (the state TTL), so a re-sent transaction
        is caught for at least the widest feature window."""
        return f"{self.txn_tag(partition)}:x:{transaction_hash}"

    def txn_offset(self, partition: int) -> str:
        return f"{self.txn_tag(partition)}:off"

    def outputs(self, partition: int) -> str:
        """Hash: Kafka offset (decimal) -> the output bytes produced when that record was first applied."""
        return f"{self.txn_tag(partition)}:out"

    def merchant_fraud(self, partition: int, merchant_id: str) -> str:
        return f"{self.label_tag(partition)}:mf:{merchant_id}"

    def label_offset(self, partition: int) -> str:
        return f"{self.label_tag(partition)}:off"

    def user_pattern(self) -> str:
        return f"{self.prefix}:{{t*}}:u:*"

    def merchant_pattern(self) -> str:
        return f"{self.prefix}:{{t*}}:m:*"
