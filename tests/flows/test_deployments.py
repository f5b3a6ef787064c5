"""Scheduled deployments on a real Prefect server: registered with cron schedules, and a triggered run completes.

The test starts `prefect server start` on a free 127.0.0.1 port and `snhc serve` against it, talks to the server
over its REST API, and stops both by PID.
"""

import os
import subprocess
import sys
import time

import pytest

from flows.deployments import NIGHTLY_CRON, WEEKLY_WHAT_IF_CRON
from surrogate.paths import PROJECT_ROOT
from tests.conftest import free_port, prefect_api as api, stop, wait_for_flow_run, wait_for_http




@pytest.fixture()
def prefect_server(tmp_path, params):
    port = free_port()
    base = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": base,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=open(tmp_path / "server.log", "w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(f"{base}/health", 120, server)
        yield base, env
    finally:
        stop(server)


def test_deployments_have_cron_schedules_and_a_triggered_run_completes(prefect_server, tmp_path):
    base, env = prefect_server
    serving = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve"], cwd=PROJECT_ROOT, env=env,
                               stdout=open(tmp_path / "serve.log", "w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        deployments = []
        while len(deployments) < 2 and time.monotonic() < deadline:
            assert serving.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(1)
            deployments = api(base, "/deployments/filter", {})
        by_name = {d["name"]: d for d in deployments}
        assert set(by_name) == {"nightly-optimisation", "weekly-what-if"}
        crons = {name: [s["schedule"]["cron"] for s in d["schedules"]] for name, d in by_name.items()}
        assert crons == {"nightly-optimisation": [NIGHTLY_CRON], "weekly-what-if": [WEEKLY_WHAT_IF_CRON]}
        assert all(s["active"] for d in deployments for s in d["schedules"])

        store = tmp_path / "mlruns"
        parameters = {"config_path": "configs/default.yaml", "overrides": {
            "optimiser": {"n_calls": 4, "n_initial_points": 2, "batch_size": 2},
            "tracking": {"tracking_uri": f"sqlite:///{store}/mlflow.db"}}}
        run = api(base, f"/deployments/{by_name['nightly-optimisation']['id']}/create_flow_run",
                  {"parameters": parameters})
        state = wait_for_flow_run(base, run["id"], 240)
        assert state == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
        assert (store / "mlflow.db").exists()
    finally:
        stop(serving)


def test_cron_schedules_carry_the_configured_time_zone():
    import yaml

    from flows.deployments import TIMEZONE, build_deployments
    from flows.config import read_yaml
    from surrogate.paths import config_dir

    assert TIMEZONE == read_yaml(config_dir() / "schedules.yaml")["timezone"] == "UTC"
    zones = {d.name: [(s.schedule.cron, s.schedule.timezone) for s in d.schedules] for d in build_deployments()}
    assert zones == {"nightly-optimisation": [(NIGHTLY_CRON, "UTC")], "weekly-what-if": [(WEEKLY_WHAT_IF_CRON, "UTC")]}
    moved = build_deployments(timezone="Europe/London")
    assert {s.schedule.timezone for d in moved for s in d.schedules} == {"Europe/London"}
    # prefect.yaml (the team's deployments) states the same zone on every schedule
    team = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    assert {s["timezone"] for d in team["deployments"] for s in d["schedules"]} == {TIMEZONE}


@pytest.mark.parametrize("text, expected", [
    ('timezone: UTC\nnightly_optimisation: "99 99 * * *"\nweekly_what_if: "0 3 * * 1"\n', "nightly_optimisation"),
    ('timezone: Mars/Olympus\nnightly_optimisation: "0 2 * * *"\nweekly_what_if: "0 3 * * 1"\n', "timezone"),
    ('timezone: UTC\nnightly_optimisation: "0 2 * * *"\n', "expected exactly the keys"),
    # a sixth field is read by Prefect as seconds: 60 runs a night
    ('timezone: UTC\nnightly_optimisation: "0 2 * * * *"\nweekly_what_if: "0 3 * * 1"\n', "five fields"),
    ('timezone: UTC\nnightly_optimisation: 2\nweekly_what_if: "0 3 * * 1"\n', "five fields"),
    ('timezone: UTC\nnightly_optimisation: "@sometimes"\nweekly_what_if: "0 3 * * 1"\n', "five fields"),
    # dates that never come: the deployment would never run
    ('timezone: UTC\nnightly_optimisation: "0 2 * * *"\nweekly_what_if: "0 3 30 2 *"\n', "weekly_what_if .* never fires"),
    ('timezone: UTC\nnightly_optimisation: "0 0 31 4 *"\nweekly_what_if: "0 3 * * 1"\n', "never fires"),
    # the server's own clock, or nothing: what the file exists to avoid
    ('timezone: localtime\nnightly_optimisation: "0 2 * * *"\nweekly_what_if: "0 3 * * 1"\n', "timezone"),
    ("timezone: ''\nnightly_optimisation: \"0 2 * * *\"\nweekly_what_if: \"0 3 * * 1\"\n", "timezone"),
    ("- just a list\n", "mapping"),
])
def test_a_broken_schedules_file_is_one_line_naming_the_key(tmp_path, text, expected):
    from flows.deployments import load_schedules
    from flows.inputs import InputError

    path = tmp_path / "schedules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=expected) as error:
        load_schedules(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_a_schedule_of_29_february_or_a_cron_macro_is_kept(tmp_path):
    """A rare date is a date: 29 February fires within four years (eight across a skipped leap year); a macro
    Prefect reads (@daily, @weekly) is one word, not five fields, and is kept too."""
    from flows.deployments import load_schedules

    path = tmp_path / "schedules.yaml"
    path.write_text('timezone: Europe/London\nnightly_optimisation: "0 0 29 2 *"\nweekly_what_if: "@weekly"\n')
    assert load_schedules(path)["nightly_optimisation"] == "0 0 29 2 *"
    assert load_schedules(path)["weekly_what_if"] == "@weekly"
