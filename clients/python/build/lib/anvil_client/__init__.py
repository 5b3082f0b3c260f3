"""Python client of Anvil, a reinforcement-learning environment for kernel writing."""
from .client import AnvilClient, Env, StepResult
from .errors import (AnvilError, BusyError, ConnectionLostError, EpisodeDoneError, InternalError,
                     InvalidMessageError, StepInFlightError, TooLargeError, UnauthorizedError,
                     UnknownEpisodeError, UnknownOpError, UnknownStepError, UnknownTaskError,
                     UnknownTasksetError)
from .sync import SyncClient, SyncEnv

__all__ = [
    "AnvilClient", "Env", "StepResult", "SyncClient", "SyncEnv", "AnvilError", "BusyError",
    "ConnectionLostError", "EpisodeDoneError", "InternalError", "InvalidMessageError", "StepInFlightError",
    "TooLargeError", "UnauthorizedError", "UnknownEpisodeError", "UnknownOpError", "UnknownStepError",
    "UnknownTaskError", "UnknownTasksetError",
]
