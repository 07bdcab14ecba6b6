"""The one error hierarchy of fraudstream.

Every error a user can cause or meet carries a message that says what is wrong and what to do, and the exit
code of its class (sysexits-like, so a script or an orchestrator can tell "fix the command" from "try again
later" from "fix the data"). The command line turns any FraudstreamError into one line on stderr and that code;
README's command-line section has the table.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the `fraudstream` command line."""

    OK = 0
    #: Aborted at a prompt.
    ABORTED = 1
    #: `fraudstream train`: the new version was published but not made current (worse than the champion).
    NOT_PROMOTED = 3
    #: A usage or configuration mistake: fix the command line or the FRAUD_* settings.
    USAGE = 2
    #: The input data, a model or a registry artifact cannot be used as it is (EX_DATAERR).
    DATA = 65
    #: Kafka, Redis or the model registry cannot be reached or cannot give what is needed (EX_UNAVAILABLE).
    UNAVAILABLE = 69
    #: A bug: an exception fraudstream did not expect (EX_SOFTWARE); rerun with --debug for the traceback.
    SOFTWARE = 70
    #: Interrupted by Ctrl-C (128 + SIGINT).
    INTERRUPTED = 130


class FraudstreamError(Exception):
    """Base of every error fraudstream raises on purpose."""

    exit_code: int = ExitCode.USAGE


class ConfigError(FraudstreamError):
    """A setting is missing, malformed or unknown."""


class InputError(FraudstreamError):
    """A file or argument given by the user cannot be used (missing file, bad option value, conflicting options)."""


class DataError(InputError):
    """The contents of an input file cannot be used (empty, unreadable, columns missing, every row rejected)."""

    exit_code = ExitCode.DATA


class InfraError(FraudstreamError):
    """The embedded or external Kafka/Redis cannot be started, reached or configured."""

    exit_code = ExitCode.UNAVAILABLE


class RecordError(FraudstreamError):
    """One record on the wire cannot be decoded or violates its contract. Routed to the DLQ."""

    exit_code = ExitCode.DATA

    def __init__(self, message: str, *, error_class: str | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class or type(self).__name__


class LateEventError(RecordError):
    """An event arrived later than the grace period allows; it is routed, never folded in."""


class StateStoreError(FraudstreamError):
    """The state store (Redis) is unreachable or failed; the batch is retried, nothing is committed."""

    exit_code = ExitCode.UNAVAILABLE


class ModelError(FraudstreamError):
    """A model cannot be trained, loaded or used."""

    exit_code = ExitCode.DATA


class ModelUnavailable(ModelError):
    """The registry has no such version, or no current one yet: train or publish one, or wait for the trainer."""

    exit_code = ExitCode.UNAVAILABLE


class ArtifactIntegrityError(ModelError):
    """A registry file's sha256 does not match its manifest; it is refused, never unpickled."""


class PromotionRefused(ModelError):
    """A challenger is worse than the champion on the same holdout."""


class InternalError(FraudstreamError):
    """An exception fraudstream did not expect (a bug); only the command line's error boundary raises it."""

    exit_code = ExitCode.SOFTWARE
