"""Wall time of one batch of physics-fidelity (PyBaMM) evaluations on Prefect's thread runner vs a Dask runner with
1 and 2 workers, in one run on this machine.

Each runner evaluates the same batch, split into one chunk per worker (a chunk is one Prefect task). On Dask, each
worker process imports PyBaMM and builds its simulations once, then reuses them; the first pass on a runner
therefore includes those one-off costs, and the second pass shows the steady state. The cluster start is excluded
(printed separately). IDAKLU itself runs ``solver_threads`` threads per solve, so the Dask rows are repeated with
one solver thread per worker: on a machine with few cores, that is what leaves a core for a second worker.

Run: ``.venv/bin/python benchmarks/scale_out.py``
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from surrogate.calibration import calibrated_parameters
from surrogate.recipe import Recipes
from surrogate.status import Status

BATCH_SIZE = 24
CURRENTS_A_PER_G = (0.17, 0.42, 0.84, 1.7, 4.2, 8.4)


@task(cache_policy=NO_CACHE)
def physics_chunk(records, p, q):
    from surrogate.physics import evaluate_physics

    warnings.simplefilter("ignore")
    return [r.status for r in evaluate_physics(Recipes.from_records(records), CURRENTS_A_PER_G, p,
                                               physics_parameters=q)]


@flow
def physics_batch(records, p, q, chunks: int) -> dict:
    """Time two passes over the same batch (the first includes PyBaMM builds) inside one runner."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        parts = np.array_split(np.arange(len(records)), chunks)
        futures = [physics_chunk.submit([records[i] for i in part], p, q) for part in parts if part.size]
        statuses = [s for f in futures for s in f.result()]
        times.append(time.perf_counter() - start)
    return {"first_s": times[0], "second_s": times[1], "failed": sum(s != Status.FINISHED for s in statuses)}


def recipes(n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    batch = Recipes(rng.uniform(0.3, 0.9, n), rng.uniform(1, 30, n), rng.uniform(200, 600, n), rng.uniform(5, 40, n))
    return batch.to_records()


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help, not a run
    p = calibrated_parameters()
    from surrogate.physics import calibrated_physics_parameters

    q = calibrated_physics_parameters(p)  # fit or load before timing
    records = recipes(BATCH_SIZE)
    print(f"machine: {os.cpu_count()} cores; batch of {BATCH_SIZE} recipes x {len(CURRENTS_A_PER_G)} currents "
          f"(PyBaMM SPMe); times exclude the runner's start")
    def dask(workers):
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1,
                                              "dashboard_address": None})

    one_thread = q.with_values(solver_threads=1)  # IDAKLU's own threads compete with a second worker for cores
    runners = [("thread runner, 1 chunk", ThreadPoolTaskRunner(max_workers=1), 1, q),
               ("thread runner, 2 chunks", ThreadPoolTaskRunner(max_workers=2), 2, q),
               ("Dask, 1 worker", dask(1), 1, q),
               ("Dask, 2 workers", dask(2), 2, q),
               ("Dask, 1 worker, 1 thread", dask(1), 1, one_thread),
               ("Dask, 2 workers, 1 thread", dask(2), 2, one_thread)]
    results = {}
    for label, runner, chunks, solver_settings in runners:
        start = time.perf_counter()
        outcome = physics_batch.with_options(task_runner=runner)(records, p, solver_settings, chunks)
        total = time.perf_counter() - start
        results[label] = outcome
        print(f"{label:26s} first pass {outcome['first_s']:6.2f} s (with builds), second pass "
              f"{outcome['second_s']:6.2f} s; runner start and stop {total - outcome['first_s'] - outcome['second_s']:5.1f} s; "
              f"{outcome['failed']} failed")
    for suffix, threads in (("", int(q.solver_threads)), (", 1 thread", 1)):
        one, two = results[f"Dask, 1 worker{suffix}"]["second_s"], results[f"Dask, 2 workers{suffix}"]["second_s"]
        print(f"Dask speed-up from 1 to 2 workers ({threads} IDAKLU thread(s) each, second pass): {one / two:.2f}x "
              f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
