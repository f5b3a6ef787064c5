"""Where a physics-fidelity campaign spends its PyBaMM evaluations: the numpy model as prior mean vs a plain GP.

A campaign with ``fidelity: physics`` evaluates every recipe with the PyBaMM model (measured here: 0.04 s a solve once
built, against the numpy model's 0.5 ms), so what counts is how many PyBaMM evaluations the search needs. For each
seed, in batches of 4, the benchmark runs the campaign's optimiser on PyBaMM's objective
(``flows.fidelity.evaluate_physics_batch``):

- ``physics_gp``: ``flows.search.make_optimizer(config, surrogate="physics_gp")`` with ``fidelity: physics``, the
  numpy model as the GP's prior mean (what ``snhc optimise --fidelity physics`` runs);
- ``plain_gp``: ``make_optimizer(config)``, the campaign's plain GP (composite: one GP each on PyBaMM's aged
  capacity and the expansion), which knows nothing of the numpy model.

PyBaMM's own optimum is not known densely (a dense search would take hours of solves), so the reference is the best
PyBaMM objective seen anywhere: at the numpy model's dense optimum and its cheapest equivalent, and at every recipe
either method evaluated. Reported per method: PyBaMM evaluations until the best so far is within 1 % of that
reference (budget + 1 if never), and the best objective after 8, 16 and ``--budget`` evaluations (median over seeds).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/physics_search.py [--seeds 5] [--budget 32] [--json]`` (a few
minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.config import load_config  # noqa: E402
from flows.evaluation import campaign_parameters  # noqa: E402
from flows.fidelity import evaluate_physics_batch  # noqa: E402
from flows.model_optimum import model_optimum  # noqa: E402
from flows.search import loss_of, make_optimizer, recipe_of, told_inputs  # noqa: E402

METHODS = {"physics_gp": "physics_gp", "plain_gp": "GP"}
BATCH = 4
WITHIN = 0.01
CHECKPOINTS = (8, 16)


def run(config, p, evaluate, surrogate: str, seed: int, budget: int) -> tuple[list[float], float]:
    """The best PyBaMM objective after each evaluation of one seeded run, and the optimiser's own CPU seconds."""
    config = config.model_copy(update={"optimiser": config.optimiser.model_copy(update={"seed": seed})})
    optimizer = make_optimizer(config, p, surrogate=surrogate)
    best, trace, cpu = -np.inf, [], 0.0
    while len(trace) < budget:
        start = time.process_time()
        points = [[np.asarray(v).item() for v in point]
                  for point in optimizer.ask(n_points=min(BATCH, budget - len(trace)), strategy=config.optimiser.liar)]
        cpu += time.process_time() - start
        evaluations = evaluate([recipe_of(point, config) for point in points])
        for evaluation in evaluations:
            if evaluation.ok:
                best = max(best, evaluation.objective)
            trace.append(best)
        start = time.process_time()
        optimizer.tell(points, [loss_of(e, config) for e in evaluations], **told_inputs(optimizer, evaluations))
        cpu += time.process_time() - start
    return trace, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.budget < BATCH:
        print(f"--seeds >= 1 and --budget >= {BATCH}", file=sys.stderr)
        return 2
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    from surrogate.physics import calibrated_physics_parameters

    config = load_config(overrides={"fidelity": "physics"})
    p, _ = campaign_parameters(config)
    q = calibrated_physics_parameters(p)
    solves = {"n": 0, "s": 0.0}

    def evaluate(recipes):
        start = time.perf_counter()
        result = evaluate_physics_batch(recipes, p, q, config.objective)
        solves["n"] += len(recipes)
        solves["s"] += time.perf_counter() - start
        return result

    with threadpool_limits(limits=1, user_api="blas"):
        found = model_optimum(config, p)
        anchors = [e.objective for e in evaluate([found.recipe, found.cheapest_recipe]) if e.ok]
        log(f"the numpy model's dense optimum scores {found.objective:.2f} mAh/g by the model and "
            f"{max(anchors, default=float('nan')):.2f} by PyBaMM")
        traces, cpu = {}, {}
        for method, surrogate in METHODS.items():
            traces[method], seconds = zip(*(run(config, p, evaluate, surrogate, seed, args.budget)
                                            for seed in range(args.seeds)))
            cpu[method] = sum(seconds) / (args.seeds * args.budget)
    reference = max([*anchors, *(t[-1] for ts in traces.values() for t in ts)])
    target = reference - WITHIN * abs(reference)
    result = {"reference_objective": reference, "target": target, "budget": args.budget, "seeds": args.seeds,
              "pybamm_seconds_per_evaluation": solves["s"] / max(solves["n"], 1), "methods": {}}
    for method, runs in traces.items():
        counts = [next((i + 1 for i, v in enumerate(t) if v >= target), args.budget + 1) for t in runs]
        result["methods"][method] = {
            "median_evaluations": float(np.median(counts)), "not_reached": int(sum(c > args.budget for c in counts)),
            "per_seed": counts, "optimiser_cpu_s_per_evaluation": cpu[method],
            "median_best_after": {str(n): float(np.median([t[n - 1] for t in runs]))
                                  for n in (*CHECKPOINTS, args.budget) if n <= args.budget}}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"\nPyBaMM evaluations until the best is within {WITHIN:.0%} of {reference:.2f} mAh/g (the best PyBaMM "
          f"objective seen), batches of {BATCH}, {args.seeds} seeds, budget {args.budget}; one PyBaMM evaluation "
          f"took {result['pybamm_seconds_per_evaluation']:.2f} s")
    for method, row in result["methods"].items():
        best = ", ".join(f"{n}: {v:.1f}" for n, v in row["median_best_after"].items())
        print(f"{method:10s} median {row['median_evaluations']:5.1f} ({row['not_reached']} not reached; per seed "
              f"{row['per_seed']}); median best after {best} mAh/g; optimiser CPU "
              f"{row['optimiser_cpu_s_per_evaluation']:.3f} s per evaluation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
