"""The errors moa_lab raises on purpose.

Every message is one line that says what is wrong and how to fix it; the CLI prints it as is.
"""

from __future__ import annotations

__all__ = ["CacheError", "CallError", "ConfigError", "MoaLabError", "RunError", "TraceError"]


class MoaLabError(Exception):
    """Base class: anything moa_lab reports to the user as a one-line error."""


class ConfigError(MoaLabError, ValueError):
    """A configuration, preset or CLI option is invalid."""


class TraceError(MoaLabError, ValueError):
    """A trace file is missing, malformed, or from another tool or schema version."""


class CacheError(MoaLabError):
    """The call cache cannot be opened or holds a value that is not ours."""


class CallError(MoaLabError):
    """One model call failed for good (after the retries it was allowed)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        attempts: int = 1,
        retried_errors: tuple[str, ...] = (),
        retry_waits: tuple[float, ...] = (),
        sent_at: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.attempts = attempts
        #: the errors of the attempts before the last, and the seconds waited after each
        self.retried_errors = retried_errors
        self.retry_waits = retry_waits
        #: when the first attempt left (Unix seconds), if one did
        self.sent_at = sent_at


class RunError(MoaLabError):
    """A run could not finish (for example every proposer of a layer failed)."""

    def __init__(self, message: str, trace: object | None = None):
        super().__init__(message)
        self.trace = trace
