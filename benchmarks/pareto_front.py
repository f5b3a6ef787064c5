"""How much of the model's true Pareto front a ParEGO campaign finds, by hypervolume.

1. The true front: the model is vectorised, so ``--dense`` recipes (default 200 000) drawn uniformly over the
   campaign's search box (log-uniform where the config searches on a log scale) are scored in one pass per chunk, and
   their non-dominated set is kept (together with every recipe the campaigns below evaluated, so no campaign point can
   beat the "true" front).
2. ParEGO (flows/pareto.py) as the campaign runs it, for each seed; the hypervolume of its front after 24, 48 and 96
   evaluations as a % of the true front's. Objectives are normalised by the true front's ideal and nadir points; the
   reference point is the nadir plus 10 % of the range. Target: >= 95 % at 96 for configs/pareto.yaml.

Run: ``.venv/bin/python benchmarks/pareto_front.py [--config F] [--seeds 42 7] [--json]`` (minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from flows.campaign import Campaign
from flows.config import load_config
from flows.evaluation import campaign_parameters, evaluate_batch, model_metrics
from flows.pareto import hypervolume, non_dominated, oriented_matrix, run_pareto_search
from surrogate.recipe import FIELDS, Recipes

CHECKPOINTS = (24, 48, 96)
CHUNK = 50_000
REFERENCE_MARGIN = 0.1


def dense_front(config, p, n: int, seed: int) -> tuple[np.ndarray, float]:
    """Minimisation values of the non-dominated recipes among n random ones, and the seconds per 100 000."""
    rng = np.random.default_rng(seed)
    space = config.search_space
    columns = {}
    for name in FIELDS:
        dimension = getattr(space, name)
        if dimension.fixed:
            columns[name] = np.full(n, dimension.value, dtype=object if FIELDS[name].categorical else float)
        elif dimension.choices is not None:
            columns[name] = rng.choice(np.array(dimension.choices, dtype=object), n)
        elif dimension.log_scale:
            columns[name] = np.exp(rng.uniform(np.log(dimension.low), np.log(dimension.high), n))
        else:
            columns[name] = rng.uniform(dimension.low, dimension.high, n)
    scoring = config.scoring()
    start = time.perf_counter()
    parts = []
    for lo in range(0, n, CHUNK):
        recipes = Recipes(**{k: v[lo:lo + CHUNK] for k, v in columns.items()})
        parts.append(scoring.oriented(model_metrics(recipes, p, scoring)))
    seconds = time.perf_counter() - start
    values = np.vstack(parts)
    values = values[np.all(np.isfinite(values), axis=1)]
    return values[non_dominated(values)], seconds * 100_000 / n


def parego_values(config, p, seed: int, n_calls: int) -> np.ndarray:
    """Minimisation values of every evaluation of one ParEGO campaign, in evaluation order (failures as NaN)."""
    config = config.model_copy(update={"optimiser": config.optimiser.model_copy(update={"seed": seed,
                                                                                         "n_calls": n_calls})})
    campaign = Campaign.new(config)
    run_pareto_search(campaign, lambda recipes: evaluate_batch(recipes, p, config.scoring()))
    values = np.full((len(campaign.evaluations), len(config.objectives)), np.nan)
    ok = [i for i, e in enumerate(campaign.evaluations) if e.ok]
    values[ok] = oriented_matrix([campaign.evaluations[i] for i in ok], config.scoring())
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/pareto.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--dense", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    config = load_config(args.config)
    p, _ = campaign_parameters(config)
    front, seconds_per_100k = dense_front(config, p, args.dense, seed=0)
    runs = {seed: parego_values(config, p, seed, max(CHECKPOINTS)) for seed in args.seeds}

    every = np.vstack([front, *[v[np.all(np.isfinite(v), axis=1)] for v in runs.values()]])
    true = every[non_dominated(every)]
    ideal, nadir = true.min(axis=0), true.max(axis=0)
    scale = np.where(nadir > ideal, nadir - ideal, 1.0)
    reference = np.full(true.shape[1], 1.0 + REFERENCE_MARGIN)
    true_hv = hypervolume((true - ideal) / scale, reference)
    results = {"config": args.config, "objectives": config.scoring().names, "dense_recipes": args.dense,
               "model_seconds_per_100k_recipes": seconds_per_100k, "true_front_points": int(len(true)),
               "dense_front_points": int(len(front)), "true_hypervolume_normalised": true_hv, "runs": {}}
    for seed, values in runs.items():
        row = {}
        for n in CHECKPOINTS:
            done = values[:n]
            done = done[np.all(np.isfinite(done), axis=1)]
            row[str(n)] = 100.0 * hypervolume((done - ideal) / scale, reference) / true_hv
        results["runs"][str(seed)] = row
    results["median_pct"] = {str(n): float(np.median([r[str(n)] for r in results["runs"].values()]))
                             for n in CHECKPOINTS}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.config}: objectives {', '.join(results['objectives'])}")
    print(f"true front: {len(true)} points ({len(front)} from {args.dense} dense recipes at "
          f"{seconds_per_100k:.2f} s per 100 000)")
    for seed, row in results["runs"].items():
        print(f"seed {seed}: hypervolume after " + ", ".join(f"{n}: {row[str(n)]:.1f} %" for n in CHECKPOINTS))
    print("median: " + ", ".join(f"{n}: {v:.1f} %" for n, v in results["median_pct"].items())
          + " of the true front (target >= 95 % at 96)")


if __name__ == "__main__":
    main()
