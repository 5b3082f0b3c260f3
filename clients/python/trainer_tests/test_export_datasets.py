"""`anvil export` of a real run, loaded with Hugging Face `datasets` (load_dataset("parquet", ...)):
the columns a trainer reads, with their types, and the same values as the JSON Lines export."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from datasets import load_dataset  # noqa: E402

from anvil_client import SyncClient  # noqa: E402
from test_trl_grpo import GOOD, ROOT, start_server  # noqa: E402

CLI = os.path.join(ROOT, "dist", "scripts", "anvil.js")


class ExportLoadsWithDatasets(unittest.TestCase):
    def test_trl_layout_parquet_loads_with_the_columns_and_types(self):
        workdir = tempfile.mkdtemp(prefix="anvil-export-hf-")
        proc, url = start_server(workdir)
        self.addCleanup(lambda: (proc.kill(), proc.wait()))
        client = SyncClient(url)
        self.addCleanup(client.close)
        for i, env in enumerate(client.reset_group(2, task="vector_add", seed=5, group_id="grpo-0", max_turns=1)):
            env.step(
                GOOD if i == 0 else "no code", completion_ids=[3, 4, 5], logprobs=[-0.1, -0.2, -0.3], policy_version=7
            )
        lone = client.env(task="vector_add", max_turns=1)
        lone.reset(seed=6)
        lone.step("still no code")

        out = os.path.join(workdir, "turns.parquet")
        r = subprocess.run(
            [
                "node",
                CLI,
                "export",
                "--logs",
                os.path.join(workdir, "logs"),
                "--out",
                out,
                "--layout",
                "trl",
                "--per-token",
            ],
            capture_output=True,
            text=True,
        )
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 of 2 groups hold one episode", r.stderr)
        jsonl = os.path.join(workdir, "turns.jsonl")
        r = subprocess.run(
            [
                "node",
                CLI,
                "export",
                "--logs",
                os.path.join(workdir, "logs"),
                "--out",
                jsonl,
                "--layout",
                "trl",
                "--per-token",
            ],
            capture_output=True,
            text=True,
        )
        self.assertEqual(r.returncode, 0, r.stderr)

        ds = load_dataset("parquet", data_files=out, split="train", cache_dir=os.path.join(workdir, "hf"))
        self.assertEqual(len(ds), 3)
        f = ds.features
        for name in (
            "prompt",
            "completion",
            "reward",
            "advantage",
            "mask",
            "seed",
            "index",
            "taskVersion",
            "policyVersion",
            "completionIds",
            "logprobs",
            "tokenMask",
            "tokenAdvantages",
            "group",
            "episode",
            "turn",
        ):
            self.assertIn(name, f, name)
        self.assertNotIn("messages", f)
        self.assertEqual(f["seed"].dtype, "int32")
        self.assertEqual(f["reward"].dtype, "float64")
        self.assertEqual(f["components"].dtype, "string")
        self.assertEqual(f["prompt"].feature["role"].dtype, "string")
        rows = {(row["group"], row["index"]): row for row in ds}
        good = rows[("grpo-0", 0)]
        self.assertEqual(good["completion"], [{"role": "assistant", "content": GOOD}])
        self.assertEqual([m["role"] for m in good["prompt"]], ["system", "user"])
        self.assertEqual(good["completionIds"], [3, 4, 5])
        self.assertEqual(good["policyVersion"], "7")
        self.assertEqual(good["seed"], 5)
        self.assertEqual(good["tokenMask"], [1, 1, 1])
        self.assertEqual(good["tokenAdvantages"], [good["advantage"]] * 3)
        self.assertAlmostEqual(good["advantage"], good["reward"] - rows[("grpo-0", 1)]["reward"])
        with open(jsonl) as fh:
            lines = [json.loads(line) for line in fh]
        self.assertEqual([sorted(x) for x in lines], [sorted(row) for row in ds])
        for a, b in zip(lines, ds):
            self.assertEqual(a, b, "the same values in JSON Lines and Parquet")


if __name__ == "__main__":
    unittest.main()
