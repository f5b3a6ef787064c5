"""Do different seeds of one campaign recommend the same recipe? (issue 12's done-when)

Runs the campaign's optimisation for several seeds as the flow does (the same search, dense-search candidates,
physics check and recommendation rule, without Prefect or MLflow) and prints each recommended recipe, then the spread: the range of
the Sn fraction and the ratio of the longest to the shortest milling time. Target for configs/default.yaml: within
0.03 in Sn fraction and a factor 1.5 in milling time over three seeds.

Run: ``.venv/bin/python benchmarks/seed_agreement.py [--config F] [--seeds 1 2 3] [--n-calls N] [--json]``.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from flows import fidelity
from flows.campaign import Campaign
from flows.config import load_config
from flows.evaluation import campaign_parameters, evaluate_batch, lazy_ensemble
from flows.model_optimum import add_model_optimum
from flows.optimise import physics_candidates
from flows.pareto import run_pareto_search
from flows.recommendation import recommend
from flows.search import run_search

TARGET_SN_SPREAD = 0.03
TARGET_TIME_RATIO = 1.5


def recommended(config, p, ensemble) -> dict:
    campaign = Campaign.new(config)
    search = run_pareto_search if config.multi_objective else run_search
    evaluate = lambda recipes: evaluate_batch(recipes, p, config.scoring())  # noqa: E731
    optimizer = search(campaign, evaluate)
    add_model_optimum(campaign, p, evaluate)  # the dense search's optimum and cheapest equivalent, as the flow adds
    ranking = None
    if config.physics_check.top_k and not config.objectives:
        from surrogate.physics import calibrated_physics_parameters

        candidates, reference = physics_candidates(campaign)
        recipes = [campaign.evaluations[i].recipe for i in candidates]
        table = fidelity.physics_scores(recipes, p, calibrated_physics_parameters(p), config.objective)
        # as the flow ranks them: beyond numerical noise plus the model's uncertainty on each difference
        ranking = fidelity.rank_candidates(table, candidates, recipes, reference, config, ensemble)
    result = recommend(campaign, optimizer, ranking)
    return {**result.recipe, "objective": result.evaluation.objective, "rule": result.rule_note,
            "bounds": list(result.bound_notes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="campaign YAML (default configs/default.yaml)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--n-calls", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    base = load_config(args.config)
    p, calibration = campaign_parameters(base)
    ensemble = lazy_ensemble(p, calibration)  # one for every seed, as a campaign builds one
    rows = []
    for seed in args.seeds:
        update = {"seed": seed} | ({"n_calls": args.n_calls} if args.n_calls else {})
        config = base.model_copy(update={"optimiser": base.optimiser.model_copy(update=update)})
        rows.append({"seed": seed, **recommended(config, p, ensemble)})
    table = pd.DataFrame(rows)
    sn_spread = float(table["sn_mass_fraction"].max() - table["sn_mass_fraction"].min())
    time_ratio = float(table["milling_time_h"].max() / table["milling_time_h"].min())
    result = {"config": args.config or "configs/default.yaml", "recommendations": rows,
              "sn_mass_fraction_spread": sn_spread, "milling_time_ratio": time_ratio,
              "meets_target": sn_spread <= TARGET_SN_SPREAD and time_ratio <= TARGET_TIME_RATIO}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    shown = ["seed", "sn_mass_fraction", "milling_time_h", "milling_speed_rpm", "ball_to_powder_ratio", "objective"]
    print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"Sn fraction spread {sn_spread:.3f} (target <= {TARGET_SN_SPREAD}); milling time ratio "
          f"{time_ratio:.2f} (target <= {TARGET_TIME_RATIO}): {'met' if result['meets_target'] else 'NOT met'}")


if __name__ == "__main__":
    main()
