"""Four `snhc optimise` campaigns started at once on one SQLite store, on a machine kept busy by CPU hogs, all finish
with the project's default start-up settings (each command's own Prefect server, its default start-up limit).
Run with ``make integration``.
"""

import multiprocessing
import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from surrogate.paths import PROJECT_ROOT

pytestmark = pytest.mark.integration

CAMPAIGN = """
name: {name}
optimiser: {{n_calls: 8, n_initial_points: 4, batch_size: 4, seed: {seed}}}
tracking: {{tracking_uri: "sqlite:///{store}/mlflow.db", experiment_name: under-load}}
physics_check: {{top_k: 0}}
"""
HOGS = 2  # one busy process per core of this machine's kind


def burn() -> None:
    while True:
        pass


def test_four_campaigns_at_once_on_one_store_under_load(params, tmp_path):
    hogs = [multiprocessing.Process(target=burn, daemon=True) for _ in range(HOGS)]
    for hog in hogs:
        hog.start()
    processes = []
    try:
        for number in range(4):
            config = tmp_path / f"campaign-{number}.yaml"
            config.write_text(CAMPAIGN.format(name=f"load-{number}", seed=number, store=tmp_path))
            env = os.environ | {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
            env.pop("PREFECT_API_URL", None)
            env.pop("SNHC_PREFECT_STARTUP_TIMEOUT_S", None)  # the project's default start-up settings
            processes.append(subprocess.Popen([sys.executable, "-m", "flows.cli", "optimise", "--config", str(config)],
                                              cwd=PROJECT_ROOT, env=env, start_new_session=True,
                                              stdout=open(tmp_path / f"campaign-{number}.log", "w"),
                                              stderr=subprocess.STDOUT))
        codes = [process.wait(timeout=900) for process in processes]
    finally:
        for hog in hogs:
            hog.terminate()
        for process in processes:
            if process.poll() is None:
                process.kill()
    for number, code in enumerate(codes):
        assert code == 0, (tmp_path / f"campaign-{number}.log").read_text()[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("under-load")
    runs = client.search_runs([experiment.experiment_id], "tags.campaign != ''")
    assert sorted(r.data.tags["campaign"] for r in runs) == [f"load-{n}" for n in range(4)]
    assert all(r.info.status == "FINISHED" for r in runs)
