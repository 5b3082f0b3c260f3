"""An Anvil agent loop for veRL's agent-loop rollout (verl/experimental/agent_loop, checked against
veRL's main branch: `AgentLoopBase`, `AgentLoopOutput`, `AsyncLLMServerManager.generate` returning
a `TokenOutput` with `token_ids` and `log_probs`).

NOT RUN HERE: it needs veRL, Ray and an inference server (vLLM or SGLang) on GPUs, none of which
Anvil's CI installs. It is written to veRL's interface as read from its source, not tested
against it; veRL marks this API experimental and it moves between releases.

Selecting it: `verl_agent_loop.yaml` (next to this file) registers the loop under the name
`anvil_agent`; point veRL at it and make it the default (or set `agent_name` per dataset row):

    actor_rollout_ref.rollout.mode=async
    actor_rollout_ref.rollout.agent.agent_loop_config_path=clients/python/examples/verl_agent_loop.yaml
    actor_rollout_ref.rollout.agent.default_agent_loop=anvil_agent
    actor_rollout_ref.rollout.calculate_log_probs=True     # so TokenOutput carries log-probs
    algorithm.adv_estimator=grpo  actor_rollout_ref.rollout.n=8

Dataset rows name the task in `extra_info.anvil_task` (and optionally `anvil_seed`, `anvil_turns`).

Groups: veRL gives the `n` samples of one prompt the same `uid` (its GRPO group). The loop uses it
as the Anvil `group_id`, and derives the seed from it when the row has none, so the episodes of
one veRL group are one Anvil group on one seed: Anvil's export and veRL's advantage estimator see
the same groups.

Tokens: each turn's tokens are the server's own (`token_ids`, `log_probs`), never re-tokenized
from text; they go to Anvil with the step (logged and exported). Anvil's feedback is templated
with `apply_chat_template(..., remove_system_prompt=True)` and masked (`response_mask` 0), as
veRL's tool agent loop does for tool responses. A masked turn (an infrastructure failure) keeps
its tokens in the sequence with mask 0 and is not counted; the episode steps again (at most
`max_attempts` sends in all). The reward is the episode's return as Anvil measured it.
"""

import asyncio
import hashlib
import os
from typing import Any, Optional
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput

from anvil_client import AnvilClient

ANVIL_URL = os.environ.get("ANVIL_URL", "ws://127.0.0.1:8765/v1/ws")
_client: Optional[AnvilClient] = None
_client_lock = asyncio.Lock()


async def anvil() -> AnvilClient:
    """One connection per agent-loop worker process, shared by all its loops."""
    global _client
    async with _client_lock:
        if _client is None:
            _client = await AnvilClient.connect(ANVIL_URL, token=os.environ.get("ANVIL_TOKEN"))
    return _client


class AnvilAgentLoop(AgentLoopBase):
    def __init__(self, *args: Any, max_attempts: int = 8, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_attempts = max_attempts
        self.response_length = self.config.actor_rollout_ref.rollout.response_length

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        extra = kwargs.get("extra_info") or {}
        uid = str(kwargs.get("uid") or "")
        seed = extra.get("anvil_seed")
        if seed is None and uid:
            seed = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:4], "little") % 2**31
        client = await anvil()
        env = client.env(
            task=extra["anvil_task"],
            max_turns=int(extra.get("anvil_turns", 3)),
            group_id=f"verl-{uid}" if uid else None,
            seed=seed,
        )
        obs, _ = await env.reset()
        prompt_ids = await self.apply_chat_template(obs["messages"])
        response_ids: list[int] = []
        response_mask: list[int] = []
        logprobs: list[float] = []
        total: Optional[float] = None
        turns = 0
        step = kwargs.get("global_steps")
        sticky = uid or uuid4().hex  # one inference server for all turns of the episode (its KV cache)
        for _ in range(self.max_attempts):
            out = await self.server_manager.generate(
                request_id=sticky, prompt_ids=prompt_ids + response_ids, sampling_params=sampling_params
            )
            ids = list(out.token_ids)
            lps = list(out.log_probs) if out.log_probs is not None else None
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            obs, reward, terminated, truncated, info = await env.step(
                text, completion_ids=ids, logprobs=lps, policy_version=step
            )
            masked = bool(info["mask"])
            response_ids += ids
            response_mask += [0 if masked else 1] * len(ids)
            logprobs += lps if lps is not None else [0.0] * len(ids)
            turns += 1
            if not masked:
                total = (total or 0.0) + reward
            if terminated or truncated or len(response_ids) >= self.response_length:
                break
            feedback = await self.apply_chat_template(obs["messages"], remove_system_prompt=True)
            response_ids += feedback
            response_mask += [0] * len(feedback)
            logprobs += [0.0] * len(feedback)
        episode, group = env.episode, env.group
        await env.close()
        n = self.response_length
        return AgentLoopOutput(
            prompt_ids=prompt_ids,
            response_ids=response_ids[:n],
            response_mask=response_mask[:n],
            response_logprobs=logprobs[:n],
            reward_score=total,
            num_turns=2 * turns,
            metrics=AgentLoopMetrics(),
            extra_fields={"anvil_episode": episode, "anvil_group": group},
        )
