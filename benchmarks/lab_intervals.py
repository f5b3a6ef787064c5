"""Do the lab-taught model's 90 % intervals cover what a lab then measures? A leave-out check of the lab loop.

For each virtual lab (``benchmarks/labs/*.yaml``, or each ``--lab-spec FILE``: the calibrated model with some
assumed parameters changed, the truth here) and each seed:

1. the lab "measures" ``--fit`` recipes of a scrambled Sobol sample of the default search space: the objective,
   the capacity at 1.7 A/g after 1000 cycles and the particle expansion, as the example lab file reports them, each
   with the lab's Gaussian noise (``noise_pct``), written to a lab CSV and read back by
   ``flows.observations.read_observations``, as ``snhc suggest --observations`` reads one;
2. the lab's parameters (``lab_parameters`` of configs/default.yaml) are estimated from those rows as the campaign
   estimates them (``flows.search.lab_calibrated_prior``);
3. ``--test`` other Sobol recipes (another scrambling) are predicted with 90 % intervals, and each metric's interval
   is checked against the lab's true (noiseless) value, for three models:

   - ``project``: the study's model and ensemble, as if the lab's rows had taught nothing;
   - ``lab_point``: the lab-taught model under the study's uncertainty, the lab's parameters at their estimate
     (what the intervals were before the lab posterior reached them);
   - ``lab_draws``: the same with each ensemble member taking one draw of the lab parameters' Laplace posterior
     (``surrogate.uncertainty.build_ensemble(..., assumed_draws=...)``), unweighted;
   - ``lab_taught``: a pool of such members importance-resampled by the lab's rows
     (``flows.physics_gp.LabCalibratedPrior.taught_ensemble``), what campaigns and suggestions now report.

Printed per lab and model: coverage of the true values (target 90 %), the median half-width in % of the value and
the median error of the central value in % of the true one, for the capacity after 1000 cycles, the particle
expansion and the first-cycle efficiency (never measured by the lab: its interval must own that). ``--json`` prints
one document:
``{"labs": {lab: {model: {metric: {"coverage": c, "median_half_width_pct": w, "median_error_pct": e,
"n": n}}}}}``.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/lab_intervals.py [--lab-spec FILE] [--seeds 5] [--fit 8] [--test 32]
[--json]``
(about 4 minutes on 2 busy cores with the defaults).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lab_loop import LabSpecError, load_lab, shipped_labs  # noqa: E402
from flows.config import load_config  # noqa: E402
from flows.evaluation import batch_intervals, campaign_parameters, evaluate_batch  # noqa: E402
from flows.model_optimum import sobol_recipes  # noqa: E402
from flows.observations import read_observations  # noqa: E402
from flows.search import lab_calibrated_prior  # noqa: E402
from surrogate.recipe import FIELDS  # noqa: E402
from surrogate.uncertainty import build_ensemble  # noqa: E402

MODELS = ("project", "lab_point", "lab_draws", "lab_taught")
MEASURED = ("capacity_at_cycle_1000_mAh_per_g", "particle_expansion_pct")  # what the lab reports, with the objective
CHECKED = (*MEASURED, "initial_coulombic_efficiency_pct")
OBJECTIVE_COLUMN = "objective"  # the score (capacity less the swelling penalty)
TEST_SEED_OFFSET = 1000  # the test recipes' Sobol scrambling: never the fit recipes'


def lab_csv(path: Path, recipes: list[dict], rows: list[dict[str, float]]) -> None:
    """A lab CSV of ``recipes`` with the measured ``rows`` (objective and MEASURED)."""
    fields = list(FIELDS)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", *fields, OBJECTIVE_COLUMN, *MEASURED])
        for i, (recipe, row) in enumerate(zip(recipes, rows)):
            writer.writerow([f"V-{i:03d}", *(recipe[f] for f in fields), row["objective"], *(row[m] for m in MEASURED)])


def measured_rows(lab, recipes: list[dict], rng) -> list[dict[str, float]]:
    """The lab's noisy readings of the objective and MEASURED at ``recipes``."""
    rows = []
    for evaluation in evaluate_batch(recipes, lab.p_lab, lab.config.objective):
        values = {"objective": evaluation.objective} | {m: evaluation.metrics[m] for m in MEASURED}
        rows.append({k: float(v) * (1.0 + rng.normal(0.0, lab.spec.noise_pct / 100.0)) for k, v in values.items()})
    return rows


