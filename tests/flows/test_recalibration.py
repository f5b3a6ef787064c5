"""flows/recalibration.py: lab rows teach the model (its error at them falls) and every move is reported."""

import numpy as np

from flows.config import load_config
from flows.observations import read_observations
from flows.recalibration import recalibrate


def test_recalibration_on_lab_rows_brings_the_model_closer_to_them():
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
