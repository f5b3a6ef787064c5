"""The PyBaMM fidelity in the product: `snhc predict/calibrate --fidelity physics`, and a flow whose target is beyond
the cell's reach (PyBaMM fails, the failures are recorded, the campaign still finishes on the surrogate's ranking)."""

import json

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from flows.cli import main
from flows.optimise import optimise_anode

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

RATE_CURRENTS = ["0.17", "0.42", "0.84", "1.7", "4.2"]
RATE_MEASURED = np.array([540.0, 533.0, 527.0, 507.0, 449.0])


def test_predict_at_physics_fidelity_keeps_the_json_shape_and_matches_the_rate_data(capsys, params):
    assert main(["predict", "--material", "Sn@HC-2-1", "--fidelity", "physics", "--json",
                 "--current", *RATE_CURRENTS]) == 0
    physics = json.loads(capsys.readouterr().out)
    assert main(["predict", "--material", "Sn@HC-2-1", "--json", "--current", *RATE_CURRENTS]) == 0
    surrogate = json.loads(capsys.readouterr().out)
    # the same value keys; the numpy model's record adds its 90 % intervals and extrapolation flags (PyBaMM's has none yet)
    assert set(physics) == set(surrogate) - {"interval_90", "extrapolated"}
    model = np.array([physics["capacity_at_current_mAh_per_g"][c] for c in RATE_CURRENTS])
    assert np.mean(np.abs(model - RATE_MEASURED) / RATE_MEASURED) * 100 <= 8.0
    assert physics["capacity_at_current_mAh_per_g"] != surrogate["capacity_at_current_mAh_per_g"]
    assert physics["particle_expansion_pct"] == surrogate["particle_expansion_pct"]  # no second fidelity for it
    assert physics["capacity_at_cycle_mAh_per_g"]["1"] == pytest.approx(physics["capacity_at_current_mAh_per_g"]["1.7"])


def test_predict_beyond_the_cells_reach_fails_with_the_reason(capsys, params):
    assert main(["predict", "--material", "Sn@HC-2-1", "--fidelity", "physics", "--current", "500"]) == 1
    assert "beyond what the electrode carries" in capsys.readouterr().err


def test_calibrate_the_physics_model(capsys, params):
    assert main(["calibrate", "--fidelity", "physics"]) == 0
    out = capsys.readouterr().out
    assert "MAPE" in out and "contact_resistance_ohm_g" in out


def test_flow_finishes_when_pybamm_cannot_reach_the_target(prefect_local, params, tmp_path):
    overrides = {"optimiser": {"n_calls": 4, "n_initial_points": 2, "batch_size": 2},
                 "objective": {"current_A_per_g": 500.0},
                 "tracking": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment_name": "unreachable"}}
    summary = optimise_anode(overrides=overrides)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["recommended.ranked_by"] == "model"
    comparison = pd.read_csv(client.download_artifacts(summary["run_id"], "fidelity_comparison.csv", str(tmp_path)))
    assert (comparison["physics_status"] == "FAILED").all()
    assert comparison["physics_reason"].str.contains("beyond what the electrode carries").all()


def test_the_physics_check_reports_each_recipe_on_the_console_and_in_the_prefect_run_log(prefect_local, params,
                                                                                          tmp_path, capsys):
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    overrides = {"optimiser": {"n_calls": 4, "n_initial_points": 2, "batch_size": 2}, "physics_check": {"top_k": 2},
                 "tracking": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment_name": "progress",
                              "log_evaluation_runs": False}}
    summary = optimise_anode(overrides=overrides)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("physics check (PyBaMM)")]
    # one line per recipe as it is solved (stdout is not a terminal here), each with what PyBaMM gave
    assert [line.split(":")[0] for line in lines] == ["physics check (PyBaMM) 1/2", "physics check (PyBaMM) 2/2"]
    assert all("objective" in line and "by PyBaMM" in line for line in lines)
    assert "ranked by the PyBaMM model" in summary["fidelity"]

    APILogHandler().flush()  # the run logger sends to the Prefect API in batches
    with get_client(sync_client=True) as client:
        messages = [log.message for log in client.read_logs()]
    assert {"physics check (PyBaMM) 1/2", "physics check (PyBaMM) 2/2"} <= {m.split(":")[0] for m in messages}
