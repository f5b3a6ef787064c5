"""The second fidelity: re-evaluate the surrogate's best recipes with the PyBaMM model and re-rank them.

The PyBaMM model (:mod:`surrogate.physics`) gives the fresh capacity at a current; ageing and swelling stay the
surrogate's. So a recipe's physics objective is the PyBaMM capacity at the target current, times the surrogate's
retention after the target cycles, minus the same expansion penalty: both fidelities score the same quantity and
differ only in the electrochemistry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from flows.evaluation import Evaluation
from surrogate.objective import PredictionRequest, evaluate
from surrogate.parameters import ModelParameters
from surrogate.recipe import Recipes


def top_candidates(evaluations: list[Evaluation], k: int) -> list[int]:
    """Indexes of the k best finished model evaluations, distinct recipes only."""
    order = sorted((i for i, e in enumerate(evaluations) if e.ok and e.source == "model"),
                   key=lambda i: evaluations[i].objective, reverse=True)
    chosen, seen = [], set()
    for i in order:
        key = tuple(round(v, 9) for v in evaluations[i].recipe.values())
        if key not in seen:
            seen.add(key)
            chosen.append(i)
        if len(chosen) == k:
            break
    return chosen


def physics_scores(recipes: list[dict[str, float]], p: ModelParameters) -> pd.DataFrame:
    """Both fidelities' capacity at the objective's current and their objectives, one row per recipe.

    The target current, cycle and temperature are the objective's, read from ``p`` like the surrogate reads them.
    """
    from surrogate.physics import evaluate_physics  # PyBaMM loads only when the physics check runs

    current_A_per_g, temperature_C = p.objective_current_A_per_g, p.objective_temperature_C
    batch = Recipes.from_records(recipes)
    surrogate = evaluate(batch, p, PredictionRequest((current_A_per_g,), current_A_per_g, (1,), temperature_C))
    fresh = surrogate.capacity_at_current_mAh_per_g[:, 0]
    retention = surrogate.objective_capacity_mAh_per_g / fresh  # ageing to the target cycle, from the surrogate
    rows = []
    for i, result in enumerate(evaluate_physics(batch, [current_A_per_g], p, temperature_C)):
        physics_capacity = float(result.capacity_mAh_per_g[0]) if result.ok else float("nan")
        rows.append({**recipes[i], "physics_status": result.status, "physics_reason": result.reason,
                     "surrogate_capacity_at_target_mAh_per_g": float(fresh[i]),
                     "physics_capacity_at_target_mAh_per_g": physics_capacity,
                     "surrogate_objective": float(surrogate.objective[i]),
                     "physics_objective": physics_capacity * float(retention[i])
                     - float(surrogate.expansion_penalty_mAh_per_g[i])})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Ranking:
    """Outcome of the physics check: the comparison table, the chosen row, and how far the fidelities agree."""

    table: pd.DataFrame  # one row per candidate, best surrogate first
    chosen: int  # row of the recommended recipe
    ranked_by: str  # "physics", or "surrogate" when no physics evaluation succeeded
    rank_correlation: float  # Spearman, over candidates both fidelities scored
    objective_difference_pct: float  # physics vs surrogate objective at the chosen recipe

    def summary(self) -> str:
        row = self.table.iloc[self.chosen]
        spread = self.table["surrogate_objective"].max() - self.table["surrogate_objective"].min()
        return (f"ranked by the {self.ranked_by} model; at this recipe the surrogate scores "
                f"{row['surrogate_objective']:.1f} and PyBaMM {row['physics_objective']:.1f} mAh/g "
                f"({self.objective_difference_pct:+.1f} %); over the top {len(self.table)} (surrogate spread "
                f"{spread:.1f} mAh/g) the rank correlation is {self.rank_correlation:.2f}")


def rank(table: pd.DataFrame) -> Ranking:
    """Re-rank candidates by the physics objective where PyBaMM succeeded; otherwise keep the surrogate's order."""
    scored = table[table["physics_status"] == "OK"]
    if scored.empty:
        chosen, ranked_by = int(table["surrogate_objective"].idxmax()), "surrogate"
    else:
        chosen, ranked_by = int(scored["physics_objective"].idxmax()), "physics"
    correlation = float("nan")
    if len(scored) >= 3:
        correlation = float(spearmanr(scored["surrogate_objective"], scored["physics_objective"]).statistic)
    row = table.loc[chosen]
    difference = 100.0 * (row["physics_objective"] - row["surrogate_objective"]) / abs(row["surrogate_objective"])
    return Ranking(table, chosen, ranked_by, correlation, float(difference) if np.isfinite(difference) else np.nan)


class PhysicsFailure(RuntimeError):
    """The PyBaMM model could not evaluate a recipe; the message carries its reason."""


def physics_record(recipes: Recipes, p: ModelParameters, request: PredictionRequest, current_labels) -> dict:
    """The ``snhc predict --json`` record of one recipe at physics fidelity.

    Capacities at the requested currents are PyBaMM's; capacities at cycles are PyBaMM's capacity at the cycling
    current times the surrogate's retention; the objective is :func:`physics_scores`'. ICE, expansion and the
    activation energy have no second fidelity and stay the surrogate's.
    """
    from surrogate.physics import evaluate_physics

    surrogate = evaluate(recipes, p, request)
    record = surrogate.record(0, current_labels)
    currents = list(dict.fromkeys([*request.currents_A_per_g, request.cycling_current_A_per_g]))
    result = evaluate_physics(recipes, currents, p, request.temperature_C)[0]
    if not result.ok:
        raise PhysicsFailure(result.reason)
    capacity = result.capacity_by_current
    record["capacity_at_current_mAh_per_g"] = {
        label: capacity[current] for label, current in zip(current_labels, request.currents_A_per_g)}
    first_cycle = surrogate.capacity_at_cycle_mAh_per_g[0]
    after_formation = evaluate(recipes, p, PredictionRequest((), request.cycling_current_A_per_g, (1,),
                                                             request.temperature_C)).capacity_at_cycle_mAh_per_g[0, 0]
    record["capacity_at_cycle_mAh_per_g"] = {
        str(cycle): capacity[request.cycling_current_A_per_g] * float(value / after_formation)
        for cycle, value in zip(request.cycles, first_cycle)}
    scores = physics_scores(recipes.to_records(), p)
    if scores["physics_status"].iloc[0] != "OK":
        raise PhysicsFailure(scores["physics_reason"].iloc[0])
    record["objective"] = float(scores["physics_objective"].iloc[0])
    return record
