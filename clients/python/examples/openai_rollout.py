"""Multi-turn rollouts against Anvil with any OpenAI-compatible chat endpoint
(vLLM, SGLang, TGI, a hosted API).

Not run in Anvil's CI: it needs the `openai` package and a model endpoint,
neither of which this project installs. It uses only AsyncOpenAI's documented
`chat.completions.create(model=..., messages=...)`.

    python openai_rollout.py --anvil ws://127.0.0.1:8765/v1/ws --base-url http://127.0.0.1:8000/v1 --model my-model
"""

import argparse
import asyncio
import json

from openai import AsyncOpenAI  # pip install openai

from anvil_client import AnvilClient


async def rollout(llm: AsyncOpenAI, model: str, env) -> list:
    """One episode: the conversation grows by the model's reply and Anvil's feedback each turn."""
    messages = list(env.observation["messages"])
    turns = []
    while True:
        reply = await llm.chat.completions.create(model=model, messages=messages, temperature=1.0, max_tokens=4096)
        action = reply.choices[0].message.content or ""
        obs, reward, terminated, truncated, info = await env.step(action, meta={"model": model})
        turns.append({"turn": info["turn"], "reward": reward, "outcome": info["outcome"], "mask": info["mask"]})
        if info["mask"]:
            continue  # an infrastructure failure: not the model's doing; the same turn is offered again
        messages += [{"role": "assistant", "content": action}] + obs["messages"]
        if terminated or truncated:
            return turns


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--anvil", default="ws://127.0.0.1:8765/v1/ws")
    p.add_argument("--token")
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--groups", type=int, default=4)
    p.add_argument("--group-size", type=int, default=8)
    args = p.parse_args()
    llm = AsyncOpenAI(base_url=args.base_url, api_key="unused")
    async with await AnvilClient.connect(args.anvil, token=args.token) as anvil:
        groups = await asyncio.gather(
            *(anvil.reset_group(args.group_size, split="train", max_turns=3) for _ in range(args.groups))
        )
        envs = [env for group in groups for env in group]
        results = await asyncio.gather(*(rollout(llm, args.model, env) for env in envs))
        for env, turns in zip(envs, results):
            print(json.dumps({"group": env.group, "episode": env.episode, "task": env.info["task"], "turns": turns}))


if __name__ == "__main__":
    asyncio.run(main())
