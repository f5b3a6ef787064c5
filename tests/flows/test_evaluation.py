"""Batch evaluation (flows/evaluation.py): one bad recipe never stops a batch; failures carry their reason."""

import numpy as np
import pytest

import flows.evaluation as evaluation
from flows.evaluation import Evaluation, evaluate_batch
from flows.objective import CapacityObjective
from surrogate.status import Status

GOOD = {"sn_mass_fraction": 0.6, "milling_time_h": 8.0, "milling_speed_rpm": 400.0, "ball_to_powder_ratio": 20.0}


def test_a_batch_is_scored_by_the_objective(params):
    results = evaluate_batch([GOOD, GOOD | {"sn_mass_fraction": 0.3}], params, CapacityObjective())
    assert all(r.ok and r.status is Status.FINISHED for r in results)
    for r in results:
        assert r.objective == pytest.approx(r.metrics["objective_capacity_mAh_per_g"]
                                            - r.metrics["expansion_penalty_mAh_per_g"])


def test_only_the_culprit_fails(params, monkeypatch):
    real = evaluation.predict

    def fails_for_tin_rich(recipes, p, request=None):
        if (recipes.sn_mass_fraction > 0.5).any():
            raise FloatingPointError("did not converge")
        return real(recipes, p, request)

    monkeypatch.setattr(evaluation, "predict", fails_for_tin_rich)
    results = evaluate_batch([GOOD, GOOD | {"sn_mass_fraction": 0.3}], params, CapacityObjective())
    assert [r.status for r in results] == [Status.FAILED, Status.FINISHED]
    assert "FloatingPointError: did not converge" in results[0].reason and np.isnan(results[0].objective)


def test_a_non_finite_objective_is_a_failure_naming_the_metrics(params, monkeypatch):
    real = evaluation.model_metrics

    def nan_capacity(*args, **kwargs):
        metrics = real(*args, **kwargs)
        metrics["objective"] = np.full_like(metrics["objective"], np.nan)
        return metrics

    monkeypatch.setattr(evaluation, "model_metrics", nan_capacity)
    result = evaluate_batch([GOOD], params, CapacityObjective())[0]
    assert result.status is Status.FAILED and "objective" in result.reason


def test_records_round_trip():
    item = Evaluation(GOOD, Status.FAILED, float("nan"), {}, "why", "lab")
    again = Evaluation.from_record(item.record())
    assert again.status is Status.FAILED and again.reason == "why" and again.source == "lab"


def test_a_metric_beyond_the_data_is_flagged_by_its_own_condition():
    """The recommendation's flags: the study's 2:1 material is inside its data at the study's conditions; its
    objective 50 000 cycles on is an extrapolation while its rate points are not; a recipe milled otherwise is
    beyond the calibration's materials in everything but arithmetic."""
    from flows.config import load_config
    from flows.evaluation import campaign_parameters, evaluate_batch, metric_extrapolated
    from surrogate.uncertainty import build_ensemble

    study = {"sn_mass_fraction": 2 / 3, "milling_time_h": 10.0, "milling_speed_rpm": 400.0,
             "ball_to_powder_ratio": 20.0, "milling_atmosphere": "argon", "pause_duty_cycle": 1.0}
    flags = {}
    for cycle in (1000, 50_000):
        config = load_config(overrides={"objective": {"cycle": cycle}})
        p, calibration = campaign_parameters(config)
        domain = build_ensemble(p, calibration).domain
        for name, recipe in (("study", study), ("milled otherwise", {**study, "milling_speed_rpm": 600.0})):
            metrics = evaluate_batch([recipe], p, config.objective)[0].metrics
            flags[name, cycle] = metric_extrapolated(recipe, domain, config.scoring().request(), metrics)
    assert not any(flags["study", 1000][k] for k in ("objective", "capacity_at_4.2_A_per_g_mAh_per_g",
                                                      "capacity_at_cycle_12000_mAh_per_g", "particle_expansion_pct"))
    assert flags["study", 50_000]["objective"] and flags["study", 50_000]["objective_capacity_mAh_per_g"]
    assert not flags["study", 50_000]["capacity_at_4.2_A_per_g_mAh_per_g"]
    otherwise = flags["milled otherwise", 1000]
    assert not otherwise["theoretical_capacity_mAh_per_g"] and not otherwise["milling_dose"]
    assert all(v for k, v in otherwise.items() if k not in ("theoretical_capacity_mAh_per_g", "milling_dose"))
