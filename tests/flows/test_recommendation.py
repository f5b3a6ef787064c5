"""The recommendation rule (flows/recommendation.py): equivalent recipes go to the cheapest, bounds are reported,
and a multi-objective campaign logs its front to MLflow."""

import json
from pathlib import Path

import pytest
import pandas as pd
from mlflow.tracking import MlflowClient

from flows.campaign import Campaign
from flows.config import load_config
from flows.evaluation import LAB, Evaluation
from flows.fidelity import rank
from flows.observations import LabData
from flows.optimise import optimise_anode
from flows.recommendation import (Recommendation, bound_notes, lab_row_beyond_prediction, recommend,
                                  with_measured_note)
from surrogate.recipe import complete
from surrogate.status import Status


def evaluated(recipe, objective):
    return Evaluation(complete(recipe), Status.FINISHED, objective, {"objective": objective})


def recipe(time_h, rpm=400.0, bpr=20.0, sn=0.65):
    return {"sn_mass_fraction": sn, "milling_time_h": time_h, "milling_speed_rpm": rpm, "ball_to_powder_ratio": bpr}


class NoModel:
    models = []


def campaign_of(rows, tolerance_pct=0.5):
    config = load_config(None, {"recommendation": {"tolerance_pct": tolerance_pct}})
    campaign = Campaign.new(config)
    campaign.add_batch([[r["sn_mass_fraction"], r["milling_time_h"], r["milling_speed_rpm"], r["ball_to_powder_ratio"]]
                        for r, _ in rows], [evaluated(r, score) for r, score in rows])
    return campaign


def test_the_cheapest_recipe_within_the_tolerance_is_recommended_and_said_so():
    rows = [(recipe(40.0), 340.0), (recipe(12.0), 339.0), (recipe(12.0, rpm=300.0), 338.9), (recipe(2.0), 320.0)]
    result = recommend(campaign_of(rows), NoModel())
    # 12 h recipes are within 0.5 % of 340; of the two, the slower mill uses less energy.
    assert result.index == 2
    assert "cheapest of the 3 evaluated recipes within 0.5 %" in result.rule_note
    assert recommend(campaign_of(rows, tolerance_pct=0.0), NoModel()).index == 0


def test_a_recommendation_on_a_search_bound_says_which_and_suggests_widening():
    config = load_config()
    notes = bound_notes(complete(recipe(40.0, bpr=5.0)), config)
    assert len(notes) == 2
    assert "milling_time_h = 40 sits on the upper search bound (40)" in notes[0]
    assert "search_space.milling_time_h.high" in notes[0]
    assert "ball_to_powder_ratio = 5 sits on the lower search bound" in notes[1]
    assert bound_notes(complete(recipe(10.0)), config) == ()


def test_a_multi_objective_campaign_logs_its_front_with_every_objective(prefect_local, params, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    summary = optimise_anode("configs/pareto.yaml", {
        "optimiser": {"n_calls": 8, "n_initial_points": 6, "batch_size": 2, "seed": 1},
        "tracking": {"tracking_uri": uri, "experiment_name": "pareto", "log_evaluation_runs": False}})
    client = MlflowClient(uri)
    artifacts = {a.path for a in client.list_artifacts(summary["run_id"])}
    assert {"pareto.csv", "pareto.png", "recommended_recipe.json"} <= artifacts
    front = pd.read_csv(client.download_artifacts(summary["run_id"], "pareto.csv", str(tmp_path)))
    assert {"capacity_mAh_per_g", "milling_time_h", "particle_expansion_pct", "recommended"} <= set(front.columns)
    assert front["recommended"].sum() == 1
    assert any("knee" in note for note in summary["notes"])
    # reported by its three objectives, not by the single score a one-objective campaign has, nor a GP it lacks
    assert list(summary["metrics"])[:3] == ["capacity_mAh_per_g", "milling_time_h", "particle_expansion_pct"]
    assert "objective" not in summary["metrics"] and not summary["extrapolated"]["milling_time_h"]
    low, high = summary["interval_90"]["capacity_mAh_per_g"]  # each objective the model predicts has its interval
    assert low <= summary["metrics"]["capacity_mAh_per_g"] <= high
    description = client.get_run(summary["run_id"]).data.tags["mlflow.note.content"]
    assert "Objectives: maximise capacity at 1.7 A/g" in description and "milling time" in description
    assert "optimiser GP" not in description
    # it has no GP mean: strict JSON says null (a NaN there is refused by strict parsers)
    text = Path(client.download_artifacts(summary["run_id"], "recommended_recipe.json", str(tmp_path))).read_text()
    record = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))
    assert record["optimiser_surrogate_mean_objective"] is None
    # snhc suggest ranks by the capacity objective alone: a multi-objective run is refused, not quietly re-ranked
    from flows.cli import main

    config = tmp_path / "pareto-store.yaml"
    config.write_text(f"tracking: {{tracking_uri: '{uri}', experiment_name: pareto}}\n")
    output = tmp_path / "next.csv"
    assert main(["suggest", "--config", str(config), "--resume", summary["run_id"], "--output", str(output)]) == 2
    assert "'objectives'" in capsys.readouterr().err and not output.exists()


