"""The validation report end to end (issue 10, item 5): `snhc calibrate --validate --json` refits without each
leave-out's points, predicts them with 90 % intervals, compares the two fidelities over a space-filling design, and
logs it all to MLflow. Five refits, five ensembles and 64 PyBaMM recipes: about 90 s, so it runs with the
integration tests (the leave-outs themselves are unit-tested in tests/surrogate/test_uncertainty.py)."""

import json

import pandas as pd
import pytest

from flows.cli import main

pytestmark = pytest.mark.integration


def test_calibrate_validate_json_reports_every_leave_out_and_logs_it_to_mlflow(capsys, params, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["calibrate", "--validate", "--json", "--tracking-uri", uri]) == 0
    document = json.loads(capsys.readouterr().out)
    rows = document["leave_out"]
    names = " ".join(r["name"] for r in rows)
    for study in ("4.2 A/g from <= 1.7", "from <= 0.84", "cycle 12000 from <= 400", "HC at 1.7", "nano-Sn"):
        assert study in names
    for row in rows:
        assert {"name", "predicted", "measured", "error_pct", "interval_90", "covered"} <= set(row)
        low, high = row["interval_90"]
        assert row["covered"] == (low <= row["measured"] <= high)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("snhc-calibration")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "validation.json", "validation.csv", "fidelity_disagreement.csv", "fidelity_disagreement.png"}
    assert run.data.metrics["leave_out_count"] == len(rows)
    assert run.data.metrics["covered_nested_count"] == sum(r["covered_nested"] is True for r in rows)
    logged = pd.read_csv(client.download_artifacts(run.info.run_id, "validation.csv", str(tmp_path / "csv")))
    assert {"interval_90_nested", "covered_nested"} <= set(logged.columns)
    # where the two fidelities disagree, over a space-filling design of the search space (issue 10, item 6)
    fidelity = document["fidelity_disagreement"]
    assert fidelity["design_points"] == 64 and fidelity["current_A_per_g"] == [1.7, 4.2]
    design = pd.read_csv(client.download_artifacts(run.info.run_id, "fidelity_disagreement.csv", str(tmp_path)))
    assert len(design) == 64 and design["sn_mass_fraction"].between(0.05, 0.95).all()
    difference = design["difference_pct_at_4.2_A_per_g"]
    assert fidelity["max_abs_difference_pct"]["4.2"] == pytest.approx(difference.abs().max())
    assert run.data.metrics["fidelity.median_abs_difference_pct.at_4.2_A_per_g"] == pytest.approx(
        difference.abs().median())
