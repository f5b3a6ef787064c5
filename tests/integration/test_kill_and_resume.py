"""Kill a real `snhc optimise` at ten points, resume each time, and lose no finished evaluation.

One campaign is stopped again and again, by SIGKILL (a power cut), SIGINT (Ctrl-C) and SIGTERM (a scheduler), before
its first state save, after batches, and during the PyBaMM physics check; each time `--resume` picks it up. At the
end the run is FINISHED with every evaluation exactly once and unchanged since it was first saved, and extending
the finished campaign with a larger `--n-calls` works. Run with ``make integration``.
"""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from surrogate.paths import PROJECT_ROOT

pytestmark = pytest.mark.integration

N_CALLS, BATCH = 40, 2  # 20 batches: enough for every kill point on a fast, idle machine too
N_DENSE = 2  # the dense search's model optimum and its cheapest equivalent, outside the optimiser's budget
CAMPAIGN = """
name: kill-points
optimiser: {{n_calls: {n_calls}, n_initial_points: 4, batch_size: {batch}, seed: 11}}
tracking: {{tracking_uri: "sqlite:///{store}/mlflow.db", experiment_name: kill-points}}
physics_check: {{top_k: 5}}
"""
PHYSICS_STARTED = "physics check: re-evaluating"

# (signal, when): None: as soon as the run exists, before its first save; an integer k: once this attempt has saved
# k new batches; "physics": all batches saved and the physics check started
KILL_POINTS = [
    (signal.SIGKILL, None),
    (signal.SIGINT, 1),
    (signal.SIGTERM, 1),
    (signal.SIGKILL, 2),
    (signal.SIGINT, 1),
    (signal.SIGKILL, 1),
    (signal.SIGTERM, 2),
    (signal.SIGINT, "physics"),
    (signal.SIGKILL, "physics"),
    (signal.SIGTERM, "physics"),
]


def snhc(tmp_path, log, *args):
    env = os.environ | {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                        "SNHC_CACHE_DIR": os.environ.get("SNHC_CACHE_DIR", str(tmp_path / "cache"))}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen([sys.executable, "-m", "flows.cli", "optimise", *args], cwd=PROJECT_ROOT, env=env,
                            start_new_session=True, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def the_run(client):
    experiment = client.get_experiment_by_name("kill-points")
    runs = client.search_runs([experiment.experiment_id], "tags.campaign = 'kill-points'") if experiment else []
    return runs[0] if runs else None


def saves(client, run_id) -> int:
    return len(client.list_artifacts(run_id, "state"))


def wait_for(point, client, process, log, run_id):
    """Block until the kill point is reached; returns the run id."""
    start = saves(client, run_id) if run_id else 0  # saves so far: an attempt's kill point counts new ones
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, f"finished before the kill point {point}: {log.read_text()[-2000:]}"
        time.sleep(0.1)
        try:
            run = the_run(client) if run_id is None else client.get_run(run_id)
        except Exception:  # the store is still being created
            continue
        if run is None:
            continue
        run_id = run.info.run_id
        if point == "physics":
            if PHYSICS_STARTED in log.read_text():  # printed as the check starts; PyBaMM's import takes seconds
                return run_id
        elif point is None or saves(client, run_id) >= start + point:
            return run_id
    raise AssertionError(f"kill point {point} not reached: {log.read_text()[-2000:]}")


def test_ten_kill_points_lose_nothing_and_a_finished_campaign_extends(params, tmp_path):
    config = tmp_path / "campaign.yaml"
    config.write_text(CAMPAIGN.format(n_calls=N_CALLS, batch=BATCH, store=tmp_path))
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run_id, first_seen = None, {}
    for number, (signum, point) in enumerate(KILL_POINTS):
        log = tmp_path / f"attempt-{number}.log"
        args = ["--config", str(config)] + (["--resume", run_id] if run_id else [])
        process = snhc(tmp_path, log, *args)
        try:
            run_id = wait_for(point, client, process, log, run_id)
            os.killpg(process.pid, signum)
            code = process.wait(timeout=60)  # Ctrl-C and SIGTERM stop within seconds, not minutes
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        run = client.get_run(run_id)
        if signum == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:
            expected = 130 if signum == signal.SIGINT else 143
            assert code == expected, log.read_text()[-2000:]
            assert run.info.status == "KILLED"
            assert f"--resume {run_id}" in log.read_text(), "the resume command is printed"
            assert f"of {N_CALLS} evaluations saved" in log.read_text(), "counted as the progress line counts"
        from flows.store import MlflowStateStore

        for item in MlflowStateStore(client).load(run_id, "kill-points")["evaluations"]:
            first_seen.setdefault(item["index"], item)

    log = tmp_path / "final.log"
    final = snhc(tmp_path, log, "--config", str(config), "--resume", run_id)
    assert final.wait(timeout=300) == 0, log.read_text()[-3000:]
    run = client.get_run(run_id)
    # a finished resumed run keeps no stale reason why an earlier attempt stopped
    assert run.info.status == "FINISHED" and not {"failure_reason", "stopped_by"} & set(run.data.tags)
    table = pd.read_csv(client.download_artifacts(run_id, "evaluations.csv", str(tmp_path)))
    assert len(table) == N_CALLS + N_DENSE and table["evaluation"].is_unique
    assert (table["source"] == "model").sum() == N_CALLS
    for index, item in first_seen.items():  # every saved evaluation survives unchanged
        assert table.iloc[index]["objective"] == pytest.approx(item["objective"])
        assert table.iloc[index]["sn_mass_fraction"] == pytest.approx(item["recipe"]["sn_mass_fraction"])
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'",
                                  max_results=1000)
    assert sorted(int(c.data.tags["evaluation"]) for c in children) == list(range(N_CALLS + N_DENSE))

    log = tmp_path / "extend.log"
    extended = snhc(tmp_path, log, "--config", str(config), "--resume", run_id, "--n-calls", str(N_CALLS + 4))
    assert extended.wait(timeout=300) == 0, log.read_text()[-3000:]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    table = pd.read_csv(client.download_artifacts(run_id, "evaluations.csv", str(tmp_path)))
    assert len(table) == N_CALLS + 4 + N_DENSE, "the dense search's recipes are held, not evaluated again"
    assert (table["source"] == "model").sum() == N_CALLS + 4
    assert len(client.list_artifacts(run_id, "recommendations")) >= 2, "each recommendation is kept"
