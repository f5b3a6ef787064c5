"""flows/recalibration.py: lab rows teach the model (its error at them falls) and every move is reported."""

from pathlib import Path

import numpy as np

from flows.config import load_config
from flows.observations import read_observations
from flows.recalibration import recalibrate


def test_recalibration_on_lab_rows_brings_the_model_closer_to_them(monkeypatch):
    """The refit moves the model towards the lab rows at the cost of the study's own fit, and reports both. Its
    first 30 steps already show it (the full refit, 400 steps, takes a minute: the lab error falls 6.89 -> 5.66 %
    in 30 steps and to 5.65 % in 400)."""
    monkeypatch.setattr("flows.recalibration.MAX_FUNCTION_EVALUATIONS", 30)
    config = load_config()
    lab = read_observations("configs/lab_results_example.csv", config)
    result = recalibrate(config, lab)
    moves = result.prediction_moves
    assert len(moves) > 0
    before = np.mean(np.abs(moves["error_before_pct"]))
    after = np.mean(np.abs(moves["error_after_pct"]))
    assert after < before
    assert set(result.parameter_moves["parameter"]) == set(result.parameters.names("fitted"))
    metrics = result.metrics()
    assert metrics["recalibrated.lab_mape_pct.after"] == after
    # what the lab rows cost the study's own fit is reported, and so is a parameter the refit left on a bound
    before_chi2, after_chi2 = result.study_chi2
    assert result.study_rows > 0 and after_chi2 > before_chi2 > 0  # the refit trades study fit for lab fit
    assert metrics["recalibrated.study_chi2.after"] == after_chi2
    assert "the study's own" in result.report_text()
    assert "parameters on a bound after the refit: " + (", ".join(result.on_bound) or "none") in result.report_text()


def test_a_measured_zero_is_a_result_not_a_dropped_row(tmp_path, monkeypatch):
    """A dead cell's 0 mAh/g is kept in the refit (its scatter taken from the metric's typical size), not dropped.
    A few steps of the refit show the direction it pulls."""
    monkeypatch.setattr("flows.recalibration.MAX_FUNCTION_EVALUATIONS", 3)
    lab_file = tmp_path / "lab.csv"
    lab_file.write_text("sn_mass_fraction,milling_time_h,milling_speed_rpm,ball_to_powder_ratio,"
                        "objective_capacity_mAh_per_g\n0.6667,10,400,20,330\n0.9,30,550,30,0\n")
    config = load_config()
    result = recalibrate(config, read_observations(lab_file, config))
    moves = result.prediction_moves
    assert moves["measured"].tolist() == [330.0, 0.0]
    assert np.isnan(moves["error_after_pct"].iloc[1]) and np.isfinite(result.metrics()["recalibrated.lab_mape_pct.after"])
    assert moves["model_after"].iloc[1] < moves["model_before"].iloc[1]  # taught towards the dead cell


def test_a_lab_csv_saved_with_a_byte_order_mark_reads_as_without_it(tmp_path):
    """Excel's "CSV UTF-8" starts the file with a byte-order mark: the first column is still sample_id."""
    config = load_config()
    text = Path("configs/lab_results_example.csv").read_text(encoding="utf-8")
    marked = tmp_path / "excel.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    plain, excel = read_observations("configs/lab_results_example.csv", config), read_observations(marked, config)
    assert [e.recipe for e in excel.measured] == [e.recipe for e in plain.measured]
    assert [e.metrics for e in excel.measured] == [e.metrics for e in plain.measured]
