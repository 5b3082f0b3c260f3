"""TRL's GRPOTrainer against a live `anvil serve` on builtin-c, on the CPU, through both of TRL's
integrations (`rollout_func` and `environment_factory`): a tiny randomly initialised causal LM built
from a config and tokenizers trained here (nothing downloaded). What the trainer feeds its loss
(masks and advantages) is read from inside the trainer. Run with the trainers' virtual environment
(.venv-trainers, made by `scripts/setup.sh --test`)."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from anvil_client.trl_env import AnvilEnvFactory, AnvilToolEnv, anvil_env_reward, tool_task_rows  # noqa: E402
from anvil_client.trl_grpo import AnvilRollout, anvil_reward  # noqa: E402

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


def tool_call(code):
    return "<tool_call>" + json.dumps({"name": "submit_kernel", "arguments": {"code": code}}) + "</tool_call>"


def source(reply):
    """The code inside a fenced reply."""
    return reply.split("\n", 1)[1].rsplit("\n", 1)[0]


TOOL_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}<|assistant|> {{ m['content'] }}"
    "{% for t in m.get('tool_calls') or [] %} <tool_call>{{ t['function'] | tojson }}</tool_call>{% endfor %} <eos> "
    "{% else %}<|{{ m['role'] }}|> {{ m['content'] }} {% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tool_tokenizer():
    """As train_tokenizer, for tool calling: a whole call of submit_kernel (a correct or a wrong kernel)
    is one added token, the chat template renders tool calls and tool results (TRL checks both), and
    the response template parses a completion's tool calls as TRL's tool loop needs."""
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        ["a kernel"],
        trainers.WordLevelTrainer(
            special_tokens=["<pad>", "<eos>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]
        ),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    fast.add_tokens([tool_call(source(GOOD)), tool_call(source(WRONG))])
    fast.padding_side = "left"
    fast.chat_template = TOOL_TEMPLATE
    fast.response_template = {
        "defaults": {"role": "assistant"},
        "start_anchor": "<|assistant|>",
        "fields": {
            "tool_calls": {
                "open": "<tool_call>",
                "close_pattern": r"</tool_call>\s*",
                "repeats": True,
                "content": "json",
                "transform": {"type": "function", "function": "{content}"},
            },
            "content": {"close_pattern": r"<eos>\s*", "content": "text"},
        },
    }
    return fast


def tiny_model(tokenizer):
    torch.manual_seed(0)
    return LlamaForCausalLM(
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


def grpo_config(test, batch, **kwargs):
    out = tempfile.mkdtemp(prefix="anvil-trl-out-")
    test.addCleanup(shutil.rmtree, out, ignore_errors=True)
    return GRPOConfig(
        output_dir=out,
        use_cpu=True,
        max_steps=2,
        per_device_train_batch_size=batch,
        num_generations=4,
        learning_rate=1e-2,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        beta=0.0,
        seed=0,
        bf16=False,
        gradient_checkpointing=False,
        **kwargs,
    )


def read_log(workdir):
    """Anvil's turn log, per episode, in the order the turns were logged."""
    by_episode = defaultdict(list)
    logs = os.path.join(workdir, "logs")
    for f in sorted(os.listdir(logs)):
        if f.endswith(".jsonl"):
            with open(os.path.join(logs, f)) as fh:
                for line in fh:
                    if line.strip():
                        r = json.loads(line)
                        by_episode[r["episode"]].append(r)
    return by_episode


def crash_taskset(workdir):
    """builtin-c's vector_add with a reference that crashes: every evaluation of code is an
    infrastructure failure (masked); a reply without code is the model's failure, counted at -1."""
    crash = os.path.join(workdir, "crash")
    shutil.copytree(os.path.join(ROOT, "tasks", "builtin-c", "vector_add"), os.path.join(crash, "vector_add"))
    with open(os.path.join(crash, "vector_add", "reference.c"), "w") as f:
        f.write("void solve(const float *a, const float *b, float *out, int n) { *(volatile int *)0 = n; }\n")
    with open(os.path.join(crash, "manifest.json"), "w") as f:
        json.dump(
            {
                "id": "crash",
                "backend": "c",
                "splits": {"train": ["vector_add"], "eval": []},
                "maxTurns": 2,
                "reward": {"failureReward": -1},
            },
            f,
        )
    return crash


