"""The ``snhc`` command line: optimise, what-if, predict, calibrate, ui and serve.

Bad input exits with code 2 and one line that names the option or key and its allowed range, before any Prefect
flow or MLflow run starts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from rich.console import Console
from rich.table import Table

from flows.config import ConfigError, default_config_path, load_config
from flows.objective import SCORE, CapacityObjective
from surrogate.calibration import CalibrationDataError, calibrate
from surrogate.model import PredictionRequest, predict
from surrogate.parameters import ModelParameters, ParameterError
from surrogate.paths import config_dir
from surrogate.recipe import FIELDS, RECIPE_FIELDS, RecipeError, Recipes, load_materials

EXIT_USAGE = 2
console = Console()


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


def _reference_recipe() -> dict[str, float]:
    return load_materials(config_dir() / "materials.yaml")["Sn@HC-2-1"].to_records()[0]


def _recipe_from_args(args) -> tuple[str, Recipes]:
    materials = load_materials(config_dir() / "materials.yaml")
    given = {f.name: getattr(args, f.name) for f in RECIPE_FIELDS if getattr(args, f.name) is not None}
    if args.material is not None:
        if given:
            raise UsageError("--material cannot be combined with recipe options (--sn-mass-fraction, ...)")
        if args.material not in materials:
            raise UsageError(f"--material {args.material!r} is unknown: allowed {', '.join(materials)}")
        return args.material, materials[args.material]
    recipe = _reference_recipe() | given
    for name, value in recipe.items():
        if not FIELDS[name].is_valid(value):
            shown = f"{value:g}" if isinstance(value, float) else value
            raise UsageError(f"{FIELDS[name].option}={shown} is out of range: {FIELDS[name].allowed()}")
    return "custom recipe", Recipes.from_records([recipe])


def _positive(option: str, values, integer: bool = False):
    for value in values:
        if not math.isfinite(value) or value <= 0 or (integer and value != int(value)):
            kind = "a positive integer" if integer else "a positive number"
            raise UsageError(f"{option}={value:g} is out of range: must be {kind}")
    return values


def cmd_predict(args) -> int:
    name, recipes = _recipe_from_args(args)
    currents = _positive("--current", [float(c) for c in args.current])
    _positive("--cycling-current", [args.cycling_current])
    cycles = [int(c) for c in _positive("--cycles", args.cycles, integer=True)]
    if not -40.0 <= args.temperature_C <= 80.0:
        raise UsageError(f"--temperature-C={args.temperature_C:g} is out of range: allowed -40 to 80")
    p = calibrate().apply(ModelParameters.load())
    objective = load_config(args.config).objective if args.config else CapacityObjective()
    request = PredictionRequest(tuple(currents), args.cycling_current, tuple(cycles), args.temperature_C,
                                objective.current_A_per_g, objective.cycle, objective.temperature_C)
    if args.fidelity == "physics":
        from flows.fidelity import PhysicsFailure, physics_record
        from surrogate.physics import calibrated_physics_parameters

        try:
            record = physics_record(recipes, p, calibrated_physics_parameters(p), request, args.current, objective)
        except PhysicsFailure as failure:
            print(f"snhc predict: the PyBaMM model could not evaluate {name}: {failure}", file=sys.stderr)
            return 1
    else:
        prediction = predict(recipes, p, request)
        record = prediction.record(0, current_labels=args.current)
        record[SCORE] = float(objective.score(objective.inputs(prediction))[SCORE][0])
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    _print_prediction(name, recipes.to_records()[0], record, args)
    return 0


def _print_prediction(name, recipe, record, args) -> None:
    fidelity = " (PyBaMM rate capability)" if args.fidelity == "physics" else ""
    table = Table(title=f"Predicted performance of {name}{fidelity}", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for field, value in recipe.items():
        table.add_row(f"recipe: {field}", f"{value:.4g}" if isinstance(value, float) else str(value))
    table.add_row("theoretical capacity (mAh/g)", f"{record['theoretical_capacity_mAh_per_g']:.1f}")
    table.add_row("reversible capacity, first cycle at 0.08 A/g (mAh/g)", f"{record['reversible_capacity_mAh_per_g']:.1f}")
    table.add_row("initial Coulombic efficiency (%)", f"{record['initial_coulombic_efficiency_pct']:.1f}")
    for current, value in record["capacity_at_current_mAh_per_g"].items():
        table.add_row(f"capacity at {current} A/g (mAh/g)", f"{value:.1f}")
    for cycle, value in record["capacity_at_cycle_mAh_per_g"].items():
        table.add_row(f"capacity at cycle {cycle}, {args.cycling_current:g} A/g (mAh/g)", f"{value:.1f}")
    table.add_row("particle expansion (%)", f"{record['particle_expansion_pct']:.1f}")
    table.add_row("electrode expansion after 1000 cycles (%)", f"{record['electrode_expansion_after_1000_cycles_pct']:.1f}")
    table.add_row("apparent activation energy (kJ/mol)", f"{record['activation_energy_kJ_per_mol']:.2f}")
    table.add_row("objective (mAh/g)", f"{record['objective']:.1f}")
    console.print(table)


def cmd_calibrate(args) -> int:
    calibration = calibrate(ModelParameters.load(), args.data, refit=args.refit)
    if args.fidelity == "physics":
        from surrogate.physics import fit_physics

        print(fit_physics(calibration.apply(ModelParameters.load()), data_path=args.data,
                          refit=args.refit).report_text())
        return 0
    print(calibration.report_text())  # a wide table: never re-wrapped
    return 0


def _campaign_overrides(args) -> dict:
    """CLI options of optimise / what-if as config overrides.

    A smaller ``--n-calls`` keeps at most half its budget for random starts, so it does not fail validation
    against the config's ``n_initial_points``.
    """
    optimiser = {key: value for key, value in (("n_calls", args.n_calls), ("batch_size", args.batch_size),
                                               ("seed", args.seed)) if value is not None}
    if args.n_calls is not None:
        configured = load_config(args.config).optimiser.n_initial_points
        optimiser["n_initial_points"] = min(configured, max(1, args.n_calls // 2))
    overrides: dict = {"optimiser": optimiser} if optimiser else {}
    if args.tracking_uri:
        overrides["tracking"] = {"tracking_uri": args.tracking_uri}
    return overrides


def cmd_optimise(args) -> int:
    overrides = _campaign_overrides(args)
    from flows.campaign import build_campaign, hand_over
    from flows.optimise import optimise_anode
    from flows.reporting import print_recommendation

    # Built and validated once, before anything starts (bad input: exit 2, nothing written); the flow takes it over.
    campaign = build_campaign(args.config, overrides, args.resume, args.observations)
    config = campaign.config
    summary = optimise_anode(str(args.config or default_config_path()), overrides, args.resume, args.observations,
                             campaign_token=hand_over(campaign))
    print_recommendation(summary["recipe"], summary["metrics"], (summary["surrogate_mean"], summary["surrogate_std"]))
    console.print(f"Fidelity: {summary['fidelity']}")
    for note in summary.get("notes", []):
        console.print(f"Recommendation: {note}")
    console.print(f"MLflow: experiment [bold]{config.tracking.experiment_name}[/], run [bold]{summary['run_id']}[/] "
                  f"in {config.tracking.tracking_uri}")
    console.print(f"Open it with [bold]snhc ui[/] -> http://127.0.0.1:5000/#/experiments/{summary['experiment_id']}"
                  f"/runs/{summary['run_id']}")
    return 0


def cmd_suggest(args) -> int:
    from flows.campaign import build_campaign
    from flows.suggest import suggest

    if args.batch < 1 or args.batch > 64:
        raise UsageError(f"--batch={args.batch} is out of range: allowed 1 to 64")
    if not (args.resume or args.observations):
        raise UsageError("give --resume RUN_ID and/or --observations lab.csv: what has been done so far")
    overrides = {"tracking": {"tracking_uri": args.tracking_uri}} if args.tracking_uri else {}
    table = suggest(build_campaign(args.config, overrides, args.resume, args.observations), args.batch)
    table.to_csv(args.output, index=False)
    from flows.reporting import print_frame

    print_frame(table, SUGGESTION_COLUMNS, "Next recipes to make")
    console.print(f"{len(table)} suggestions written to [bold]{args.output}[/]")
    return 0


SUGGESTION_COLUMNS = {  # table column -> short console header
    "sn_mass_fraction": "Sn frac", "milling_time_h": "time h", "milling_speed_rpm": "rpm",
    "ball_to_powder_ratio": "BPR", "predicted_objective": "objective", "surrogate_mean_objective": "GP mean",
    "surrogate_std_objective": "GP sd", "capacity_at_cycle_1000_mAh_per_g": "Q@1000", "particle_expansion_pct": "swell %",
}


def cmd_what_if(args) -> int:
    from flows.whatif import load_scenarios, what_if
    from flows.config import deep_merge, read_yaml

    overrides = _campaign_overrides(args)
    base = deep_merge(read_yaml(args.config or default_config_path()), overrides)
    load_config(args.config, overrides)
    load_scenarios(args.scenarios, base)  # fail fast on any scenario
    what_if(args.scenarios, str(args.config or default_config_path()), overrides)
    return 0


def cmd_ui(args) -> int:
    uri = args.tracking_uri or load_config(args.config).tracking.tracking_uri
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
               "--port", str(args.port)]
    console.print(f"MLflow UI on http://127.0.0.1:{args.port} over {uri} (Ctrl-C stops it)")
    sys.stdout.flush()
    os.execv(sys.executable, command)  # become the UI process: Ctrl-C and kill reach MLflow directly


def cmd_serve(args) -> int:
    if not os.environ.get("PREFECT_API_URL"):
        raise UsageError("no Prefect server: start one with `prefect server start` and set "
                         "PREFECT_API_URL=http://127.0.0.1:4200/api (cron schedules need a real server)")
    load_config(args.config)
    from flows.deployments import serve_deployments

    serve_deployments(config_path=str(args.config or "configs/default.yaml"), whatif_path=args.whatif)
    return 0


def _add_campaign_options(command) -> None:
    command.add_argument("--config", help="campaign YAML (default configs/default.yaml)")
    command.add_argument("--n-calls", type=int, help="total evaluations (overrides optimiser.n_calls)")
    command.add_argument("--batch-size", type=int, help="points per ask (overrides optimiser.batch_size)")
    command.add_argument("--seed", type=int, help="random seed (overrides optimiser.seed)")
    command.add_argument("--tracking-uri", help="MLflow tracking URI (overrides tracking.tracking_uri)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snhc", description="Design Sn / hard-carbon composite anodes for Na-ion batteries in silico.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    optimise = commands.add_parser("optimise", help="run the Bayesian optimisation campaign (the main job)",
                                   description="Search the Sn:HC ratio and milling recipe with scikit-optimize in a "
                                               "Prefect flow; every run is recorded in MLflow.")
    _add_campaign_options(optimise)
    optimise.add_argument("--resume", metavar="RUN_ID", help="continue this campaign run from its last saved batch")
    optimise.add_argument("--observations", metavar="CSV", help="lab results to warm-start with (see README)")
    optimise.set_defaults(handler=cmd_optimise)

    suggest = commands.add_parser("suggest", help="the next recipes to make in the lab",
                                  description="Suggest the next Q recipes from a campaign's results and/or lab "
                                              "results, with predicted metrics and uncertainty, as a table and CSV.")
    suggest.add_argument("--batch", type=int, default=4, metavar="Q", help="how many recipes (1 to 64, default 4)")
    suggest.add_argument("--resume", metavar="RUN_ID", help="a campaign run whose evaluations count as done")
    suggest.add_argument("--observations", metavar="CSV", help="lab results (rows without metrics are pending)")
    suggest.add_argument("--config", help="campaign YAML (default configs/default.yaml)")
    suggest.add_argument("--tracking-uri", help="MLflow tracking URI of the --resume run")
    suggest.add_argument("--output", default="suggestions.csv", help="CSV to write (default suggestions.csv)")
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
        predict.add_argument(field.option, *field.aliases, dest=field.name, type=str if field.categorical else float,
                             choices=field.choices or None, help=f"{field.description} ({field.allowed()})")
    predict.add_argument("--config", help="campaign YAML whose objective scores the recipe (default: the default "
                                          "objective)")
    predict.add_argument("--current", nargs="+", default=["0.17", "0.42", "0.84", "1.7", "4.2"], metavar="A_PER_G",
                         type=_number_text, help="currents (A/g) for the rate metrics")
    predict.add_argument("--cycling-current", type=float, default=1.7, metavar="A_PER_G",
                         help="current of the cycle-life metrics (A/g, default 1.7)")
    predict.add_argument("--cycles", nargs="+", type=float, default=[1, 400, 1000, 12000], metavar="N",
                         help="cycle numbers to report")
    predict.add_argument("--temperature-C", dest="temperature_C", type=float, default=25.0,
                         help="cell temperature (C, -40 to 80)")
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
    calibration.add_argument("--fidelity", choices=("model", "physics"), default="model",
                             help="which model to fit: the numpy model (default) or the PyBaMM model")
    calibration.set_defaults(handler=cmd_calibrate)

    ui = commands.add_parser("ui", help="start the MLflow UI on 127.0.0.1 over the project's store",
                             description="Start `mlflow ui` on 127.0.0.1 over the campaign's tracking store.")
    ui.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    ui.add_argument("--config", help="campaign YAML whose tracking URI to open (default configs/default.yaml)")
    ui.add_argument("--tracking-uri", help="tracking URI to open instead")
    ui.set_defaults(handler=cmd_ui)

    serve = commands.add_parser("serve", help="serve the scheduled deployments (needs a Prefect server)",
                                description="Register the nightly optimisation and the weekly what-if "
                                            "deployments with their cron schedules and run them when due.")
    serve.add_argument("--config", help="campaign YAML the deployments run (default configs/default.yaml)")
    serve.add_argument("--whatif", default="configs/whatif", help="scenario folder of the what-if deployment")
    serve.set_defaults(handler=cmd_serve)
    return parser


def _number_text(text: str) -> str:
    """Keep a number as the user wrote it (JSON keys use it) after checking it parses."""
    float(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (UsageError, RecipeError, ParameterError, CalibrationDataError, ConfigError) as error:
        print(f"snhc {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
