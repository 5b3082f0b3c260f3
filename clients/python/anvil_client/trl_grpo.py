"""Anvil as the environment of TRL's GRPOTrainer (TRL 1.13), through `rollout_func(prompts, trainer)`.

    from anvil_client.trl_grpo import AnvilRollout, anvil_reward, task_prompts
    rollout = AnvilRollout("ws://127.0.0.1:8765/v1/ws", max_turns=2)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=[anvil_reward],
                          train_dataset=task_prompts([("vector_add", 1), ("saxpy", 2)]),
                          args=GRPOConfig(num_generations=4, ...), rollout_func=rollout)

What it does, per call:
- TRL hands the batch's prompts with each prompt repeated `num_generations` times in a row; each
  such run is one GRPO group and becomes one Anvil group (`reset` with a group of that size and a
  fresh `group_id`), so Anvil's export and TRL compute their baselines over the same episodes.
- Each dataset prompt names the Anvil task and seed (JSON, see `task_prompts`); the text the model
  sees is Anvil's own observation, templated with the trainer's tokenizer.
- Each sample plays one episode of up to `max_turns` turns with the trainer's model. Its completion
  is all the model's turns with Anvil's feedback between them; `env_mask` is 1 on the model's
  tokens and 0 on the feedback and on the tokens of a masked turn (an infrastructure failure:
  it is not the model's doing, so it is kept out of the loss, and the same episode goes on).
- The reward is the episode's return as Anvil measured it (the sum of its counted turns' rewards),
  handed to `anvil_reward` through the extra field `anvil_reward`. The token ids and log-probs of
  each turn go to Anvil with the step, so the turn log (and the export) has them too.

It generates with `model.generate` on the trainer's device: fine for tests and small models; for
large runs put a vLLM client behind `generate` (same inputs and outputs).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .sync import SyncClient

# (context token ids) -> (completion token ids, their log-probs)
Generate = Callable[[List[int]], Tuple[List[int], List[float]]]


def task_prompts(items: Iterable[Tuple[str, int]]):
    """A `datasets.Dataset` whose `prompt` column names an Anvil task and seed per row."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [json.dumps({"task": task, "seed": seed}) for task, seed in items]})


def anvil_reward(
    completions: Sequence[Any], anvil_reward: Sequence[Optional[float]], **_: Any
) -> List[Optional[float]]:
    """The reward function: what Anvil measured. None where every turn of the episode was masked
    (TRL then leaves this reward out for that sample rather than counting a 0)."""
    return list(anvil_reward)


class AnvilRollout:
    def __init__(
        self,
        url: str,
        *,
        token: Optional[str] = None,
        taskset: Optional[str] = None,
        max_turns: int = 1,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        max_attempts: Optional[int] = None,
    ) -> None:
        self.client = SyncClient(url, token)
        self.taskset = taskset
        self.max_turns = max_turns
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        # Masked turns do not count; this bounds how many a sample may send before it stops.
        self.max_attempts = max_attempts if max_attempts is not None else 2 * max_turns + 2
        self.groups: List[Dict[str, Any]] = []  # per call: the Anvil group of each GRPO group, for inspection

    def close(self) -> None:
        self.client.close()

    def __call__(self, prompts: List[Any], trainer: Any) -> Dict[str, List[Any]]:
        n = trainer.num_generations
        if len(prompts) % n:
            raise ValueError(f"{len(prompts)} prompts are not whole groups of num_generations={n}")
        tokenizer = trainer.processing_class
        generate = self.model_generate(trainer.accelerator.unwrap_model(trainer.model), tokenizer)
        out: Dict[str, List[Any]] = {
            k: []
            for k in (
                "prompt_ids",
                "completion_ids",
                "logprobs",
                "env_mask",
                "anvil_reward",
                "anvil_episode",
                "anvil_group",
            )
        }
        for start in range(0, len(prompts), n):
            group = prompts[start : start + n]
            if any(p != group[0] for p in group):
                raise ValueError("TRL's group holds different prompts: expected num_generations copies in a row")
            spec = json.loads(group[0] if isinstance(group[0], str) else group[0][-1]["content"])
            group_id = f"trl-{uuid.uuid4().hex}"
            envs = self.client.reset_group(
                n,
                task=spec.get("task"),
                seed=spec.get("seed"),
                taskset=self.taskset,
                group_id=group_id,
                max_turns=self.max_turns,
            )
            self.groups.append(
                {"group": group_id, "episodes": [e.episode for e in envs], "step": trainer.state.global_step}
            )
            for env in envs:
                sample = self.play(env, tokenizer, generate, policy_version=trainer.state.global_step)
                for k, v in sample.items():
                    out[k].append(v)
                out["anvil_group"].append(group_id)
                env.close()
        return out

    def play(
        self, env: Any, tokenizer: Any, generate: Generate, policy_version: Optional[int] = None
    ) -> Dict[str, Any]:
        """One episode: the model's turns and Anvil's feedback as one completion, with its mask."""
        prompt_ids = _templated(tokenizer, env.observation["messages"])
        completion: List[int] = []
        logprobs: List[float] = []
        mask: List[int] = []
        total: Optional[float] = None
        for _ in range(self.max_attempts):
            ids, lps = generate(prompt_ids + completion)
            text = tokenizer.decode(ids, skip_special_tokens=True)
            obs, reward, terminated, truncated, info = env.step(
                text, completion_ids=ids, logprobs=lps, policy_version=policy_version
            )
            completion += ids
            logprobs += lps
            mask += [0 if info["mask"] else 1] * len(ids)
            if not info["mask"]:
                total = (total or 0.0) + reward
            if terminated or truncated:
                break
            feedback = _templated(tokenizer, obs["messages"])
            completion += feedback
            logprobs += [0.0] * len(feedback)
            mask += [0] * len(feedback)
        return {
            "prompt_ids": prompt_ids,
            "completion_ids": completion,
            "logprobs": logprobs,
            "env_mask": mask,
            "anvil_reward": total,
            "anvil_episode": env.episode,
        }

    def model_generate(self, model: Any, tokenizer: Any) -> Generate:
        """Sampling with a transformers model, returning the sampled tokens' log-probs."""
        import torch

        def generate(context: List[int]) -> Tuple[List[int], List[float]]:
            input_ids = torch.tensor([context], device=model.device)
            with torch.no_grad():
                g = model.generate(
                    input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    do_sample=True,
                    temperature=self.temperature,
                    top_k=0,
                    top_p=1.0,
                    max_new_tokens=self.max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
            new = g.sequences[0, len(context) :].tolist()
            lps = model.compute_transition_scores(g.sequences, g.scores, normalize_logits=True)[0].tolist()
            if tokenizer.eos_token_id in new:  # keep the end of the turn, drop what follows it
                cut = new.index(tokenizer.eos_token_id) + 1
                new, lps = new[:cut], lps[:cut]
            return new, [float(x) for x in lps]

        return generate


def _templated(tokenizer: Any, messages: List[Dict[str, str]]) -> List[int]:
    """Messages in the tokenizer's chat template, ending with the assistant's turn opening."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
