"""Recipes per second of the surrogate: one batch of 100 000 vs a one-recipe-at-a-time loop.

Both are measured in the same run on the same machine, so their ratio is meaningful even on a shared, noisy host.
Target: the batch is at least 50x faster per recipe.

Run: ``.venv/bin/python benchmarks/model_throughput.py``
"""

import argparse
import os
import time

import numpy as np

from surrogate.calibration import calibrated_parameters
from surrogate.model import predict as evaluate
from surrogate.recipe import Recipes

BATCH_SIZE = 100_000
LOOP_SIZE = 300  # enough single calls for a stable per-recipe time


def random_recipes(n: int, seed: int = 0) -> Recipes:
    rng = np.random.default_rng(seed)
    return Recipes(rng.uniform(0, 1, n), rng.uniform(0, 40, n), rng.uniform(150, 600, n), rng.uniform(5, 40, n))


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help, not a run
    p = calibrated_parameters()
    evaluate(random_recipes(10), p)  # warm-up: imports, caches

    batch = random_recipes(BATCH_SIZE)
    start = time.perf_counter()
    evaluate(batch, p)
    batch_s = time.perf_counter() - start

    singles = [batch.take([i]) for i in range(LOOP_SIZE)]
    start = time.perf_counter()
    for recipe in singles:
        evaluate(recipe, p)
    loop_s = time.perf_counter() - start

    batch_rate = BATCH_SIZE / batch_s
    loop_rate = LOOP_SIZE / loop_s
    print(f"machine: {os.cpu_count()} cores")
    print(f"batch of {BATCH_SIZE}: {batch_s:.2f} s -> {batch_rate:,.0f} recipes/s")
    print(f"one at a time ({LOOP_SIZE} calls): {loop_s:.2f} s -> {loop_rate:,.0f} recipes/s")
    ratio = batch_rate / loop_rate
    print(f"batch speed-up per recipe: {ratio:.0f}x (target >= 50x): {'MET' if ratio >= 50 else 'NOT MET'}")


if __name__ == "__main__":
    main()