def test_the_recommendation_carries_a_90_pct_interval_on_each_predicted_metric():
    from flows.config import load_config
    from flows.evaluation import LAB, campaign_parameters, evaluate_batch
    from flows.recommendation import with_intervals

    config = load_config()
    p, _ = campaign_parameters(config)
    recipe = {"sn_mass_fraction": 0.6, "milling_time_h": 8.0, "milling_speed_rpm": 400.0, "ball_to_powder_ratio": 20.0,
              "milling_atmosphere": "argon", "pause_duty_cycle": 1.0}
    (evaluation,) = evaluate_batch([recipe], p, config.objective)
    plain = Recommendation(0, evaluation, 0.0, 0.0, "")
    recommendation = with_intervals(plain, config)
    assert {"objective", "reversible_capacity_mAh_per_g", "particle_expansion_pct"} <= set(recommendation.intervals)
    for name, (low, high) in recommendation.intervals.items():
        assert low <= evaluation.metrics[name] <= high, name
    low, high = recommendation.intervals["objective"]
    assert high > low
    assert recommendation.record()["interval_90"] == recommendation.intervals
    measured = Recommendation(0, type(evaluation)(recipe, evaluation.status, 300.0, {}, source=LAB), 0.0, 0.0, "")
    assert with_intervals(measured, config).intervals == {}  # lab numbers are measurements, not predictions


def checked(campaign, physics_objectives):
    """A physics check of every evaluation of ``campaign`` (the model's best first), as flows/optimise.py builds it."""
    return pd.DataFrame({"evaluation": range(len(campaign.evaluations)),
                         "model_objective": [e.objective for e in campaign.evaluations],
                         "physics_objective": physics_objectives, "physics_status": "FINISHED"})


def test_pybamm_agreeing_within_noise_leaves_the_models_recommendation_and_the_note_says_so():
    campaign = campaign_of([(recipe(12.0), 340.0), (recipe(20.0, sn=0.6), 330.0)], tolerance_pct=0.0)
    ranking = rank(checked(campaign, [341.00, 341.07]), noise_mAh_per_g=0.1)
    result = recommend(campaign, NoModel(), ranking)
    assert result.index == 0
    assert "the fidelities agree on the choice (within noise + uncertainty)" in result.fidelity_note
    assert "physics-checked" not in result.rule_note


def test_pybamm_beyond_noise_replaces_the_models_recommendation():
    campaign = campaign_of([(recipe(12.0), 340.0), (recipe(20.0, sn=0.6), 330.0)], tolerance_pct=0.0)
    ranking = rank(checked(campaign, [341.0, 345.0]), noise_mAh_per_g=0.1)
    result = recommend(campaign, NoModel(), ranking)
    assert result.index == 1
    assert "ranked by the PyBaMM model" in result.fidelity_note and "physics-checked" in result.rule_note


