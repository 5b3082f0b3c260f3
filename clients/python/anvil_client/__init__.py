"""Python client of Anvil, a reinforcement-learning environment for kernel writing."""

from .client import AnvilClient, Env
from .models import BusyRetry, ChatMessage, EvalSummary, Observation, ResetInfo, ResetResult, StepInfo, StepResult
from .errors import (
    AnvilError,
    BusyError,
    ConnectionLostError,
    EpisodeDoneError,
    HelloTimeoutError,
    InternalError,
    InvalidMessageError,
    RateLimitedError,
    ReplayExpiredError,
    StepInFlightError,
    StorageFullError,
    TooLargeError,
    UnauthorizedError,
    UnknownEpisodeError,
    UnknownOpError,
    UnknownStepError,
    UnknownTaskError,
    UnknownTasksetError,
)
from .sync import SyncClient, SyncEnv

__all__ = [
    "AnvilClient",
    "Env",
    "StepResult",
    "ResetResult",
    "StepInfo",
    "ResetInfo",
    "EvalSummary",
    "Observation",
    "ChatMessage",
    "BusyRetry",
    "SyncClient",
    "SyncEnv",
    "AnvilError",
    "BusyError",
    "ConnectionLostError",
    "EpisodeDoneError",
    "HelloTimeoutError",
    "InternalError",
    "InvalidMessageError",
    "RateLimitedError",
    "ReplayExpiredError",
    "StepInFlightError",
    "StorageFullError",
    "TooLargeError",
    "UnauthorizedError",
    "UnknownEpisodeError",
    "UnknownOpError",
    "UnknownStepError",
    "UnknownTaskError",
    "UnknownTasksetError",
]

try:  # Gymnasium is optional: with it, gymnasium.make("anvil/Kernel-v0", url=...) works after `import anvil_client`.
    import gymnasium as _gymnasium  # noqa: F401
except ImportError:
    pass
else:
    from .gym_env import register as _register_gymnasium

    _register_gymnasium()
