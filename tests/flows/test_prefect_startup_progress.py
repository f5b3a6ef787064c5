"""While a command waits for its temporary Prefect server, the console says so and then how long it took."""

import os
import subprocess
import sys

from surrogate.paths import PROJECT_ROOT

SCRIPT = """
from flows import prefect_server
from flows.cli import wait_for_prefect
server = prefect_server.start()
wait_for_prefect(server)
server.stop()
"""


def test_waiting_for_the_temporary_prefect_server_is_reported(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=PROJECT_ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Starting Prefect's temporary server")  # not a terminal: a line, not a spinner
    assert lines[1].startswith("Prefect server ready after ") and " s at http://127.0.0.1:" in lines[1]
    assert result.stdout == ""  # stdout stays free for --json
