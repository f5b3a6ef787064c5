"""The recommendation: which evaluated recipe a campaign puts forward, and what is known about it.

The best finished model evaluation, or the one the physics check re-ranked first; with the optimiser surrogate's
mean and sd at that point (the optimiser's belief about the model, not the model's error) and a note saying which
fidelity ranked it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flows.campaign import Campaign
from flows.search import surrogate_prediction


@dataclass(frozen=True)
class Recommendation:
    index: int  # position in the campaign's evaluations
    evaluation: Any  # flows.evaluation.Evaluation
    surrogate_mean: float
    surrogate_std: float
    fidelity_note: str

    @property
    def recipe(self) -> dict[str, Any]:
        return self.evaluation.recipe

    def record(self) -> dict[str, Any]:
        """JSON-ready view (the recommended_recipe.json artifact)."""
        return {"evaluation": self.index, "recipe": self.recipe, "source": self.evaluation.source,
                "objective": self.evaluation.objective, "fidelity": self.fidelity_note,
                "optimiser_surrogate_mean_objective": self.surrogate_mean,
                "optimiser_surrogate_std_objective": self.surrogate_std}


def recommend(campaign: Campaign, optimizer, ranking=None) -> Recommendation:
    """The campaign's recommendation; raises RuntimeError when every evaluation failed."""
    best = campaign.best_index()
    if best is None:
        raise RuntimeError(f"all {len(campaign.evaluations)} evaluations failed; first reason: "
                           f"{campaign.evaluations[0].reason}")
    if ranking is not None:
        best = int(ranking.table.iloc[ranking.chosen]["evaluation"])
    mean, std = surrogate_prediction(optimizer, campaign.points[best])
    note = ranking.summary() if ranking else "ranked by the numpy model (physics check off)"
    return Recommendation(best, campaign.evaluations[best], mean, std, note)
