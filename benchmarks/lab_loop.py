"""A virtual-lab benchmark: how many experiments each optimiser needs when the lab is not the model.

A virtual lab (``benchmarks/labs/*.yaml``, format in benchmarks/labs/README.md) is the calibrated model of the
default campaign with some parameters changed (a different HC batch, a different mill) plus Gaussian measurement noise
of ``noise_pct`` % of the objective. The optimisers see only its noisy measurements; the unchanged model is what
the project knows. For each lab:

1. the lab's true optimum, found densely on the lab's own model (``flows.model_optimum.dense_optimum``), and the
   shortfall of the unchanged model's best recipe in that lab (a lab the model already knows tests nothing);
2. for each method, in batches of 4 as a lab works, the experiments until the best *measured* recipe is truly within
   1 % of the lab's optimum, over ``--seeds`` seeds with ``--budget`` experiments; a seed that never gets there
   counts as budget + 1 in the median:

   - ``physics_gp``: ``flows.search.make_optimizer(config, surrogate="physics_gp")``, the unchanged model as prior,
     its ``lab_parameters`` re-estimated from the lab's results (weighted by the lab's ``noise_pct``, stated to the
     campaign as ``lab_uncertainty_pct``);
   - ``plain_gp``: ``make_optimizer(config)``, the campaign's plain GP (today's ``snhc suggest`` on lab data);
   - ``tpe``: Optuna's ``TPESampler(seed=seed)``, 4 trials per ask;
   - ``random``: uniform over the search space (log-uniform where it is searched on a log scale);
3. the optimiser's own CPU time per evaluation (``time.process_time`` around ask + tell) of the GP methods, batches
   ending within 8 evaluations of 50, one run of seed 0 on each lab (``--no-cpu`` skips it).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/lab_loop.py [--lab-spec FILE] [--seeds 10] [--budget 60] [--json]``
(every shipped lab unless ``--lab-spec``; ``--json`` prints one JSON document per lab per line:
``{"lab": name, "shortfall_pct": s, "methods": {M: {"median_experiments", "not_reached", "per_seed"}},
"cpu_s_per_evaluation_at_50": {M: s}}``, the last key unless ``--no-cpu``).
A bad lab file gets one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ConfigDict, Field, ValidationError
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.config import CampaignConfig, ConfigError, PrintedName, load_config, parse_setting  # noqa: E402
from flows.inputs import NumbersNotBooleans  # noqa: E402
from flows.evaluation import campaign_parameters  # noqa: E402
from flows.model_optimum import dense_optimum  # noqa: E402
from flows.search import make_optimizer, model_losses, point_of, search_dimensions  # noqa: E402
from surrogate.parameters import ModelParameters, ParameterError  # noqa: E402
from surrogate.yaml_safety import YamlInputError, read_yaml_file  # noqa: E402

METHODS = ("physics_gp", "plain_gp", "tpe", "random")
LABS_DIR = Path(__file__).resolve().parent / "labs"
WITHIN = 0.01  # "within 1 % of the lab's optimum"
BATCH = 4  # experiments per round, as a lab works
CPU_AT, CPU_WINDOW = 50, 8  # CPU per evaluation: batches ending within CPU_WINDOW evaluations of CPU_AT
MAX_NOISE_PCT = 50.0
MIN_STATED_UNCERTAINTY_PCT = 0.1  # the scatter a lab states for a noiseless lab file: a coin cell's reading error


class LabSpecError(ValueError):
    """A lab file that cannot be used: one line naming the file and field."""


class LabSpec(NumbersNotBooleans):
    """A virtual lab: the model with ``parameter_overrides`` plus ``noise_pct`` % Gaussian noise on the objective.
    Read by the configs' rules: a number is a number (not ``true`` or ``'0.5'``), a name one printable path part."""

    model_config = ConfigDict(extra="forbid")
    name: PrintedName
    description: str = ""
    parameter_overrides: dict[str, Any] = Field(default_factory=dict)
    noise_pct: float = Field(ge=0.0, le=MAX_NOISE_PCT, allow_inf_nan=False)
    # the scatter the lab tells the campaign (lab_uncertainty_pct); default its true noise. A lab that overstates
    # it (the default 5 % for 0.5 % cells) measures what a careless statement costs
    stated_uncertainty_pct: float | None = Field(None, gt=0.0, le=100.0, allow_inf_nan=False)
    objective: dict[str, Any] = Field(default_factory=dict)


