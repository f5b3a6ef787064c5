"""What-if studies: named sets of overrides on a base campaign, each a prediction or a full optimisation.

A scenario file (``configs/whatif/*.yaml``, read by flows/scenarios.py) holds a name, a description, a mode
(``predict`` or ``optimise``), the overrides deep-merged onto the base config, and for ``predict`` the recipes to
evaluate (material names or explicit recipes). All scenarios are validated before anything runs.

Scenarios are compared like with like: besides a baseline row (the base config, unchanged), every row gets the same
fixed-definition metrics, at the BASE objective's current and cycle whatever the scenario's own objective says:
capacity after cycles (the condition is in the column name), particle expansion, cycles to 80 % retention at that
current, and milling time. Each row is evaluated at its scenario's temperature (column ``temperature_C``) with its
scenario's model parameters. Capacity, expansion and cycles to 80 % carry the model's 90 % interval (the parameter
ensemble of the scenario's own calibration, ``surrogate/uncertainty.py``, built once per parameter set); milling
time is a recipe input and has none.

The study is recorded in its own MLflow experiment (default ``snhc-what-if``): a parent run with one child per
scenario, the comparison as a table (``what_if_comparison.json``), CSV and PNG; the CSV and PNG are also written to a
local folder.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from prefect import flow

from flows import reporting
from flows.config import (CampaignConfig, CampaignOverrides, config_document, deep_merge, default_config_path,
                          overrides_document, validate_config)
from flows.campaign import Campaign
from flows.evaluation import batch_intervals, evaluate_batch, scoring_flags
from flows.inputs import check_tracking_store, redact, secrets_masked, write_csv
from flows.interrupts import CampaignInterrupted
from flows.optimise import calibrate_task, campaign_evaluator, run_campaign
from flows.metrics import (INTERVAL, RETENTION_END_OF_LIFE_PCT, TO_RETENTION, capacity_after_cycles_name,
                           cycles_to_retention_name, extrapolated_column, interval_columns)
from flows.objective import CAPACITY, SCORE, CapacityObjective
from flows.scenarios import BASELINE, WHAT_IF_EXPERIMENT, Scenario, load_scenarios, same_campaign
from flows.tracking import NOTE_TAG, Tracker, flatten, source_tags
from surrogate.model import PredictionRequest, predict
from surrogate.parameters import ModelParameters
from surrogate.recipe import FIELD_NAMES, FIELDS, Recipes

if TYPE_CHECKING:
    from surrogate.uncertainty import Ensemble

DEFAULT_OUTPUT_DIR = "whatif-results"
# Cycles to 80 % retention are searched up to the longest test an objective may ask for (objective.cycle <= 100 000),
# on a log grid fine enough for a 2 % reading of the cycle count.
RETENTION_HORIZON_CYCLES = 100_000
RETENTION_GRID_POINTS = 400


def fixed_metric_names(base: CapacityObjective) -> dict[str, str]:
    """The fixed-definition columns of a study on ``base``: role -> column name (the condition in the name)."""
    return {"capacity": capacity_after_cycles_name(base.current_A_per_g, base.cycle),
            "expansion": "particle_expansion_pct",
            "cycles_to_retention": cycles_to_retention_name(base.current_A_per_g),
            "milling_time": "milling_time_h"}


# Which measured quantity each fixed metric is a value of, so its interval scatters as snhc predict's does (the
# measurement's sigma and, away from the materials it was measured on, the model form's; configs/uncertainty.yaml):
# capacity after cycles is a cycling measurement, expansion a particle-expansion one. Cycles to 80 % have no stated
# measurement sigma, so their interval is the model's (parameter ensemble) alone; milling time is a recipe input
# and has no interval.
INTERVAL_QUANTITIES = {"capacity": "capacity_at_cycle_mAh_per_g", "expansion": "particle_expansion_pct",
                       "cycles_to_retention": None}


def fixed_metrics(recipes: list[dict[str, Any]], p: ModelParameters, base: CapacityObjective,
                  temperature_C: float, ensemble: Ensemble | None = None) -> list[dict[str, float]]:
    """The fixed-definition metrics of each recipe: capacity at the base objective's current after its cycles,
    particle expansion, cycles until the capacity at that current falls below 80 % of its first test cycle
    (NaN when it does not within the horizon), milling time; at ``temperature_C`` with parameters ``p``.

    With ``ensemble`` (the parameter ensemble of ``p``'s calibration, :func:`surrogate.uncertainty.build_ensemble`)
    each metric of :data:`INTERVAL_QUANTITIES` also gets its 90 % interval in the columns of
    :func:`interval_columns`, and its flag in :func:`extrapolated_column`. A cycles-to-80 % bound past the horizon is
    NaN: "not within the horizon"; its flag is the fade's up to the cycle it reaches (or the horizon).
    """
    names = fixed_metric_names(base)
    grid = np.unique(np.geomspace(1, RETENTION_HORIZON_CYCLES, RETENTION_GRID_POINTS).round().astype(int))
    request = PredictionRequest(currents_A_per_g=(), cycling_current_A_per_g=base.current_A_per_g,
                                cycles=tuple(int(c) for c in grid), temperature_C=temperature_C,
                                target_current_A_per_g=base.current_A_per_g, target_cycle=base.cycle,
                                target_temperature_C=temperature_C)
    batch = Recipes.from_records(recipes)
    uncertain = ensemble.predict(batch, request) if ensemble is not None else None
    prediction = uncertain.central if uncertain is not None else predict(batch, p, request)
    values_of = {"capacity": lambda pred: pred.target_capacity_mAh_per_g,
                 "expansion": lambda pred: pred.particle_expansion_pct,
                 "cycles_to_retention": lambda pred: _cycles_to_retention(pred, grid)}
    central = {role: values_of[role](prediction) for role in values_of}
    bands = {}
    if uncertain is not None:
        for role, quantity in INTERVAL_QUANTITIES.items():
            censored = role == "cycles_to_retention"  # a member that never falls below 80 % counts as the horizon
            low, high = uncertain.scalar_interval(
                (lambda pred: np.nan_to_num(values_of[role](pred), nan=RETENTION_HORIZON_CYCLES)) if censored
                else values_of[role], quantity)
            if censored:
                low, high = (np.where(bound >= RETENTION_HORIZON_CYCLES, np.nan, bound) for bound in (low, high))
            bands[role] = low, high
        flags = {"capacity": [uncertain.target_extrapolated(i) for i in range(batch.size)],
                 "expansion": [uncertain.extrapolated(i, "particle_expansion_pct") for i in range(batch.size)],
                 "cycles_to_retention": [uncertain.extrapolated(i, "capacity_at_cycle_mAh_per_g", cycle=reached)
                                         for i, reached in enumerate(_cycles_reached(central["cycles_to_retention"]))]}
    rows = []
    for i, recipe in enumerate(recipes):
        row = {names[role]: float(central[role][i]) for role in values_of}
        row[names["milling_time"]] = float(recipe["milling_time_h"])
        for role, (low, high) in bands.items():
            row |= dict(zip(interval_columns(names[role]), (float(low[i]), float(high[i]))))
            row[extrapolated_column(names[role])] = bool(flags[role][i])
        rows.append(row)
    return rows


def _cycles_reached(cycles_to_retention: np.ndarray) -> list[int]:
    """The last cycle a cycles-to-80 % value rests on: its own, or the horizon where it is not reached within it."""
    return [int(np.ceil(c)) for c in np.nan_to_num(cycles_to_retention, nan=RETENTION_HORIZON_CYCLES)]


def _cycles_to_retention(prediction, cycles: np.ndarray) -> np.ndarray:
    """Per recipe: cycles until its capacity falls below 80 % of its first test cycle (NaN: not on ``cycles``)."""
    retention = prediction.capacity_at_cycle_mAh_per_g / prediction.capacity_at_cycle_mAh_per_g[:, :1]
    return np.array([_cycles_to(r, cycles, RETENTION_END_OF_LIFE_PCT / 100) for r in retention])


def ensemble_for(p: ModelParameters, calibration, cache: dict[str, Ensemble]) -> Ensemble | None:
    """The parameter ensemble of ``p`` and its calibration, built once per parameter set of a study (~4 s each);
    None, with a line saying why, when it cannot be built (the scenario's values are then reported without
    intervals)."""
    from surrogate.uncertainty import build_ensemble

    key = p.digest()
    if key not in cache:
        try:
            cache[key] = build_ensemble(p, calibration)
        except Exception as error:  # noqa: BLE001 - intervals are a report; the values still count
            reporting.say(f"[yellow]no 90 % intervals for this parameter set:[/] {type(error).__name__}: {error}")
            cache[key] = None
    return cache[key]


def _cycles_to(retention: np.ndarray, cycles: np.ndarray, threshold: float) -> float:
    """First cycle at which retention falls below ``threshold`` (log-interpolated), NaN if it never does."""
    below = np.flatnonzero(retention < threshold)
    if below.size == 0:
        return float("nan")
    j = int(below[0])
    if j == 0:
        return float(cycles[0])
    x0, x1, y0, y1 = np.log(cycles[j - 1]), np.log(cycles[j]), retention[j - 1], retention[j]
    return float(np.exp(x0 + (threshold - y0) * (x1 - x0) / (y1 - y0)))


def _predict_scenario(scenario, config, recipes, tracker, parent_run_id, base, ensembles) -> list[dict[str, Any]]:
    p, calibration = calibrate_task(config)
    evaluations = evaluate_batch([recipe for _, recipe in recipes], p, config.objective)
    ensemble = ensemble_for(p, calibration, ensembles)
    fixed = fixed_metrics([recipe for _, recipe in recipes], p, base, config.objective.temperature_C, ensemble)
    rows = []
    with tracker.run(scenario.name, {"scenario": scenario.name, "mode": "predict",
                                     NOTE_TAG: scenario.description}, parent_run_id) as run_id:
        tracker.log(run_id, params={"scenario_description": scenario.description, **_override_params(scenario)})
        for (label, recipe), evaluation, metrics in zip(recipes, evaluations, fixed):
            key = re.sub(r"[^\w\-. :/]", "_", label)  # MLflow metric names allow no '@'
            row = _row(scenario.name, "predict", label, recipe, evaluation.status.value, config, metrics, run_id,
                       own=evaluation, ensemble=ensemble)
            tracker.log(run_id, metrics={f"{key}.{k}": v for k, v in metrics.items() if _logged(k)}
                        | {f"{key}.{k}": row[k] for k in (OWN_OBJECTIVE, OWN_CAPACITY) if np.isfinite(row[k])})
            rows.append(row)
    return rows


def _optimise_scenario(scenario, config, tracker, parent_run_id, base, experiment_name, ensembles
                       ) -> list[dict[str, Any]]:
    named = deep_merge(config.model_dump(), {"name": scenario.name, "description": scenario.description,
                                             "tracking": {"log_evaluation_runs": False,
                                                          "experiment_name": experiment_name}})
    result = run_campaign(Campaign.new(CampaignConfig.model_validate(named)), parent_run_id)
    p, calibration = calibrate_task(config)
    ensemble = ensemble_for(p, calibration, ensembles)
    metrics = fixed_metrics([result.recipe], p, base, config.objective.temperature_C, ensemble)[0]
    row = _row(scenario.name, "optimise", "recommended", result.recipe, "FINISHED", config, metrics, result.run_id,
               "; ".join(result.recommendation.notes()), own=result.recommendation.evaluation, ensemble=ensemble)
    tracker.log(result.run_id, tags={"scenario": scenario.name, "mode": "optimise"},
                params=_override_params(scenario),
                metrics={f"fixed.{k}": v for k, v in metrics.items() if _logged(k)}
                | {k: row[k] for k in (OWN_OBJECTIVE, OWN_CAPACITY) if np.isfinite(row[k])})
    return [row]


def _logged(column: str) -> bool:
    """Whether a fixed-metric column is logged as an MLflow metric: values, not their bounds or flags (the table
    artifact has those)."""
    return INTERVAL not in column and not column.endswith("_extrapolated")


def _row(scenario: str, mode: str, label: str, recipe: dict, status: str, config: CampaignConfig,
         metrics: dict[str, float], run_id: str, notes: str = "", own=None,
         ensemble: "Ensemble | None" = None) -> dict[str, Any]:
    """One comparison row; ``notes``: what the console says with a recommendation (its rule, a search bound it sits
    on, a recipe beyond the calibration's materials), so the CSV, the JSON and the run page warn as it does.

    ``own``: the row's evaluation under the scenario's own objective, whose value, capacity and definition (e.g.
    capacity at 4.2 A/g for a scenario that targets it) the row carries beside the fixed-definition metrics: a
    scenario that asks about 4.2 A/g had shown that number nowhere. They are not compared across rows (the
    definitions differ) and never plotted. With ``ensemble`` (the scenario's model's) they carry their 90 % interval
    and extrapolation flag in the columns every table uses (:func:`own_bands`)."""
    scored = own is not None and own.ok
    return {"scenario": scenario, "mode": mode, "recipe_label": label, "status": status,
            "temperature_C": config.objective.temperature_C, **recipe, **metrics,
            OWN_OBJECTIVE: own.objective if scored else np.nan,
            OWN_CAPACITY: own.metrics.get(CAPACITY, np.nan) if scored else np.nan,
            **(own_bands(recipe, config, ensemble, own) if scored else {}),
            OWN_DEFINITION: config.objective.describe(), "mlflow_run_id": run_id, "notes": notes}


def own_bands(recipe: dict[str, Any], config: CampaignConfig, ensemble: "Ensemble | None", own) -> dict[str, Any]:
    """The 90 % interval and extrapolation flag of a row's own objective and its capacity (``own``: the row's
    evaluation under the scenario's objective, whose values the bands surround, PyBaMM's for a physics scenario), by
    the rule a campaign's child runs use: a nano-Sn scenario at 0 C had read -393.6 mAh/g with no interval. Nothing
    without an ensemble or for a multi-objective scenario (no single score)."""
    if ensemble is None or config.objectives:
        return {}
    given = {SCORE: own.objective, CAPACITY: own.metrics.get(CAPACITY, np.nan)}
    (band,) = batch_intervals([recipe], ensemble, config.objective, values=[given])
    flags = scoring_flags(recipe, ensemble.domain, config.objective, [SCORE, CAPACITY])
    out: dict[str, Any] = {}
    for column, name in ((OWN_OBJECTIVE, SCORE), (OWN_CAPACITY, CAPACITY)):
        if name in band:
            out.update(zip(interval_columns(column), band[name]))
            out[extrapolated_column(column)] = bool(flags[name])
    return out


BASELINE_RECIPE_OBJECTIVE = "baseline_recipe_scenario_objective_mAh_per_g"


def against_baseline_recipe(row: dict[str, Any], baseline: dict[str, Any], config: CampaignConfig) -> dict[str, Any]:
    """The baseline's recommended recipe scored under a scenario's own objective and model
    (:data:`BASELINE_RECIPE_OBJECTIVE`), and a note saying whether the scenario's own recommendation beats it by
    more than the recommendation's tolerance: a scenario that recommends another recipe may gain nothing over the
    one already chosen (a 45 C cell moved to 283 rpm and BPR 34, scoring 339.0 where the baseline's recipe scores
    339.2), and a user reading two recipes takes the change for a finding. Nothing for a failed row or a
    multi-objective scenario (no single score)."""
    if row.get("status") != "FINISHED" or baseline.get("status") != "FINISHED" or config.objectives:
        return {}
    from flows.search import outside_reasons
    from surrogate.recipe import recipe_key

    recipe = {name: baseline[name] for name in FIELD_NAMES}
    own = row[OWN_OBJECTIVE]
    if recipe_key(recipe) == recipe_key({name: row[name] for name in FIELD_NAMES}):
        return {BASELINE_RECIPE_OBJECTIVE: own, "notes": "; ".join(filter(None, [
            row["notes"], "the baseline's own recipe: this scenario changes the score, not the choice"]))}
    # scored as the scenario scores its own recipes: its model, or PyBaMM for a physics scenario
    p, _ = calibrate_task(config)
    scored = (evaluate_batch([recipe], p, config.objective) if config.fidelity == "model"
              else campaign_evaluator(config, p)([recipe]))[0]
    if not (scored.ok and np.isfinite(own)):
        return {}
    tolerance = config.recommendation.tolerance_pct / 100.0 * abs(own)
    outside = outside_reasons(recipe, config)
    where = f" (outside this scenario's search space: {'; '.join(outside)})" if outside else ""
    gain = own - scored.objective
    said = f"the baseline's recipe scores {scored.objective:.1f} mAh/g under this scenario{where}"
    if abs(gain) <= tolerance:
        note = (f"a near-tie: {said}, within the {config.recommendation.tolerance_pct:g} % tolerance of this "
                f"recommendation's {own:.1f}: the change of recipe is no gain the model can tell")
    elif gain > 0:
        note = f"{said}; this recommendation gains {gain:+.1f}"
    elif outside:
        note = f"{said}: {-gain:.1f} above this recommendation, which is what this scenario's limits cost"
    else:
        note = (f"{said}: {-gain:.1f} above this recommendation, inside its search space: this scenario's search "
                f"fell short of it (give it more evaluations)")
    return {BASELINE_RECIPE_OBJECTIVE: scored.objective, "notes": "; ".join(filter(None, [row["notes"], note]))}


SAME_AS_BASE = ("changes nothing in the base campaign (its overrides are the base's own values): this row repeats "
                "the baseline's search")
# The row's own objective, as its scenario defines it (the fixed-definition metrics above are what rows compare)
OWN_OBJECTIVE = "scenario_objective_mAh_per_g"
OWN_CAPACITY = "scenario_capacity_mAh_per_g"  # the capacity that objective scores (its current, cycle, temperature)
OWN_DEFINITION = "scenario_objective_definition"
OWN_HEADERS = {OWN_CAPACITY: "own objective's capacity [mAh/g]", OWN_OBJECTIVE: "own objective [mAh/g]"}
OWN_BANDED = (OWN_CAPACITY, OWN_OBJECTIVE)  # shown with their intervals (own_bands) beside the fixed metrics


def own_objective_lines(table: pd.DataFrame, base: CapacityObjective) -> list[tuple[str, str]]:
    """(scenario, its own objective in words) for each scenario whose objective is not the base's: said once beside
    the comparison (console, run note, Prefect artifact), where the rows' own-objective columns are read."""
    definitions = dict(zip(table["scenario"], table[OWN_DEFINITION])) if OWN_DEFINITION in table else {}
    return [(scenario, text) for scenario, text in definitions.items()
            if isinstance(text, str) and text != base.describe()]


def _override_params(scenario: Scenario) -> dict[str, Any]:
    return {f"override.{k}": v for k, v in flatten(scenario.overrides).items()}


def baseline_scenario() -> Scenario:
    """The base config unchanged, optimised as the scenarios are: what the campaign gives without any what-if."""
    return Scenario(name=BASELINE, description="the base campaign, unchanged", mode="optimise")


@flow(name="what-if")
def what_if(scenario_paths: list[str], config_path: str | None = None,
            overrides: CampaignOverrides | None = None, experiment_name: str = WHAT_IF_EXPERIMENT,
            output_dir: str = DEFAULT_OUTPUT_DIR, baseline: bool = True) -> dict[str, Any]:
    """Run every scenario (and a baseline) on the base config and compare them on fixed-definition metrics.

    Parameters
    ----------
    scenario_paths : scenario files or folders of them (e.g. ``["configs/whatif"]``).
    config_path : base campaign (default ``configs/default.yaml``).
    overrides : merged onto the base before the scenarios (e.g. a budget or tracking URI for all of them); typed
        as :data:`flows.config.CampaignOverrides`, so Prefect's run form validates it.
    experiment_name : MLflow experiment of the study (default ``snhc-what-if``, apart from the campaigns).
    output_dir : local folder for the comparison CSV and PNG (a subfolder per study, named like its MLflow run).
    baseline : add a baseline row: the base config unchanged, optimised with the same budget as the scenarios.

    Returns
    -------
    ``{"baseline": row or None, "scenarios": [row, ...], "run_id", "experiment_id", "files"}``; every row carries
    the fixed-definition metrics (see :func:`fixed_metric_names`).
    """
    with secrets_masked():  # a failure's message (Prefect's state and run log) never shows a store's credentials
        return _study(scenario_paths, config_path, overrides, experiment_name, output_dir, baseline)


def _study(scenario_paths, config_path, overrides, experiment_name, output_dir, baseline) -> dict[str, Any]:
    """The body of :func:`what_if` (its parameters)."""
    base_path = Path(config_path) if config_path else default_config_path()
    base_document = config_document(base_path, overrides_document(overrides))  # file, environment, overrides
    base = validate_config(base_document, str(base_path))
    check_tracking_store(base.tracking.tracking_uri)  # a deployment's run too, before any run is written
    scenarios = load_scenarios(scenario_paths, base_document)
    if baseline:
        scenarios = [(baseline_scenario(), base, [])] + scenarios

    tracker = Tracker(base.tracking.tracking_uri, experiment_name, base.tracking.artifact_location)
    started = datetime.now(timezone.utc)
    name = f"what-if-{base.name}-{len(scenarios) - int(baseline)}-scenarios-{started:%Y%m%dT%H%M%S}"
    rows: list[dict[str, Any]] = []
    ensembles: dict[str, Ensemble | None] = {}  # parameter digest -> ensemble: scenarios sharing parameters share
    note = (f"What-if study on campaign `{base.name}`: " + ", ".join(s.name for s, _, _ in scenarios)
            + f". Compared at {base.objective.current_A_per_g:g} A/g after {base.objective.cycle} cycles.")
    progress: dict[str, Any] = {}  # what a Ctrl-C leaves: the study's run, and its files once written
    try:
        with tracker.run(name, {"kind": "what-if", NOTE_TAG: note, **source_tags()}) as parent_run_id:
            progress["run_id"] = parent_run_id
            names = ", ".join(s.name for s, _, _ in scenarios if s.name != BASELINE)
            tracker.log(parent_run_id, params={"scenarios": names,
                                               "compared_at_current_A_per_g": base.objective.current_A_per_g,
                                               "compared_after_cycles": base.objective.cycle})
            for scenario, config, recipes in scenarios:
                done = len({row["scenario"] for row in rows})
                reporting.say(f"[bold]what-if[/] {done + 1}/{len(scenarios)} {scenario.name} ({scenario.mode}): "
                              f"{scenario.description}", progress=True)
                rows += _scenario_rows(scenario, config, recipes, rows, base, tracker, parent_run_id,
                                       experiment_name, ensembles)
            table = pd.DataFrame(rows)
            columns = list(fixed_metric_names(base.objective).values())
            folder = Path(output_dir) / name
            figure = _write_comparison(table, columns, folder)
            progress["folder"] = folder
            _log_comparison(table, figure, base, tracker, parent_run_id, note)
        _print_comparison(table, columns)
        for scenario, definition in own_objective_lines(table, base.objective):
            reporting.say(f"[bold]{scenario}[/]: own objective = {definition}")
        for row in table.to_dict(orient="records"):
            if isinstance(row.get("notes"), str) and row["notes"]:
                reporting.say(f"[bold]{row['scenario']}[/]: {row['notes']}")
        url = reporting.mlflow_run_url(base.tracking.tracking_uri, tracker.experiment_id, parent_run_id)
        reporting.say(f"MLflow: experiment [bold]{experiment_name}[/], run [bold]{parent_run_id}[/] ({url})")
        reporting.say(f"Files: [bold]{folder}[/] (what_if_comparison.csv, what_if_comparison.png)")
        _publish(table, columns, base, parent_run_id, url)
        records = [interval_mirror(r, [*columns, *OWN_BANDED])
                   for r in table.replace({np.nan: None}).to_dict(orient="records")]
        return {"baseline": next((r for r in records if r["scenario"] == BASELINE), None),
                "scenarios": [r for r in records if r["scenario"] != BASELINE],
                "run_id": parent_run_id, "experiment_id": tracker.experiment_id, "files": str(folder)}
    except CampaignInterrupted as interrupt:  # the caller says what was kept (snhc what-if)
        if "run_id" in progress:
            interrupt.what_if = (progress["run_id"], len({row["scenario"] for row in rows}), len(scenarios),
                                 progress.get("folder"))
        raise


def _scenario_rows(scenario, config, recipes, rows, base, tracker, parent_run_id, experiment_name,
                   ensembles) -> list[dict[str, Any]]:
    """One scenario's rows of the comparison (``rows``: those before it, the baseline first when there is one); a
    scenario whose run fails is one FAILED row, so a broken scenario does not stop the comparison, and one whose
    comparison with the baseline's recipe fails keeps its finished row with a note saying so."""
    try:
        if scenario.mode == "predict":
            return _predict_scenario(scenario, config, recipes, tracker, parent_run_id, base.objective, ensembles)
        new = _optimise_scenario(scenario, config, tracker, parent_run_id, base.objective, experiment_name,
                                 ensembles)
    except Exception as error:  # one broken scenario must not stop the comparison
        reporting.say(f"[red]what-if {scenario.name} failed:[/] {redact(str(error))}")
        return [{"scenario": scenario.name, "mode": scenario.mode, "status": "FAILED",
                 "failure_reason": f"{type(error).__name__}: {error}"}]
    if scenario.name != BASELINE and same_campaign(config, base):  # it had repeated it unsaid
        new[-1]["notes"] = "; ".join(filter(None, [SAME_AS_BASE, new[-1]["notes"]]))
    elif scenario.name != BASELINE and rows and rows[0]["scenario"] == BASELINE:
        try:  # a finished campaign stays a finished row if the comparison with the baseline's recipe fails
            new[-1] |= against_baseline_recipe(new[-1], rows[0], config)
        except Exception as error:  # noqa: BLE001 - a note on the row, not a failed scenario
            new[-1]["notes"] = "; ".join(filter(None, [new[-1]["notes"], f"not compared with the baseline's "
                                                                         f"recipe ({redact(str(error))})"]))
    return new


def _write_comparison(table: pd.DataFrame, columns: list[str], folder: Path):
    """The comparison's CSV and PNG in ``folder``; returns the figure, for the run."""
    figure = comparison_plot(table, columns)
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(table, folder / "what_if_comparison.csv")  # formula-like cells escaped, secrets masked
    figure.savefig(folder / "what_if_comparison.png", dpi=120, bbox_inches="tight")
    return figure


def _log_comparison(table: pd.DataFrame, figure, base: CampaignConfig, tracker: Tracker, run_id: str,
                    note: str) -> None:
    """The comparison on the study's MLflow run: its CSV, PNG and table, and the run note with its summary."""
    tracker.log_files(run_id, {"what_if_comparison.csv": table, "what_if_comparison.png": figure})
    tracker.client.log_table(run_id, data=_display_table(table, base.objective),
                             artifact_file="what_if_comparison.json")
    tracker.log(run_id, tags={NOTE_TAG: f"{note}\n\n{comparison_markdown(table, base.objective)}"})
    reporting.plt.close("all")


def comparison_plot(table: pd.DataFrame, columns: list[str]):
    """Grouped bars of the fixed-definition metrics, one bar per row (scenario: recipe)."""
    labelled = table.assign(label=_labels(table))
    if "status" in labelled:
        labelled = labelled[labelled["status"] == "FINISHED"]
    retention = next((c for c in columns if c.startswith("cycles_to_")), None)
    return reporting.comparison_figure(labelled, columns,
                                       missing={retention: f"retains > {RETENTION_END_OF_LIFE_PCT:g} %\nfor "
                                                        f"{RETENTION_HORIZON_CYCLES:,} cycles"},
                                       intervals={c: interval_columns(c) for c in columns
                                                  if interval_columns(c)[0] in labelled},
                                       flags={c: extrapolated_column(c) for c in columns
                                              if extrapolated_column(c) in labelled},
                                       flag_note=EXTRAPOLATED_NOTE)


def interval_mirror(record: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """A row for JSON: the interval columns folded into ``"interval_90": {metric: [low, high]}`` next to the values,
    as ``snhc predict --json`` has them (a bound past the retention horizon is null; a metric without an interval,
    such as milling time, has no entry)."""
    record = dict(record)
    bands, flags = {}, {}
    for column in columns:
        low_column, high_column = interval_columns(column)
        if low_column in record or high_column in record:  # both bounds null: the whole interval is past the horizon
            bands[column] = [record.pop(low_column, None), record.pop(high_column, None)]
        if extrapolated_column(column) in record:
            flag = record.pop(extrapolated_column(column))
            flags[column] = None if flag is None else bool(flag)
    return record | {INTERVAL: bands, "extrapolated": flags}


def _number(value: float) -> str:
    """A metric value for reading: one decimal (mAh/g, %, h), thousands whole and grouped (cycle counts)."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.1f}"


def with_bands(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The table with each metric that has an interval shown as text ``value [low–high]`` (a bound past the
    retention horizon as ``>100,000``); the interval columns themselves are dropped."""
    shown = table.copy()
    for column in columns:
        low_column, high_column = interval_columns(column)
        if column not in shown or low_column not in shown:
            continue

        def text(row) -> str:
            value, low, high = row[column], row[low_column], row[high_column]
            beyond = f">{RETENTION_HORIZON_CYCLES:,}"  # only cycles to 80 % are undefined within an interval
            mark = EXTRAPOLATED_MARK if _flagged(row, column) else ""
            if pd.isna(low) and pd.isna(high):  # no interval (a failed row, no ensemble), or all of it past the horizon
                past = TO_RETENTION.match(column) is not None and row.get("status") == "FINISHED"
                return (beyond + mark if past else "") if pd.isna(value) else _number(value) + mark
            cell = beyond if pd.isna(value) else _number(value)
            return f"{cell} [{reporting.span(_number(low), beyond if pd.isna(high) else _number(high))}]{mark}"

        shown[column] = shown.apply(text, axis=1)
        shown = shown.drop(columns=[low_column, high_column])
    return shown.drop(columns=[extrapolated_column(c) for c in columns if extrapolated_column(c) in shown])


EXTRAPOLATED_MARK = " *"  # a value beyond the study's data, in the tables and on the chart's bars
EXTRAPOLATED_NOTE = "*: extrapolated, beyond the study's data (materials, temperatures, cycles)"


def _flagged(row, column: str) -> bool:
    flag = row.get(extrapolated_column(column))
    return bool(flag) if flag is not None and not pd.isna(flag) else False


def _labels(table: pd.DataFrame) -> pd.Series:
    """Each row's label, ``scenario: recipe``, with its temperature where the rows were not all at one."""
    recipe = table["recipe_label"].fillna("") if "recipe_label" in table else pd.Series("", index=table.index)
    labels = table["scenario"] + ": " + recipe
    if "temperature_C" in table and table["temperature_C"].nunique() > 1:
        labels = labels + table["temperature_C"].map(lambda t: "" if pd.isna(t) else f" ({t:g} °C)")
    return labels


def short_headers(base: CapacityObjective) -> dict[str, str]:
    """Column name -> short header with its unit, for tables read by people (the conditions stated once beside)."""
    names = fixed_metric_names(base)
    return {"scenario": "scenario", "recipe_label": "recipe", names["capacity"]: "capacity [mAh/g]",
            names["expansion"]: "expansion [%]", names["cycles_to_retention"]: "cycles to 80 %",
            names["milling_time"]: "milling [h]", "temperature_C": "T [°C]"} | OWN_HEADERS


def _display_table(table: pd.DataFrame, base: CapacityObjective) -> pd.DataFrame:
    """The comparison for the MLflow table view: scenario, recipe, the fixed metrics each with its 90 % interval,
    temperature and the recipe, rounded, under short headers with units.

    The headers carry no ``.``: MLflow's table view reads a dot in a column name as a path into nested data and
    shows such a column empty (seen with ``capacity_at_1.7_A_per_g_...``). The conditions (current, cycle) are in
    the run's description and params ``compared_at_current_A_per_g``, ``compared_after_cycles``.
    """
    columns = [*fixed_metric_names(base).values(), *OWN_BANDED]
    headers = short_headers(base) | {"sn_mass_fraction": "Sn mass fraction", "milling_speed_rpm": "speed [rpm]",
                                     "ball_to_powder_ratio": "ball:powder", "status": "status",
                                     OWN_DEFINITION: "own objective definition"}
    for metric in columns:  # "capacity 90 % low [mAh/g]": the value's header with the bound before its unit
        name, bracket, unit = headers[metric].partition(" [")
        low, high = interval_columns(metric)
        headers |= {column: f"{name} 90 % {end} [{unit}" if bracket else f"{name}, 90 % {end}"
                    for column, end in ((low, "low"), (high, "high"))}
    for metric in columns:
        headers[extrapolated_column(metric)] = f"{headers[metric].partition(' [')[0]} extrapolated"
    # each value, then its interval and whether it is extrapolated
    metrics = [name for c in columns for name in (c, *interval_columns(c), extrapolated_column(c))]
    keep = [c for c in ["scenario", "recipe_label", *metrics, "temperature_C", "sn_mass_fraction",
                        "milling_speed_rpm", "ball_to_powder_ratio", "status", OWN_DEFINITION]
            if c in table]  # metrics first (the own objective's last of them)
    shown = table[keep].copy()
    if "milling_time_h" in table:  # an unmilled powder (HC, nano-Sn) has no speed or BPR: the mill never ran
        unmilled = table["milling_time_h"].eq(0.0)
        for column in (c for c in shown.columns if c in FIELDS and FIELDS[c].milling_setting):
            shown[column] = shown[column].where(~unmilled, None)
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: None if pd.isna(v) else float(f"{v:.4g}"))
    return shown.rename(columns=headers)


def comparison_markdown(table: pd.DataFrame, base: CapacityObjective) -> str:
    """The comparison as a compact Markdown table: short headers with units, the conditions stated once above."""
    names = fixed_metric_names(base)
    short = short_headers(base)
    shown = with_bands(table, [*names.values(), *OWN_BANDED])
    keep = [c for c in short if c in shown]
    lines = [f"Capacity at {base.current_A_per_g:g} A/g after {base.cycle} cycles; cycles until the capacity at "
             f"{base.current_A_per_g:g} A/g falls below {RETENTION_END_OF_LIFE_PCT:g} % of its first test cycle "
             f"(>{RETENTION_HORIZON_CYCLES:,}: not within {RETENTION_HORIZON_CYCLES:,} cycles). [low–high]: the "
             f"model's 90 % interval (configs/uncertainty.yaml). {EXTRAPOLATED_NOTE}.", "",
             "| " + " | ".join(short[c] for c in keep) + " |", "|" + "---|" * len(keep)]
    lines += ["| " + " | ".join("" if pd.isna(v) else _number(v) if isinstance(v, float) else str(v) for v in row)
              + " |" for row in shown[keep].itertuples(index=False)]
    notes = [f"- {scenario}: own objective = {text}" for scenario, text in own_objective_lines(table, base)]
    notes += [f"- {scenario}: {text}" for scenario, text in zip(table["scenario"], table.get("notes", []))
              if isinstance(text, str) and text]
    return "\n".join(lines + ([""] + notes if notes else []))


def _publish(table: pd.DataFrame, columns: list[str], base: CampaignConfig, run_id: str, url: str) -> None:
    """The comparison as a Prefect Markdown artifact with a link to the MLflow run (inside a flow run only)."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    command, _, link = url.rpartition(" then ")
    lines = [f"# What-if study on campaign `{base.name}`", "", comparison_markdown(table, base.objective), "",
             f"MLflow run `{run_id}`: " + (f"run {command}, then [{link}]({link})" if command
                                           else f"[{link}]({link})")]
    create_markdown_artifact("\n".join(lines), key="what-if-comparison", description="What-if comparison")


def _print_comparison(table: pd.DataFrame, columns: list[str]) -> None:
    from flows.metrics import axis_label

    headers = {"scenario": "scenario", "recipe_label": "recipe", "status": "status", "temperature_C": "T [°C]",
               "sn_mass_fraction": "Sn mass fraction", "milling_speed_rpm": "speed [rpm]",
               "ball_to_powder_ratio": "BPR"} | {c: axis_label(c) for c in columns} | OWN_HEADERS
    # a recipe field no column above shows (the atmosphere, the duty cycle) when the rows differ in it: an air-milled
    # scenario's row had not said "air"
    shown = set(headers) | set(columns)
    headers |= {name: axis_label(name) for name in FIELD_NAMES
                if name not in shown and name in table and table[name].dropna().nunique() > 1}
    shown_columns = [*columns, *OWN_BANDED]
    banded = any(interval_columns(c)[0] in table for c in shown_columns)
    flagged = any(table.get(extrapolated_column(c), pd.Series(dtype=object)).fillna(False).astype(bool).any()
                  for c in shown_columns)
    reporting.print_frame(with_bands(table, shown_columns), headers,
                          "What-if comparison" + (" (value [90 % interval])" if banded else "")
                          + (f"; {EXTRAPOLATED_NOTE}" if flagged else ""))
