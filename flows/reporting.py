"""Human-facing outputs of a campaign: plots (PNG), the recommendation as Markdown and on the console."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from skopt.plots import plot_objective  # noqa: E402
from skopt.utils import create_result  # noqa: E402

from flows.metrics import headline  # noqa: E402,F401  (re-exported for the flows that report)

console = Console()


def convergence_figure(table: pd.DataFrame):
    """Best objective so far vs evaluations (failed evaluations shown as gaps)."""
    objective = table["objective"].to_numpy(float)
    best = np.fmax.accumulate(np.where(np.isfinite(objective), objective, -np.inf))
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(np.arange(1, objective.size + 1), objective, "o", alpha=0.4, label="evaluation")
    axes.plot(np.arange(1, objective.size + 1), np.where(np.isfinite(best), best, np.nan), "-", label="best so far")
    axes.set_xlabel("evaluations")
    axes.set_ylabel("objective (mAh/g)")
    axes.set_title("Convergence")
    axes.legend()
    return figure


def objective_figure(optimizer):
    """scikit-optimize's partial-dependence plot of the fitted surrogate (None without a fitted model)."""
    if not optimizer.models:
        return None
    result = create_result(optimizer.Xi, optimizer.yi, optimizer.space, optimizer.rng, models=optimizer.models)
    axes = plot_objective(result, n_points=20, n_samples=100)
    figure = np.asarray(axes).flat[0].figure
    figure.suptitle("Partial dependence of -objective (scikit-optimize minimises; lower is better)", y=1.02)
    return figure


def comparison_figure(table: pd.DataFrame, value: str, label: str):
    """Bar chart of one metric across what-if scenarios."""
    figure, axes = plt.subplots(figsize=(max(5, 1.3 * len(table)), 4))
    axes.bar(table["scenario"], table[value])
    axes.set_ylabel(label)
    axes.set_title("What-if comparison")
    axes.tick_params(axis="x", rotation=30)
    return figure


def campaign_figures(table: pd.DataFrame, optimizer) -> dict:
    """The campaign's report files: evaluation table, convergence plot, partial dependence (when a model exists)."""
    files = {"evaluations.csv": table, "convergence.png": convergence_figure(table)}
    objective_plot = objective_figure(optimizer)
    if objective_plot is not None:
        files["objective.png"] = objective_plot
    return files


class BatchProgress:
    """One console line per batch (and free-form notes), unless quiet."""

    def __init__(self, campaign, quiet: bool = False):
        self.campaign = campaign
        self.quiet = quiet

    def __call__(self, batch: int) -> None:
        campaign = self.campaign
        self.note(f"[bold]{campaign.config.name}[/] batch {batch + 1}: {campaign.model_evaluations()}/"
                  f"{campaign.config.optimiser.n_calls} evaluations, {campaign.failed()} failed, "
                  f"best objective {campaign.best_objective():.1f} mAh/g")

    def note(self, text: str) -> None:
        if not self.quiet:
            console.print(text)


def publish_recommendation(config, recommendation, run_id: str) -> None:
    """The recommendation as a Prefect Markdown artifact (shown in the Prefect UI next to the flow run)."""
    from prefect.artifacts import create_markdown_artifact

    plt.close("all")
    markdown = recommendation_markdown(config.name, recommendation.recipe,
                                       headline(recommendation.evaluation.metrics),
                                       (recommendation.surrogate_mean, recommendation.surrogate_std), run_id,
                                       config.tracking.experiment_name,
                                       "; ".join([recommendation.fidelity_note, *recommendation.notes()]))
    create_markdown_artifact(markdown, key=artifact_key(config.name), description="Recommended Sn/HC anode recipe")


def artifact_key(name: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    key = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return f"recommendation-{key or 'campaign'}"


def recommendation_markdown(name: str, recipe: dict, metrics: dict, surrogate: tuple[float, float],
                            run_id: str, experiment_name: str, fidelity_note: str = "") -> str:
    mean, std = surrogate
    lines = [f"# Recommended Sn/HC anode recipe — campaign `{name}`", "",
             "| recipe | value |", "|---|---|"]
    lines += [f"| {k} | {_shown(v)} |" for k, v in recipe.items()]
    lines += ["", "| predicted metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in metrics.items()]
    lines += ["", f"Optimiser surrogate (its GP's belief about the model, not the model's error) at this recipe: "
              f"{mean:.1f} ± {std:.1f} mAh/g (mean ± 1 sd).",
              "", f"Fidelity: {fidelity_note}." if fidelity_note else "",
              "", f"MLflow experiment `{experiment_name}`, run id `{run_id}`."]
    return "\n".join(lines)


def print_recommendation(recipe: dict, metrics: dict, surrogate: tuple[float, float]) -> None:
    table = Table(title="Recommended recipe", header_style="bold")
    table.add_column("")
    table.add_column("value", justify="right")
    for key, value in recipe.items():
        table.add_row(key, _shown(value))
    for key, value in headline(metrics).items():
        table.add_row(key, f"{value:.1f}")
    table.add_row("optimiser GP mean ± sd of objective", f"{surrogate[0]:.1f} ± {surrogate[1]:.1f}")
    console.print(table)


def _shown(value) -> str:
    """A recipe value for people: numbers to 4 significant digits, categories as they are."""
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def print_frame(frame: pd.DataFrame, columns: dict[str, str], title: str) -> None:
    """Print chosen columns of a table on the console (column -> header); numbers to 4 significant digits."""
    shown = [c for c in columns if c in frame]
    table = Table(title=title, header_style="bold")
    for column in shown:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        table.add_column(columns[column], justify="right" if numeric else "left", overflow="fold")
    for _, row in frame.iterrows():
        table.add_row(*["" if pd.isna(row[c]) else f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])
                        for c in shown])
    console.print(table)


def print_model_error(errors: pd.DataFrame, path) -> None:
    """Measured vs predicted at the lab points."""
    print_frame(errors, {"line": "line", "metric": "metric", "measured": "measured", "model": "model",
                         "error_pct": "error %"}, f"Model vs lab ({path})")
