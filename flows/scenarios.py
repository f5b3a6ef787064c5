"""What-if scenario files: one study's variations of the base campaign, each validated with its merged config.

Apart from the what-if flow (flows/whatif.py) so the CLI can check every scenario file before Prefect's server
starts or Prefect is imported: a broken scenario gets one line and exit code 2, and nothing starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flows.config import (CampaignConfig, ConfigError, Description, PrintedName, deep_merge, read_yaml,
                          validate_config)
from flows.inputs import excerpt, not_a_folder
from surrogate.parameters import ModelParameters
from surrogate.paths import config_dir
from surrogate.recipe import RECIPE_FIELDS, RecipeError, complete, load_materials

WHAT_IF_EXPERIMENT = "snhc-what-if"  # what-if studies live apart from the optimisation campaigns
# What a predict scenario's prediction reads of its config (flows.whatif._predict_scenario): other overrides (the
# optimiser's, the search space) would be accepted and shown, and change nothing
PREDICT_OVERRIDES = frozenset({"model_parameters", "recalibrate", "objective"})
PREDICT_OBJECTIVE_OVERRIDES = frozenset({"temperature_C"})  # the cell's temperature; the rest defines the quantities
BASELINE = "baseline"  # the study's row of the base campaign unchanged: no scenario may take its name
# A predict scenario's recipes are rows of the comparison's table and bars of its chart, each a child run: 5000 had
# run for minutes, the study's run left KILLED. A sweep is `snhc predict`'s (up to 1000 values per option).
MAX_SCENARIO_RECIPES = 200


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PrintedName
    description: Description = ""  # becomes its campaign's description
    mode: Literal["predict", "optimise"] = "optimise"
    overrides: dict[str, Any] = Field(default_factory=dict)
    recipes: list[str | dict[str, Any]] = Field(default_factory=list, max_length=MAX_SCENARIO_RECIPES)


def scenario_files(paths: list[str | Path]) -> list[Path]:
    """Scenario files from files and folders (a folder means every ``*.yaml`` or ``*.yml`` in it that is not hidden,
    sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir()  # *.yaml and *.yml alike; hidden files (an editor's) not
                           if p.suffix.lower() in (".yaml", ".yml") and not p.name.startswith("."))
            for p in found:
                if not p.is_file():  # a broken link or a folder named like a scenario had been skipped unsaid
                    what = not_a_folder(p) if not p.exists() else "not a regular file"
                    raise ConfigError(f"{p}: {what}, expected a scenario file")
            files += found
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise ConfigError(f"{path}: not a regular file (a pipe, socket or device), expected a scenario file")
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
            message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix(
                "Value error, ")
            if "input" in first and first["type"] not in ("extra_forbidden", "missing", "value_error"):
                message += f" (got {excerpt(first['input'])})"
            raise ConfigError(f"{path}: {key}: {message}") from None
        if scenario.name.casefold() in names:  # 'Mix' and 'mix' read as one row, and name one file on a
            # case-insensitive disk
            raise ConfigError(f"{path}: name: scenario {scenario.name!r} appears twice (names are compared without "
                              f"case)")
        if scenario.name.strip().casefold() == BASELINE:  # 'Baseline' beside the 'baseline' row reads as the same
            raise ConfigError(f"{path}: name: {BASELINE!r} is the study's own row (the base campaign unchanged); "
                              f"name the scenario otherwise")
        if "tracking" in scenario.overrides:  # a study's scenarios are runs of its one experiment and store
            raise ConfigError(f"{path}: overrides.tracking: a scenario is logged with its study (snhc what-if "
                              f"--experiment and --tracking-uri choose where); remove it")
        if "objectives" in scenario.overrides:  # the study compares fixed-definition metrics of one objective
            raise ConfigError(f"{path}: overrides.objectives: a what-if scenario keeps the study's capacity "
                              f"objective (change overrides.objective); run several objectives with snhc optimise "
                              f"--config")
        if "objective" in scenario.overrides and base_document.get("objectives"):  # not "give one, not both":
            # the scenario gave one, the base campaign the other
            raise ConfigError(f"{path}: overrides.objective: the base campaign has several 'objectives', so a "
                              f"scenario cannot set the single capacity objective; run the study on a base with "
                              f"one 'objective' (e.g. configs/default.yaml)")
        names.add(scenario.name.casefold())
        config = validate_config(deep_merge(base_document, scenario.overrides), f"{path}: overrides")
        recipes = [_recipe(item, materials, path) for item in scenario.recipes]
        labels = [label for label, _ in recipes]
        if twice := next((label for label in labels if labels.count(label) > 1), None):
            raise ConfigError(f"{path}: recipes: {twice!r} is listed twice in scenario {scenario.name!r} (the same "
                              f"recipe, or recipes that differ beyond 4 significant digits); list each once")
        values = [tuple(recipe.get(field.name, field.default) for field in RECIPE_FIELDS) for _, recipe in recipes]
        if same := next((k for k, v in enumerate(values) if values.index(v) < k), None):  # a material by name
            raise ConfigError(f"{path}: recipes: {labels[same]!r} is the same recipe as "  # and spelled out
                              f"{labels[values.index(values[same])]!r} in scenario {scenario.name!r}; list it once")
        if scenario.mode == "predict" and not recipes:
            raise ConfigError(f"{path}: recipes: a predict scenario needs at least one recipe")
        ignored = sorted(set(scenario.overrides) - PREDICT_OVERRIDES)
        if scenario.mode == "predict" and ignored:  # a value the study would show as changed, never used
            raise ConfigError(f"{path}: overrides.{ignored[0]}: a predict scenario uses only "
                              f"{', '.join(sorted(PREDICT_OVERRIDES))}; remove it, or make the scenario mode: "
                              f"optimise")
        objective = scenario.overrides.get("objective")
        fixed_definitions = sorted(set(objective) - PREDICT_OBJECTIVE_OVERRIDES) if isinstance(objective, dict) else []
        if scenario.mode == "predict" and fixed_definitions:  # the base's current and cycle define the compared
            # quantities; a predict scenario scores no objective, so its allowance and penalty change nothing
            raise ConfigError(f"{path}: overrides.objective.{fixed_definitions[0]}: a predict scenario's quantities "
                              f"keep the base campaign's definitions (capacity at its current after its cycles); "
                              f"of the objective only {', '.join(sorted(PREDICT_OBJECTIVE_OVERRIDES))} changes them")
        if scenario.mode != "predict" and recipes:  # they would be ignored: an optimise scenario searches
            raise ConfigError(f"{path}: recipes: only a predict scenario (mode: predict) takes recipes; an "
                              f"optimise scenario searches for its own")
        loaded.append((scenario, config, recipes))
    return loaded


