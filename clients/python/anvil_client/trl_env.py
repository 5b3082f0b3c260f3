"""Anvil as a tool-calling environment of TRL's GRPOTrainer (TRL 1.13), through `environment_factory`.

    from anvil_client.trl_env import AnvilEnvFactory, anvil_env_reward, tool_task_rows
    factory = AnvilEnvFactory("ws://127.0.0.1:8765/v1/ws", num_generations=4, max_turns=2)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=[anvil_env_reward],
                          train_dataset=tool_task_rows([("vector_add", 1), ("saxpy", 2)]),
                          args=GRPOConfig(num_generations=4, ...), environment_factory=factory)

TRL makes one `AnvilToolEnv` per rollout (from `factory()`), calls its `reset(**row)` with the dataset
row before generating, and offers its public methods as tools: here `submit_kernel(code)`, which
steps the Anvil episode and returns Anvil's feedback as the tool's result (TRL masks tool results
out of the loss). `anvil_env_reward` scores each rollout with the episode's return as Anvil measured it.

Groups: TRL hands environments no group identity: `reset` gets only the dataset row. TRL's sampler
puts the `num_generations` copies of a row next to each other and resets the rollouts' environments
in batch order, so the factory makes every run of `num_generations` resets one Anvil group (a
fresh group id), and raises when a run holds different rows; `anvil_env_reward` checks again that
each run of `num_generations` rollouts it scores is one Anvil group, and raises otherwise. So
`num_generations` must be GRPOConfig's, and evaluation with another `num_generations_eval` is not
supported. Tested in one process only; with several, each process's environments see only its
share of the batch, which must then hold whole groups.

Masked turns: TRL's tool loop masks only the tool results, never one of the model's turns, so a
turn Anvil masks (an infrastructure failure) cannot be kept out of the loss alone. The tool sends
the same reply again up to `masked_retries` times; if it is still masked, the whole episode is
unscorable: its reward is None, which TRL leaves out of its group's baseline with advantage 0.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import BusyError, ConnectionLostError, InternalError, RateLimitedError, StorageFullError
from .sync import SyncClient

# The server's or the connection's failures: no turn was counted, and it is not the model's doing. Any
# other error (a bad request, a reply too large to send) is raised, never passed off as masked.
ENVIRONMENT_FAILURES = (BusyError, RateLimitedError, StorageFullError, InternalError, ConnectionLostError)

INSTRUCTION = "Submit your kernel with the submit_kernel tool; its result is Anvil's feedback.\n\n"


def tool_task_rows(items: Iterable[Tuple[str, int]], taskset: Optional[str] = None, instruction: str = INSTRUCTION):
    """A `datasets.Dataset` for `environment_factory`: a conversational `prompt` (the instruction, to
    which TRL appends the task that `reset` returns) and the Anvil `task` and `seed` of each row."""
    from datasets import Dataset

    rows = list(items)
    data: Dict[str, List[Any]] = {
        "prompt": [[{"role": "user", "content": instruction}] for _ in rows],
        "task": [task for task, _ in rows],
        "seed": [seed for _, seed in rows],
    }
    if taskset is not None:
        data["taskset"] = [taskset] * len(rows)
    return Dataset.from_dict(data)


class AnvilEnvFactory:
    """The `environment_factory`: one connection for all environments, and the group of each reset."""

    def __init__(
        self,
        url: str,
        *,
        num_generations: int,
        token: Optional[str] = None,
        taskset: Optional[str] = None,
        max_turns: Optional[int] = None,
        masked_retries: int = 2,
    ) -> None:
        if num_generations < 1:
            raise ValueError("num_generations must be at least 1")
        self.client = SyncClient(url, token)
        self.num_generations = num_generations
        self.taskset = taskset
        self.max_turns = max_turns
        self.masked_retries = masked_retries
        self._group: Optional[str] = None
        self._group_row: Any = None
        self._in_group = 0

    def __call__(self) -> "AnvilToolEnv":
        return AnvilToolEnv(self)

    def close(self) -> None:
        self.client.close()

    def _group_of(self, row: Tuple[Any, ...]) -> str:
        """The Anvil group of the next reset: a new one every num_generations resets."""
        if self._in_group == 0:
            self._group, self._group_row = f"trl-{uuid.uuid4().hex}", row
        elif row != self._group_row:
            raise RuntimeError(
                f"reset {self._in_group + 1} of a GRPO group got row {row}, not {self._group_row}: TRL's groups "
                f"are not runs of num_generations={self.num_generations} resets here, so Anvil's groups would be lost"
            )
        self._in_group = (self._in_group + 1) % self.num_generations
        assert self._group is not None
        return self._group


class AnvilToolEnv:
    """One rollout's Anvil episode. Its only public methods are TRL's: `reset` and the tool."""

    def __init__(self, factory: AnvilEnvFactory) -> None:
        self._factory = factory
        self._env: Any = None
        self.episode: Optional[str] = None
        self.group: Optional[str] = None
        #: The sum of the counted turns' rewards; None until a turn counts.
        self.anvil_return: Optional[float] = None
        #: Submissions still masked after the retries: the episode cannot be scored.
        self.masked = 0
        self.done = False
        #: Each step sent to Anvil, in order: {"reward", "mask", "feedback"}.
        self.steps: List[Dict[str, Any]] = []

    def reset(self, task: str, seed: Optional[int] = None, taskset: Optional[str] = None, **_: Any) -> str:
        """Starts the row's episode; returns Anvil's prompt, which TRL appends to the row's last message."""
        f = self._factory
        if self._env is not None:
            self._env.close()
        taskset = taskset if taskset is not None else f.taskset
        group = f._group_of((task, seed, taskset))
        [self._env] = f.client.reset_group(
            1, task=task, seed=seed, taskset=taskset, group_id=group, max_turns=f.max_turns
        )
        self.episode, self.group = self._env.episode, group
        self.anvil_return, self.masked, self.done, self.steps = None, 0, False, []
        return "\n\n".join(m["content"] for m in self._env.observation["messages"])

    def submit_kernel(self, code: str) -> str:
        """Submit a kernel for evaluation: it is compiled, checked against the reference and timed.

        Args:
            code: The complete source of the kernel.

        Returns:
            The evaluation's feedback.
        """
        return self._step(_as_reply(code))

    def _step(self, reply: str) -> str:
        if self.done:
            return "The episode is over; this submission was not evaluated."
        for _ in range(self._factory.masked_retries + 1):
            try:
                obs, reward, terminated, truncated, info = self._env.step(reply)
            except ENVIRONMENT_FAILURES as e:
                self.steps.append({"reward": None, "mask": True, "feedback": str(e)})
                self.masked += 1
                return f"The evaluation could not run ({e.code}); it does not count."
            feedback = "\n\n".join(m["content"] for m in obs["messages"])
            self.steps.append({"reward": reward, "mask": bool(info["mask"]), "feedback": feedback})
            if not info["mask"]:
                self.anvil_return = (self.anvil_return or 0.0) + reward
                self.done = bool(terminated or truncated)
                return feedback
        self.masked += 1
        return feedback

    def _score(self, final_reply: str) -> Optional[float]:
        """The rollout's reward: None when a submission stayed masked (TRL cannot mask that turn alone)
        or when no turn counted; a rollout that never called the tool is scored on its final reply."""
        if not self.steps and not self.done:
            self._step(final_reply)
        return None if self.masked else self.anvil_return


