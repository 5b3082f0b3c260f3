"""Typed exceptions: one class per protocol error code, all under AnvilError."""

from __future__ import annotations

from typing import Optional


class AnvilError(Exception):
    """An error answer from the server. `code` is the protocol's error code."""

    code = "error"

    def __init__(
        self, message: str, *, code: Optional[str] = None, retryable: bool = False, retry_after_ms: Optional[int] = None
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.retryable = retryable
        self.retry_after_ms = retry_after_ms


class InvalidMessageError(AnvilError):
    code = "invalid_message"


class UnknownOpError(AnvilError):
    code = "unknown_op"


class UnknownEpisodeError(AnvilError):
    code = "unknown_episode"


class UnknownTaskError(AnvilError):
    code = "unknown_task"


class UnknownTasksetError(AnvilError):
    code = "unknown_taskset"


class UnknownStepError(AnvilError):
    code = "unknown_step"


class EpisodeDoneError(AnvilError):
    code = "episode_done"


class StepInFlightError(AnvilError):
    code = "step_in_flight"


class BusyError(AnvilError):
    """The server is at a limit; wait `retry_after_ms` and try again."""

    code = "busy"


class UnauthorizedError(AnvilError):
    code = "unauthorized"


class RateLimitedError(AnvilError):
    """Too many failed hellos from this address; wait `retry_after_ms`. The server then closes the connection."""

    code = "rate_limited"


class ReplayExpiredError(AnvilError):
    """The step's answer was given earlier and is no longer kept; it is not evaluated again."""

    code = "replay_expired"


class StorageFullError(AnvilError):
    """The server's turn log is full: the step was not counted; send it again after `retry_after_ms`."""

    code = "storage_full"


class HelloTimeoutError(AnvilError):
    """No successful hello within the server's deadline; the server then closes the connection."""

    code = "timeout"


class TooLargeError(AnvilError):
    code = "too_large"


class InternalError(AnvilError):
    code = "internal"


class ConnectionLostError(AnvilError):
    """The connection dropped while a request that cannot be safely repeated
    (reset, close) was in flight: it may or may not have taken effect."""

    code = "connection_lost"


ERRORS = {
    cls.code: cls
    for cls in (
        InvalidMessageError,
        UnknownOpError,
        UnknownEpisodeError,
        UnknownTaskError,
        UnknownTasksetError,
        UnknownStepError,
        EpisodeDoneError,
        StepInFlightError,
        BusyError,
        UnauthorizedError,
        RateLimitedError,
        ReplayExpiredError,
        StorageFullError,
        HelloTimeoutError,
        TooLargeError,
        InternalError,
    )
}


def from_wire(error: dict) -> AnvilError:
    cls = ERRORS.get(error.get("code", ""), AnvilError)
    return cls(
        error.get("message", ""),
        code=error.get("code"),
        retryable=bool(error.get("retryable")),
        retry_after_ms=error.get("retryAfterMs"),
    )
