"""Anvil as the environment of TRL's GRPOTrainer, through `rollout_func`.

Not run in Anvil's CI: it needs TRL, vLLM and a model, none of which this
project installs. It follows TRL's documented contract for `rollout_func`
(docs: "OpenEnv Integration", experimental): it receives the batch's prompts,
returns a dict with `prompt_ids`, `completion_ids` and `logprobs`, and any extra
key is handed to the reward functions as a keyword argument. Its exact
signature has changed between TRL releases: check the one you run.

GRPOTrainer generates one completion per prompt, so each rollout here is the
first turn of an Anvil episode; the GRPO group is TRL's (num_generations
completions of one prompt), and the prompt carries the Anvil task id.
"""
import os

from anvil_client import SyncClient

ANVIL = SyncClient(os.environ.get("ANVIL_URL", "ws://127.0.0.1:8765/v1/ws"), token=os.environ.get("ANVIL_TOKEN"))


def make_rollout_func(generate):
    """`generate(prompts) -> (prompt_ids, completion_ids, logprobs, texts)` is your generation backend
    (for example TRL's vLLM server client); the prompts are the dataset rows' prompt text, whose
    first line names the Anvil task (`task: sgemm`)."""

    def rollout_func(prompts, args, processing_class):
        prompt_ids, completion_ids, logprobs, texts = generate(prompts)
        rewards = []
        for prompt, text in zip(prompts, texts):
            task = prompt.splitlines()[0].removeprefix("task:").strip()
            env = ANVIL.env(task=task, max_turns=1)
            env.reset(seed=abs(hash(prompt)) % 2**31)
            _, reward, _, _, info = env.step(text)
            rewards.append(None if info["mask"] else reward)
            env.close()
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs, "anvil_reward": rewards}

    return rollout_func


def anvil_reward(completions, anvil_reward, **kwargs):
    """The reward function: passes through what Anvil measured. TRL's reward functions have no
    mask, so an infrastructure failure (None here) scores 0 in this path; the raw client and the
    exported dataset keep the mask."""
    return [0.0 if r is None else r for r in anvil_reward]

# trainer = GRPOTrainer(model=..., reward_funcs=[anvil_reward], train_dataset=..., args=GRPOConfig(...),
#                       rollout_func=make_rollout_func(my_vllm_generate))