SERVERS = {}


def setUpModule():
    """One server on builtin-c for both integrations (its verdict cache serves both), one on the crash set."""
    for name in ("builtin-c", "crash"):
        workdir = tempfile.mkdtemp(prefix=f"anvil-trl-{name}-")
        unittest.addModuleCleanup(shutil.rmtree, workdir, ignore_errors=True)  # after the server stops (LIFO)
        proc, url = start_server(workdir, "builtin-c" if name == "builtin-c" else crash_taskset(workdir))
        unittest.addModuleCleanup(lambda p=proc: (p.kill(), p.wait()))
        SERVERS[name] = (url, workdir)


class RecordingGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that keeps what it computed for each generation batch (in batch order) and what
    each compute_loss call received (TRL shuffles the batch in between)."""

    KEYS = ("completion_ids", "completion_mask", "tool_mask", "advantages")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.generated, self.loss_inputs = [], []

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        self.generated.append({k: out[k].detach().clone() for k in self.KEYS if k in out})
        return out

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self.loss_inputs.append({k: inputs[k].detach().clone() for k in self.KEYS if k in inputs})
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def rows(batch):
    """A batch's samples as comparable tuples: ids, completion mask, tool mask, advantage."""
    return Counter(
        (
            tuple(batch["completion_ids"][i].tolist()),
            tuple(batch["completion_mask"][i].tolist()),
            tuple(batch["tool_mask"][i].tolist()),
            round(batch["advantages"][i].item(), 6),
        )
        for i in range(len(batch["advantages"]))
    )


def grpo_advantages(rewards, n):
    """TRL 1.13's advantages (scale_rewards="group"): within each group of n, a reward minus the mean of the
    group's scored rewards, over their (unbiased) std + 1e-4; an unscorable sample (None) is in neither
    and gets 0, as does a sample whose group holds no other scored one."""
    out = []
    for start in range(0, len(rewards), n):
        group = rewards[start : start + n]
        scored = [r for r in group if r is not None]
        if len(scored) < 2:
            out += [0.0] * len(group)
            continue
        mean = sum(scored) / len(scored)
        std = (sum((r - mean) ** 2 for r in scored) / (len(scored) - 1)) ** 0.5
        out += [0.0 if r is None else (r - mean) / (std + 1e-4) for r in group]
    return out


