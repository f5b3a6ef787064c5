"""What-if studies: named sets of overrides on a base campaign, each a prediction or a full optimisation.

A scenario file (``configs/whatif/*.yaml``) holds a name, a description, a mode (``predict`` or ``optimise``), the
overrides deep-merged onto the base config, and for ``predict`` the recipes to evaluate (material names or explicit
recipes). All scenarios are validated before anything runs. The MLflow parent run has one child per scenario, plus a
comparison table and plot.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from prefect import flow
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flows import reporting
from flows.config import CampaignConfig, ConfigError, deep_merge, default_config_path, read_yaml, validate_config
from flows.campaign import Campaign
from flows.evaluation import evaluate_batch
from flows.inputs import excerpt, redact
from flows.optimise import calibrate_task, run_campaign
from flows.tracking import Tracker, flatten, source_tags
from surrogate.paths import config_dir
from surrogate.recipe import RecipeError, complete, load_materials


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    mode: Literal["predict", "optimise"] = "optimise"
    overrides: dict[str, Any] = Field(default_factory=dict)
    recipes: list[str | dict[str, Any]] = Field(default_factory=list)


def scenario_files(paths: list[str | Path]) -> list[Path]:
    """Scenario files from files and folders (a folder means every ``*.yaml`` in it, sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.glob("*.yaml") if p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"{path}: scenario file not found")
    if not files:
        raise ConfigError(f"no scenario files in {', '.join(map(str, paths))}")
    return files


def load_scenarios(paths: list[str | Path], base_document: dict[str, Any]
                   ) -> list[tuple[Scenario, CampaignConfig, list[tuple[str, dict[str, float]]]]]:
    """Validate every scenario and its merged config up front; errors name the file and the key."""
    materials = load_materials(config_dir() / "materials.yaml")
    loaded, names = [], set()
    for path in scenario_files(paths):
        try:
            scenario = Scenario.model_validate(read_yaml(path, "scenario file"))
        except ValidationError as error:
            first = error.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
            if "input" in first and first["type"] not in ("extra_forbidden", "missing"):
                message += f" (got {excerpt(first['input'])})"
            raise ConfigError(f"{path}: {key}: {message}") from None
        if scenario.name in names:
            raise ConfigError(f"{path}: name: scenario {scenario.name!r} appears twice")
        names.add(scenario.name)
        config = validate_config(deep_merge(base_document, scenario.overrides), f"{path}: overrides")
        recipes = [_recipe(item, materials, path) for item in scenario.recipes]
        if scenario.mode == "predict" and not recipes:
            raise ConfigError(f"{path}: recipes: a predict scenario needs at least one recipe")
        loaded.append((scenario, config, recipes))
    return loaded


def _recipe(item, materials, path) -> tuple[str, dict[str, float]]:
    if isinstance(item, str):
        if item not in materials:
            raise ConfigError(f"{path}: recipes: unknown material {item!r}; allowed {', '.join(materials)}")
        return item, materials[item].to_records()[0]
    try:
        item = complete(item)
    except RecipeError as error:
        raise ConfigError(f"{path}: recipes: {error}") from None
    label = f"Sn{item['sn_mass_fraction']:.2f}-{item['milling_time_h']:g}h-{item['milling_speed_rpm']:g}rpm"
    return label, dict(item)


def _predict_scenario(scenario, config, recipes, tracker, parent_run_id) -> list[dict[str, Any]]:
    p, _ = calibrate_task(config)
    evaluations = evaluate_batch([recipe for _, recipe in recipes], p, config.objective)
    rows = []
    with tracker.run(scenario.name, {"scenario": scenario.name, "mode": "predict"}, parent_run_id) as run_id:
        tracker.log(run_id, params={"scenario_description": scenario.description, **_override_params(scenario)})
        for (label, recipe), evaluation in zip(recipes, evaluations):
            key = re.sub(r"[^\w\-. :/]", "_", label)  # MLflow metric names allow no '@'
            tracker.log(run_id, metrics={f"{key}.{k}": v for k, v in reporting.headline(evaluation.metrics).items()})
            rows.append({"scenario": scenario.name, "mode": "predict", "recipe_label": label, **recipe,
                         "status": evaluation.status, **reporting.headline(evaluation.metrics)})
    return rows


