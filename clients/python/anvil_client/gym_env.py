"""Anvil as a synchronous Gymnasium environment, registered as "anvil/Kernel-v0":

    import anvil_client, gymnasium
    env = gymnasium.make("anvil/Kernel-v0", url="ws://127.0.0.1:8765/v1/ws", taskset="builtin-c", task="vector_add")
    obs, info = env.reset(seed=1)            # obs: the prompt as text; info["messages"]: as chat messages
    obs, reward, terminated, truncated, info = env.step(reply)   # obs: the feedback

Observations and actions are text (`gymnasium.spaces.Text`). One environment is one episode at a
time over its own connection. Anvil ends episodes itself (solved, or its turn limit), so no
TimeLimit wrapper is needed. A masked turn (an infrastructure failure, not the model's doing)
raises MaskedTurnError by default, since a Gymnasium step has no mask: the turn was not counted
and the same episode may step again. With `on_masked="info"` it returns reward 0.0 with
info["mask"] True instead, for loops that read the mask.

A step's info holds what the seed and the action decide; the evaluation's measurements (each
stage's time, whether the result came from the cache) are left out, so that the same seed and
action give the same info, as Gymnasium's determinism check requires. They are in the turn log.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import gymnasium as gym
from gymnasium import spaces

from .errors import AnvilError
from .sync import SyncClient

ENV_ID = "anvil/Kernel-v0"
# Printable text: every character from space up to the end of the Basic Multilingual Plane, tab and newline.
CHARSET = "\t\n" + "".join(chr(c) for c in range(0x20, 0xD800)) + "".join(chr(c) for c in range(0xE000, 0x10000))
# A sampled action of this length stays within the server's default frame limit (1 MiB) at 3 bytes a character.
MAX_ACTION_CHARS = 256 * 1024
MAX_OBSERVATION_CHARS = 1024 * 1024


class MaskedTurnError(AnvilError):
    """The evaluation failed for reasons unrelated to the reply; nothing was counted."""

    code = "masked"


def _without_measurements(info: Dict[str, Any]) -> Dict[str, Any]:
    ev = info.get("eval")
    if not isinstance(ev, dict):
        return info
    ev = {k: v for k, v in ev.items() if k != "cached"}
    if isinstance(ev.get("stages"), list):
        ev["stages"] = [
            {k: v for k, v in st.items() if k != "ms"} if isinstance(st, dict) else st for st in ev["stages"]
        ]
    return {**info, "eval": ev}


def _text(messages: List[Dict[str, str]]) -> str:
    return "\n\n".join(m["content"] for m in messages)


class AnvilKernelEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(
        self,
        url: str,
        *,
        taskset: Optional[str] = None,
        task: Optional[str] = None,
        split: Optional[str] = None,
        max_turns: Optional[int] = None,
        reward: Optional[Dict[str, Any]] = None,
        group_id: Optional[str] = None,
        token: Optional[str] = None,
        on_masked: str = "raise",
    ) -> None:
        if on_masked not in ("raise", "info"):
            raise ValueError(f'on_masked is "raise" or "info", not {on_masked!r}')
        self.observation_space = spaces.Text(max_length=MAX_OBSERVATION_CHARS, min_length=0, charset=CHARSET)
        self.action_space = spaces.Text(max_length=MAX_ACTION_CHARS, min_length=0, charset=CHARSET)
        self.on_masked = on_masked
        self._client = SyncClient(url, token)
        self._env = self._client.env(
            task=task, taskset=taskset, split=split, max_turns=max_turns, reward=reward, group_id=group_id
        )

    def reset(
        self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None
    ) -> Tuple[str, Dict[str, Any]]:
        """`seed` picks the task (when none is fixed) and the test inputs; without one, a seed is drawn
        from the environment's generator, so `reset(seed=s)` then plain resets are reproducible.
        `options` takes any reset option of the client's env() (task, taskset, split, max_turns, reward, group_id)."""
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        obs, info = self._env.reset(seed=seed, options=options)
        return _text(obs["messages"]), {
            **info,
            "messages": obs["messages"],
            "episode": self._env.episode,
            "group": self._env.env.group,
        }

    def step(self, action: str) -> Tuple[str, float, bool, bool, Dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._env.step(action)
        if info.get("mask") and self.on_masked == "raise":
            raise MaskedTurnError(obs["messages"][0]["content"], retryable=True)
        info = _without_measurements(info)
        return (
            _text(obs["messages"]),
            float(reward),
            bool(terminated),
            bool(truncated),
            {**info, "messages": obs["messages"]},
        )

    def close(self) -> None:
        if self._client is not None:
            try:
                self._env.close()
            finally:
                self._client.close()
                self._client = None  # type: ignore[assignment]


def register() -> None:
    """Registers "anvil/Kernel-v0" (done on `import anvil_client` when Gymnasium is installed)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="anvil_client.gym_env:AnvilKernelEnv", disable_env_checker=False)
