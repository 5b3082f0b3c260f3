"""Typed results, busy retry with jitter, and env() taking every reset option, against a real
`anvil serve` (Debian's python3, as test_client.py)."""

import asyncio
import os
import random
import sys
import unittest

import anvil_serve

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from anvil_client import (
    AnvilClient,
    BusyError,
    BusyRetry,
    EvalSummary,
    Observation,
    ResetResult,  # noqa: E402
    StepInfo,
    StepResult,
)

GOOD = "```c\nvoid solve(const float *a, const float *b, float *out, int n) {\n  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];\n}\n```"


def start_server(extra):
    return anvil_serve.start_server(extra, prefix="anvil-py-models-")


class Typed(unittest.TestCase):
    def test_reset_and_step_results_are_typed(self):
        proc, url = start_server({})
        self.addCleanup(lambda: (proc.kill(), proc.wait()))

        async def go():
            client = await AnvilClient.connect(url)
            try:
                env = client.env(
                    task="vector_add", seed=11, max_turns=1, group_id="grp-typed", reward={"wCorrect": 0.5}
                )
                r = await env.reset_result()
                self.assertIsInstance(r, ResetResult)
                self.assertIsInstance(r.observation, Observation)
                self.assertEqual([m.role for m in r.observation.messages], ["system", "user"])
                # Every reset option given to env() reaches the server.
                self.assertEqual(
                    (r.info.task, r.info.seed, r.info.max_turns, r.info.group), ("vector_add", 11, 1, "grp-typed")
                )
                s = await env.step_result(GOOD)
                self.assertIsInstance(s, StepResult)
                self.assertIsInstance(s.info, StepInfo)
                self.assertIsInstance(s.info.eval, EvalSummary)
                self.assertEqual(s.info.outcome, "ok")
                self.assertTrue(s.info.eval.correct)
                self.assertFalse(s.info.mask)
                self.assertTrue(s.truncated, "max_turns=1")
                self.assertEqual(s.info.reason, "max_turns")
                self.assertEqual(s.info.components.get("correct"), 0.5, "the reward override reached the server")
                # The Gymnasium-shaped calls still give plain dicts; options at reset override env()'s.
                obs, info = await env.reset(options={"group_id": "grp-2", "max_turns": 2})
                self.assertEqual((info["maxTurns"], env.group, info["seed"]), (2, "grp-2", 11))
                self.assertEqual(obs["messages"][0]["role"], "system")
            finally:
                await client.close()

        asyncio.run(go())


class BusyRetries(unittest.TestCase):
    def test_delays_follow_the_hint_and_are_jittered(self):
        policy = BusyRetry(attempts=3, base_s=0.1, max_s=2.0, jitter=0.5)
        rng = random.Random(1)
        delays = [policy.delay(0, 1000, rng) for _ in range(200)]
        self.assertTrue(all(0.5 <= d <= 1.5 for d in delays), "the server's retryAfterMs hint, ± 50 %")
        self.assertGreater(len(set(round(d, 6) for d in delays)), 150, "jittered")
        self.assertTrue(all(0.05 <= policy.delay(0, None, rng) <= 0.15 for _ in range(50)))
        self.assertTrue(all(policy.delay(10, None, rng) <= 3.0 for _ in range(50)), "at most max_s ± jitter")

    def test_a_busy_reset_is_retried_until_there_is_room_or_raised_when_retry_is_off(self):
        proc, url = start_server({"maxEpisodes": 1})
        self.addCleanup(lambda: (proc.kill(), proc.wait()))

        async def go():
            holder = await AnvilClient.connect(url)
            waiter = await AnvilClient.connect(url, busy_retry=BusyRetry(attempts=20, base_s=0.05, max_s=0.3))
            impatient = await AnvilClient.connect(url, busy_retry=BusyRetry(attempts=0))
            try:
                [held] = await holder.reset_group(1, task="vector_add")
                with self.assertRaises(BusyError):
                    await impatient.reset_group(1, task="vector_add")
                self.assertEqual(impatient.busy_retries, 0)

                async def free_later():
                    await asyncio.sleep(0.8)
                    await held.close()

                freeing = asyncio.ensure_future(free_later())
                [env] = await waiter.reset_group(1, task="vector_add")
                await freeing
                self.assertIsNotNone(env.episode)
                self.assertGreaterEqual(waiter.busy_retries, 1, "answered busy at first, then retried")
            finally:
                for c in (holder, waiter, impatient):
                    await c.close()

        asyncio.run(go())


if __name__ == "__main__":
    unittest.main()
