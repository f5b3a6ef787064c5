"""Cost of the PyBaMM model of the Sn/HC electrode (surrogate/physics/): build once, solve many.

Measured here, in one run on this machine:

1. the first build and solve: a fresh simulation for Sn@HC-2-1 (model, parameters, mesh, discretisation, solver
   set-up) and its first discharge;
2. a full rate curve (6 currents) of the same recipe after the build (median of several repeats);
3. a batch of 20 random recipes, from an empty simulation cache (builds included), then again with the cache warm.

Target: after the build, a 6-current curve costs at most a tenth of the first build and solve.

The calibrations (the surrogate's and the physics model's) are loaded or fitted before any timing starts; they
are cached, so a second run fits nothing.

Run: ``.venv/bin/python benchmarks/physics_cost.py``
"""

import argparse
import os
import statistics
import time
import warnings

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import pybamm  # noqa: E402

from surrogate import physics  # noqa: E402
from surrogate.calibration import calibrated_parameters  # noqa: E402
from surrogate.paths import config_dir  # noqa: E402
from surrogate.recipe import Recipes, load_materials  # noqa: E402

CURVE_CURRENTS_A_PER_G = (0.08, 0.17, 0.42, 0.84, 1.7, 4.2)
BATCH_SIZE = 20
CURVE_REPEATS = 5


def random_recipes(n: int, seed: int = 0) -> Recipes:
    """Recipes spread over the typical lab ranges (science.md 3.4)."""
    rng = np.random.default_rng(seed)
    return Recipes(rng.uniform(0, 1, n), rng.uniform(0, 40, n), rng.uniform(150, 600, n), rng.uniform(5, 40, n))


def timed(function):
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help, not a run
    warnings.simplefilter("ignore", pybamm.SolverWarning)  # extrapolated Chayambuka2022 tables: expected
    p = calibrated_parameters()
    fit_s, q = timed(lambda: physics.calibrated_physics_parameters(p))
    recipe = load_materials(config_dir() / "materials.yaml")["Sn@HC-2-1"]
    print(f"machine: {os.cpu_count()} cores; PyBaMM {pybamm.__version__}, model {q.pybamm_model}, "
          f"{int(q.solver_threads)} IDAKLU threads")
    print(f"physics calibration (loaded or fitted before timing): {fit_s:.2f} s")

    physics.clear_simulation_cache()
    builds = physics.build_count()
    first_s, first = timed(lambda: physics.evaluate_physics(recipe, CURVE_CURRENTS_A_PER_G[:1], p,
                                                            physics_parameters=q))
    assert physics.build_count() == builds + 1 and first[0].ok, first[0].reason
    print(f"first build and solve (Sn@HC-2-1, {CURVE_CURRENTS_A_PER_G[0]:g} A/g): {first_s:.3f} s")

    curve_times, curve = [], None
    for _ in range(CURVE_REPEATS):
        seconds, curve = timed(lambda: physics.evaluate_physics(recipe, CURVE_CURRENTS_A_PER_G, p,
                                                                physics_parameters=q))
        curve_times.append(seconds)
    curve_s = statistics.median(curve_times)
    assert physics.build_count() == builds + 1, "the curve must reuse the build"
    capacities = ", ".join(f"{c:g}: {v:.0f}" for c, v in curve[0].capacity_by_current.items())
    print(f"rate curve, {len(CURVE_CURRENTS_A_PER_G)} currents, after the build: {curve_s:.3f} s "
          f"(median of {CURVE_REPEATS}: {min(curve_times):.3f}-{max(curve_times):.3f} s); mAh/g by A/g: {capacities}")

    batch = random_recipes(BATCH_SIZE)
    physics.clear_simulation_cache()
    builds = physics.build_count()
    cold_s, results = timed(lambda: physics.evaluate_physics(batch, CURVE_CURRENTS_A_PER_G, p, physics_parameters=q))
    batch_builds = physics.build_count() - builds
    warm_s, _ = timed(lambda: physics.evaluate_physics(batch, CURVE_CURRENTS_A_PER_G, p, physics_parameters=q))
    failed = sum(not r.ok for r in results)
    print(f"batch of {BATCH_SIZE} recipes x {len(CURVE_CURRENTS_A_PER_G)} currents: {cold_s:.2f} s with "
          f"{batch_builds} builds (empty cache), {warm_s:.2f} s with the builds cached; {failed} FAILED")

    ratio = curve_s / first_s
    verdict = "MET" if ratio <= 0.1 else "NOT MET"
    print(f"after the build, a 6-current curve costs {ratio:.3f} x the first build and solve "
          f"(target <= 0.1): {verdict}")


if __name__ == "__main__":
    main()