@dataclass
class Lab:
    """A lab file made usable: its campaign (objective settings applied), the project's model, the lab's model."""

    spec: LabSpec
    config: CampaignConfig
    p_model: ModelParameters
    p_lab: ModelParameters

    def true_objective(self, points: list[list]) -> np.ndarray:
        return -model_losses(self.config, self.p_lab)(points)


def load_lab(path: str | Path, base: CampaignConfig | None = None, p_model: ModelParameters | None = None) -> Lab:
    """Read and check a lab file; any problem raises :class:`LabSpecError` with one line naming the field."""
    path = Path(path)
    try:
        document = read_yaml_file(path, "lab file")
    except YamlInputError as error:
        raise LabSpecError(str(error)) from None
    if not isinstance(document, dict):
        raise LabSpecError(f"{path}: expected a mapping with name, parameter_overrides, noise_pct")
    try:
        spec = LabSpec.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")  # a validator's own words, as the configs show them
        raise LabSpecError(f"{path}: " + (f"{field}: " if field else "") + message
                           + (" (allowed 0 to {:g})".format(MAX_NOISE_PCT) if "noise_pct" in (field or message)
                              else "")) from None
    try:
        settings = {"optimiser": base.optimiser.model_dump(mode="json")} if base is not None else {}
        config = (load_config(overrides=settings | {"objective": spec.objective}) if spec.objective
                  else (base or load_config()))
    except ConfigError as error:
        raise LabSpecError(f"{path}: objective: {error}") from None
    # The lab states its measurement scatter, as a user sets lab_uncertainty_pct: the physics-informed GP weighs the
    # lab's results by it when it infers the lab's parameters (a noiseless lab still states a small scatter).
    stated = spec.stated_uncertainty_pct if spec.stated_uncertainty_pct is not None else spec.noise_pct
    config = config.model_copy(update={"lab_uncertainty_pct": max(stated, MIN_STATED_UNCERTAINTY_PCT)})
    if p_model is None:
        p_model, _ = campaign_parameters(config)
    try:
        p_lab = p_model.with_values(**spec.parameter_overrides)
    except ParameterError as error:
        raise LabSpecError(f"{path}: parameter_overrides: {str(error).removeprefix('model_parameters.')}") from None
    return Lab(spec, config, p_model, p_lab)


class _Reached(Exception):
    """Ends a run once the target is reached: later experiments do not change the count."""


class Bench:
    """The lab as a method sees it: noisy measurements of a batch; counts experiments until the target."""

    def __init__(self, lab: Lab, target: float, budget: int, seed: int, stop: bool = True):
        self.lab, self.target, self.budget, self.stop = lab, target, budget, stop
        self.rng = np.random.default_rng(seed)
        self.done = 0
        self.best_measured, self.best_true = -np.inf, -np.inf
        self.reached: int | None = None
        self.cpu_batches: list[tuple[int, float]] = []
        self._mark = time.process_time()

    def measure(self, points: list[list]) -> list[float]:
        spent = time.process_time() - self._mark
        true = self.lab.true_objective(points)
        noise = self.rng.normal(0.0, self.lab.spec.noise_pct / 100.0, size=len(points))
        measured = true * (1.0 + noise)
        for t, m in zip(true, measured):
            if m > self.best_measured:
                self.best_measured, self.best_true = float(m), float(t)
        self.done += len(points)
        self.cpu_batches.append((self.done, spent))
        if self.reached is None and self.best_true >= self.target:
            self.reached = self.done
            if self.stop:
                raise _Reached
        self._mark = time.process_time()
        return [float(m) for m in measured]

    def remaining(self) -> int:
        return self.budget - self.done

    def count(self) -> int:
        return self.reached if self.reached is not None else self.budget + 1

    def cpu_per_evaluation(self, at: int = CPU_AT) -> float:
        window, previous = [], 0
        for done, cpu in self.cpu_batches:
            if abs(done - at) <= CPU_WINDOW:
                window.append((done - previous, cpu))
            previous = done
        return sum(c for _, c in window) / sum(n for n, _ in window) if window else float("nan")


