"""The OpenEnv front door from Python, as OpenEnv's EnvClient speaks it (plain `websockets` and
`urllib`, not Anvil's client): {"type": ..., "data": ...} over /ws, JSON bodies over HTTP."""

import asyncio
import json
import re
import unittest
import urllib.error
import urllib.request

import websockets

import anvil_serve

GOOD = "```c\nvoid solve(const float *a, const float *b, float *out, int n) {\n  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];\n}\n```"


class OpenEnvWire(unittest.TestCase):
    def setUp(self):
        self.proc, url = anvil_serve.start_server(prefix="anvil-openenv-py-")
        self.port = int(re.search(r"ws://[^:/]+:(\d+)/", url).group(1))

    def tearDown(self):
        self.proc.kill()
        self.proc.wait()

    def test_websocket_session(self):
        async def go():
            async with websockets.connect(f"ws://127.0.0.1:{self.port}/ws") as ws:

                async def call(msg):
                    await ws.send(json.dumps(msg))
                    return json.loads(await ws.recv())

                r = await call({"type": "reset", "data": {"task": "vector_add", "seed": 2, "group_id": "py-g"}})
                self.assertEqual(r["type"], "observation")
                self.assertEqual(set(r["data"]), {"observation", "reward", "done"})
                self.assertIsNone(r["data"]["reward"])
                self.assertEqual(r["data"]["observation"]["group_id"], "py-g")
                s = await call({"type": "step", "data": {"message": GOOD}})
                self.assertEqual(s["type"], "observation")
                self.assertEqual(s["data"]["observation"]["info"]["outcome"], "ok")
                self.assertIsInstance(s["data"]["reward"], float)
                st = await call({"type": "state"})
                self.assertEqual((st["type"], st["data"]["step_count"]), ("state", 1))
                e = await call({"type": "step", "data": {"text": "wrong field"}})
                self.assertEqual((e["type"], e["data"]["code"]), ("error", "VALIDATION_ERROR"))
                await ws.send(json.dumps({"type": "close"}))
                await ws.wait_closed()

        asyncio.run(go())

    def test_http_endpoints(self):
        base = f"http://127.0.0.1:{self.port}"

        def post(path, body):
            req = urllib.request.Request(
                base + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
            )
            with urllib.request.urlopen(req) as r:
                return json.loads(r.read())

        reset = post("/reset", {"task": "vector_add"})
        episode = reset["observation"]["episode_id"]
        step = post("/step", {"action": {"message": "no code here"}, "episode_id": episode})
        self.assertEqual(step["observation"]["info"]["outcome"], "no_code")
        self.assertFalse(step["done"])
        with urllib.request.urlopen(f"{base}/schema") as r:
            self.assertEqual(set(json.loads(r.read())), {"action", "observation", "state"})
        with urllib.request.urlopen(f"{base}/health") as r:
            self.assertEqual(json.loads(r.read()), {"status": "healthy"})
        with self.assertRaises(urllib.error.HTTPError) as e:
            post("/step", {"action": {"message": "x"}, "episode_id": "nope"})
        self.assertEqual(e.exception.code, 404)


if __name__ == "__main__":
    unittest.main()
