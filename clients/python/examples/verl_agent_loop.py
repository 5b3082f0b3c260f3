"""An Anvil agent loop for veRL's multi-turn rollout.

Not run in Anvil's CI: it needs veRL (and its inference servers), which this
project does not install. It implements veRL's documented interface
(docs/advance/agent_loop.rst): subclass `AgentLoopBase`, implement
`async run(self, sampling_params, **kwargs) -> AgentLoopOutput` with
`prompt_ids`, `response_ids` and `response_mask` (1 for model tokens, 0 for
environment tokens), register it with `@register(name)`, and select it with the
dataset field `agent_name`. veRL's API is marked alpha and has moved between
releases (the return type of `server_manager.generate` in particular): check it
against the version you run.

Each dataset row names an Anvil task (`extra_info.anvil_task`); rows of one
GRPO group share `extra_info.anvil_seed` so their episodes share inputs. Anvil's
per-turn rewards are in the server's log; here the trajectory reward is the sum.
"""
import asyncio
import os
from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register

from anvil_client import AnvilClient

ANVIL_URL = os.environ.get("ANVIL_URL", "ws://127.0.0.1:8765/v1/ws")
_client = None
_client_lock = asyncio.Lock()


async def anvil() -> AnvilClient:
    """One connection per worker process, shared by all its agent loops."""
    global _client
    async with _client_lock:
        if _client is None:
            _client = await AnvilClient.connect(ANVIL_URL, token=os.environ.get("ANVIL_TOKEN"))
    return _client


@register("anvil_agent")
class AnvilAgentLoop(AgentLoopBase):
    async def run(self, sampling_params: dict[str, Any], **kwargs) -> AgentLoopOutput:
        extra = kwargs.get("extra_info", {})
        client = await anvil()
        env = client.env(task=extra["anvil_task"], max_turns=int(extra.get("anvil_turns", 3)))
        obs, _ = await env.reset(seed=int(extra["anvil_seed"]))
        messages = list(obs["messages"])
        prompt_ids = await self.loop.run_in_executor(
            None, lambda: self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True))
        response_ids: list[int] = []
        response_mask: list[int] = []
        total = 0.0
        turns = 0
        while True:
            context = prompt_ids + response_ids
            generated = await self.server_manager.generate(request_id=uuid4().hex, prompt_ids=context,
                                                           sampling_params=sampling_params)
            ids = list(getattr(generated, "token_ids", generated))
            response_ids += ids
            response_mask += [1] * len(ids)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            obs, reward, terminated, truncated, info = await env.step(text)
            turns += 1
            total += 0.0 if info["mask"] else reward
            if terminated or truncated or info["mask"]:
                break
            feedback = await self.loop.run_in_executor(
                None, lambda: self.tokenizer.apply_chat_template(obs["messages"], add_generation_prompt=True, tokenize=True))
            response_ids += feedback
            response_mask += [0] * len(feedback)
        await env.close()
        return AgentLoopOutput(prompt_ids=prompt_ids, response_ids=response_ids, response_mask=response_mask,
                               num_turns=2 * turns, metrics={}, reward_score=total)