def _seeded(config: CampaignConfig, seed: int) -> CampaignConfig:
    return config.model_copy(update={"optimiser": config.optimiser.model_copy(update={"seed": seed})})


def _run_skopt(bench: Bench, seed: int, surrogate: str) -> None:
    config = _seeded(bench.lab.config, seed)
    optimizer = make_optimizer(config, bench.lab.p_model, surrogate=surrogate)
    while bench.remaining() > 0:
        points = [[np.asarray(v).item() for v in point]
                  for point in optimizer.ask(n_points=min(BATCH, bench.remaining()), strategy=config.optimiser.liar)]
        measured = bench.measure(points)
        optimizer.tell(points, [-m for m in measured])


def run_physics_gp(bench: Bench, seed: int) -> None:
    _run_skopt(bench, seed, "physics_gp")


def run_plain_gp(bench: Bench, seed: int) -> None:
    _run_skopt(bench, seed, "GP")


def run_tpe(bench: Bench, seed: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = bench.lab.config.search_space
    distributions = {name: optuna.distributions.FloatDistribution(getattr(space, name).low, getattr(space, name).high,
                                                                  log=getattr(space, name).log_scale)
                     for name in space.searched()}
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    while bench.remaining() > 0:
        trials = [study.ask(distributions) for _ in range(min(BATCH, bench.remaining()))]
        measured = bench.measure([[trial.params[name] for name in space.searched()] for trial in trials])
        for trial, value in zip(trials, measured):
            study.tell(trial, value)


def run_random(bench: Bench, seed: int) -> None:
    from skopt.space import Space

    space, rng = Space(search_dimensions(bench.lab.config)), np.random.RandomState(seed)
    while bench.remaining() > 0:
        bench.measure([[np.asarray(v).item() for v in point]
                       for point in space.rvs(n_samples=min(BATCH, bench.remaining()), random_state=rng)])


RUNNERS = {"physics_gp": run_physics_gp, "plain_gp": run_plain_gp, "tpe": run_tpe, "random": run_random}


def experiments_to_target(method: str, lab: Lab, target: float, seed: int, budget: int) -> int:
    bench = Bench(lab, target, budget, seed)
    try:
        RUNNERS[method](bench, seed)
    except _Reached:
        pass
    return bench.count()


def lab_targets(lab: Lab, dense_n: int, model_recipe: dict | None = None) -> dict[str, Any]:
    """The lab's true optimum (dense, on its own model), the target and the unchanged model's shortfall there
    (``model_recipe``: the model's own best recipe, if already known for this lab's campaign)."""
    if model_recipe is None:
        model_recipe, _ = dense_optimum(lab.config, lab.p_model, n=dense_n)
    recipe, optimum = dense_optimum(lab.config, lab.p_lab, n=dense_n)
    at_model_best = float(lab.true_objective([point_of(model_recipe, lab.config)])[0])
    return {"optimum_objective": optimum, "optimum_recipe": recipe, "target": optimum - WITHIN * abs(optimum),
            "model_best_in_lab": at_model_best, "shortfall_pct": 100.0 * (optimum - at_model_best) / abs(optimum)}


def benchmark_lab(lab: Lab, seeds: int, budget: int, methods=METHODS, dense_n: int = 2**15, log=print,
                  first_seed: int = 0) -> dict:
    """One lab's JSON document: ``{"lab", "shortfall_pct", "methods": {M: {median_experiments, not_reached,
    per_seed}}}``."""
    targets = lab_targets(lab, dense_n)
    log(f"lab {lab.spec.name}: optimum {targets['optimum_objective']:.2f} mAh/g, the model's best recipe gives "
        f"{targets['model_best_in_lab']:.2f} there: shortfall {targets['shortfall_pct']:.1f} %; "
        f"target >= {targets['target']:.2f}")
    result = {"lab": lab.spec.name, "shortfall_pct": round(targets["shortfall_pct"], 3), "methods": {}}
    for method in methods:
        start = time.perf_counter()
        per_seed = [experiments_to_target(method, lab, targets["target"], seed, budget) for seed in range(first_seed, first_seed + seeds)]
        result["methods"][method] = {"median_experiments": float(np.median(per_seed)),
                                     "not_reached": int(sum(c > budget for c in per_seed)), "per_seed": per_seed}
        log(f"  {method:10s} per seed {per_seed} ({time.perf_counter() - start:.0f} s)")
    return result


def cpu_per_evaluation(lab: Lab, method: str, at: int = CPU_AT) -> float:
    """Optimiser CPU (s) per evaluation around ``at`` evaluations: one run of seed 0 that never stops early."""
    bench = Bench(lab, np.inf, at + CPU_WINDOW, seed=0, stop=False)
    RUNNERS[method](bench, 0)
    return bench.cpu_per_evaluation(at)


def shipped_labs() -> list[Path]:
    return sorted(LABS_DIR.glob("*.yaml"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-spec", action="append", default=[], metavar="FILE",
                        help="a lab file (repeatable); default: every file in benchmarks/labs/")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are first-seed, first-seed + 1, ... (held-out seeds check a choice made on 0-9)")
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--json", action="store_true", help="print only the JSON documents, one per lab per line")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--dense", type=int, default=2**15, help="Sobol samples of the dense optimum search")
    parser.add_argument("--no-cpu", action="store_true", help="skip the optimiser CPU measurement")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an optimiser setting of the GP methods (measuring a choice)")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or args.seeds < 1 or args.first_seed < 0 or args.budget < BATCH:
        print(f"--methods must be among {','.join(METHODS)}, --seeds >= 1, --first-seed >= 0, --budget >= {BATCH}",
              file=sys.stderr)
        return 2
    paths = [Path(p) for p in args.lab_spec] or shipped_labs()
    try:
        base = load_config(overrides={"optimiser": dict(parse_setting(s) for s in args.set)} if args.set else None)
    except (ConfigError, ValueError) as error:  # a bad --set: one line, exit 2
        print(f"lab_loop.py: error: --set: {error}", file=sys.stderr)
        return 2
    p_model, _ = campaign_parameters(base)
    try:
        labs = [load_lab(path, base, p_model) for path in paths]
    except LabSpecError as error:
        print(error, file=sys.stderr)
        return 2
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    results = []
    with threadpool_limits(limits=1, user_api="blas"):  # as flows.search runs its GP
        for lab in labs:
            results.append(benchmark_lab(lab, args.seeds, args.budget, methods, args.dense, log,
                                         args.first_seed))
            if not args.no_cpu:
                cpu = {m: cpu_per_evaluation(lab, m) for m in methods if m.endswith("_gp")}
                results[-1][f"cpu_s_per_evaluation_at_{CPU_AT}"] = cpu
                log(f"  optimiser CPU per evaluation at {CPU_AT} evaluations (seed 0): "
                    + ", ".join(f"{m} {s:.3f} s" for m, s in cpu.items()))
            if args.json:
                print(json.dumps(results[-1]), flush=True)
    if args.json:
        return 0
    print(f"\nexperiments until the best measured recipe is within {WITHIN:.0%} of the lab's optimum, batches of "
          f"{BATCH}, {args.seeds} seeds, budget {args.budget} (median; not reached):")
    print(f"{'lab':24s} {'shortfall':>9s} " + " ".join(f"{m:>16s}" for m in methods))
    for result in results:
        cells = [f"{r['median_experiments']:7.1f}; {r['not_reached']:2d} miss" for r in result["methods"].values()]
        print(f"{result['lab']:24s} {result['shortfall_pct']:8.1f}% " + " ".join(f"{c:>16s}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
