"""Anvil as the environment of TRL's GRPOTrainer (TRL 1.13, `rollout_func(prompts, trainer)`).

The integration is `anvil_client.trl_grpo.AnvilRollout` (see docs/trainers.md); this script is
what a run looks like. CI runs the same path with a tiny random model on the CPU
(clients/python/trainer_tests/test_trl_grpo.py); this script, with a real model, is not run here.

    ANVIL_URL=ws://127.0.0.1:8765/v1/ws python trl_rollout.py Qwen/Qwen2.5-0.5B-Instruct
"""

import os
import sys

from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

from anvil_client.trl_grpo import AnvilRollout, anvil_reward, task_prompts

model_name = sys.argv[1]
tokenizer = AutoTokenizer.from_pretrained(model_name, padding_side="left")
model = AutoModelForCausalLM.from_pretrained(model_name)
# Each GRPO group (num_generations samples of one prompt) becomes one Anvil group.
rollout = AnvilRollout(
    os.environ.get("ANVIL_URL", "ws://127.0.0.1:8765/v1/ws"),
    token=os.environ.get("ANVIL_TOKEN"),
    max_turns=3,
    max_new_tokens=1024,
)
trainer = GRPOTrainer(
    model=model,
    processing_class=tokenizer,
    reward_funcs=[anvil_reward],
    rollout_func=rollout,
    train_dataset=task_prompts([(task, seed) for seed in range(64) for task in ("vector_add", "saxpy", "sgemm")]),
    args=GRPOConfig(
        output_dir="grpo-anvil",
        num_generations=8,
        per_device_train_batch_size=8,
        max_steps=100,
        learning_rate=1e-6,
        max_completion_length=8192,
        logging_steps=1,
    ),
)
trainer.train()
rollout.close()
