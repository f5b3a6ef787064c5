"""The ``snhc`` command line: optimise, what-if, predict, calibrate, ui and serve.

Bad input exits with code 2 and one line that names the option or key and its allowed range, before any Prefect
flow or MLflow run starts.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import math
import os
import shlex
import sys

# Quiet defaults before anything imports Prefect or PyBaMM (also for `.venv/bin/snhc` run without make): Prefect's
# telemetry otherwise logs errors (and "database is locked" tracebacks) into successful runs on this network.
for _variable, _value in (("PREFECT_SERVER_ANALYTICS_ENABLED", "false"), ("DO_NOT_TRACK", "1"),
                          ("PYBAMM_DISABLE_TELEMETRY", "true")):
    os.environ.setdefault(_variable, _value)

from typing import TYPE_CHECKING

from surrogate.limits import CELL_TEMPERATURE_RANGE_C, MAX_CURRENT_A_PER_G, MAX_CYCLE  # noqa: E402 - constants
from surrogate.recipe import FIELDS, RECIPE_FIELDS, study_recipe  # noqa: E402 - the schema drives the options; numpy only

if TYPE_CHECKING:
    from surrogate.recipe import Recipes

# Everything else is imported where it is used, so `snhc --help` and a bad option answer in well under a second.
EXIT_USAGE = 2


def console():
    """The rich console (created on first use)."""
    from rich.console import Console

    global _console
    if _console is None:
        _console = Console()
    return _console


_console = None


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


def _recipe_from_args(args) -> tuple[str, Recipes]:
    from surrogate.paths import config_dir
    from surrogate.recipe import RecipeError, Recipes, load_materials

    materials = load_materials(config_dir() / "materials.yaml")
    given = {f.name: getattr(args, f.name) for f in RECIPE_FIELDS if getattr(args, f.name) is not None}
    if args.material is not None:
        if given:
            raise UsageError("--material cannot be combined with recipe options (--sn-mass-fraction, ...)")
        if args.material not in materials:
            raise UsageError(f"--material {args.material!r} is unknown: allowed {', '.join(materials)}")
        return args.material, materials[args.material]
    recipe = study_recipe() | given
    for name, value in recipe.items():
        try:  # the recipe schema's own check and message (a share written as a percentage is asked about)
            FIELDS[name].check(value, label=FIELDS[name].option)
        except RecipeError as error:
            raise UsageError(str(error)) from None
    name = "custom recipe (the rest of Sn@HC-2-1's)" if given else "Sn@HC-2-1 (no recipe option given)"
    return name, Recipes.from_records([recipe])


def _positive_text(integer: bool = False, most: float = math.inf) -> str:
    """What :func:`_positive` allows, in words."""
    kind = "a positive integer" if integer else "a positive number"
    return f"must be {kind}{f' up to {most:g}' if math.isfinite(most) else ''}"


# What the numeric options allow, stated once for the type check (text that is not a number) and the range check
CURRENT_ALLOWED = _positive_text(most=MAX_CURRENT_A_PER_G)
CYCLE_ALLOWED = _positive_text(integer=True, most=MAX_CYCLE)
TEMPERATURE_ALLOWED = f"allowed {CELL_TEMPERATURE_RANGE_C[0]:g} to {CELL_TEMPERATURE_RANGE_C[1]:g}"
SUGGEST_BATCH_RANGE = (1, 64)
SUGGEST_BATCH_ALLOWED = f"allowed {SUGGEST_BATCH_RANGE[0]} to {SUGGEST_BATCH_RANGE[1]}"
PORT_RANGE = (1, 65535)
PORT_ALLOWED = f"allowed {PORT_RANGE[0]} to {PORT_RANGE[1]}"


# Values one option of snhc predict takes: a rate curve or a fade curve of a few hundred points is a plot; 100 000
# cycle numbers had taken a minute
MAX_OPTION_VALUES = 1000


def _positive(option: str, values, integer: bool = False, most: float = math.inf):
    """Values of a numeric option: finite, above 0, at most ``most`` (the config's own limit for that quantity),
    whole numbers if ``integer``; at most :data:`MAX_OPTION_VALUES` of them."""
    if len(values) > MAX_OPTION_VALUES:
        raise UsageError(f"{option}: {len(values)} values: allowed at most {MAX_OPTION_VALUES}")
    for value in values:
        if not math.isfinite(value) or value <= 0 or value > most or (integer and value != int(value)):
            raise UsageError(f"{option}={value:.15g} is out of range: {_positive_text(integer, most)}")
    return values


def cmd_predict(args) -> int:
    name, recipes = _recipe_from_args(args)
    currents = _positive("--current", [float(c) for c in args.current], most=MAX_CURRENT_A_PER_G)
    _positive("--cycling-current", [args.cycling_current], most=MAX_CURRENT_A_PER_G)
    cycles = [int(c) for c in _positive("--cycles", args.cycles, integer=True, most=MAX_CYCLE)]
    low, high = CELL_TEMPERATURE_RANGE_C
    if not low <= args.temperature_C <= high:
        raise UsageError(f"--temperature-C={args.temperature_C:.15g} is out of range: {TEMPERATURE_ALLOWED}")
    from flows.config import PHYSICS_SCORES_CAPACITY_ONLY, load_config
    from flows.inputs import existing_file
    from flows.evaluation import batch_intervals, campaign_parameters
    from flows.objective import SCORE, CapacityObjective
    from surrogate.calibration import calibrate
    from surrogate.model import PredictionRequest
    from surrogate.parameters import ModelParameters
    from surrogate.uncertainty import build_ensemble

    if args.config is not None:
        existing_file(args.config, "--config")
    if args.observations is not None:
        existing_file(args.observations, "--observations")
        if args.fidelity == "physics":
            raise UsageError("--observations teaches the numpy model its lab parameters: drop --fidelity physics")
    config = load_config(args.config) if args.config or args.observations else None
    if config is not None and config.objectives and args.fidelity == "physics":  # as a campaign refuses it
        raise UsageError(f"--fidelity physics {PHYSICS_SCORES_CAPACITY_ONLY} ({args.config})")
    _check_physics_parameters(None, fidelity=args.fidelity)  # a prediction runs PyBaMM at that fidelity
    if config is not None:  # the config's model: its overrides of assumed parameters, refitted or not as it says
        p, calibration = campaign_parameters(config)
    else:
        calibration = calibrate()
        p = calibration.apply(ModelParameters.load())
    ensemble = None
    if args.observations is not None:  # the model the lab's rows taught, as snhc suggest predicts with it
        p, ensemble = _lab_taught(args.observations, config, p, calibration)
    objective = config.objective if config else CapacityObjective()
    request = PredictionRequest(tuple(currents), args.cycling_current, tuple(cycles), args.temperature_C,
                                objective.current_A_per_g, objective.cycle, objective.temperature_C)
    # The numpy model's prediction with its ensemble: the record itself, or the bands of a PyBaMM record
    ensemble = ensemble or build_ensemble(p, calibration)
    uncertain = ensemble.predict(recipes, request)
    record = uncertain.record(0, current_labels=args.current)
    # the objective is scored at its own conditions, every input of it (the expansion too), not --temperature-C's
    scored = ensemble.predict(recipes, objective.request(currents_A_per_g=()))
    record[SCORE] = float(objective.score(objective.inputs(scored.central))[SCORE][0])
    # the campaign's own interval of the score (each member's formula on its scattered capacity and expansion)
    record["interval_90"][SCORE] = batch_intervals([recipes.to_records()[0]], ensemble, objective,
                                                   scored.central.request)[0][SCORE]
    record["extrapolated"][SCORE] = scored.target_extrapolated(0)
    # Above the rate data (and where no lab row near the recipe measured it: the value's flag says so) PyBaMM's
    # form joins the band, for the rate rows and an objective whose own current lies there
    highest = ensemble.domain.overall.max_current_A_per_g * (1.0 + 1e-9)
    flags = record["extrapolated"]
    beyond = [(label, current) for label, current in zip(args.current, currents)
              if current > highest and flags["capacity_at_current_mAh_per_g"].get(label)]
    objective_beyond = objective.current_A_per_g > highest and bool(flags.get(SCORE))
    cycling_beyond = args.cycling_current > highest and any(flags["capacity_at_cycle_mAh_per_g"].values())
    if (beyond or objective_beyond or cycling_beyond) and args.fidelity == "model" and not (
            config is not None and config.objectives):
        from flows.fidelity import with_physics_beyond_data

        record = with_physics_beyond_data(record, recipes, p, args.temperature_C, beyond,
                                          objective if objective_beyond else None,
                                          args.cycling_current if cycling_beyond else None)
    record["objective_definition"] = objective.describe()  # its own conditions, not --temperature-C's
    if config is not None and config.objectives:  # a multi-objective campaign's objectives, each by its own rule
        _add_objectives(record, recipes.to_records()[0], p, ensemble, config)
    if args.fidelity == "physics":
        from flows.fidelity import PhysicsFailure, physics_record, with_model_form_intervals
        from surrogate.physics import calibrated_physics_parameters

        try:
            physics = physics_record(recipes, p, calibrated_physics_parameters(p), request, args.current, objective)
        except PhysicsFailure as failure:
            print(f"snhc predict: the PyBaMM model could not evaluate {name}: {failure}", file=sys.stderr)
            return 1
        record = with_model_form_intervals(physics, record)
    if config is not None and config.objectives:  # the default single objective is none of this campaign's
        for part in (record, record["interval_90"], record["extrapolated"]):
            part.pop(SCORE, None)
    # what was predicted, so a saved record answers for itself: the recipe (completed with its defaults) and the
    # conditions (the cycling capacities' current, the cell temperature)
    record["inputs"] = {"name": name, "recipe": recipes.to_records()[0], "currents_A_per_g": currents,
                        "cycles": cycles, "cycling_current_A_per_g": args.cycling_current,
                        "temperature_C": args.temperature_C}
    if args.json:
        print(json_text(record))
        return 0
    _print_prediction(name, recipes.to_records()[0], record, args)
    return 0


def _add_objectives(record: dict, recipe: dict, p, ensemble, config) -> None:
    """The config's ``objectives`` at the recipe, under ``record["objectives"]`` (name -> value) with their 90 %
    intervals (from ``ensemble``, the ensemble of ``p``) and extrapolation flags under the same key of
    ``interval_90`` and ``extrapolated``."""
    from flows.evaluation import batch_intervals, evaluate_batch, scoring_flags

    scoring = config.scoring()
    (evaluation,) = evaluate_batch([recipe], p, scoring)
    (intervals,) = batch_intervals([recipe], ensemble, scoring)
    flags = scoring_flags(recipe, ensemble.domain, scoring, evaluation.metrics)
    record["objectives"] = {o.name: evaluation.metrics[o.name] for o in scoring.objectives}
    record["interval_90"]["objectives"] = {o.name: intervals.get(o.name, [evaluation.metrics[o.name]] * 2)
                                           for o in scoring.objectives}
    record["extrapolated"]["objectives"] = {o.name: flags.get(o.name, True) for o in scoring.objectives}
    record["objective_definition"] = scoring.describe()


def _lab_taught(path: str, config, p, calibration):
    """The model a lab's rows teach and its ensemble, as ``snhc suggest`` predicts with them: the config's
    ``lab_parameters`` estimated from the rows (each weighted by ``lab_uncertainty_pct``; after a refit of the
    fitted parameters when ``recalibrate_on_observations``), the intervals the study's and the lab's uncertainty
    together, narrowed near the rows for the quantities they measured. Without lab parameters to estimate (or no
    measured row inside the search space) the model is the project's, and a line on stderr says so."""
    from flows.evaluation import lazy_ensemble
    from flows.observations import check_unit_slips, read_observations, replicate_note
    from flows.search import lab_calibrated_prior, teaching_rows

    lab = read_observations(path, config)
    check_unit_slips(lab, config)
    if not lab.measured:
        raise UsageError(f"--observations {path}: no row has a measured result (all are pending), so there is "
                         f"nothing to learn from")
    if note := replicate_note(lab):
        print(f"note: {note}", file=sys.stderr)
    refit = ""
    if config.recalibrate_on_observations:
        from flows.recalibration import recalibrate

        p = recalibrate(config, lab).parameters
        refit = f"refitted on the study's data and the {len(lab.measured)} measured rows of {path}"
    rows = teaching_rows(config, lab.measured)
    prior = lab_calibrated_prior(config, p, lab.measured)
    if prior is None:
        print(f"note: --observations {path}: no lab parameters estimated from it (the config has no lab_parameters, "
              f"its fidelity is not 'model', or no measured row lies inside its search space); predicted with "
              f"{'the model ' + refit if refit else 'the project model'}", file=sys.stderr)
        return p, lazy_ensemble(p, calibration)()
    print(f"note: predicted with the model taught by the {len(rows)} measured rows of {path} inside the search "
          f"space (its lab parameters estimated from them{'; ' + refit if refit else ''}; 90 % intervals of that "
          f"model); snhc suggest's mean adds its GP's correction for what those parameters do not explain",
          file=sys.stderr)
    taught = prior.estimated_parameters()
    return taught, lazy_ensemble(taught, calibration, prior, rows)()


def _print_prediction(name, recipe, record, args) -> None:
    from rich.table import Table

    from flows.objective import SCORE

    fidelity = " (PyBaMM rate capability)" if args.fidelity == "physics" else ""
    table = Table(title=f"Predicted performance of {name}{fidelity}", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for field, value in recipe.items():
        table.add_row(f"recipe: {field}", f"{value:.4g}" if isinstance(value, float) else str(value))
    def shown(key, sub=None, digits=1) -> str:
        """``value [low-high]``, marked "extrapolated" beyond the calibrated domain."""
        value = record[key] if sub is None else record[key][sub]
        if value is None:  # PyBaMM could not evaluate it: the reason is printed below the table
            return "failed"
        text = f"{value:.{digits}f}"
        if "interval_90" in record:
            band = record["interval_90"][key] if sub is None else record["interval_90"][key][sub]
            text += f" [{band[0]:.{digits}f}–{band[1]:.{digits}f}]"
            flag = record["extrapolated"][key] if sub is None else record["extrapolated"][key][sub]
            text += " extrapolated" if flag else ""
        return text

    table.add_row("theoretical capacity (mAh/g)", shown("theoretical_capacity_mAh_per_g"))
    table.add_row("reversible capacity, first cycle at 0.08 A/g (mAh/g)", shown("reversible_capacity_mAh_per_g"))
    table.add_row("initial Coulombic efficiency (%)", shown("initial_coulombic_efficiency_pct"))
    for current in record["capacity_at_current_mAh_per_g"]:
        table.add_row(f"rate test: capacity at {current} A/g (mAh/g)", shown("capacity_at_current_mAh_per_g", current))
    for cycle in record["capacity_at_cycle_mAh_per_g"]:
        table.add_row(f"cycling at {args.cycling_current:g} A/g: capacity at cycle {cycle} (mAh/g)",
                      shown("capacity_at_cycle_mAh_per_g", cycle))
    table.add_row("particle expansion (%)", shown("particle_expansion_pct"))
    table.add_row("electrode expansion after 1000 cycles (%)", shown("electrode_expansion_after_1000_cycles_pct"))
    table.add_row("apparent activation energy (kJ/mol)", shown("activation_energy_kJ_per_mol", digits=2))
    if "objectives" in record:
        for objective in record["objectives"]:
            table.add_row(f"objective: {objective}", shown("objectives", objective))
    else:
        table.add_row("objective (mAh/g)", shown("objective"))
    table.caption = ("\\[low–high]: 90 % interval (configs/uncertainty.yaml), where a new cell's measurement should "
                     "fall (a rate-test and a cycling cell scatter as the study's did); 'extrapolated': beyond the "
                     "study's data (with --observations: and no lab row near it measured it); the rate test and the "
                     "cycling start after the formation cycles (first-cycle "
                     f"loss and early damage), the reversible capacity is the first cycle's; objective: "
                     f"{record['objective_definition']} (the config's, whatever --temperature-C)")
    if args.fidelity == "physics":
        table.caption += ("; a PyBaMM value's interval joins the numpy model's band moved to it and the numpy "
                          "model's own band (two model forms)")
    console().print(table)
    for what, why in (record.get("physics_failures") or {}).items():
        console().print(f"PyBaMM could not evaluate {what}: {why}", markup=False)
    for note in record.get("physics_notes") or []:
        console().print(f"Note: {note}", markup=False)
    second = record.get("second_model_form") or {}
    if second:
        failed = "PyBaMM failed, the band is the numpy model's"
        said = [f"{label} A/g: " + (failed if v is None else
                                    f"{v:.0f} mAh/g" + (" (its cell cannot carry the current)" if v == 0 else ""))
                for label, v in second.get("capacity_at_current_mAh_per_g", {}).items()]
        if SCORE in second:
            said.append("objective: " + (failed if second[SCORE] is None else f"{second[SCORE]:.1f} mAh/g"))
        console().print("Above the highest measured current each interval also holds PyBaMM's value (a second model "
                        "form, which the data cannot rule out): " + "; ".join(said), markup=False)
    beyond = record.get("beyond_calibrated_recipes") or {}
    if beyond:
        console().print("Recipe beyond the calibration's materials: predicted by the model's milling and "
                        "composition physics with assumed constants (the ranges of those the study's data cannot "
                        "see are inside the intervals):",
                        soft_wrap=True)
        for field, reason in beyond.items():
            console().print(f"  - {field} {reason}", soft_wrap=True, markup=False)


def cmd_calibrate(args) -> int:
    from flows.inputs import existing_file
    from surrogate.calibration import calibrate
    from surrogate.parameters import ModelParameters

    if args.data is not None:
        existing_file(args.data, "--data")
    if args.tracking_uri is not None and not args.validate:
        raise UsageError("--tracking-uri: only --validate logs to MLflow (a calibration is printed, not logged); "
                         "add --validate or leave it out")
    if args.tracking_uri is not None and not args.tracking_uri.strip():
        raise UsageError("--tracking-uri '': empty: give a tracking URI (sqlite:///..., http://...) or leave it out")
    if args.config is not None and args.observations is None:
        raise UsageError("--config: only --observations reads a campaign config (its lab_uncertainty_pct weighs the "
                         "lab rows); the study's calibration takes none")
    if args.observations is not None:
        from flows.config import load_config
        from flows.observations import read_observations
        from flows.recalibration import recalibrate

        if args.validate or args.fidelity == "physics":
            raise UsageError("--observations refits the numpy model on the study's data plus the lab rows: it "
                             "cannot be combined with --validate or --fidelity physics")
        from flows.observations import check_unit_slips, replicate_note

        existing_file(args.observations, "--observations")
        if args.config is not None:
            existing_file(args.config, "--config")
        config = load_config(args.config)
        lab = read_observations(args.observations, config)
        check_unit_slips(lab, config)  # a refit on a capacity in Ah/g had pushed parameters onto their bounds
        if not lab.measured:  # pending rows only: a refit would move nothing and report noise as moves
            raise UsageError(f"--observations {args.observations}: no row has a measured result (all are pending), "
                             f"so there is nothing to refit on")
        if note := replicate_note(lab):
            print(f"note: {note}", file=sys.stderr)
        recalibration = recalibrate(config, lab, args.data)
        if args.json:
            print(json_text({"parameters": _records(recalibration.parameter_moves),
                             "lab_predictions": _records(recalibration.prediction_moves),
                             "metrics": recalibration.metrics(),
                             "parameters_on_bound": list(recalibration.on_bound)}))
        else:
            print(recalibration.report_text())
        return 0
    if args.validate:
        if args.fidelity == "physics":
            raise UsageError("--validate runs the numpy model's leave-outs and compares both fidelities itself: "
                             "drop --fidelity physics")
        return _validate(args)
    calibration = calibrate(ModelParameters.load(), args.data, refit=args.refit)
    if args.fidelity == "physics":
        from surrogate.physics import fit_physics

        physics = fit_physics(calibration.apply(ModelParameters.load()), data_path=args.data, refit=args.refit)
        if args.json:
            print(json_text({"fitted_values": physics.fitted_values, "rows": _records(physics.report)}))
        else:
            print(physics.report_text())
        return 0
    from surrogate.calibration import diagnostics

    checks = diagnostics(ModelParameters.load(), calibration, args.data)
    if args.json:
        print(json_text({"fitted_values": calibration.fitted_values, "rows": _records(calibration.report),
                         "diagnostics": checks.as_dict(), "data_sha256": calibration.data_sha256,
                         "parameters_sha256": calibration.parameters_sha256}))
        return 0
    print(calibration.report_text())  # a wide table: never re-wrapped
    print()
    print(checks.text())
    return 0


def _records(table) -> list[dict]:
    """A report table as JSON records, missing values as null."""
    return table.astype(object).where(table.notna(), None).to_dict("records")


def _validate(args) -> int:
    """``snhc calibrate --validate``: the leave-out studies, printed and logged to MLflow (experiment
    ``snhc-calibration``, artifacts ``validation.json`` and ``validation.csv``)."""
    import pandas as pd

    from flows.config import load_config
    from flows.fidelity import disagreement_study
    from flows.inputs import check_experiment_active, check_tracking_store, redact
    from flows.reporting import disagreement_figure, mlflow_run_url
    from flows.tracking import Tracker
    from surrogate.validation import report_text, validate

    config = load_config()
    uri = args.tracking_uri or config.tracking.tracking_uri
    key = "--tracking-uri" if args.tracking_uri else "tracking_uri"
    check_tracking_store(uri, key=key)
    check_experiment_active(uri, VALIDATION_EXPERIMENT, key=f"{key}: experiment")  # before minutes of refits
    rows = validate(data_path=args.data)
    design, summary = disagreement_study(config, args.data)
    document = {"leave_out": rows, "fidelity_disagreement": summary}
    tracker = Tracker(uri, VALIDATION_EXPERIMENT)
    with tracker.run("leave-out-validation", {"snhc.kind": "validation"}) as run_id:
        covered = sum(r["covered"] for r in rows)
        tracker.log(run_id, metrics={"covered_count": covered, "leave_out_count": len(rows),
                                     # with each form error measured without the row it scores (an independent check)
                                     "covered_nested_count": sum(r["covered_nested"] is True for r in rows),
                                     "max_abs_error_pct": max(abs(r["error_pct"]) for r in rows)}
                    | {f"fidelity.{stat}.at_{current}_A_per_g": value
                       for stat in ("median_abs_difference_pct", "max_abs_difference_pct")
                       for current, value in summary[stat].items()})
        tracker.log_files(run_id, {"validation.json": json_text(document),
                                   "validation.csv": pd.DataFrame(rows).assign(**{
                                       column: [f"{r[column][0]:.6g}..{r[column][1]:.6g}" if r[column] else ""
                                                for r in rows] for column in ("interval_90", "interval_90_nested")}),
                                   "fidelity_disagreement.csv": design,
                                   "fidelity_disagreement.png": disagreement_figure(
                                       design, tuple(summary["current_A_per_g"]))})
    if args.json:
        print(json_text(document))
        return 0
    print(report_text(rows))
    print(f"\nPyBaMM against the numpy model over a {summary['design_points']}-recipe Sobol design of the search "
          f"space (fresh capacity; {summary['physics_failed']} solves failed): "
          + "; ".join(f"at {c} A/g median |difference| {summary['median_abs_difference_pct'][c]:.1f} %, largest "
                      f"{summary['max_abs_difference_pct'][c]:.1f} % at Sn "
                      f"{summary['largest_difference_at'][c]['sn_mass_fraction']:.2f}"
                      for c in summary["median_abs_difference_pct"]))
    print(f"MLflow: experiment {VALIDATION_EXPERIMENT}, run {run_id} in {redact(uri)}")
    print(mlflow_run_url(uri, tracker.experiment_id, run_id))
    return 0


VALIDATION_EXPERIMENT = "snhc-calibration"


# The config key each campaign option sets (_campaign_overrides): a bad value is reported under the option's name
OPTION_OF_KEY = {("optimiser", "n_calls"): "--n-calls", ("optimiser", "n_initial_points"): "--n-calls",
                 ("optimiser", "batch_size"): "--batch-size", ("optimiser", "seed"): "--seed",
                 ("tracking", "tracking_uri"): "--tracking-uri", ("fidelity",): "--fidelity"}


def _campaign_overrides(args) -> dict:
    """CLI options of optimise / what-if as config overrides.

    A smaller ``--n-calls`` keeps at most half its budget for random starts, so it does not fail validation
    against the config's ``n_initial_points`` (:func:`_start_points_note` says so).
    """
    from flows.config import load_config

    optimiser = {key: value for key, value in (("n_calls", args.n_calls), ("batch_size", args.batch_size),
                                               ("seed", args.seed)) if value is not None}
    if args.n_calls is not None:
        configured = load_config(args.config).optimiser.n_initial_points
        optimiser["n_initial_points"] = min(configured, max(1, args.n_calls // 2))
    overrides: dict = {"optimiser": optimiser} if optimiser else {}
    if args.tracking_uri:
        overrides["tracking"] = {"tracking_uri": args.tracking_uri}
    if getattr(args, "fidelity", None):
        overrides["fidelity"] = args.fidelity
    return overrides


def _start_points_note(args, config) -> None:
    """Say (on stderr) that ``--n-calls`` left fewer space-filling start points than the config asks (the run's
    params had said 2 where the config said 10, without a word); once the campaign is known good, so a refused
    command keeps its one line."""
    if args.n_calls is None or getattr(args, "resume", None):
        return
    from flows.config import load_config

    configured = load_config(args.config).optimiser.n_initial_points
    if config.optimiser.n_initial_points != configured:
        print(f"note: --n-calls {args.n_calls}: {config.optimiser.n_initial_points} space-filling start point(s), "
              f"at most half the budget (the config's optimiser.n_initial_points is {configured})", file=sys.stderr)


def _checked_campaign(args, *paths: tuple[str, str | None]):
    """Every file, folder, URI and server a campaign command names, checked before Prefect is even imported.

    Returns the validated base config and the overrides; a problem raises :class:`InputError` (exit 2).
    """
    from flows.config import load_config
    from flows.inputs import check_run_id, existing_file

    resume = check_run_id(getattr(args, "resume", None))
    if args.tracking_uri is not None and not args.tracking_uri.strip():
        raise UsageError("--tracking-uri '': empty: give a tracking URI (sqlite:///..., http://...) or leave it out")
    if getattr(args, "config", None) is not None:
        existing_file(args.config, "--config")
    for option, path in paths:
        if path is not None:
            existing_file(path, option)
    overrides = _campaign_overrides(args) if hasattr(args, "n_calls") else (
        {"tracking": {"tracking_uri": args.tracking_uri}} if args.tracking_uri else {})
    base = load_config(args.config, overrides, OPTION_OF_KEY)
    _check_campaign_servers(base, must_exist=resume is not None)
    return base, overrides, resume  # the lab file is read (once) when the campaign is built


def _check_physics_parameters(config, where: str = "", fidelity: str | None = None) -> None:
    """A campaign that runs PyBaMM (its physics check, or fidelity physics; ``fidelity``: a command's own choice)
    reads configs/physics_parameters.yaml (SNHC_CONFIG_DIR's): read now, a bad value there had been found at the
    physics check, after the search had written its runs. Read by the parameter loader alone: the PyBaMM package's
    own loader imports PyBaMM, two seconds of every command's start."""
    campaign_runs_it = config is not None and (config.physics_check.top_k or config.fidelity == "physics")
    if not (campaign_runs_it or fidelity == "physics"):
        return
    from flows.inputs import InputError
    from surrogate.parameters import ModelParameters, ParameterError
    from surrogate.paths import config_dir
    from surrogate.yaml_safety import YamlInputError

    try:
        ModelParameters.load(config_dir() / "physics_parameters.yaml")
    except (ParameterError, YamlInputError) as error:
        raise InputError(f"{where}{error}") from None


def _check_campaign_servers(config, must_exist: bool = False) -> None:
    """The tracking store, its experiment and artifact root, and the Dask scheduler a campaign will use must answer
    (``must_exist``: a resumed campaign's store must be there already); the PyBaMM parameters it will read must
    hold (:func:`_check_physics_parameters`)."""
    from flows.inputs import check_dask_scheduler, check_experiment_active, check_tracking_store

    _check_physics_parameters(config)

    check_tracking_store(config.tracking.tracking_uri, must_exist=must_exist, key="tracking_uri")
    check_experiment_active(config.tracking.tracking_uri, config.tracking.experiment_name,
                            artifact_location=config.tracking.artifact_location)
    if config.runner.address:
        check_dask_scheduler(config.runner.address, "runner.address")


def cmd_optimise(args) -> int:
    from flows.inputs import redact

    from flows import interrupts

    interrupts.install()
    campaign, server = None, None
    try:
        campaign, server = _build_and_start(args)
        if args.json:  # stdout is the JSON alone: progress and tables go to stderr
            import contextlib

            with contextlib.redirect_stdout(sys.stderr):
                summary = _run_optimisation(args, campaign)
        else:
            summary = _run_optimisation(args, campaign)
        interrupts.finished()
    except interrupts.CampaignInterrupted as interrupt:
        print(_interrupted_message(args, campaign, interrupt), file=sys.stderr)
        return interrupt.exit_code
    finally:
        if server is not None:
            server.release()
    from flows.reporting import mlflow_run_url, print_recommendation

    config = campaign.config
    link = mlflow_run_url(config.tracking.tracking_uri, summary["experiment_id"], summary["run_id"])
    if args.json:
        command, _, url = link.rpartition(" then ")  # a local store: open it with `snhc ui` first
        print(json_text(summary | {"experiment_name": config.tracking.experiment_name, "mlflow_url": url,
                                   "mlflow_url_needs": command.strip("`") or None}))
        return 0
    print_recommendation(summary["recipe"], summary["metrics"], (summary["surrogate_mean"], summary["surrogate_std"]),
                         summary["interval_90"], summary["extrapolated"], summary.get("beyond_calibrated_recipes"),
                         summary.get("conditions_beyond_data", False))
    console().print(f"Fidelity: {summary['fidelity']}")
    for note in summary.get("notes", []):
        console().print(f"Recommendation: {note}")
    console().print(f"MLflow: experiment [bold]{config.tracking.experiment_name}[/], run [bold]{summary['run_id']}[/] "
                  f"in {redact(config.tracking.tracking_uri)}")
    console().print(f"Open it: {link}", soft_wrap=True)  # a URL folded over lines cannot be clicked
    return 0


def wait_for_prefect(server) -> None:
    """Wait for the Prefect API the command started, with a spinner on a terminal (a line before and after
    otherwise) and how long it took, on stderr as all progress is (stdout carries results, or the ``--json``
    document alone); a reused server answers at once and says nothing. (No flow run exists yet, so this step cannot
    reach Prefect's run logger.)"""
    if server.process is None:
        server.wait()
        return
    import time

    from rich.console import Console

    out = Console(stderr=True)
    started = time.monotonic()
    text = "Starting Prefect's temporary server (set PREFECT_API_URL to reuse a running one)"
    if out.is_terminal:
        with out.status(f"{text} ..."):
            server.wait()
    else:
        out.print(f"{text} ...", soft_wrap=True)
        server.wait()
    out.print(f"Prefect server ready after {time.monotonic() - started:.1f} s at {server.api_url}", soft_wrap=True)


def _note_rows_outside(campaign) -> None:
    """Say (on stderr) which lab rows were averaged as replicates, which the campaign's search space leaves out, and
    that they teach nothing when the config lists no lab parameters, rather than merge, drop or ignore them unsaid."""
    from flows.observations import outside_note, replicate_note, untaught_note

    for note in (replicate_note(campaign.lab), outside_note(campaign.lab, campaign.config),
                 untaught_note(campaign.lab, campaign.config)):
        if note:
            print(f"note: {note}", file=sys.stderr)


def _note_what_a_resume_keeps(campaign, given=None) -> None:
    """Say (on stderr) what a resumed campaign does not take from the command: a ``--config`` whose campaign
    settings differ from the run's saved ones (a resumed campaign keeps its own; only where it is tracked and its
    budget come from the command), and a budget already spent."""
    from flows.config import differing_keys

    if given is not None:
        differ = differing_keys(given.model_dump(mode="json"), campaign.config.model_dump(mode="json"),
                                ignore=("tracking", "optimiser.n_calls"))
        if differ:
            shown = ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
            print(f"note: --config differs from the resumed run's saved config in {shown}: a resumed campaign keeps "
                  f"its own (only tracking and --n-calls apply); start a new campaign to change them",
                  file=sys.stderr)
    done, budget = campaign.model_evaluations(), campaign.config.optimiser.n_calls
    if done >= budget:
        print(f"note: the run has {done} evaluations and n_calls is {budget}: nothing more is evaluated (raise "
              f"--n-calls to extend it); the recommendation is made again from what it has", file=sys.stderr)


def _build_and_start(args):
    """Build and validate the campaign, then start (or find) the Prefect API while its calibration loads."""
    from flows import prefect_server
    from flows.campaign import build_campaign

    base, overrides, resume = _checked_campaign(args, ("--observations", args.observations))
    # the lab file, the resume id and the saved campaign are checked before anything starts: exit 2, nothing started
    campaign = build_campaign(args.config, overrides, resume, args.observations)
    server = prefect_server.start()  # a PREFECT_API_URL that does not answer is refused here, before any note
    try:
        _note_rows_outside(campaign)
        _start_points_note(args, campaign.config)
        if resume is not None:
            _note_what_a_resume_keeps(campaign, base if args.config is not None else None)
        if server.process is not None:  # a temporary server takes seconds to start: use them
            _warm_up(campaign.config)
        wait_for_prefect(server)
    except BaseException:
        server.stop()
        raise
    return campaign, server


def _warm_up(config) -> None:
    """While Prefect's temporary server starts (in its own process), import the flow, load the campaign's
    calibration and build its parameter ensemble, which this process keeps for the flow (``build_ensemble`` reuses
    one built for the same inputs), import PyBaMM when the campaign will run it, and open the campaign's SQLite
    MLflow store (MLflow keeps one store per URI in a process): on two cores the server's start and this work
    overlap (benchmarks/optimise_wall.py). A failure here is left for the flow to meet and report in its own words.
    The campaign was validated before: nothing here runs on bad input."""
    try:
        import flows.optimise  # noqa: F401 - Prefect's flow machinery and the models: seconds of imports
        from flows.evaluation import campaign_parameters

        p, calibration = campaign_parameters(config)
        if config.physics_check.top_k or (config.tracking.log_evaluation_runs
                                          and config.tracking.log_evaluation_intervals):
            from surrogate.uncertainty import build_ensemble

            build_ensemble(p, calibration)
        if config.physics_check.top_k or config.fidelity == "physics":
            import surrogate.physics  # noqa: F401 - PyBaMM's import: about a second, else paid after the search
        if config.tracking.tracking_uri.startswith("sqlite:///"):
            from flows.tracking import open_client

            open_client(config.tracking.tracking_uri)
    except Exception:  # noqa: BLE001 - the flow calibrates again and reports what went wrong
        pass


def _run_optimisation(args, campaign) -> dict:
    from flows.config import default_config_path
    from flows.inputs import redact_document

    from flows.campaign import hand_over
    from flows.optimise import optimise_anode

    # Prefect records flow parameters: they get the redacted URI; the real one stays in this process's memory.
    return optimise_anode(str(args.config or default_config_path()), redact_document(_campaign_overrides(args)),
                          campaign.run_id, args.observations, campaign_token=hand_over(campaign))


def _interrupted_message(args, campaign, interrupt) -> str:
    """One line for a campaign stopped by Ctrl-C or SIGTERM: what was saved, and the command that resumes it with
    the options that shaped it (a resume without the stopped command's --seed had been told its config differs),
    a tracking URI's credentials masked."""
    from flows.inputs import redact

    if campaign is None or not campaign.run_id:
        return f"snhc optimise: {interrupt} before the campaign started; no run was recorded"
    uri = redact(args.tracking_uri)
    given = (("--config", args.config), ("--tracking-uri", uri), ("--n-calls", args.n_calls),
             ("--batch-size", args.batch_size), ("--seed", args.seed), ("--fidelity", getattr(args, "fidelity", None)))
    options = "".join(f" {flag} {shlex.quote(str(value))}" for flag, value in given if value is not None)
    masked = uri != args.tracking_uri
    from flows.evaluation import LAB

    lab = sum(e.source == LAB for e in campaign.evaluations)  # the progress line counts the optimiser's evaluations
    return (f"snhc optimise: {interrupt}; run {campaign.run_id} is KILLED with {campaign.model_evaluations()} of "
            f"{campaign.config.optimiser.n_calls} evaluations saved{f' (and {lab} lab rows)' if lab else ''}. "
            f"Resume with: snhc optimise{options} --resume {campaign.run_id}"
            + (" (the tracking URI's secret is masked here: put yours back)" if masked else ""))


def cmd_suggest(args) -> int:
    from flows.inputs import writable_output, write_csv

    from flows.campaign import build_campaign
    from flows.suggest import log_suggestions, suggest

    if not SUGGEST_BATCH_RANGE[0] <= args.batch <= SUGGEST_BATCH_RANGE[1]:
        raise UsageError(f"--batch={args.batch} is out of range: {SUGGEST_BATCH_ALLOWED}")
    if not (args.resume is not None or args.observations):
        raise UsageError("give --resume RUN_ID and/or --observations lab.csv: what has been done so far")
    _, overrides, run_id = _checked_campaign(args, ("--observations", args.observations))
    writable_output(args.output, "--output", {"--observations": args.observations, "--config": args.config})
    campaign = build_campaign(args.config, overrides, run_id, args.observations, empty_lab_ok=True)
    if campaign.config.objectives:  # suggest ranks by the capacity objective's expected improvement alone
        raise UsageError(f"{'run ' + run_id if run_id else args.config}: a campaign with 'objectives' (several) "
                         f"cannot be suggested for yet; run snhc optimise --config F --observations lab.csv (the "
                         f"rows teach the model; the front is then the lab's model's), or extend a campaign with snhc "
                         f"optimise --resume RUN_ID --n-calls N")
    _note_rows_outside(campaign)
    if campaign.lab is not None:
        from flows.evaluation import campaign_parameters
        from flows.observations import surprising_values

        for line in surprising_values(campaign.lab, campaign_parameters(campaign.config)[0], campaign.config):
            print(f"snhc suggest: lab value to check: {line}", file=sys.stderr)
    table, lab_parameters, notes = suggest(campaign, args.batch)
    for line in notes:
        print(f"snhc suggest: {line}", file=sys.stderr)
    write_csv(table, args.output)
    mlflow_run = log_suggestions(campaign, table, lab_parameters)
    if args.json:  # stdout is the JSON alone; the table, the lab parameters and the run id go to stderr (they had
        # been dropped, the run id with them)
        import contextlib

        from flows.suggest import suggestion_records

        with contextlib.redirect_stdout(sys.stderr):
            _print_suggestions(args, campaign, table, lab_parameters, mlflow_run)
        print(json_text(suggestion_records(table)))
        return 0
    _print_suggestions(args, campaign, table, lab_parameters, mlflow_run)
    return 0


def _print_suggestions(args, campaign, table, lab_parameters, mlflow_run: str) -> None:
    """The suggestions as a table with their intervals, what the lab taught, and where they were written."""
    import pandas as pd

    from flows.metrics import extrapolated_column, interval_columns
    from flows.reporting import EXTRAPOLATED, print_frame, print_lab_parameters, with_interval
    from flows.search import PARAMETER_DRAW

    shown = table.copy()
    # value [90 % interval], and the flag
    for name in ("predicted_objective", "objective_capacity_mAh_per_g", "particle_expansion_pct"):
        if interval_columns(name)[0] in shown:
            # the model's objective to the decimal its correction and their sum are shown to: they add up
            shown[name] = [with_interval(row[name], band if all(pd.notna(band)) else None,
                                         digits=1 if name == "predicted_objective" else 0)
                           + (f" {EXTRAPOLATED}" if row[extrapolated_column(name)] is True else "")
                           for row in shown.to_dict("records")
                           for band in [[row[c] for c in interval_columns(name)]]]
    objective = campaign.config.objective
    columns = suggestion_columns(objective)
    capacity = columns["objective_capacity_mAh_per_g"]
    print_frame(shown, columns, "Next recipes to make")
    for number, note in enumerate(table.get("note", pd.Series(dtype=object)), start=1):
        if isinstance(note, str):
            console().print(f"[bold]suggestion {number}[/]: {note}", soft_wrap=True)
    taught = campaign.lab is not None and bool(campaign.lab.measured)  # a campaign resumed alone has no lab rows
    model = "lab-taught model" if taught else "model"
    legend = [
        f"model, + lab corr., = mean and sd: the objective, mAh/g: the {model}'s [90 % interval], the correction the "
        f"optimiser's GP learned from the lab rows' residuals near the recipe, their sum that ranks the suggestions "
        f"and its sd (" + ("the GP's uncertainty about the lab's objective there, from the few lab rows: far wider "
                           "than the sd `snhc optimise` shows, which is how well its search learned the model; not "
                           "a measurement's scatter" if taught else
                           "how well the search learned the model; no lab rows: the correction is 0") + ")",
        f"{capacity} (mAh/g, the capacity the objective scores: {objective.current_A_per_g:g} A/g after "
        f"{objective.cycle} cycles) and swell % (particle expansion): the {model}'s value [90 % interval], before "
        f"the lab's correction (it applies to the objective as a whole)",
        f"{EXTRAPOLATED}: beyond the study's data"
        + (", and no lab row near it (lab_row_near_distance, configs/uncertainty.yaml) measured it" if taught else ""),
    ]
    if PARAMETER_DRAW in set(table.get("chosen_by", [])):  # a suggestion the model may rate lower: why it is made
        legend.append(f"{PARAMETER_DRAW}: the best recipe of the lab-taught model under one draw of the lab "
                      f"parameters the results still allow, not under their best estimate, so the model may rate it "
                      f"lower than the others; it asks where the optimum would be if the lab's material were "
                      f"otherwise")
    console().print("; ".join(legend), soft_wrap=True)
    print_lab_parameters(lab_parameters)
    console().print(f"{len(table)} suggestions written to [bold]{args.output}[/]; MLflow run {mlflow_run} "
                    f"(experiment {campaign.config.tracking.experiment_name})", soft_wrap=True)  # an id unfolded


def suggestion_columns(objective) -> dict[str, str]:
    """The suggestions' table columns -> short console headers; the capacity column is the one ``objective``
    scores, named by its cycle (its current is in the legend)."""
    return {"sn_mass_fraction": "Sn frac", "milling_time_h": "time h", "milling_speed_rpm": "rpm",
            "ball_to_powder_ratio": "BPR", "predicted_objective": "model",
            "learned_correction_objective": "+ lab corr.", "surrogate_mean_objective": "= mean",
            "surrogate_std_objective": "sd",
            "objective_capacity_mAh_per_g": f"Q@{objective.cycle}", "particle_expansion_pct": "swell %",
            "chosen_by": "chosen by"}


def cmd_what_if(args) -> int:
    from flows import interrupts

    interrupts.install()
    try:
        return _what_if(args)
    except interrupts.CampaignInterrupted as interrupt:
        print(_what_if_interrupted_message(args, interrupt), file=sys.stderr)
        return interrupt.exit_code


def _what_if_interrupted_message(args, interrupt) -> str:
    """One line for a what-if study stopped by Ctrl-C or SIGTERM: what was kept and what to do."""
    if interrupt.what_if is None:
        return f"snhc what-if: {interrupt} before the study started; no run was recorded"
    run_id, finished, total, folder = interrupt.what_if
    from flows.scenarios import WHAT_IF_EXPERIMENT

    experiment = args.experiment or WHAT_IF_EXPERIMENT
    if folder is not None:  # stopped after the comparison was written: while it was logged or printed
        return (f"snhc what-if: {interrupt}; study run {run_id} (experiment '{experiment}'): all {total} scenarios "
                f"finished and the comparison is in {folder}; the run may lack part of it if the stop came while it "
                f"was being logged")
    return (f"snhc what-if: {interrupt}; study run {run_id} (experiment '{experiment}') and the scenario in progress "
            f"are KILLED, {finished} of {total} scenarios finished and kept as runs; no comparison table or chart "
            f"was written: run the study again to compare")


def _what_if(args) -> int:
    from flows import interrupts
    from flows.config import config_document, default_config_path
    from flows.inputs import existing_path, output_folder, redact_document

    for scenario in args.scenarios:
        existing_path(scenario, "scenario")
    base_config, overrides, _ = _checked_campaign(args)
    if args.output is not None:
        output_folder(args.output, "--output")
    from flows.config import checked_experiment_name
    from flows.inputs import check_experiment_active
    from flows.scenarios import WHAT_IF_EXPERIMENT

    experiment = checked_experiment_name(args.experiment, "--experiment") if args.experiment is not None \
        else WHAT_IF_EXPERIMENT
    check_experiment_active(base_config.tracking.tracking_uri, experiment, key="--experiment",
                            artifact_location=base_config.tracking.artifact_location)
    from flows import prefect_server
    from flows.scenarios import load_scenarios

    for scenario, config, _ in load_scenarios(args.scenarios, config_document(args.config, overrides)):  # fail fast: exit 2, nothing started or written
        _check_scenario_servers(scenario.name, config, base_config)
    server = prefect_server.start()  # before Prefect is imported (flows.whatif): its settings are read at import
    try:
        _start_points_note(args, base_config)  # once a PREFECT_API_URL is known to answer: a refusal is one line
        from flows.whatif import DEFAULT_OUTPUT_DIR, what_if

        wait_for_prefect(server)

        def run():
            # Prefect records flow parameters: they get the redacted URI; the real one stays in memory.
            return what_if(args.scenarios, str(args.config or default_config_path()), redact_document(overrides),
                           experiment_name=experiment,
                           output_dir=args.output or DEFAULT_OUTPUT_DIR)

        if not args.json:
            run()
            interrupts.finished()
            return 0
        import contextlib

        with contextlib.redirect_stdout(sys.stderr):  # progress and tables to stderr: stdout is the JSON alone
            study = run()
        interrupts.finished()
    finally:
        server.release()
    print(json_text({"baseline": study["baseline"], "scenarios": study["scenarios"], "run_id": study["run_id"],
                     "experiment_id": study["experiment_id"], "files": study["files"]}))
    return 0


def _check_scenario_servers(name: str, config, base_config) -> None:
    """A scenario that points at another tracking store or Dask scheduler gets the checks the campaign's got."""
    from flows.inputs import check_dask_scheduler, check_tracking_store

    _check_physics_parameters(config, f"scenario {name}: ")

    if config.tracking.tracking_uri != base_config.tracking.tracking_uri:
        check_tracking_store(config.tracking.tracking_uri, key=f"scenario {name}: tracking.tracking_uri")
    if config.runner.address and config.runner.address != base_config.runner.address:
        check_dask_scheduler(config.runner.address, f"scenario {name}: runner.address")


UI_JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"  # MLflow's switch for its server's job runner


def cmd_ui(args) -> int:
    from flows.config import load_config
    from flows.inputs import check_tracking_store, existing_file, redact, reveal

    if args.config is not None:
        existing_file(args.config, "--config")
    if args.tracking_uri is not None and not args.tracking_uri.strip():
        raise UsageError("--tracking-uri '': empty: give a tracking URI (sqlite:///..., http://...) or leave it out")
    _free_port(args.port)
    overrides = {"tracking": {"tracking_uri": args.tracking_uri}} if args.tracking_uri else {}
    uri = load_config(args.config, overrides, OPTION_OF_KEY).tracking.tracking_uri
    # the UI only reads: a SQLite store that does not exist is a mistyped path, not a new store (MLflow had created
    # its folders and an empty database, and served an empty UI)
    check_tracking_store(uri, must_exist=True, key="--tracking-uri" if args.tracking_uri else "tracking_uri",
                         missing="a campaign creates it (make run, or snhc optimise)")  # a fresh clone's first ui
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", reveal(uri), "--host", "127.0.0.1",
               "--port", str(args.port)]
    console().print(f"MLflow UI on http://127.0.0.1:{args.port} over {redact(uri)} (Ctrl-C stops it)")
    sys.stdout.flush()
    # become the UI process: Ctrl-C and kill reach MLflow directly. Without MLflow's job runner (GenAI evaluation
    # jobs, which the UI of a campaign store never runs): it starts seven huey consumers that a kill of the UI's
    # PID leaves running
    environment = {UI_JOB_EXECUTION: "false", **os.environ}
    os.execve(sys.executable, command, environment)


def _free_port(port: int) -> None:
    """A port the UI can listen on at 127.0.0.1: 1 to 65535, and not taken."""
    import socket

    if not PORT_RANGE[0] <= port <= PORT_RANGE[1]:
        raise UsageError(f"--port={port} is out of range: {PORT_ALLOWED}")
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise UsageError(f"--port={port}: cannot listen there ({error.strerror or error}); is another server "
                             f"using it?") from None


def cmd_serve(args) -> int:
    from flows.config import load_config
    from flows.inputs import check_health, check_server, existing_file, existing_path

    # the files first, then the servers, as every command checks them: a bad --config had been reported as the
    # missing server
    if args.config is not None:
        existing_file(args.config, "--config")
    config = load_config(args.config)
    existing_path(args.whatif, "--whatif")
    from flows.campaign import check_capacity_scoreable, check_limits_reachable
    from flows.config import config_document, default_config_path
    from flows.scenarios import load_scenarios

    for check in (check_capacity_scoreable, check_limits_reachable):  # every scheduled run would refuse the config
        check(config, str(args.config or default_config_path()))
    studies = load_scenarios([args.whatif], config_document(args.config))  # served studies must run
    from flows.prefect_server import configured_api_url

    # the environment's or the active Prefect profile's, read before Prefect is imported: Prefect's own reader
    # raises a traceback on a broken profiles file
    api, where = configured_api_url()
    from flows.deployments import serve_deployments  # checks configs/schedules.yaml as it loads: a file, so before
    # the server (a bad time zone had been reported as the missing server)

    if api is None:
        raise UsageError("no Prefect server: start one with `prefect server start` and set "
                         "PREFECT_API_URL=http://127.0.0.1:4200/api (cron schedules need a real server)")
    from flows.inputs import http_url_problem, redact

    if problem := http_url_problem(api):  # a profile's value: the environment's was checked with the others
        raise UsageError(f"{where}={redact(api)}: {problem} (e.g. http://127.0.0.1:4200/api)")
    _check_campaign_servers(config)  # every scheduled run would fail on a store or scheduler that does not answer
    from flows.inputs import check_experiment_active
    from flows.scenarios import WHAT_IF_EXPERIMENT

    check_experiment_active(config.tracking.tracking_uri, WHAT_IF_EXPERIMENT, key="the weekly what-if's experiment",
                            artifact_location=config.tracking.artifact_location)
    for scenario, scenario_config, _ in studies:
        _check_scenario_servers(scenario.name, scenario_config, config)
    check_server(api, where)
    check_health(api, where, "a Prefect API", "/admin/version")

    serve_deployments(config_path=str(args.config or default_config_path()), whatif_path=args.whatif)
    return 0


def _add_campaign_options(command) -> None:
    command.add_argument("--config", help="campaign YAML (default configs/default.yaml)")
    command.add_argument("--n-calls", type=_number(int, _config_option("optimiser", "n_calls")),
                         help="total evaluations (overrides optimiser.n_calls)")
    command.add_argument("--batch-size", type=_number(int, _config_option("optimiser", "batch_size")),
                         help="points per ask (overrides optimiser.batch_size)")
    command.add_argument("--seed", type=_number(int, _config_option("optimiser", "seed")),
                         help="random seed (overrides optimiser.seed)")
    command.add_argument("--tracking-uri", help="MLflow tracking URI (overrides tracking.tracking_uri)")


class _Parser(argparse.ArgumentParser):
    """argparse with the project's rule for bad input: one line naming the option and what it allows, exit 2 (no
    usage block; ``--help`` has it). Subcommands inherit the class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from surrogate.paths import config_dir

    parser = _Parser(
        prog="snhc", description="Design Sn / hard-carbon composite anodes for Na-ion batteries in silico.")
    parser.add_argument("--version", action="version", version=f"snhc {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    optimise = commands.add_parser("optimise", help="run the Bayesian optimisation campaign (the main job)",
                                   description="Search the Sn:HC ratio and milling recipe with scikit-optimize in a "
                                               "Prefect flow; every run is recorded in MLflow.")
    _add_campaign_options(optimise)
    optimise.add_argument("--resume", metavar="RUN_ID", help="continue this campaign run from its last saved batch")
    optimise.add_argument("--observations", metavar="CSV", help="lab results to warm-start with (see README)")
    optimise.add_argument("--fidelity", choices=("model", "physics"),
                          help="what each evaluation runs: the numpy model, or PyBaMM with the numpy model as the "
                               "GP's prior mean (overrides fidelity)")
    optimise.add_argument("--json", action="store_true", help="print the recommendation as one JSON object (progress "
                                                              "goes to stderr)")
    optimise.set_defaults(handler=cmd_optimise)

    suggest = commands.add_parser("suggest", help="the next recipes to make in the lab",
                                  description="Suggest the next Q recipes from a campaign's results and/or lab "
                                              "results, with predicted metrics and uncertainty, as a table and CSV.")
    suggest.add_argument("--batch", type=_number(int, SUGGEST_BATCH_ALLOWED), default=4, metavar="Q",
                         help=f"how many recipes ({SUGGEST_BATCH_ALLOWED}, default 4)")
    suggest.add_argument("--resume", metavar="RUN_ID", help="a campaign run whose evaluations count as done")
    suggest.add_argument("--observations", metavar="CSV", help="lab results (rows without metrics are pending)")
    suggest.add_argument("--config", help="campaign YAML (default configs/default.yaml)")
    suggest.add_argument("--tracking-uri", help="MLflow tracking URI: where the --resume run is read from and the "
                         "suggestions' own run is logged (default: the config's, sqlite:///mlruns/mlflow.db)")
    suggest.add_argument("--output", default="suggestions.csv", help="CSV to write (default suggestions.csv)")
    suggest.add_argument("--json", action="store_true", help="print the suggestions as JSON records on stdout (the "
                         "table, what the lab taught and the MLflow run id go to stderr)")
    suggest.set_defaults(handler=cmd_suggest)

    whatif = commands.add_parser("what-if", help="run what-if scenarios and compare them",
                                 description="Run scenario files (or folders of them, e.g. configs/whatif) on the "
                                             "base campaign; one MLflow child run per scenario.")
    whatif.add_argument("scenarios", nargs="+", metavar="F", help="scenario YAML files or folders")
    _add_campaign_options(whatif)
    whatif.set_defaults(handler=cmd_what_if)

    predict = commands.add_parser("predict", help="predict the performance of one recipe or named material",
                                  description="Predict capacity, rate capability, cycle life and expansion of one "
                                              "recipe (default: the reference Sn@HC-2-1 recipe).")
    predict.add_argument("--material", help="a named material from configs/materials.yaml (e.g. Sn@HC-2-1)")
    for field in RECIPE_FIELDS:  # one option per recipe field, from the recipe schema
        predict.add_argument(field.option, *field.aliases, dest=field.name,
                             type=str if field.categorical else _number(float, field.allowed()),
                             choices=field.choices or None, help=f"{field.description} ({field.allowed()})")
    predict.add_argument("--config", help="campaign YAML whose objective (or objectives) scores the recipe "
                                          "(default: the default objective)")
    predict.add_argument("--current", nargs="+", default=["0.17", "0.42", "0.84", "1.7", "4.2"], metavar="A_PER_G",
                         type=_number_text(CURRENT_ALLOWED), help="currents (A/g) for the rate metrics")
    predict.add_argument("--cycling-current", type=_number(float, CURRENT_ALLOWED), default=1.7,
                         metavar="A_PER_G", help="current of the cycle-life metrics (A/g, default 1.7)")
    predict.add_argument("--cycles", nargs="+", type=_number(float, CYCLE_ALLOWED), default=[1, 400, 1000, 12000],
                         metavar="N", help="cycle numbers to report")
    predict.add_argument("--temperature-C", dest="temperature_C", type=_number(float, TEMPERATURE_ALLOWED),
                         default=25.0, help=f"cell temperature (C, {TEMPERATURE_ALLOWED})")
    predict.add_argument("--observations", metavar="CSV",
                         help="lab results (as snhc suggest reads them): predict with the model they teach, its "
                              "lab_parameters estimated from the rows (those of --config, default "
                              "configs/default.yaml), intervals narrowed where the rows bear")
    predict.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    predict.add_argument("--fidelity", choices=("model", "physics"), default="model",
                         help="model (default: the numpy model, instant) or physics: rate capability from the "
                              "PyBaMM model")
    predict.set_defaults(handler=cmd_predict)

    calibration = commands.add_parser("calibrate", help="fit the free model parameters and print the fit report",
                                      description="Fit the fitted parameters to the calibration data (cached on "
                                                  "the data hash) and print each point, model value and residual.")
    calibration.add_argument("--data", help="calibration data file (default configs/calibration/li2025.yaml)")
    calibration.add_argument("--refit", action="store_true", help="ignore the cache and fit again")
    calibration.add_argument("--observations", metavar="CSV",
                             help="refit on the study's data plus these lab rows and show how each parameter and "
                                  "lab prediction moved")
    calibration.add_argument("--fidelity", choices=("model", "physics"), default="model",
                             help="which model to fit: the numpy model (default) or the PyBaMM model")
    calibration.add_argument("--validate", action="store_true",
                             help="leave-out validation: refit without the points a user would extrapolate to, "
                                  "predict them with 90 %% intervals, log the report to MLflow (snhc-calibration)")
    calibration.add_argument("--json", action="store_true",
                             help="print the fit report (or, with --validate, the leave-out report) as JSON")
    calibration.add_argument("--tracking-uri", help="with --validate: MLflow tracking URI (default the config's)")
    calibration.add_argument("--config", help="with --observations: campaign YAML of the refit, as a campaign's "
                                              "(its lab_uncertainty_pct weighs the lab rows; its model_parameters "
                                              "and objective apply; default configs/default.yaml)")
    calibration.set_defaults(handler=cmd_calibrate)

    ui = commands.add_parser("ui", help="start the MLflow UI on 127.0.0.1 over the project's store",
                             description="Start `mlflow ui` on 127.0.0.1 over the campaign's tracking store.")
    ui.add_argument("--port", type=_number(int, PORT_ALLOWED), default=5000,
                    help=f"port ({PORT_ALLOWED}, default 5000)")
    ui.add_argument("--config", help="campaign YAML whose tracking URI to open (default configs/default.yaml)")
    ui.add_argument("--tracking-uri", help="tracking URI to open instead")
    ui.set_defaults(handler=cmd_ui)

    serve = commands.add_parser("serve", help="serve the scheduled deployments (needs a Prefect server)",
                                description="Register the nightly optimisation and the weekly what-if "
                                            "deployments with their cron schedules and run them when due.")
    serve.add_argument("--config", help="campaign YAML the deployments run (default configs/default.yaml)")
    serve.add_argument("--whatif", default=str(config_dir() / "whatif"),
                       help="scenario folder of the what-if deployment (default: the project's configs/whatif)")
    serve.set_defaults(handler=cmd_serve)

    whatif.add_argument("--json", action="store_true",
                        help='print {"baseline": {...}, "scenarios": [...]} with the fixed-definition metrics')
    whatif.add_argument("--output", metavar="DIR",
                        help="folder for the comparison CSV and PNG (default whatif-results)")
    whatif.add_argument("--experiment", metavar="NAME", help="MLflow experiment of the study (default snhc-what-if)")
    return parser


def _number(convert, allowed):
    """argparse type: a number as written (:func:`surrogate.yaml_safety.plain_number`); text that is not one is
    refused naming what the option allows, as an out-of-range value is. ``allowed`` is that text, or a function
    giving it (read only on error, so a config's limits cost ``snhc --help`` nothing)."""
    def parse(text: str):
        from surrogate.yaml_safety import plain_number

        try:
            return plain_number(text, convert)
        except ValueError:
            what = "an integer" if convert is int else "a number"
            from surrogate.yaml_safety import excerpt

            raise argparse.ArgumentTypeError(
                f"{excerpt(text)} is not {what}: {allowed() if callable(allowed) else allowed}") from None

    return parse


def _number_text(allowed):
    """argparse type: :func:`_number`, keeping the number as the user wrote it (JSON keys use it)."""
    check = _number(float, allowed)

    def parse(text: str) -> str:
        check(text)
        return text

    return parse


def _config_option(*key: str):
    """``allowed`` of an option that overrides a campaign setting: the config schema's range, read on error."""
    def allowed() -> str:
        from flows.config import allowed_range

        return allowed_range(key)

    return allowed


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("snhc")
    except PackageNotFoundError:
        return "unknown (not installed)"


def json_text(document) -> str:
    """:func:`flows.inputs.json_text` (imported when a command prints JSON, so ``--help`` stays quick)."""
    from flows.inputs import json_text as strict_json

    return strict_json(document)


def usage_errors() -> tuple[type[Exception], ...]:
    """The errors that are the user's input: one line, exit 2 (imported only when one is being handled)."""
    from flows.inputs import InputError
    from surrogate.calibration import CalibrationDataError
    from surrogate.parameters import ParameterError
    from surrogate.recipe import RecipeError

    return UsageError, RecipeError, ParameterError, CalibrationDataError, InputError


def main(argv: list[str] | None = None) -> int:
    # MLflow draws a progress bar on stderr for every artifact it downloads (a campaign's saved state when resuming):
    # noise beside the one line a bad input gets, for files of a few kB
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    parser = build_parser()
    words = sys.argv[1:] if argv is None else argv
    if words and words[0].startswith("-") and words[0] not in TOP_LEVEL_OPTIONS and any(
            word in _commands(parser) for word in words[1:]):  # argparse had called the option's value the command
        parser.error(f"{words[0]}: options come after the command (snhc COMMAND {words[0]} ...)")
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # after the command (options before it are refused above): named by its parser, whose --help lists
        # what it takes
        _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(unknown)}")
    if argv is None:  # the command itself, not a caller in this process (tests, notebooks)
        atexit.register(_exit_without_teardown)  # first registered, so the last to run
    try:
        from flows.inputs import check_environment, check_printable, check_tool_environment

        _check_given_once(parser, args.command, words)
        check_printable({_option_of(parser, args.command, dest): value for dest, value in vars(args).items()
                         if dest not in ("command", "handler")})
        check_environment()
        check_tool_environment(args.command, opens_store=args.command != "calibrate" or bool(
            getattr(args, "validate", False)))
        code = args.handler(args)
        if argv is None:
            global _exit_code
            _exit_code = code
        return code
    except Exception as error:  # noqa: BLE001 - bad input and start-up failures are one line, not a traceback
        if isinstance(error, usage_errors()):
            print(f"snhc {args.command}: error: {one_line(error)}", file=sys.stderr)
            return EXIT_USAGE
        from flows.prefect_server import PrefectStartupError
        from flows.recommendation import AllEvaluationsFailed

        if isinstance(error, (PrefectStartupError, AllEvaluationsFailed)):  # the run says why; one line here
            print(f"snhc {args.command}: error: {one_line(error)}", file=sys.stderr)
            return 1
        if isinstance(error, BrokenPipeError) and _reader_gone():  # `snhc predict --json | head -1`: it stopped
            return 1                                                  # reading on purpose; nothing to say
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            _quiet_stdout()  # a full disk: one line, and the interpreter's last flush fails no more
            print(f"snhc {args.command}: error: cannot write ({error.strerror}): free some space or write elsewhere",
                  file=sys.stderr)
            return 1
        raise
    finally:
        if argv is not None:  # a caller in this process: its own Ctrl-C handling back (the command keeps ours)
            from flows import interrupts

            interrupts.restore()


def _reader_gone() -> bool:
    """Whether standard output is a pipe whose reader has closed it (poll reports an error on its write end); then
    it is pointed at the null device (:func:`_quiet_stdout`). A broken pipe elsewhere (a server's socket) is not."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        gone = any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # no file descriptor (a caller's StringIO)
        return False
    if gone:
        _quiet_stdout()
    return gone


def _quiet_stdout() -> None:
    """Point standard output at the null device, so what is still buffered for it cannot fail again at exit."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass


_exit_code: int | None = None  # set when the command returns normally: it may then skip the interpreter's teardown


def _exit_without_teardown() -> None:
    """Leave the process once every other exit handler has run (Prefect's log and event flushes, MLflow's, the
    temporary server's stop: registered later, they run earlier), skipping the interpreter's teardown.

    That teardown is a last garbage collection over every object Prefect, MLflow, PyBaMM and SymPy created, which
    frees memory the operating system reclaims anyway: 1.2 s of a default ``snhc optimise`` (measured after the last
    exit handler; benchmarks/optimise_wall.py). Streams and logging handlers are flushed first. A command that ends
    in an uncaught exception exits the ordinary way."""
    if _exit_code is None:
        return
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be written to it
            pass
    os._exit(_exit_code)


MAX_ERROR_CHARS = 400  # an error line names the input and the allowed values; more than this is the input echoed


TOP_LEVEL_OPTIONS = ("-h", "--help", "--version")  # what snhc itself takes before a command


def _commands(parser) -> dict:
    """The subcommands' names and their parsers."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _command_parser(parser, command: str) -> argparse.ArgumentParser:
    """One subcommand's own parser."""
    return _commands(parser)[command]


def _command_actions(parser, command: str) -> list:
    """The options and positionals of one subcommand, as its parser declares them."""
    return _command_parser(parser, command)._actions


def _check_given_once(parser, command: str, argv: list[str]) -> None:
    """An option given twice is an error: argparse keeps the last silently (``--current 0.1 --current 4.2``
    predicted 4.2 alone), where a user meant both or mistyped one. A list option takes its values after one flag."""
    words = argv[: argv.index("--")] if "--" in argv else argv
    for action in _command_actions(parser, command):
        given = [w for w in words for flag in action.option_strings if w == flag or w.startswith(flag + "=")]
        if len(given) > 1 and not isinstance(action, argparse._HelpAction):
            raise UsageError(f"{action.option_strings[-1]}: given {len(given)} times; give it once"
                             + (f" with every value after it ({action.option_strings[-1]} A B ...)"
                                if action.nargs in ("+", "*") else ""))


def _option_of(parser, command: str, dest: str) -> str:
    """How a parsed argument was given on the command line (``--tracking-uri``; a positional by its metavar)."""
    for action in _command_actions(parser, command):
        if action.dest == dest:
            return action.option_strings[-1] if action.option_strings else (action.metavar or dest)
    return dest


def one_line(error: Exception) -> str:
    """An error as one redacted line of bounded length; a control character it quotes (an escape sequence in a
    path) is shown escaped, not sent to the terminal."""
    from flows.inputs import escaped, redact_message

    text = escaped(" ".join(redact_message(str(error)).split()))
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


if __name__ == "__main__":
    sys.exit(main())
