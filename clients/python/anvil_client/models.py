"""Typed views of the server's answers (dataclasses, parsed from the wire dicts). The Gymnasium-shaped
calls (`env.reset()`, `env.step()`) return plain dicts; `env.reset_result()` and `env.step_result()`
return these, with the wire dict kept in `raw` for anything newer than this client."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class Observation:
    """The messages to show the model next: the prompt after reset, the feedback after a step."""

    messages: List[ChatMessage]

    @classmethod
    def from_wire(cls, o: Dict[str, Any]) -> "Observation":
        return cls([ChatMessage(m["role"], m["content"]) for m in o["messages"]])


@dataclass(frozen=True)
class ResetInfo:
    task: str
    task_version: int
    taskset: str
    split: str
    seed: int
    max_turns: int
    episode: str
    group: str
    index: int

    @classmethod
    def from_wire(cls, e: Dict[str, Any]) -> "ResetInfo":
        i = e["info"]
        return cls(
            i["task"],
            i["taskVersion"],
            i["taskset"],
            i["split"],
            i["seed"],
            i["maxTurns"],
            e["episode"],
            e["group"],
            e["index"],
        )


@dataclass(frozen=True)
class EvalSummary:
    outcome: str
    correct: bool
    speedup: Optional[float]
    profile_share: Optional[float]
    message: str
    cached: bool
    flags: List[Dict[str, Any]]

    @classmethod
    def from_wire(cls, e: Optional[Dict[str, Any]]) -> Optional["EvalSummary"]:
        if e is None:
            return None
        return cls(
            e["outcome"],
            bool(e["correct"]),
            e.get("speedup"),
            e.get("profileShare"),
            e.get("message", ""),
            bool(e.get("cached")),
            list(e.get("flags") or []),
        )


@dataclass(frozen=True)
class StepInfo:
    turn: int
    #: True for an infrastructure failure or a cancellation: the turn was not counted and earns nothing.
    mask: bool
    outcome: str
    task: str
    task_version: int
    components: Dict[str, float]
    eval: Optional[EvalSummary]
    reason: Optional[str]

    @classmethod
    def from_wire(cls, answer: Dict[str, Any]) -> "StepInfo":
        i = answer["info"]
        return cls(
            i["turn"],
            bool(i["mask"]),
            i["outcome"],
            i["task"],
            i["taskVersion"],
            dict(i.get("components") or {}),
            EvalSummary.from_wire(i.get("eval")),
            answer.get("reason"),
        )


@dataclass(frozen=True)
class ResetResult:
    observation: Observation
    info: ResetInfo
    raw: Dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class StepResult:
    observation: Observation
    reward: float
    terminated: bool
    truncated: bool
    info: StepInfo
    raw: Dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, answer: Dict[str, Any]) -> "StepResult":
        return cls(
            Observation.from_wire(answer["observation"]),
            float(answer["reward"]),
            bool(answer["terminated"]),
            bool(answer["truncated"]),
            StepInfo.from_wire(answer),
            answer,
        )

    def as_tuple(self):
        """Gymnasium's shape, with plain dicts: (observation, reward, terminated, truncated, info)."""
        info = dict(self.raw.get("info", {}))
        if "reason" in self.raw:
            info["reason"] = self.raw["reason"]
        return self.raw["observation"], self.reward, self.terminated, self.truncated, info


@dataclass(frozen=True)
class BusyRetry:
    """Retries of requests answered `busy` (the server is at a limit; nothing was started): up to
    `attempts` more tries, each after the server's retryAfterMs hint or an exponential delay from
    `base_s` (whichever is longer, at most `max_s`), times a random factor in [1 - jitter, 1 + jitter]
    so that many clients do not come back at once. `BusyRetry(attempts=0)` turns it off."""

    attempts: int = 8
    base_s: float = 0.25
    max_s: float = 30.0
    jitter: float = 0.5

    def delay(self, attempt: int, retry_after_ms: Optional[int], rng: random.Random = random._inst) -> float:  # type: ignore[attr-defined]
        base = min(self.max_s, max(self.base_s * 2**attempt, (retry_after_ms or 0) / 1000))
        return base * (1 + self.jitter * (2 * rng.random() - 1))