def check(lab, seed: int, n_fit: int, n_test: int, calibration
          ) -> dict[str, dict[str, list[tuple[bool, float, float]]]]:
    """Per model and metric: (covered, half-width %, |central - true| %) of each test recipe."""
    config = lab.config
    fit = sobol_recipes(config, n_fit, seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lab.csv"
        lab_csv(path, fit, measured_rows(lab, fit, np.random.default_rng(seed)))
        observations = read_observations(path, config)
    prior = lab_calibrated_prior(config, lab.p_model, observations.measured)
    taught = prior.estimated_parameters()
    test = sobol_recipes(config, n_test, seed=seed + TEST_SEED_OFFSET)
    truth = [e.metrics for e in evaluate_batch(test, lab.p_lab, config.objective)]
    ensembles = {"project": build_ensemble(lab.p_model, calibration),
                 "lab_point": build_ensemble(taught, calibration),
                 "lab_draws": build_ensemble(taught, calibration, assumed_draws=prior.posterior_values),
                 "lab_taught": prior.taught_ensemble(calibration, observations.measured)}
    out: dict[str, dict[str, list[tuple[bool, float, float]]]] = {}
    for model, ensemble in ensembles.items():
        central = [e.metrics for e in evaluate_batch(test, ensemble.central, config.objective)]
        bands = batch_intervals(test, ensemble, config.objective)
        for metric in CHECKED:
            for band, value, true in zip(bands, central, truth):
                low, high = band[metric]
                half_width = 100.0 * (high - low) / 2.0 / abs(value[metric])
                error = 100.0 * abs(value[metric] - true[metric]) / abs(true[metric])
                out.setdefault(model, {}).setdefault(metric, []).append((low <= true[metric] <= high, half_width,
                                                                         error))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-spec", action="append", default=[], metavar="FILE",
                        help="a lab file (repeatable); default: every file in benchmarks/labs/")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--fit", type=int, default=8, help="recipes the lab measures")
    parser.add_argument("--test", type=int, default=32, help="recipes predicted and checked")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.fit < 1 or args.test < 1:
        print("--seeds, --fit and --test must be >= 1", file=sys.stderr)
        return 2
    base = load_config()
    p_model, calibration = campaign_parameters(base)
    try:
        labs = [load_lab(path, base, p_model) for path in ([Path(p) for p in args.lab_spec] or shipped_labs())]
    except LabSpecError as error:
        print(error, file=sys.stderr)
        return 2
    summary: dict[str, dict] = {"labs": {}}
    for lab in labs:
        pooled: dict[str, dict[str, list[tuple[bool, float, float]]]] = {}
        for seed in range(args.seeds):
            for model, metrics in check(lab, seed, args.fit, args.test, calibration).items():
                for metric, rows in metrics.items():
                    pooled.setdefault(model, {}).setdefault(metric, []).extend(rows)
        summary["labs"][lab.spec.name] = {
            model: {metric: {"coverage": float(np.mean([c for c, _, _ in rows])),
                             "median_half_width_pct": float(np.median([w for _, w, _ in rows])),
                             "median_error_pct": float(np.median([e for _, _, e in rows])), "n": len(rows)}
                    for metric, rows in metrics.items()}
            for model, metrics in pooled.items()}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"90 % intervals against each virtual lab's true values: {args.fit} measured recipes, {args.test} predicted, "
          f"{args.seeds} seeds (coverage / median half-width / median |error| of the central value)")
    print(f"{'lab':16s} {'model':14s} " + " ".join(f"{m[:38]:>38s}" for m in CHECKED))
    for name, models in summary["labs"].items():
        for model, metrics in models.items():
            print(f"{name:16s} {model:14s} " + " ".join(
                f"{metrics[m]['coverage']:>17.0%} / {metrics[m]['median_half_width_pct']:>6.1f} % / "
                f"{metrics[m]['median_error_pct']:>5.1f} %    " for m in CHECKED))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