def test_a_pybamm_score_the_check_cannot_tell_from_the_tolerance_edge_counts_as_equivalent():
    """PyBaMM ranks (the 40 h recipe beats the model's 12 h pick by 4 mAh/g, beyond noise 0.1 + uncertainty 0.5),
    and the 20 h recipe sits 0.05 % below the 0.5 % tolerance of PyBaMM's best: less than the check resolves
    (0.6 mAh/g), so it counts as equivalent and, cheaper than 40 h, is recommended. Without that resolution a
    0.1 % edge decided between 20 and 40 h of milling, and did so differently from seed to seed."""
    campaign = campaign_of([(recipe(12.0), 340.0), (recipe(40.0), 339.9), (recipe(20.0), 339.8)], tolerance_pct=0.5)
    table = checked(campaign, [344.0, 348.0, 346.1])  # 346.1 < 348 x 0.995 = 346.26, by 0.16 mAh/g
    table["model_difference_low_mAh_per_g"] = [0.0, -0.6, -0.7]
    table["model_difference_high_mAh_per_g"] = [0.0, 0.4, 0.3]
    ranking = rank(table, noise_mAh_per_g=0.1, reference=0)
    assert ranking.ranked_by == "physics" and ranking.tolerance_mAh_per_g == pytest.approx(0.6)
    result = recommend(campaign, NoModel(), ranking)
    assert result.index == 2
    assert "within 0.5 % + 0.60 mAh/g (what the check resolves)" in result.rule_note
    # the same scores with the resolution ignored: only PyBaMM's best is inside the tolerance
    ranking_without = rank(table.drop(columns=["model_difference_low_mAh_per_g", "model_difference_high_mAh_per_g"]),
                           noise_mAh_per_g=0.0, reference=0)
    assert recommend(campaign, NoModel(), ranking_without).index == 1


def test_a_swelling_interval_across_the_allowance_is_noted():
    """The capacity objective's optimum sits where the swelling reaches its allowance: when the recommended recipe's
    expansion interval straddles it, the recommendation says so; with a margin, nothing. A multi-objective
    campaign's limits the same way (a Pareto recommendation swelling 257 % [87-539] against 300 % had said nothing)."""
    from flows.recommendation import allowance_note

    config = load_config()
    straddling = allowance_note({"particle_expansion_pct": 250.2}, {"particle_expansion_pct": [171.7, 321.4]}, config)
    assert "250 % (90 % interval 172 to 321 %) straddles the objective's 250 % allowance" in straddling
    assert allowance_note({"particle_expansion_pct": 200.0}, {"particle_expansion_pct": [160.0, 240.0]}, config) == ""
    assert allowance_note({"particle_expansion_pct": 250.2}, {}, config) == ""
    # a multi-objective campaign has limits instead: each one its recommended value's interval straddles is named
    pareto = load_config("configs/pareto.yaml")  # limits: capacity >= 250 mAh/g, swelling <= 300 %
    note = allowance_note({"particle_expansion_pct": 256.8, "capacity_mAh_per_g": 359.0},
                          {"particle_expansion_pct": [87.1, 539.4], "capacity_mAh_per_g": [314.6, 371.0]}, pareto)
    assert note.startswith("its particle_expansion_pct 256.8 % (90 % interval 87.1 to 539.4) straddles the limit "
                           "300 %") and "capacity" not in note and "tighten recommendation.limits" in note
    # the nearest miss of a front that meets no limit is already past it: tightening would not help
    missed = allowance_note({"particle_expansion_pct": 334.9}, {"particle_expansion_pct": [120.0, 600.0]}, pareto)
    assert "straddles the limit 300 %" in missed and "tighten" not in missed and "measure it" in missed
    unlimited = pareto.model_copy(update={"recommendation": pareto.recommendation.model_copy(update={"limits": {}})})
    assert allowance_note({"particle_expansion_pct": 256.8}, {"particle_expansion_pct": [87.1, 539.4]},
                          unlimited) == ""


