"""The team stack, end to end on 127.0.0.1: PostgreSQL, an MLflow server on it, a Prefect server with a process work
pool and one worker, the team deployment on a local Dask cluster of 2 workers. One triggered run must complete and
leave its parent and child runs in the PostgreSQL-backed MLflow. Every process is stopped by PID.

Run with ``make integration`` (also called by .ci/run). PostgreSQL comes from Debian's packages; the test is skipped,
with the reason, only where it truly cannot be installed.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from surrogate.paths import PROJECT_ROOT
from tests.conftest import free_port, prefect_api as api, stop, wait_for_flow_run, wait_for_http

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def postgres_binaries() -> Path:
    """Folder of PostgreSQL's server binaries, installing Debian's package if it is missing."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("PostgreSQL is not installed and cannot be: needs root and apt-get")
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
            result = subprocess.run(command, capture_output=True, text=True,
                                    env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"})
            if result.returncode != 0:
                pytest.skip(f"PostgreSQL cannot be installed here: {' '.join(command)} failed: "
                            f"{result.stderr.strip()[-500:]}")
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent


def as_postgres() -> dict:
    """PostgreSQL refuses to run as root: subprocess options that run its binaries as the package's postgres user."""
    return {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}




@pytest.fixture()
def processes():
    """Started servers, stopped by PID in reverse order whatever happens."""
    started: list[subprocess.Popen] = []
    yield started
    for process in reversed(started):
        stop(process)


@pytest.fixture()
def postgres_data():
    """A data folder the postgres user may write; removed after the servers (set up later) have stopped."""
    data = Path(tempfile.mkdtemp(prefix="snhc-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    yield data
    shutil.rmtree(data, ignore_errors=True)


def start(processes, command, log: Path, **kwargs) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                               **kwargs)
    processes.append(process)
    return process


def test_team_stack_runs_a_dask_deployment_tracked_in_postgres(postgres_data, processes, tmp_path, params):
    import psycopg2
    from mlflow.tracking import MlflowClient

    binaries = postgres_binaries()
    data = postgres_data
    subprocess.run([str(binaries / "initdb"), "-D", str(data / "db"), "--auth=trust", "-U", "postgres"],
                   check=True, capture_output=True, cwd=data, **as_postgres())
    pg_port = free_port()
    postgres = start(processes, [str(binaries / "postgres"), "-D", str(data / "db"), "-p", str(pg_port),
                                 "-k", str(data), "-c", "listen_addresses=127.0.0.1"], tmp_path / "postgres.log",
                     cwd=data, **as_postgres())
    deadline = time.monotonic() + 60
    while True:
        assert postgres.poll() is None, (tmp_path / "postgres.log").read_text()
        try:
            connection = psycopg2.connect(host="127.0.0.1", port=pg_port, user="postgres", dbname="postgres")
            break
        except psycopg2.OperationalError:
            assert time.monotonic() < deadline, "PostgreSQL did not start"
            time.sleep(0.5)
    connection.autocommit = True
    connection.cursor().execute("CREATE DATABASE mlflow")
    connection.close()

    # MLflow tracking server on PostgreSQL, artifacts proxied to a local folder
    mlflow_port = free_port()
    backend = f"postgresql://postgres@127.0.0.1:{pg_port}/mlflow"
    mlflow = start(processes, [str(BIN / "mlflow"), "server", "--backend-store-uri", backend,
                               "--artifacts-destination", (tmp_path / "artifacts").as_uri(), "--host", "127.0.0.1",
                               "--port", str(mlflow_port), "--workers", "1"], tmp_path / "mlflow.log")
    wait_for_http(f"http://127.0.0.1:{mlflow_port}/health", 120, mlflow)

    # Prefect server, process work pool, the team deployment, one worker
    prefect_port = free_port()
    base = f"http://127.0.0.1:{prefect_port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": base, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1", "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
        "SNHC_PROJECT_DIR": str(PROJECT_ROOT)}
    server = start(processes, [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                               str(prefect_port)], tmp_path / "prefect-server.log", env=env)
    wait_for_http(f"{base}/health", 120, server)
    for command in (["work-pool", "create", "snhc-process", "--type", "process"],
                    ["--no-prompt", "deploy", "--name", "team-optimisation"]):
        result = subprocess.run([str(BIN / "prefect"), *command], cwd=PROJECT_ROOT, env=env, capture_output=True,
                                text=True, timeout=180)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    start(processes, [str(BIN / "prefect"), "worker", "start", "--pool", "snhc-process"], tmp_path / "worker.log",
          env=env, cwd=PROJECT_ROOT)

    deployment = api(base, "/deployments/name/optimise-anode/team-optimisation", method="GET")
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 1 * * *"]
    run = api(base, f"/deployments/{deployment['id']}/create_flow_run", {"parameters": {
        "config_path": "configs/team.yaml",
        "overrides": {"optimiser": {"n_calls": 8, "n_initial_points": 4, "batch_size": 4}}}})
    state = wait_for_flow_run(base, run["id"], 420)
    assert state == "COMPLETED", (tmp_path / "worker.log").read_text()[-4000:]
    dask_runs = api(base, "/flow_runs/filter", {"flows": {"name": {"any_": ["optimise-anode-on-runner"]}}})
    assert [r["state"]["type"] for r in dask_runs] == ["COMPLETED"]

    client = MlflowClient(f"http://127.0.0.1:{mlflow_port}")
    experiment = client.get_experiment_by_name("snhc-team")
    parents = client.search_runs([experiment.experiment_id], "tags.campaign = 'team'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    sources = sorted(c.data.tags["source"] for c in children)  # the optimiser's 8, and the dense search's optimum
    assert sources == ["dense_search"] * 2 + ["model"] * 8, sources  # and its cheapest equivalent
    assert all(c.info.status == "FINISHED" for c in children)
    assert "evaluations.csv" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    with psycopg2.connect(host="127.0.0.1", port=pg_port, user="postgres", dbname="mlflow") as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT count(*) FROM runs WHERE experiment_id = %s", (int(experiment.experiment_id),))
        assert cursor.fetchone()[0] == 1 + len(children)  # parent + every evaluation, stored in PostgreSQL
