"""One `anvil serve` for a test: a free port, its own folder for logs and config, quick
evaluation settings with the test's own configuration keys on top."""

import json
import os
import re
import subprocess
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
QUICK_EVAL = {"timingBudgetMs": 250, "minReps": 3, "maxReps": 12, "callTimeoutMs": 60000}


def start_server(config=None, token=None, prefix="anvil-py-"):
    """Returns the server's process and its protocol v1 WebSocket URL (ws://host:port/v1/ws)."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    path = os.path.join(workdir, "config.json")
    with open(path, "w") as f:
        json.dump({"eval": QUICK_EVAL, **(config or {})}, f)
    args = ["node", os.path.join(ROOT, "dist", "scripts", "anvil.js"), "serve", "--port", "0"]
    args += ["--log-dir", os.path.join(workdir, "logs"), "--config", path]
    if token:
        args += ["--token", token]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    proc.stdout.close()
    return proc, re.search(r"(ws://\S+/v1/ws)", line).group(1)