def test_the_recommendation_is_weighed_against_the_studys_own_recipe(monkeypatch):
    """The gap to the study's 2:1 recipe with the model's 90 % interval on it (within each ensemble member): a recipe
    far worse says so, the study's own recipe gets no note, and a multi-objective campaign none either."""
    import re

    from flows.evaluation import campaign_parameters, model_objective
    from flows.recommendation import study_note
    from surrogate.recipe import Recipes
    from surrogate.uncertainty import build_ensemble

    config = load_config()
    p, calibration = campaign_parameters(config)
    ensemble = build_ensemble(p, calibration)
    study = complete({"sn_mass_fraction": 2 / 3, "milling_time_h": 10.0, "milling_speed_rpm": 400.0,
                      "ball_to_powder_ratio": 20.0})
    assert study_note(study, ensemble, config) == ""
    for recipe in (study | {"sn_mass_fraction": 0.3}, study | {"milling_time_h": 21.0, "ball_to_powder_ratio": 5.0}):
        note = study_note(recipe, ensemble, config)
        gap, low, high = (float(x) for x in re.search(
            r": ([+-][\d.]+) mAh/g, 90 % interval of the gap ([+-][\d.]+) to ([+-][\d.]+)", note).groups())
        scores = model_objective(Recipes.from_records([study, recipe]), ensemble.central, config.objective)
        assert gap == pytest.approx(scores[1] - scores[0], abs=0.05) and low <= gap <= high
        assert ("cannot tell them apart" in note) == (low <= 0 <= high)
    assert "worse beyond the model's uncertainty" in study_note(study | {"sn_mass_fraction": 0.3}, ensemble, config)
    assert study_note(study | {"sn_mass_fraction": 0.3}, ensemble, load_config("configs/pareto.yaml")) == ""

    def failing(*args, **kwargs):
        raise FloatingPointError("solver did not converge")

    monkeypatch.setattr("flows.evaluation.model_objective", failing)  # a model failure: no note, an empty one
    assert study_note(study | {"sn_mass_fraction": 0.3}, ensemble, config) == ""


def lab_campaign(measured, sn=0.7, metric="objective", model=((12.0, 358.2), (20.0, 300.0))):
    """A campaign whose model evaluated recipes ``(hours, objective)`` (358.2 and 300 mAh/g) beside lab rows
    ``(hours, measured)`` at Sn ``sn`` that measured ``metric``."""
    campaign = campaign_of([(recipe(t), v) for t, v in model])
    rows = [Evaluation(complete(recipe(t, sn=sn)), Status.FINISHED, v, {metric: v}, source=LAB)
            for t, v in measured]
    campaign.lab = LabData(Path("/tmp/lab_results.csv"), rows, [2 + i for i in range(len(rows))], [])
    campaign.add_lab_results()
    return campaign


def test_a_lab_row_measured_above_the_recommended_prediction_is_pointed_out(tmp_path):
    """The recommendation is chosen among the model's predictions; a recipe the lab already made and measured
    higher is named (file and line), with the recommended recipe's predicted score and interval, and a lab whose
    rows all score below the prediction gets no note. The search's best and the lab's best are separate numbers."""
    campaign = lab_campaign([(6.0, 340.0), (8.0, 375.6)])
    chosen = recommend(campaign, NoModel())
    assert chosen.evaluation.objective == 358.2  # a measurement is not a prediction to rank against the model's
    assert campaign.best_modelled_objective() == 358.2 and campaign.best_objective(sources=(LAB,)) == 375.6
    noted = with_measured_note(Recommendation(**{**chosen.__dict__, "intervals": {"objective": [320.0, 370.0]}}),
                               campaign)
    assert "the lab already measured a recipe scoring 375.6 mAh/g (lab_results.csv line 3), above even the top of " \
        "its interval" in noted.measured_note
    assert "predicted 358.2 (90 % interval up to 370.0)" in noted.measured_note
    assert noted.measured_note in noted.notes() and noted.record()["lab_measured_better"] == noted.measured_note
    assert with_measured_note(chosen, lab_campaign([(6.0, 340.0), (8.0, 350.0)])).measured_note == ""

    # a row whose score is its capacity less the swelling penalty names both: "measured 324.0" had been quoted for a
    # line that reads 326 (a helper's new-user trial)
    penalised = lab_campaign([(8.0, 366.0)], metric="objective_capacity_mAh_per_g")
    row = penalised.lab.measured[0]
    row.metrics.update({"objective_capacity_mAh_per_g": 368.0, "particle_expansion_pct": 252.0})
    note = with_measured_note(chosen, penalised).measured_note
    assert "a recipe scoring 366.0 mAh/g (lab_results.csv line 2: capacity 368.0 less 2.0 of swelling penalty)" in note
    row.metrics["objective"] = 366.0  # a score the lab stated itself: on its line, not explained as a penalty
    assert "a recipe scoring 366.0 mAh/g (lab_results.csv line 2)" in with_measured_note(chosen, penalised).measured_note
    # a lab row's objective is the capacity objective's score: a campaign scored otherwise is not compared with it
    other = lab_campaign([(8.0, 375.6)])
    single = tmp_path / "single.yaml"
    single.write_text("objectives:\n  - kind: milling_time\n")
    other.config = load_config(single)
    assert not other.config.multi_objective and with_measured_note(chosen, other).measured_note == ""