def same_campaign(config: CampaignConfig, base: CampaignConfig) -> bool:
    """Whether a scenario's campaign computes what the base campaign does (its row would repeat the baseline's):
    equal configs once the name and description, which only label them, are set aside, a model parameter
    overridden to its documented value counts as not overridden, and ``recalibrate`` counts only where some
    parameter is overridden. A scenario the base has become (target_4p2_A_per_g.yaml on a base at 4.2 A/g) is
    such a one: the study says so in its row rather than refuse the folder it belongs to."""
    return _campaign_of(config) == _campaign_of(base)


def _campaign_of(config: CampaignConfig) -> dict[str, Any]:
    document = config.model_dump(exclude={"name", "description"})
    documented = ModelParameters.load()
    document["model_parameters"] = {name: value for name, value in document["model_parameters"].items()
                                    if name not in documented or documented[name].value != value}
    if not document["model_parameters"]:
        document.pop("recalibrate", None)
    return document


def _recipe(item, materials, path) -> tuple[str, dict[str, float]]:
    if isinstance(item, str):
        if item not in materials:
            raise ConfigError(f"{path}: recipes: unknown material {item!r}; allowed {', '.join(materials)}")
        return item, materials[item].to_records()[0]
    try:
        item = complete(item)
    except RecipeError as error:
        raise ConfigError(f"{path}: recipes: {error}") from None
    return recipe_label(item), dict(item)


def recipe_label(recipe: dict[str, Any]) -> str:
    """A recipe's name in tables, bars and MLflow metric keys: every field it has, a field at its default (argon, no
    pauses) left out. Two recipes of a study told apart by their speed or BPR alone had shared one label, and one
    MLflow metric held all three values as a history.

    >>> recipe_label({"sn_mass_fraction": 0.6, "milling_time_h": 10.0, "milling_speed_rpm": 400.0,
    ...               "ball_to_powder_ratio": 20.0, "milling_atmosphere": "air", "pause_duty_cycle": 1.0})
    'Sn0.6-10h-400rpm-BPR20-milling_atmosphere=air'
    """
    parts = [f"Sn{recipe['sn_mass_fraction']:.4g}", f"{recipe['milling_time_h']:g}h",
             f"{recipe['milling_speed_rpm']:g}rpm", f"BPR{recipe['ball_to_powder_ratio']:g}"]
    for field in RECIPE_FIELDS:  # the fields with a default, where a recipe sets another value
        value = recipe.get(field.name, field.default)
        if field.default is not None and value != field.default:
            parts.append(f"{field.name}={value:g}" if isinstance(value, float) else f"{field.name}={value}")
    return "-".join(parts)