class GRPOAgainstAnvil(unittest.TestCase):
    def assert_weights_moved(self, before, model):
        self.assertTrue(
            any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters())), "the weights moved"
        )

    def assert_loss_saw_what_was_generated(self, trainer):
        """compute_loss got exactly the generated samples (shuffled), with their masks and advantages."""
        self.assertEqual(len(trainer.generated), 2)
        self.assertEqual(len(trainer.loss_inputs), 2)
        for generated, loss_input in zip(trainer.generated, trainer.loss_inputs):
            self.assertIn("tool_mask", loss_input, "the loss is masked by the environment's mask")
            self.assertEqual(rows(generated), rows(loss_input))

    def test_rollout_func_with_anvil_rewards_masks_groups_and_masked_turns(self):
        """rollout_func over two servers: builtin-c, and the crash set whose evaluations of code are all
        infrastructure failures, so some turns are masked and some episodes have no counted turn."""
        tokenizer = train_tokenizer()
        model = tiny_model(tokenizer)
        before = [p.detach().clone() for p in model.parameters()]
        rollouts = {
            "builtin-c": AnvilRollout(SERVERS["builtin-c"][0], max_turns=2, max_new_tokens=3),
            # Longer replies hold code more often; two attempts, so a masked turn is often followed by a counted one.
            "crash": AnvilRollout(SERVERS["crash"][0], max_turns=2, max_new_tokens=6, max_attempts=2),
        }
        for r in rollouts.values():
            self.addCleanup(r.close)
        seen = []

        def rollout_func(prompts, trainer):
            """Each GRPO group to the server its prompt names."""
            out = defaultdict(list)
            for start in range(0, len(prompts), trainer.num_generations):
                group = prompts[start : start + trainer.num_generations]
                server = json.loads(group[0])["server"]
                for k, v in rollouts[server](group, trainer).items():
                    out[k] += v
                out["server"] += [server] * len(group)
            seen.append(dict(out))
            return dict(out)

        # Two rows on one builtin-c seed (two GRPO groups of identical prompts: two Anvil groups, one verdict
        # cache), four on the crash set; batches of three groups, so the two steps use every row once.
        prompts = [json.dumps({"task": "vector_add", "seed": 1, "server": "builtin-c"})] * 2 + [
            json.dumps({"task": "vector_add", "seed": s, "server": "crash"}) for s in (1, 2, 3, 4)
        ]
        trainer = RecordingGRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=[anvil_reward],
            args=grpo_config(self, 12, max_completion_length=4096),
            train_dataset=Dataset.from_dict({"prompt": prompts}),
            rollout_func=rollout_func,
        )
        trainer.train()
        self.assertEqual(trainer.state.global_step, 2, "two optimizer steps")
        self.assert_weights_moved(before, model)
        self.assert_loss_saw_what_was_generated(trainer)

        logs = {name: read_log(workdir) for name, (_, workdir) in SERVERS.items()}
        mixed_groups = masked_and_counted = 0
        for out, generated in zip(seen, trainer.generated):
            self.assertEqual(len(out["anvil_episode"]), 12)
            for i, episode in enumerate(out["anvil_episode"]):
                turns = logs[out["server"][i]][episode]
                self.assertTrue(turns, "every sample is an Anvil episode")
                # Rewards come from Anvil: the episode's logged return, None when no turn counted.
                counted = [t["reward"] for t in turns if not t["mask"]]
                if counted:
                    self.assertAlmostEqual(out["anvil_reward"][i], sum(counted))
                else:
                    self.assertIsNone(out["anvil_reward"][i], "no counted turn: no reward, not a 0")
                # The completion and its mask, rebuilt from Anvil's log alone: each turn's tokens as logged (1 when
                # the turn counted, 0 when it was masked), then Anvil's feedback (0) unless the episode ended there.
                ids, mask = [], []
                for t in turns:
                    ids += t["completionIds"]
                    mask += [0 if t["mask"] else 1] * len(t["completionIds"])
                    self.assertEqual(len(t["logprobs"]), len(t["completionIds"]))
                    if t["terminated"] or t["truncated"]:
                        break
                    text = tokenizer.apply_chat_template(
                        [{"role": "user", "content": t["feedback"]}], add_generation_prompt=True, tokenize=False
                    )
                    feedback = tokenizer(text, add_special_tokens=False)["input_ids"]
                    ids += feedback
                    mask += [0] * len(feedback)
                self.assertEqual((out["completion_ids"][i], out["env_mask"][i]), (ids, mask))
                # Inside the trainer: the same tokens, and the loss mask is exactly that mask.
                length = int(generated["completion_mask"][i].sum())
                self.assertEqual(generated["completion_ids"][i][:length].tolist(), ids)
                loss_mask = (generated["completion_mask"][i] * generated["tool_mask"][i]).tolist()
                self.assertEqual(loss_mask, mask + [0] * (len(loss_mask) - length))
                if any(t["mask"] for t in turns) and counted:
                    masked_and_counted += 1
            # Advantages: TRL's, over Anvil's rewards, with the unscorable samples out of their group's baseline.
            rewards = out["anvil_reward"]
            advantages = generated["advantages"].tolist()
            for a, b in zip(advantages, grpo_advantages(rewards, 4)):
                self.assertAlmostEqual(a, b, places=3)
            as_zero = grpo_advantages([0.0 if r is None else r for r in rewards], 4)
            for start in range(0, 12, 4):
                group = rewards[start : start + 4]
                if None in group and any(r is not None for r in group):
                    mixed_groups += 1
                    self.assertNotEqual(
                        [round(a, 3) for a in advantages[start : start + 4]],
                        [round(a, 3) for a in as_zero[start : start + 4]],
                        "an unscorable sample is not a reward of 0 in its group's baseline",
                    )
                for k in range(start, start + 4):
                    if rewards[k] is None:
                        self.assertEqual(advantages[k], 0.0, "an episode with no counted turn has advantage 0")
        self.assertGreater(masked_and_counted, 0, "some episode had a masked turn and a counted one")
        self.assertGreater(mixed_groups, 0, "some group held scored and unscorable episodes")

        c = [(out, i) for out in seen for i in range(12) if out["server"][i] == "builtin-c"]
        self.assertGreaterEqual(len(c), 8, "two builtin-c groups")
        self.assertGreater(
            len({out["anvil_reward"][i] for out, i in c}), 1, "builtin-c's groups hold different outcomes"
        )
        self.assertTrue(
            any(
                t["eval"] and t["eval"]["outcome"] == "ok"
                for out, i in c
                for t in logs["builtin-c"][out["anvil_episode"][i]]
            ),
            "some replies were correct kernels",
        )
        # Groups are GRPO's groups: each run of num_generations samples is one Anvil group, and no other episode is in it.
        for out in seen:
            for start in range(0, 12, 4):
                gid = out["anvil_group"][start]
                self.assertEqual(set(out["anvil_group"][start : start + 4]), {gid})
                log = logs[out["server"][start]]
                members = {e for e, turns in log.items() if turns[0]["group"] == gid}
                self.assertEqual(members, set(out["anvil_episode"][start : start + 4]))
            self.assertEqual(len(set(out["anvil_group"])), 3)
        # TRL's logged mean reward is the mean of Anvil's returns of that step, unscorable samples left out.
        logged = [h["reward"] for h in trainer.state.log_history if "reward" in h]
        self.assertEqual(len(logged), 2)
        for value, out in zip(logged, seen):
            scored = [r for r in out["anvil_reward"] if r is not None]
            self.assertAlmostEqual(value, sum(scored) / len(scored), places=5)

    def test_environment_factory_with_a_tool_that_submits_kernels(self):
        """environment_factory: TRL's own tool loop, the model calling submit_kernel, Anvil's feedback as the result."""
        url, workdir = SERVERS["builtin-c"]
        tokenizer = tool_tokenizer()
        model = tiny_model(tokenizer)
        before = [p.detach().clone() for p in model.parameters()]
        factory = AnvilEnvFactory(url, num_generations=4, max_turns=2)
        self.addCleanup(factory.close)
        scored = []

        def reward(completions, environments, **kwargs):
            rewards = anvil_env_reward(completions, environments, **kwargs)
            snapshot = [(e.episode, e.group, e.masked, list(e.steps)) for e in environments]
            scored.append((rewards, snapshot, completions))
            return rewards

        reward.__name__ = "anvil_env_reward"
        trainer = RecordingGRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=[reward],
            args=grpo_config(self, 8, max_completion_length=1024, max_tool_calling_iterations=2),
            # Two identical rows: each batch holds two GRPO groups of the same prompt, which must be two Anvil groups.
            train_dataset=tool_task_rows([("vector_add", 1), ("vector_add", 1)]),
            environment_factory=factory,
        )
        self.assertTrue(all(isinstance(e, AnvilToolEnv) for e in trainer._environment_pool[None]))
        trainer.train()
        self.assertEqual(trainer.state.global_step, 2, "two optimizer steps")
        self.assert_weights_moved(before, model)
        self.assert_loss_saw_what_was_generated(trainer)
        calls = [h["tools/call_frequency"] for h in trainer.state.log_history if "tools/call_frequency" in h]
        self.assertTrue(calls and min(calls) > 0, f"the model called the tool: {calls}")

        log = read_log(workdir)
        call_tokens = {tokenizer.convert_tokens_to_ids(tool_call(source(r))) for r in (GOOD, WRONG)}
        submitted = 0
        for (rewards, snapshot, completions), generated in zip(scored, trainer.generated):
            self.assertEqual(len(rewards), 8)
            for i, (episode, group, masked, steps) in enumerate(snapshot):
                turns = log[episode]
                self.assertEqual(masked, 0)
                # Rewards come from Anvil: the episode's logged return; every step the tool sent is logged.
                self.assertAlmostEqual(rewards[i], sum(t["reward"] for t in turns if not t["mask"]))
                self.assertEqual(
                    [(s["reward"], s["feedback"]) for s in steps], [(t["reward"], t["feedback"]) for t in turns]
                )
                self.assertTrue(all(t["seed"] == 1 and t["group"] == group for t in turns))
                tool_results = [m["content"] for m in completions[i] if m["role"] == "tool"]
                evaluated = [r for r in tool_results if not r.startswith("The episode is over")]
                # A rollout without a tool call is scored on its final reply: one turn, not from the tool.
                self.assertEqual(evaluated, [t["feedback"] for t in turns] if tool_results else [])
                submitted += sum(t["action"].startswith("```kernel\n") for t in turns) if tool_results else 0
                # Tool results are out of the loss: the spans where the loss mask is 0 are exactly the tool
                # messages (Anvil's feedback), as this test's chat template renders them, in order.
                length = int(generated["completion_mask"][i].sum())
                ids = generated["completion_ids"][i][:length].tolist()
                loss_mask = (generated["completion_mask"][i] * generated["tool_mask"][i])[:length].tolist()
                spans, span = [], []
                for token, m in zip(ids, loss_mask):
                    if m == 0:
                        span.append(token)
                    elif span:
                        spans.append(span)
                        span = []
                if span:
                    spans.append(span)
                # The model's tool calls are its own tokens, in the loss.
                calls = sum(len(m.get("tool_calls") or []) for m in completions[i] if m["role"] == "assistant")
                self.assertEqual(sum(1 for t, m in zip(ids, loss_mask) if m and t in call_tokens), calls)
                expected, run = [], []
                for m in completions[i]:
                    if m["role"] == "tool":
                        run.append(m)
                    elif run:
                        expected.append(run)
                        run = []
                if run:
                    expected.append(run)
                self.assertEqual(
                    spans,
                    [
                        tokenizer(
                            "".join(f"<|tool|> {m['content']} " for m in run) + "<|assistant|>",
                            add_special_tokens=False,
                        )["input_ids"]
                        for run in expected
                    ],
                )
            # Groups: each run of four rollouts is one Anvil group holding exactly those episodes; the two runs of
            # a batch (the same prompt) are two groups.
            groups = [snapshot[k][1] for k in range(0, 8, 4)]
            self.assertEqual(len(set(groups)), 2)
            for k, gid in enumerate(groups):
                mine = {snapshot[j][0] for j in range(4 * k, 4 * k + 4)}
                self.assertEqual({snapshot[j][1] for j in range(4 * k, 4 * k + 4)}, {gid})
                self.assertEqual({e for e, turns in log.items() if turns[0]["group"] == gid}, mine)
            for a, b in zip(generated["advantages"].tolist(), grpo_advantages(rewards, 4)):
                self.assertAlmostEqual(a, b, places=3)
        self.assertGreater(submitted, 0, "kernels were submitted through the tool")
        self.assertTrue(
            any(t["eval"] and t["eval"]["outcome"] == "ok" for turns in log.values() for t in turns),
            "some submissions were correct kernels",
        )

    def test_tool_environment_masked_submissions_and_lost_groups(self):
        """The environment without a trainer, on the crash set: a submission still masked after the retries
        makes the episode unscorable; a rollout without a tool call is scored on its final reply; lost groups raise."""
        url, workdir = SERVERS["crash"]
        factory = AnvilEnvFactory(url, num_generations=2, max_turns=2, masked_retries=1)
        self.addCleanup(factory.close)
        envs = [factory() for _ in range(4)]
        for env in envs:
            self.assertIn("vector_add", env.reset(task="vector_add", seed=7, prompt=[]))
        self.assertEqual(envs[0].group, envs[1].group)
        self.assertNotEqual(envs[1].group, envs[2].group)
        self.assertIn("does not count", envs[0].submit_kernel(source(GOOD)))
        self.assertEqual(envs[0].masked, 1)
        replies = [[{"role": "assistant", "content": "a kernel"}]] * 4
        with self.assertRaises(RuntimeError, msg="scored out of order, the groups are not runs of two"):
            anvil_env_reward(replies, [envs[0], envs[2], envs[1], envs[3]])
        rewards = anvil_env_reward(replies, envs)
        self.assertEqual(rewards, [None, -1.0, -1.0, -1.0], "masked: None; no code in the final reply: Anvil's -1")
        log = read_log(workdir)
        self.assertEqual([t["mask"] for t in log[envs[0].episode]], [True, True], "sent twice, masked twice")
        self.assertEqual(
            [(t["mask"], t["reward"], t["action"]) for t in log[envs[1].episode]], [(False, -1.0, "a kernel")]
        )
        stray = factory()
        stray.reset(task="vector_add", seed=7)
        with self.assertRaises(RuntimeError, msg="a group's second reset on another row"):
            factory().reset(task="vector_add", seed=8)


if __name__ == "__main__":
    unittest.main()