def test_a_lab_row_measured_beyond_its_scatter_above_the_prediction_is_the_recommendation(tmp_path):
    """A lab row measured above the model's best prediction by more than the rows' stated scatter
    (lab_uncertainty_pct, 5 %) is recommended: the lab has a better recipe than any the model predicts. Within the
    scatter the prediction stands (the row is named by the measured note instead); a campaign scored otherwise than
    by the capacity objective never compares them."""
    from flows.recommendation import with_lab_note

    for measured, expected in (([(6.0, 340.0), (8.0, 376.2)], 376.2), ([(6.0, 340.0), (8.0, 375.6)], 358.2),
                               ([(8.0, 360.0), (6.0, 380.0)], 380.0)):
        campaign = lab_campaign(measured)
        chosen = recommend(campaign, NoModel())
        assert chosen.evaluation.objective == expected
        assert (chosen.evaluation.source == LAB) == (expected != 358.2)
        if expected != 358.2:
            assert "the lab's best measured recipe" in chosen.rule_note and "358.2" in chosen.rule_note
            assert with_measured_note(chosen, campaign).measured_note == ""
            assert with_lab_note(chosen, campaign, None) is chosen  # measured: no model's score to compare
    made = recommend(lab_campaign([(8.0, 376.2)]), NoModel())
    assert made.evaluation.source == LAB
    from flows.tracking import recommendation_table

    kinds = set(recommendation_table(made, 3)["what"])  # its numbers are measurements, in the run's table too
    assert "measured" in kinds and "predicted" not in kinds
    # not comparable with a prediction: a row outside the search space (Sn 0.97 > 0.95), which the optimiser never
    # took, and a capacity with no swelling measured (a prediction carries the swelling's penalty)
    assert recommend(lab_campaign([(8.0, 500.0)], sn=0.97), NoModel()).evaluation.objective == 358.2
    assert recommend(lab_campaign([(8.0, 500.0)], metric="objective_capacity_mAh_per_g"),
                     NoModel()).evaluation.objective == 358.2
    # against the best prediction, not the cheaper pick within the tolerance (10 % here: 330 at 2 h is picked)
    tolerant = lab_campaign([(8.0, 360.0)], model=((12.0, 360.0), (2.0, 330.0)))
    tolerant.config = load_config(overrides={"recommendation": {"tolerance_pct": 10.0}})
    chosen = recommend(tolerant, NoModel())
    assert chosen.evaluation.objective == 330.0 and chosen.evaluation.source != LAB
    other = lab_campaign([(8.0, 500.0)])
    single = tmp_path / "single.yaml"
    single.write_text("objectives:\n  - kind: milling_time\n")
    other.config = load_config(single)
    assert lab_row_beyond_prediction(other, other.evaluations[0]) is None


def test_a_front_whose_model_evaluations_all_failed_says_so_beside_lab_rows():
    """A multi-objective campaign's lab rows score no objective: with every model evaluation failed there is no
    front, and the recommendation says all failed (it had gone on to an empty front: KeyError 'evaluation')."""

    config = load_config(Path("configs/pareto.yaml"))
    row = Evaluation(complete(recipe(10.0)), Status.FINISHED, float("nan"), {"particle_expansion_pct": 260.0},
                     source=LAB)
    campaign = Campaign.new(config, LabData(Path("/tmp/lab.csv"), [row], [2], []))
    point = [0.6, 10.0, 400.0, 20.0]
    campaign.add_batch([point], [Evaluation(complete(recipe(10.0, sn=0.6)), Status.FAILED, float("nan"), {},
                                            "solver diverged")])
    with pytest.raises(RuntimeError, match="all 1 evaluations failed; first reason: solver diverged"):
        recommend(campaign, NoModel())


