"""The one error hierarchy of fraudstream.

Every error a user can cause or meet carries a message that says what is wrong and what to do.
The command line turns any FraudstreamError into one line on stderr and a non-zero exit.
"""

from __future__ import annotations


class FraudstreamError(Exception):
    """Base of every error fraudstream raises on purpose."""

    exit_code = 2


class ConfigError(FraudstreamError):
    """A setting is missing, malformed or unknown."""


class InputError(FraudstreamError):
    """A file or argument given by the user cannot be used (missing, empty, wrong columns)."""


class InfraError(FraudstreamError):
    """The embedded or external Kafka/Redis cannot be started, reached or configured."""


class RecordError(FraudstreamError):
    """One record on the wire cannot be decoded or violates its contract. Routed to the DLQ."""

    def __init__(self, message: str, *, error_class: str | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class or type(self).__name__


class LateEventError(RecordError):
    """An event arrived later than the grace period allows; it is routed, never folded in."""


class StateStoreError(FraudstreamError):
    """The state store (Redis) is unreachable or failed; the batch is retried, nothing is committed."""


class ModelError(FraudstreamError):
    """A model cannot be trained, loaded or used."""


class ArtifactIntegrityError(ModelError):
    """A registry file's sha256 does not match its manifest; it is refused, never unpickled."""


class PromotionRefused(ModelError):
    """A challenger is worse than the champion on the same holdout."""
