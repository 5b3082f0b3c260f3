"""The Python client against a real `anvil serve` (Debian's python3-websockets
and python3-msgpack, run with /usr/bin/python3)."""

import asyncio
import os
import sys
import time
import unittest

import anvil_serve

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from anvil_client import (
    AnvilClient,
    EpisodeDoneError,
    SyncClient,
    UnauthorizedError,  # noqa: E402
    UnknownEpisodeError,
    UnknownTaskError,
)

GOOD = "```c\nvoid solve(const float *a, const float *b, float *out, int n) {\n  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];\n}\n```"
LOOP = (
    "```c\nvoid solve(const float *a, const float *b, float *out, int n) {\n  for (volatile int x = 0;; x++) {}\n}\n```"
)
SERVER = {}


def start_server(token=None):
    return anvil_serve.start_server({"maxGroupSize": 64, "maxEpisodes": 5000}, token=token)


def setUpModule():
    SERVER["proc"], SERVER["url"] = start_server()


def tearDownModule():
    SERVER["proc"].kill()
    SERVER["proc"].wait()


def run(coro):
    return asyncio.run(coro)


class GymShapes(unittest.TestCase):
    def test_reset_and_step_have_gymnasium_shapes(self):
        async def go():
            client = await AnvilClient.connect(SERVER["url"])
            env = client.env(task="vector_add")
            obs, info = await env.reset(seed=3)
            self.assertEqual([m["role"] for m in obs["messages"]], ["system", "user"])
            self.assertEqual(info["task"], "vector_add")
            self.assertEqual(info["seed"], 3)
            stages = []
            obs, reward, terminated, truncated, info = await env.step(
                GOOD, meta={"policy": 1}, on_progress=lambda p: stages.append(p["stage"])
            )
            self.assertEqual(info["outcome"], "ok")
            self.assertGreater(reward, 0.5)
            self.assertFalse(terminated)
            self.assertFalse(truncated)
            self.assertIn("queued", stages)
            self.assertEqual(obs["messages"][0]["role"], "user")
            _, reward, _, _, info = await env.step("no code at all")
            self.assertEqual(info["outcome"], "no_code")
            self.assertEqual(reward, 0.0)
            await client.close()

        run(go())

    def test_group_reset_shares_task_and_seed(self):
        async def go():
            client = await AnvilClient.connect(SERVER["url"], encoding="json")
            envs = await client.reset_group(4, task="sum_reduce", seed=11, max_turns=2)
            self.assertEqual(len({e.group for e in envs}), 1)
            self.assertEqual(sorted(e.index for e in envs), [0, 1, 2, 3])
            self.assertEqual({e.info["seed"] for e in envs}, {11})
            await client.close()

        run(go())


class Concurrency(unittest.TestCase):
    def test_a_thousand_episodes_over_one_connection(self):
        async def go():
            client = await AnvilClient.connect(SERVER["url"])
            envs = []
            for _ in range(16):
                envs += await client.reset_group(64, task="vector_add", max_turns=1)
            envs = envs[:1000]
            t0 = time.monotonic()
            results = await asyncio.gather(*(e.step("just words, no code") for e in envs))
            self.assertEqual(len(results), 1000)
            self.assertTrue(all(r[4]["outcome"] == "no_code" and r[3] for r in results))
            self.assertLess(time.monotonic() - t0, 60)
            await client.close()

        run(go())


class Control(unittest.TestCase):
    def test_cancelling_a_step_stops_it_on_the_server(self):
        async def go():
            client = await AnvilClient.connect(SERVER["url"])
            env = client.env(task="vector_add")
            await env.reset()
            task = asyncio.ensure_future(env.step(LOOP))
            await asyncio.sleep(1.0)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            for _ in range(100):
                state = await env.state()
                if state["state"] == "ready":
                    break
                await asyncio.sleep(0.1)
            self.assertEqual(state["state"], "ready")
            self.assertEqual(state["turns"], [])
            await client.close()

        run(go())

    def test_reconnects_and_resumes(self):
        async def go():
            client = await AnvilClient.connect(SERVER["url"])
            session = client.session
            env = client.env(task="vector_add")
            await env.reset(seed=21)
            pending = asyncio.ensure_future(env.step(GOOD))
            await asyncio.sleep(0.2)
            client.drop_connection()
            _, reward, _, _, info = await pending
            self.assertEqual(info["outcome"], "ok")
            self.assertEqual(client.session, session)
            self.assertEqual(len((await env.state())["turns"]), 1)
            await client.close()

        run(go())

    def test_typed_errors(self):
        async def go():
            client = await AnvilClient.connect(SERVER["url"])
            with self.assertRaises(UnknownTaskError):
                await client.reset_group(1, task="nope")
            env = client.env(task="vector_add")
            await env.reset()
            episode = env.episode
            await env.close()
            with self.assertRaises(UnknownEpisodeError) as caught:
                await client._step(episode, GOOD, None, None)
            self.assertEqual(caught.exception.code, "unknown_episode")
            [done] = await client.reset_group(1, task="vector_add", max_turns=1)
            await done.step("no code")
            with self.assertRaises(EpisodeDoneError):
                await done.step("no code")
            await client.close()

        run(go())

    def test_a_token_is_required_when_configured(self):
        proc, url = start_server(token="s3cret")
        try:
            with self.assertRaises(UnauthorizedError):
                run(AnvilClient.connect(url, token="wrong", reconnect=False))

            async def ok():
                client = await AnvilClient.connect(url, token="s3cret")
                self.assertTrue(await client.tasks())
                await client.close()

            run(ok())
        finally:
            proc.kill()
            proc.wait()


class Sync(unittest.TestCase):
    def test_the_synchronous_wrapper(self):
        with SyncClient(SERVER["url"]) as client:
            env = client.env(task="vector_add")
            obs, info = env.reset(seed=1)
            self.assertEqual(info["task"], "vector_add")
            _, reward, terminated, truncated, info = env.step({"role": "assistant", "content": GOOD})
            self.assertEqual(info["outcome"], "ok")
            group = client.reset_group(3, task="vector_add")
            self.assertEqual(len(group), 3)
            self.assertTrue(len(client.tasks(split="eval")) > 0)


if __name__ == "__main__":
    unittest.main()