def _override_params(scenario: Scenario) -> dict[str, Any]:
    return {f"override.{k}": v for k, v in flatten(scenario.overrides).items()}


@flow(name="what-if")
def what_if(scenario_paths: list[str], config_path: str | None = None,
            overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run every scenario on the base config and compare them.

    Parameters
    ----------
    scenario_paths : scenario files or folders of them (e.g. ``["configs/whatif"]``).
    config_path : base campaign (default ``configs/default.yaml``).
    overrides : merged onto the base before the scenarios (e.g. a budget or tracking URI for all of them).
    """
    base_path = Path(config_path) if config_path else default_config_path()
    base_document = deep_merge(read_yaml(base_path), overrides or {})
    base = validate_config(base_document, str(base_path))
    scenarios = load_scenarios(scenario_paths, base_document)

    tracker = Tracker(base.tracking.tracking_uri, base.tracking.experiment_name, base.tracking.artifact_location)
    rows: list[dict[str, Any]] = []
    with tracker.run(f"what-if-{len(scenarios)}-scenarios", {"kind": "what-if", **source_tags()}) as parent_run_id:
        tracker.log(parent_run_id, params={"scenarios": ", ".join(s.name for s, _, _ in scenarios)})
        for scenario, config, recipes in scenarios:
            reporting.console.print(f"[bold]what-if[/] {scenario.name} ({scenario.mode}): {scenario.description}")
            try:
                if scenario.mode == "predict":
                    rows += _predict_scenario(scenario, config, recipes, tracker, parent_run_id)
                else:
                    named = deep_merge(config.model_dump(), {"name": scenario.name, "description": scenario.description,
                                                             "tracking": {"log_evaluation_runs": False}})
                    result = run_campaign(Campaign.new(CampaignConfig.model_validate(named)), parent_run_id, quiet=True)
                    tracker.log(result.run_id, tags={"scenario": scenario.name, "mode": "optimise"},
                                params=_override_params(scenario))
                    rows.append({"scenario": scenario.name, "mode": "optimise", "recipe_label": "recommended",
                                 **result.recipe, "status": "FINISHED", **reporting.headline(result.metrics)})
            except Exception as error:  # one broken scenario must not stop the comparison
                reporting.console.print(f"[red]what-if {scenario.name} failed:[/] {redact(str(error))}")
                rows.append({"scenario": scenario.name, "mode": scenario.mode, "status": "FAILED",
                             "failure_reason": f"{type(error).__name__}: {error}"})
        table = pd.DataFrame(rows)
        files = {"what_if_comparison.csv": table}
        if "objective" in table:
            labelled = table.assign(scenario=table["scenario"] + ": " + table["recipe_label"].fillna(""))
            files["what_if_comparison.png"] = reporting.comparison_figure(labelled.dropna(subset=["objective"]),
                                                                          "objective", "objective (mAh/g)")
        tracker.log_files(parent_run_id, files)
        reporting.plt.close("all")
    _print_comparison(table)
    return table.to_dict(orient="records")


COMPARISON_COLUMNS = {  # table column -> short console header
    "scenario": "scenario", "recipe_label": "recipe", "status": "status", "sn_mass_fraction": "Sn frac",
    "milling_time_h": "time h", "milling_speed_rpm": "rpm", "ball_to_powder_ratio": "BPR", "objective": "objective",
    "capacity_at_cycle_1000_mAh_per_g": "Q@1000 mAh/g", "particle_expansion_pct": "swell %",
}


def _print_comparison(table: pd.DataFrame) -> None:
    reporting.print_frame(table, COMPARISON_COLUMNS, "What-if comparison")
