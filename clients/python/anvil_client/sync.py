"""A thin synchronous wrapper for scripts: the asyncio client runs on an event
loop in a background thread, and each call waits for its answer."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Dict, List, Optional, Tuple

from .client import AnvilClient, Env, Observation
from .models import ResetResult, StepResult


class SyncClient:
    def __init__(self, url: str, token: Optional[str] = None, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="anvil-client", daemon=True)
        self._thread.start()
        self.client: AnvilClient = self._run(AnvilClient.connect(url, token, **kwargs))

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def tasks(self, **kwargs: Any) -> List[Dict[str, Any]]:
        return self._run(self.client.tasks(**kwargs))

    def env(self, **kwargs: Any) -> "SyncEnv":
        return SyncEnv(self, self.client.env(**kwargs))

    def reset_group(self, size: int, **kwargs: Any) -> List["SyncEnv"]:
        return [SyncEnv(self, e) for e in self._run(self.client.reset_group(size, **kwargs))]

    def close(self) -> None:
        self._run(self.client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> "SyncClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SyncEnv:
    def __init__(self, owner: SyncClient, env: Env) -> None:
        self._owner = owner
        self.env = env

    @property
    def episode(self) -> Optional[str]:
        return self.env.episode

    @property
    def observation(self) -> Optional[Observation]:
        return self.env.observation

    def reset(
        self, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None
    ) -> Tuple[Observation, Dict[str, Any]]:
        return self._owner._run(self.env.reset(seed=seed, options=options))

    def step(self, action: Any, **kwargs: Any) -> Tuple[Observation, float, bool, bool, Dict[str, Any]]:
        return self._owner._run(self.env.step(action, **kwargs))

    def reset_result(self, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None) -> ResetResult:
        return self._owner._run(self.env.reset_result(seed=seed, options=options))

    def step_result(self, action: Any, **kwargs: Any) -> StepResult:
        return self._owner._run(self.env.step_result(action, **kwargs))

    def close(self) -> None:
        self._owner._run(self.env.close())
