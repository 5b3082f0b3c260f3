"""TRL's GRPOTrainer against a live `anvil serve` on builtin-c, on the CPU: a tiny randomly
initialised causal LM built from a config and a tokenizer trained here (nothing downloaded).
Run with the trainers' virtual environment (.venv-trainers, made by `scripts/setup.sh --test`)."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

import torch  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from anvil_client.trl_grpo import AnvilRollout, anvil_reward, task_prompts  # noqa: E402

GOOD = "```c\nvoid solve(const float *a, const float *b, float *out, int n) {\n  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];\n}\n```"
WRONG = "```c\nvoid solve(const float *a, const float *b, float *out, int n) {\n  for (int i = 0; i < n; i++) out[i] = a[i] - b[i];\n}\n```"


def start_server(workdir, taskset="builtin-c"):
    config = os.path.join(workdir, "config.json")
    with open(config, "w") as f:
        json.dump({"eval": {"timingBudgetMs": 250, "minReps": 3, "maxReps": 12, "callTimeoutMs": 60000}}, f)
    args = [
        "node",
        os.path.join(ROOT, "dist", "scripts", "anvil.js"),
        "serve",
        "--port",
        "0",
        "--taskset",
        taskset,
        "--log-dir",
        os.path.join(workdir, "logs"),
        "--config",
        config,
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    proc.stdout.close()
    return proc, re.search(r"(ws://\S+/v1/ws)", line).group(1)


def train_tokenizer():
    """A word-level tokenizer trained on a few words; whole replies are single added tokens, so a
    random policy over a small vocabulary samples correct, wrong and codeless replies alike."""
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = ["a kernel"]
    tok.train_from_iterator(
        corpus,
        trainers.WordLevelTrainer(
            special_tokens=["<pad>", "<eos>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]
        ),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    # On lines of their own, as a reply's fenced code must be, whatever the words around them.
    fast.add_tokens([f"\n{GOOD}\n", f"\n{WRONG}\n"])
    fast.padding_side = "left"
    fast.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return fast


class GRPOAgainstAnvil(unittest.TestCase):
    def test_two_optimizer_steps_with_anvil_rewards_masks_and_groups(self):
        workdir = tempfile.mkdtemp(prefix="anvil-trl-")
        proc, url = start_server(workdir)
        self.addCleanup(lambda: (proc.kill(), proc.wait()))
        torch.manual_seed(0)
        tokenizer = train_tokenizer()
        model = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=2,
                max_position_embeddings=4096,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        )
        before = [p.detach().clone() for p in model.parameters()]
        rollout = AnvilRollout(url, max_turns=2, max_new_tokens=3)
        self.addCleanup(rollout.close)
        seen = []

        def recording_rollout(prompts, trainer):
            out = rollout(prompts, trainer)
            seen.append(out)
            return out

        args = GRPOConfig(
            output_dir=os.path.join(workdir, "out"),
            use_cpu=True,
            max_steps=2,
            per_device_train_batch_size=4,
            num_generations=4,
            learning_rate=1e-2,
            logging_steps=1,
            report_to=[],
            save_strategy="no",
            beta=0.0,
            seed=0,
            bf16=False,
            max_completion_length=4096,
        )
        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=[anvil_reward],
            args=args,
            train_dataset=task_prompts([("vector_add", 1), ("vector_add", 2), ("vector_add", 3), ("vector_add", 4)]),
            rollout_func=recording_rollout,
        )
        trainer.train()
        self.assertEqual(trainer.state.global_step, 2, "two optimizer steps")
        self.assertTrue(
            any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters())), "the weights moved"
        )

        # Anvil's turn log: every turn TRL played, with its tokens.
        records = []
        for f in sorted(os.listdir(os.path.join(workdir, "logs"))):
            if f.endswith(".jsonl"):
                with open(os.path.join(workdir, "logs", f)) as fh:
                    records += [json.loads(line) for line in fh if line.strip()]
        by_episode = defaultdict(list)
        for r in records:
            by_episode[r["episode"]].append(r)

        samples = [(out, i) for out in seen for i in range(len(out["anvil_episode"]))]
        self.assertGreaterEqual(len(samples), 8, "at least two GRPO groups of four")
        for out, i in samples:
            turns = by_episode[out["anvil_episode"][i]]
            self.assertTrue(turns, "every sample is an Anvil episode")
            # Rewards come from Anvil: the sample's reward is the episode's logged return.
            counted = [t["reward"] for t in turns if not t["mask"]]
            self.assertAlmostEqual(out["anvil_reward"][i], sum(counted))
            # Exactly the model's tokens are unmasked: every turn's ids as logged, in order; feedback is masked.
            ids, mask = out["completion_ids"][i], out["env_mask"][i]
            self.assertEqual(len(ids), len(mask))
            self.assertEqual(
                [ids[k] for k in range(len(ids)) if mask[k]],
                [x for t in turns if not t["mask"] for x in t["completionIds"]],
            )
            self.assertEqual(len(out["logprobs"][i]), len(ids))
            for t in turns:
                self.assertEqual(len(t["logprobs"]), len(t["completionIds"]))
                self.assertTrue(all(lp <= 0 for lp in t["logprobs"]))
            self.assertIn(0, mask, "the feedback between the two turns is masked")
        rewards = [r for out, i in samples for r in [out["anvil_reward"][i]]]
        self.assertGreater(len(set(rewards)), 1, f"the groups hold different outcomes: {sorted(set(rewards))}")
        self.assertTrue(
            any(t["eval"] and t["eval"]["outcome"] == "ok" for t in records), "some replies were correct kernels"
        )

        # Groups are GRPO's groups: each run of num_generations samples is one Anvil group, and no other episode is in it.
        groups = defaultdict(set)
        for r in records:
            groups[r["group"]].add(r["episode"])
        for out in seen:
            for start in range(0, len(out["anvil_group"]), 4):
                gid = out["anvil_group"][start]
                self.assertEqual(set(out["anvil_group"][start : start + 4]), {gid})
                self.assertEqual(groups[gid], set(out["anvil_episode"][start : start + 4]))
        self.assertEqual(len(groups), len(samples) // 4)
        # TRL's logged mean reward is the mean of Anvil's returns of that step.
        logged = [h["reward"] for h in trainer.state.log_history if "reward" in h]
        self.assertEqual(len(logged), 2)
        for value, out in zip(logged, seen):
            self.assertAlmostEqual(value, sum(out["anvil_reward"]) / len(out["anvil_reward"]), places=5)

    def test_a_masked_turn_is_out_of_the_loss_and_earns_no_reward(self):
        """A task set whose reference crashes: every evaluation is an infrastructure failure."""
        workdir = tempfile.mkdtemp(prefix="anvil-trl-broken-")
        broken = os.path.join(workdir, "broken")
        shutil.copytree(os.path.join(ROOT, "tasks", "builtin-c", "vector_add"), os.path.join(broken, "vector_add"))
        with open(os.path.join(broken, "vector_add", "reference.c"), "w") as f:
            f.write("void solve(const float *a, const float *b, float *out, int n) { *(volatile int *)0 = n; }\n")
        with open(os.path.join(broken, "manifest.json"), "w") as f:
            json.dump(
                {"id": "broken", "backend": "c", "splits": {"train": ["vector_add"], "eval": []}, "maxTurns": 2}, f
            )
        proc, url = start_server(workdir, broken)
        self.addCleanup(lambda: (proc.kill(), proc.wait()))
        tokenizer = train_tokenizer()
        good = tokenizer.convert_tokens_to_ids(f"\n{GOOD}\n")
        rollout = AnvilRollout(url, max_turns=2, max_attempts=2)
        self.addCleanup(rollout.close)
        [env] = rollout.client.reset_group(1, task="vector_add", group_id="g")
        sample = rollout.play(env, tokenizer, lambda context: ([good], [-0.5]))
        self.assertIsNone(sample["anvil_reward"], "no counted turn: no reward, not a 0")
        model_tokens = [i for i, t in enumerate(sample["completion_ids"]) if t == good]
        self.assertEqual(len(model_tokens), 2, "two attempts")
        self.assertEqual(
            [sample["env_mask"][i] for i in model_tokens], [0, 0], "the masked turns' tokens are out of the loss"
        )
        self.assertEqual(rollout.client._run(env.env.state())["turns"], [], "no turn was counted")


if __name__ == "__main__":
    unittest.main()
