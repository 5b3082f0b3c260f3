"""The client installs into a virtual environment from the checkout (setup does it, as a user would:
`python3 -m venv … && …/bin/pip install ./clients/python`), and imports from there."""

import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


class Installed(unittest.TestCase):
    def test_the_installed_client_imports_outside_the_checkout(self):
        code = "import anvil_client, anvil_client.trl_grpo, anvil_client.trl_env; print(anvil_client.__file__)"
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tempfile.mkdtemp(),
            capture_output=True,
            text=True,
            env={"PATH": os.environ["PATH"]},
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        where = out.stdout.strip()
        self.assertIn("site-packages", where)
        self.assertFalse(where.startswith(os.path.join(ROOT, "clients")), where)


if __name__ == "__main__":
    unittest.main()