def anvil_env_reward(completions: Sequence[Any], environments: Sequence[Any], **_: Any) -> List[Optional[float]]:
    """The reward function for `environment_factory`: each rollout's Anvil return (see `_score`), after
    checking that each run of num_generations rollouts is one Anvil group and no two runs share one."""
    if not environments or not all(isinstance(e, AnvilToolEnv) for e in environments):
        raise RuntimeError("anvil_env_reward scores batches of AnvilToolEnv rollouts only")
    n = environments[0]._factory.num_generations
    if len(environments) % n:
        raise RuntimeError(f"{len(environments)} rollouts are not whole GRPO groups of {n}")
    groups = [environments[i].group for i in range(0, len(environments), n)]
    for k, gid in enumerate(groups):
        if any(e.group != gid for e in environments[k * n : (k + 1) * n]) or groups.count(gid) != 1:
            raise RuntimeError(f"GRPO group {k} of this batch is not one Anvil group: Anvil's groups were lost")
    return [e._score(_final_text(c)) for e, c in zip(environments, completions)]


def _final_text(completion: Union[str, List[Dict[str, Any]]]) -> str:
    if isinstance(completion, str):
        return completion
    replies = [m for m in completion if m.get("role") == "assistant"]
    content = replies[-1].get("content", "") if replies else ""
    return content if isinstance(content, str) else ""


def _as_reply(code: str) -> str:
    """The code as a reply Anvil reads: a fence tagged `kernel`, longer than any run of backticks in it."""
    longest = max((len(m) for m in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}kernel\n{code}\n{fence}\n"
