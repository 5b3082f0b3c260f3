"""The asyncio client of protocol v1.

One connection carries any number of episodes: every request has an id, one
reader task routes answers to futures, so thousands of concurrent episodes
need no thread each. The connection reconnects by itself and resumes its
session; steps in flight are sent again under the same id, and the server
never evaluates one twice.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, Union

import msgpack
import websockets

from .errors import AnvilError, BusyError, ConnectionLostError, from_wire
from .models import BusyRetry, ResetInfo, ResetResult, StepResult
from .models import Observation as TypedObservation

Message = Dict[str, str]
Observation = Dict[str, List[Message]]
ProgressCallback = Callable[[Dict[str, Any]], Union[None, Awaitable[None]]]


@dataclass
class _Pending:
    message: Dict[str, Any]
    future: "asyncio.Future[Dict[str, Any]]"
    resend: bool
    on_progress: Optional[ProgressCallback] = None


class AnvilClient:
    """Connect with `await AnvilClient.connect(url, token=...)`."""

    def __init__(
        self,
        url: str,
        *,
        token: Optional[str] = None,
        encoding: str = "msgpack",
        reconnect: bool = True,
        reconnect_timeout: float = 60.0,
        client_name: str = "anvil-python",
        busy_retry: BusyRetry = BusyRetry(),
    ) -> None:
        if encoding not in ("msgpack", "json"):
            raise ValueError("encoding is 'msgpack' or 'json'")
        self.url = url
        self.token = token
        self.encoding = encoding
        self.reconnect = reconnect
        self.reconnect_timeout = reconnect_timeout
        self.client_name = client_name
        self.busy_retry = busy_retry
        #: How many requests were answered busy and retried (for tests and monitoring).
        self.busy_retries = 0
        self.session: str = ""
        self.resume_token: str = ""
        self.server_info: Dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._pending: Dict[int, _Pending] = {}
        self._ws: Any = None
        self._reader: Optional[asyncio.Task] = None
        self._connected = asyncio.Event()
        self._closing = False

    @classmethod
    async def connect(cls, url: str, token: Optional[str] = None, **kwargs: Any) -> "AnvilClient":
        client = cls(url, token=token, **kwargs)
        await client._open(resume=False)
        return client

    # -- transport -----------------------------------------------------------

    async def _open(self, resume: bool) -> None:
        self._ws = await websockets.connect(self.url, max_size=None, ping_interval=20, ping_timeout=60)
        self._reader = asyncio.ensure_future(self._read(self._ws))
        hello: Dict[str, Any] = {"op": "hello", "protocol": 1, "client": self.client_name}
        if self.token is not None:
            hello["token"] = self.token
        if resume and self.resume_token:
            hello["resume"] = self.resume_token
        answer = await self._request(hello, resend=False, wait_connected=False)
        if resume and not answer.get("resumed"):
            self._fail_pending(lambda p: p.message["op"] != "hello", "the session expired while disconnected")
        self.session = answer["session"]
        self.resume_token = answer["resumeToken"]
        self.server_info = answer
        self._connected.set()
        if resume:
            for p in list(self._pending.values()):
                if p.resend and p.message["op"] != "hello":
                    await self._send(p.message)

    def _encode(self, message: Dict[str, Any]) -> Union[bytes, str]:
        if self.encoding == "msgpack":
            return msgpack.packb(message, use_bin_type=True)
        return json.dumps(message)

    async def _send(self, message: Dict[str, Any]) -> None:
        try:
            await self._ws.send(self._encode(message))
        except websockets.exceptions.ConnectionClosed:
            pass  # sent again after the reconnection, when it may be

    async def _read(self, ws: Any) -> None:
        try:
            async for raw in ws:
                msg = msgpack.unpackb(raw, raw=False) if isinstance(raw, bytes) else json.loads(raw)
                pending = self._pending.get(msg.get("id"))
                if pending is None:
                    continue
                if msg.get("ok") is False:
                    self._pending.pop(msg["id"], None)
                    if not pending.future.done():
                        pending.future.set_exception(from_wire(msg["error"]))
                elif msg.get("event") == "progress":
                    if pending.on_progress is not None:
                        out = pending.on_progress(msg)
                        if asyncio.iscoroutine(out):
                            await out
                else:
                    self._pending.pop(msg["id"], None)
                    if not pending.future.done():
                        pending.future.set_result(msg)
        except websockets.exceptions.ConnectionClosed:
            pass
        if ws is self._ws and not self._closing:
            self._connected.clear()
            asyncio.ensure_future(self._on_lost())

    def _fail_pending(self, which: Callable[[_Pending], bool], why: str) -> None:
        for pid, p in list(self._pending.items()):
            if which(p):
                self._pending.pop(pid, None)
                if not p.future.done():
                    p.future.set_exception(ConnectionLostError(f"{p.message['op']}: {why}"))

    async def _on_lost(self) -> None:
        self._fail_pending(lambda p: not p.resend, "the connection was lost while it was in flight")
        if not self.reconnect:
            self._fail_pending(lambda p: True, "the connection was lost")
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reconnect_timeout
        delay = 0.1
        while not self._closing:
            try:
                await self._open(resume=True)
                return
            except (OSError, websockets.exceptions.WebSocketException, AnvilError):
                if loop.time() > deadline:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._fail_pending(lambda p: True, "could not reconnect")

    async def _request(
        self,
        body: Dict[str, Any],
        *,
        resend: bool,
        on_progress: Optional[ProgressCallback] = None,
        request_id: Optional[int] = None,
        wait_connected: bool = True,
    ) -> Dict[str, Any]:
        """One request; answered `busy`, it is sent again after a jittered delay (see BusyRetry):
        a busy request was not started, so sending it again is safe."""
        attempt = 0
        while True:
            try:
                return await self._request_once(
                    body, resend=resend, on_progress=on_progress, request_id=request_id, wait_connected=wait_connected
                )
            except BusyError as e:
                if attempt >= self.busy_retry.attempts:
                    raise
                self.busy_retries += 1
                await asyncio.sleep(self.busy_retry.delay(attempt, e.retry_after_ms))
                attempt += 1

    async def _request_once(
        self,
        body: Dict[str, Any],
        *,
        resend: bool,
        on_progress: Optional[ProgressCallback],
        request_id: Optional[int],
        wait_connected: bool,
    ) -> Dict[str, Any]:
        if wait_connected:
            await asyncio.wait_for(self._connected.wait(), self.reconnect_timeout)
        rid = request_id if request_id is not None else next(self._ids)
        message = {"id": rid, **{k: v for k, v in body.items() if v is not None}}
        future: "asyncio.Future[Dict[str, Any]]" = asyncio.get_running_loop().create_future()
        self._pending[rid] = _Pending(message, future, resend, on_progress)
        await self._send(message)
        return await future

    # -- operations ----------------------------------------------------------

    async def ping(self) -> float:
        return (await self._request({"op": "ping"}, resend=True))["time"]

    async def tasks(self, taskset: Optional[str] = None, split: Optional[str] = None) -> List[Dict[str, Any]]:
        return (await self._request({"op": "tasks", "taskset": taskset, "split": split}, resend=True))["tasks"]

    async def reset_group(
        self,
        size: int,
        *,
        task: Optional[str] = None,
        taskset: Optional[str] = None,
        split: Optional[str] = None,
        seed: Optional[int] = None,
        group_id: Optional[str] = None,
        max_turns: Optional[int] = None,
        reward: Optional[Dict[str, Any]] = None,
        backend: Optional[str] = None,
    ) -> List["Env"]:
        """`size` episodes on one task and one seed: a GRPO/TRLOO group, made on the server."""
        options = {
            k: v for k, v in {"maxTurns": max_turns, "reward": reward, "backend": backend}.items() if v is not None
        }
        group = {k: v for k, v in {"size": size, "id": group_id}.items() if v is not None}
        answer = await self._request(
            {
                "op": "reset",
                "task": task,
                "taskset": taskset,
                "split": split,
                "seed": seed,
                "group": group,
                "options": options or None,
            },
            resend=False,
        )
        return [Env._from_reset(self, e) for e in answer["episodes"]]

    def env(
        self,
        *,
        task: Optional[str] = None,
        taskset: Optional[str] = None,
        split: Optional[str] = None,
        max_turns: Optional[int] = None,
        reward: Optional[Dict[str, Any]] = None,
        group_id: Optional[str] = None,
        seed: Optional[int] = None,
        backend: Optional[str] = None,
    ) -> "Env":
        """An environment handle; its episode starts at `await env.reset()`. Episodes that a
        trainer compares with each other (a GRPO group: one prompt, several samples) must
        share a `group_id` (here, or in `reset(options={"group_id": ...})`): the export's
        per-turn baseline is computed within a group, and a group of one has no baseline.
        Every reset option can be given here (defaults) or to `reset(seed, options=...)`; `seed` here
        is the default seed of every reset."""
        return Env(
            self,
            task=task,
            taskset=taskset,
            split=split,
            max_turns=max_turns,
            reward=reward,
            group_id=group_id,
            seed=seed,
            backend=backend,
        )

    async def _step(
        self,
        episode: str,
        action: str,
        meta: Any,
        on_progress: Optional[ProgressCallback],
        completion_ids: Optional[List[int]] = None,
        logprobs: Optional[List[float]] = None,
        policy_version: Optional[Union[str, int]] = None,
    ) -> StepResult:
        rid = next(self._ids)
        try:
            answer = await self._request(
                {
                    "op": "step",
                    "episode": episode,
                    "action": action,
                    "meta": meta,
                    "completionIds": completion_ids,
                    "logprobs": logprobs,
                    "policyVersion": policy_version,
                },
                resend=True,
                on_progress=on_progress,
                request_id=rid,
            )
        except asyncio.CancelledError:
            # The caller gave up on the step: stop its evaluation on the server too.
            self._pending.pop(rid, None)
            if self._connected.is_set():
                await self._send({"id": next(self._ids), "op": "cancel", "target": rid})
            raise
        return StepResult.from_wire(answer)

    async def state(self, episode: str) -> Dict[str, Any]:
        return await self._request({"op": "state", "episode": episode}, resend=True)

    async def close_episode(self, episode: str) -> None:
        await self._request({"op": "close", "episode": episode}, resend=False)

    def drop_connection(self) -> None:
        """Breaks the connection as a network failure would (for tests of resume)."""
        self._ws.transport.abort()

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        self._fail_pending(lambda p: True, "the client was closed")

    async def __aenter__(self) -> "AnvilClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class Env:
    """One episode, with Gymnasium's shapes: `reset(seed, options) -> (observation, info)`
    and `step(action) -> (observation, reward, terminated, truncated, info)`."""

    def __init__(self, client: AnvilClient, **defaults: Any) -> None:
        self.client = client
        self.defaults = defaults
        self.episode: Optional[str] = None
        self.group: Optional[str] = None
        self.index = 0
        self.observation: Optional[Observation] = None
        self.info: Dict[str, Any] = {}

    @classmethod
    def _from_reset(cls, client: AnvilClient, e: Dict[str, Any]) -> "Env":
        env = cls(client)
        env._bind(e)
        return env

    def _bind(self, e: Dict[str, Any]) -> None:
        self.episode = e["episode"]
        self.group = e["group"]
        self.index = e["index"]
        self.observation = e["observation"]
        self.info = e["info"]

    async def reset(
        self, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None
    ) -> Tuple[Observation, Dict[str, Any]]:
        """`options`: any of env()'s reset options (task, taskset, split, max_turns, reward, group_id, backend)."""
        r = await self.reset_result(seed, options)
        return r.raw["observation"], r.raw["info"]

    async def reset_result(self, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None) -> ResetResult:
        """As reset(), typed."""
        if self.episode is not None:
            await self.close()
        opts = {k: v for k, v in {**self.defaults, **(options or {})}.items() if v is not None}
        default_seed = opts.pop("seed", None)
        [env] = await self.client.reset_group(1, seed=seed if seed is not None else default_seed, **opts)
        wire = {
            "episode": env.episode,
            "group": env.group,
            "index": env.index,
            "observation": env.observation,
            "info": env.info,
        }
        self._bind(wire)
        return ResetResult(TypedObservation.from_wire(env.observation), ResetInfo.from_wire(wire), wire)  # type: ignore[arg-type]

    async def step(
        self,
        action: Union[str, Dict[str, str]],
        *,
        meta: Any = None,
        on_progress: Optional[ProgressCallback] = None,
        completion_ids: Optional[List[int]] = None,
        logprobs: Optional[List[float]] = None,
        policy_version: Optional[Union[str, int]] = None,
    ) -> Tuple[Observation, float, bool, bool, Dict[str, Any]]:
        """`completion_ids` and `logprobs` (the reply's tokens, as the policy sampled them) and
        `policy_version` (which weights sampled it) are logged with the turn and exported, for
        trainers that must not re-tokenize."""
        return (
            await self.step_result(
                action,
                meta=meta,
                on_progress=on_progress,
                completion_ids=completion_ids,
                logprobs=logprobs,
                policy_version=policy_version,
            )
        ).as_tuple()

    async def step_result(
        self,
        action: Union[str, Dict[str, str]],
        *,
        meta: Any = None,
        on_progress: Optional[ProgressCallback] = None,
        completion_ids: Optional[List[int]] = None,
        logprobs: Optional[List[float]] = None,
        policy_version: Optional[Union[str, int]] = None,
    ) -> StepResult:
        """As step(), typed."""
        if self.episode is None:
            raise RuntimeError("call reset() first")
        text = action if isinstance(action, str) else action["content"]
        return await self.client._step(self.episode, text, meta, on_progress, completion_ids, logprobs, policy_version)

    async def state(self) -> Dict[str, Any]:
        return await self.client.state(self.episode or "")

    async def close(self) -> None:
        if self.episode is not None:
            episode, self.episode = self.episode, None
            await self.client.close_episode(episode)