def test_a_pareto_recommendation_the_lab_rows_moved_beyond_the_study_models_interval_says_so(params):
    """Where a lab's rows taught a multi-objective campaign's model, an objective the model predicts that the lab's
    model puts outside the study model's 90 % interval at the recommended recipe is named, as a single objective's
    score is (a Pareto recommendation at 359 mAh/g where the study's model gives 161 had said nothing); milling time
    is the recipe's own and never named."""
    from dataclasses import replace

    from flows.evaluation import evaluate_batch
    from flows.recommendation import with_lab_note

    config = load_config(Path("configs/pareto.yaml"))
    made = Evaluation(complete(recipe(10.0)), Status.FINISHED, float("nan"), {"particle_expansion_pct": 260.0},
                      source=LAB)
    campaign = Campaign.new(config, LabData(Path("/tmp/lab.csv"), [made], [2], []))
    chosen = recipe(3.3, rpm=600.0, bpr=37.0, sn=0.67)
    (study,) = evaluate_batch([complete(chosen)], params, config.scoring())
    taught = replace(study, metrics={**study.metrics, "capacity_mAh_per_g": study.metrics["capacity_mAh_per_g"] + 250})
    note = with_lab_note(Recommendation(0, taught, 0.0, 0.0, "", "", ()), campaign, params).lab_note
    assert note.startswith(f"the lab's model gives capacity_mAh_per_g "
                           f"{taught.metrics['capacity_mAh_per_g']:.4g} mAh/g where the study's model gives "
                           f"{study.metrics['capacity_mAh_per_g']:.1f}"), note
    assert "milling_time_h" not in note and "particle_expansion_pct" not in note
    assert with_lab_note(Recommendation(0, study, 0.0, 0.0, "", "", ()), campaign, params).lab_note == ""


def test_a_resumed_campaign_says_when_its_recommendation_moved():
    """A resume that recommends another recipe than its last run names the old one, field by field, with what it
    scores now beside the new one's score, and says when new lab rows taught the model; the same recipe, or no
    earlier recommendation, gets no note. A resume with two new lab rows had moved the recommendation from 23.5 h
    to 1.2 h saying only "the recommendation may move"."""
    from flows.recommendation import with_moved_note

    campaign = campaign_of([(recipe(40.0), 335.0), (recipe(12.0, rpm=300.0), 339.0)])
    chosen = recommend(campaign, NoModel())
    assert chosen.index == 1
    note = with_moved_note(chosen, campaign, previous=0).moved_note
    assert note.startswith("moved since the last run's recommendation (evaluation 0: milling_time_h 40 -> 12, "
                           "milling_speed_rpm 400 -> 300)")
    assert "it scores 335.0 now, this one 339.0 mAh/g" in note and "lab rows" not in note
    assert note in with_moved_note(chosen, campaign, previous=0).notes()
    assert with_moved_note(chosen, campaign, previous=1).moved_note == ""  # the same recipe
    assert with_moved_note(chosen, campaign, previous=None).moved_note == ""  # a new campaign
    campaign.saved = 2
    campaign.lab = LabData(Path("/tmp/lab.csv"), [Evaluation(complete(recipe(6.0)), Status.FINISHED, 300.0,
                                                             {"objective": 300.0}, source=LAB)], [2], [])
    campaign.add_lab_results()
    assert with_moved_note(chosen, campaign, previous=0).moved_note.endswith("lab rows new since then taught the model")
    # a new row outside the search space taught nothing (the outside-the-search-space note says so)
    campaign.evaluations[-1] = Evaluation(complete(recipe(6.0) | {"milling_atmosphere": "air"}), Status.FINISHED,
                                          300.0, {"objective": 300.0}, source=LAB)
    assert "taught" not in with_moved_note(chosen, campaign, previous=0).moved_note


@pytest.mark.parametrize("objective, beyond", [({}, False), ({"current_A_per_g": 8.0, "temperature_C": 45.0}, True),
                                               ({"cycle": 20000}, True)])
def test_a_recommendation_says_whether_its_conditions_lie_beyond_the_data(objective, beyond):
    """Whether the objective's conditions alone are an extrapolation (as they would be for the study's own
    composite), so the caption of the flags can say both reasons when both apply; the microstructure's metrics,
    never measured, do not count."""
    from flows.evaluation import campaign_parameters, evaluate_batch
    from flows.recommendation import with_intervals

    config = load_config(None, {"objective": objective} if objective else None)
    p, _ = campaign_parameters(config)
    chosen = evaluate_batch([complete(recipe(20.0, rpm=450.0, bpr=10.0))], p, config.objective)[0]
    assert with_intervals(Recommendation(0, chosen, 0.0, 0.0, ""), config, p).conditions_beyond == beyond
