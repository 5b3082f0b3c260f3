"""Anvil through Gymnasium 1.3: `gymnasium.make("anvil/Kernel-v0", url=..., taskset=..., task=...)`
with Text spaces, Gymnasium's environment checker, and masked turns that cannot pass for a 0."""

import os
import shutil
import sys
import tempfile
import unittest
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import gymnasium  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import anvil_client  # noqa: E402,F401  (registers anvil/Kernel-v0)
from anvil_client.gym_env import AnvilKernelEnv, MaskedTurnError  # noqa: E402
from test_trl_grpo import GOOD, crash_taskset, start_server  # noqa: E402


class GymnasiumEnv(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="anvil-gym-")
        cls.proc, cls.url = start_server(cls.workdir)

    @classmethod
    def tearDownClass(cls):
        cls.proc.kill()
        cls.proc.wait()

    def test_make_reset_step_with_text_spaces(self):
        self.assertEqual(gymnasium.__version__.split(".")[:2], ["1", "3"])
        env = gymnasium.make("anvil/Kernel-v0", url=self.url, taskset="builtin-c", task="vector_add", max_turns=2)
        self.addCleanup(env.close)
        self.assertIsInstance(env.unwrapped, AnvilKernelEnv)
        self.assertIsInstance(env.observation_space, gymnasium.spaces.Text)
        self.assertIsInstance(env.action_space, gymnasium.spaces.Text)
        obs, info = env.reset(seed=3)
        self.assertTrue(env.observation_space.contains(obs))
        self.assertIn("void solve", obs)
        self.assertEqual(info["task"], "vector_add")
        self.assertEqual(info["seed"], 3)
        again, _ = env.reset(seed=3)
        self.assertEqual(again, obs, "the same seed, the same observation")
        obs, reward, terminated, truncated, info = env.step(GOOD)
        self.assertEqual(info["outcome"], "ok")
        self.assertGreater(reward, 0)
        self.assertFalse(terminated or truncated)
        self.assertTrue(env.observation_space.contains(obs))
        _, _, terminated, truncated, _ = env.step("no code")
        self.assertTrue(truncated, "Anvil's turn limit ends the episode")

    def test_the_same_seed_and_action_give_the_same_info_with_no_measurements_in_it(self):
        env = AnvilKernelEnv(self.url, taskset="builtin-c", task="vector_add", max_turns=2)
        self.addCleanup(env.close)
        # A long reply takes a measurable time to read: its stage times would differ between the two steps.
        action = GOOD + "\n" + "lorem ipsum " * 20000
        infos = []
        for _ in range(2):
            env.reset(seed=5)
            infos.append(env.step(action)[4])
        self.assertEqual(infos[0]["outcome"], "ok")
        self.assertEqual(infos[0], infos[1])
        self.assertNotIn("cached", infos[0]["eval"])
        self.assertTrue(infos[0]["eval"]["stages"])
        self.assertTrue(all("ms" not in st for st in infos[0]["eval"]["stages"]))

    def test_the_environment_checker_passes(self):
        env = AnvilKernelEnv(self.url, taskset="builtin-c", task="vector_add", max_turns=2)
        self.addCleanup(env.close)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env, skip_render_check=True)
        self.assertEqual([str(w.message) for w in caught if "gymnasium" in w.filename.replace(os.sep, "/")], [])


class MaskedTurns(unittest.TestCase):
    def test_a_masked_turn_raises_or_is_flagged_never_a_plain_zero(self):
        workdir = tempfile.mkdtemp(prefix="anvil-gym-broken-")
        self.addCleanup(shutil.rmtree, workdir, ignore_errors=True)
        broken = crash_taskset(workdir)
        proc, url = start_server(workdir, broken)
        self.addCleanup(lambda: (proc.kill(), proc.wait()))
        env = gymnasium.make("anvil/Kernel-v0", url=url, task="vector_add")
        self.addCleanup(env.close)
        env.reset(seed=1)
        with self.assertRaises(MaskedTurnError) as e:
            env.step(GOOD)
        self.assertTrue(e.exception.retryable)
        flagged = gymnasium.make("anvil/Kernel-v0", url=url, task="vector_add", on_masked="info")
        self.addCleanup(flagged.close)
        flagged.reset(seed=1)
        _, reward, terminated, truncated, info = flagged.step(GOOD)
        self.assertTrue(info["mask"])
        self.assertEqual((reward, terminated, truncated), (0.0, False, False))


if __name__ == "__main__":
    unittest.main()
