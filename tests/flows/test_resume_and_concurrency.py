"""Campaigns survive a SIGKILL (resume loses at most the batch in flight) and run concurrently on one SQLite store.

These tests drive the real `snhc optimise` command in separate processes, as a user would.
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

CAMPAIGN = """
name: {name}
optimiser: {{n_calls: {n_calls}, n_initial_points: 4, batch_size: 2, seed: {seed}}}
tracking: {{tracking_uri: "sqlite:///{store}/mlflow.db", experiment_name: resilience}}
"""


def snhc(*args, **popen):
    env = os.environ | {"PREFECT_HOME": popen.pop("prefect_home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=PROJECT_ROOT, env=env,
                            start_new_session=True, **popen)


def temporary_servers_of(pid: int) -> list[int]:
    """PIDs of the temporary Prefect servers that command ``pid`` started (flows/prefect_server.py)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if argv[1:4] == [b"-m", b"flows.prefect_server", str(pid).encode()]:
            found.append(int(entry))
    return found


def campaign_runs(client):
    experiment = client.get_experiment_by_name("resilience")
    if experiment is None:
        return experiment, []
    runs = client.search_runs([experiment.experiment_id], "tags.campaign != ''")
    return experiment, runs


def active_children(client, experiment, run_id):
    return client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'",
                              max_results=1000)


def test_sigkill_after_the_second_batch_then_resume(params, tmp_path):
    config = tmp_path / "campaign.yaml"
    config.write_text(CAMPAIGN.format(name="killed", n_calls=12, seed=5, store=tmp_path))
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    process = snhc("optimise", "--config", str(config), prefect_home=str(tmp_path / "prefect"),
                   stdout=open(tmp_path / "first.log", "w"), stderr=subprocess.STDOUT)
    run_id, saved, servers = None, [], []
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and len(saved) < 3:  # initial state + two batches
            assert process.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
            time.sleep(0.2)
            if run_id is None and (tmp_path / "mlflow.db").exists():
                try:
                    runs = campaign_runs(client)[1]
                except Exception:  # store still being created
                    continue
                run_id = runs[0].info.run_id if runs else None
            if run_id:
                saved = [a.path for a in client.list_artifacts(run_id, "state")]
        servers = temporary_servers_of(process.pid)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert len(saved) >= 3, "the campaign did not finish two batches in time"
    # the killed command's temporary Prefect server (its own session, so the kill missed it) stops by itself
    assert len(servers) == 1
    deadline = time.monotonic() + 30
    while temporary_servers_of(process.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert temporary_servers_of(process.pid) == [], "the temporary Prefect server outlived its killed command"
    assert client.get_run(run_id).info.status == "RUNNING"  # killed: nobody closed it

    from flows.store import MlflowStateStore

    before = MlflowStateStore(client).load(run_id, "resilience")["evaluations"]
    assert len(before) >= 4

    resumed = snhc("optimise", "--config", str(config), "--resume", run_id,
                   prefect_home=str(tmp_path / "prefect"), stdout=open(tmp_path / "resume.log", "w"),
                   stderr=subprocess.STDOUT)
    assert resumed.wait(timeout=240) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    # the resume says that it resumes, and from how many of the budget's evaluations (it had said nothing of it,
    # then counted the dense search's candidates as evaluations of the budget)
    resumed_log = (tmp_path / "resume.log").read_text()
    assert f"resuming run {run_id}: {len(before)} of 12 evaluations saved, told" in resumed_log

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    table = pd.read_csv(client.download_artifacts(run_id, "evaluations.csv", str(tmp_path)))
    # the optimiser's twelve, then the dense search's optimum and cheapest equivalent, once
    assert len(table) == 14 and table["evaluation"].is_unique
    assert (table["source"] == "model").sum() == 12 and list(table["source"].iloc[12:]) == ["dense_search"] * 2
    recipes = table[["sn_mass_fraction", "milling_time_h", "milling_speed_rpm", "ball_to_powder_ratio"]]
    assert not recipes.duplicated().any()
    for item in before:  # everything finished before the kill is in the final table, unchanged
        row = table.iloc[item["index"]]
        assert row["sn_mass_fraction"] == pytest.approx(item["recipe"]["sn_mass_fraction"])
        assert row["objective"] == pytest.approx(item["objective"])
    experiment, _ = campaign_runs(client)
    children = active_children(client, experiment, run_id)
    assert sorted(int(c.data.tags["evaluation"]) for c in children) == list(range(14))
    assert all(c.info.status == "FINISHED" for c in children)


def test_two_campaigns_at_once_on_one_sqlite_store(params, tmp_path):
    processes = []
    for name, seed in (("first", 1), ("second", 2)):
        config = tmp_path / f"{name}.yaml"
        config.write_text(CAMPAIGN.format(name=name, n_calls=8, seed=seed, store=tmp_path))
        processes.append(snhc("optimise", "--config", str(config), prefect_home=str(tmp_path / f"prefect-{name}"),
                              stdout=open(tmp_path / f"{name}.log", "w"), stderr=subprocess.STDOUT))
    for process, name in zip(processes, ("first", "second")):
        assert process.wait(timeout=300) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment, runs = campaign_runs(client)
    assert sorted(r.data.tags["campaign"] for r in runs) == ["first", "second"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "best_objective")] == [2, 4, 6, 8, 10]
        children = active_children(client, experiment, run.info.run_id)
        assert len(children) == 10  # eight by the optimiser, two from the dense search
        assert all("objective" in c.data.metrics for c in children)
