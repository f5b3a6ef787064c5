"""Human-facing outputs of a campaign: plots (PNG), the recommendation as Markdown and on the console."""

from __future__ import annotations

import math
import shlex
from urllib.parse import urlsplit, urlunsplit

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.errors import MarkupError  # noqa: E402
from rich.table import Table  # noqa: E402
from rich.text import Text  # noqa: E402
from skopt.plots import plot_objective  # noqa: E402
from skopt.learning import GaussianProcessRegressor  # noqa: E402
from skopt.utils import create_result  # noqa: E402

from flows.config import Tracking  # noqa: E402
from flows.inputs import redact  # noqa: E402
from flows.physics_gp import PosteriorMean  # noqa: E402
from flows.tracking import LAID_OUT  # noqa: E402
from surrogate.recipe import shown_value  # noqa: E402

console = Console()
if not console.is_terminal:  # a pipe or a log file: wide lines, never tables folded to an 80-column guess
    console = Console(width=max(console.width, 200))
# Progress (batches, the PyBaMM check) goes to stderr, so stdout carries the results alone: `snhc what-if ... >
# out.txt` had written 61 progress lines above the comparison.
progress_console = Console(stderr=True)
if not progress_console.is_terminal:
    progress_console = Console(stderr=True, width=max(progress_console.width, 200))


def convergence_figure(table: pd.DataFrame):
    """Campaign objective of each evaluation and the best so far, vs evaluations (failed ones shown as gaps)."""
    objective = table["objective"].to_numpy(float)
    best = np.fmax.accumulate(np.where(np.isfinite(objective), objective, -np.inf))
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    evaluations = np.arange(1, objective.size + 1)
    axes.plot(evaluations, objective, "o", alpha=0.45, label="each evaluation")
    axes.step(evaluations, np.where(np.isfinite(best), best, np.nan), where="post", lw=2, label="best so far")
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.set_xlabel("evaluations [count]")
    axes.set_ylabel("campaign objective [mAh/g]\n(capacity minus expansion penalty)")
    axes.set_title("Convergence of the optimisation")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


def disagreement_figure(table: pd.DataFrame, currents_A_per_g: tuple[float, ...]):
    """Where the two fidelities disagree over a space-filling design: PyBaMM against the numpy model at each current
    (left, the diagonal is agreement) and their difference against the Sn fraction, coloured by milling time
    (right)."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11.0, 4.4))
    markers = "osd^v<>"
    for k, current in enumerate(currents_A_per_g):
        model = table[f"model_capacity_at_{current:g}_A_per_g_mAh_per_g"]
        physics = table[f"physics_capacity_at_{current:g}_A_per_g_mAh_per_g"]
        left.scatter(model, physics, s=18, alpha=0.7, marker=markers[k % len(markers)], label=f"{current:g} A/g")
        points = right.scatter(table["sn_mass_fraction"], table[f"difference_pct_at_{current:g}_A_per_g"], s=18,
                               alpha=0.8, marker=markers[k % len(markers)], c=np.log10(table["milling_time_h"]),
                               cmap="viridis", label=f"{current:g} A/g")
    span = [0.0, float(np.nanmax(table.filter(like="_capacity_at_").to_numpy(float)))]
    left.plot(span, span, "k--", lw=1, label="agreement")
    left.set_xlabel("numpy model: fresh capacity [mAh/g]")
    left.set_ylabel("PyBaMM: fresh capacity [mAh/g]")
    left.set_title("Both fidelities over the design")
    left.legend(fontsize=8)
    right.axhline(0.0, color="k", lw=1)
    right.set_xlabel("Sn mass fraction [-]")
    right.set_ylabel("PyBaMM minus numpy model [% of the model]")
    right.set_title("Where they disagree")
    right.legend(fontsize=8)
    figure.colorbar(points, ax=right, label="log10 milling time [h]")
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


SKOPT_DIAGONAL_LABEL = "Partial dependence"  # plot_objective's label of its diagonal panels' axis
# objective.png's panels: inches per panel and the space between them (a share of a panel), so the long axis labels
# ("ball to powder ratio [mass ratio]") of neighbouring panels do not overlap, as at scikit-optimize's 2 and 0.35
OBJECTIVE_PANEL_INCHES = 2.4
OBJECTIVE_PANEL_SPACE = 0.55


class Negated:
    """A surrogate predicting the objective where the optimiser's model predicts its loss (the negative)."""

    def __init__(self, model):
        self.model = model

    def predict(self, X, return_std: bool = False):
        if return_std:
            mean, std = self.model.predict(X, return_std=True)
            return -np.asarray(mean), std
        return -np.asarray(self.model.predict(X))


def objective_figure(optimizer, marked: list | None = None):
    """scikit-optimize's partial-dependence plot of the fitted surrogate (None without a fitted model), its red
    point and lines at ``marked`` (the recommended recipe's point; without it, or outside the optimiser's space, the
    best evaluation, scikit-optimize's default)."""
    if not optimizer.models:
        return None
    from flows.metrics import axis_label
    from flows.objective import CapacityObjective

    unit = CapacityObjective.unit  # the score the optimiser of a single-objective campaign minimises the negative of
    model = optimizer.models[-1]  # the one plot_objective reads; a plain GP's mean without per-call validation
    fast = PosteriorMean(model) if isinstance(model, GaussianProcessRegressor) else model
    # the objective itself, higher is better (the optimiser's loss is its negative, which the plot had shown)
    result = create_result(optimizer.Xi, optimizer.yi, optimizer.space, optimizer.rng, models=[Negated(fast)])
    recommended = marked is not None and marked in optimizer.space
    plotted = [d.name for d in optimizer.space.dimensions if not d.is_constant]  # plot_objective's panels
    axes = plot_objective(result, n_points=20, n_samples=100, minimum=list(marked) if recommended else "result",
                          dimensions=[axis_label(name) for name in plotted], cmap="viridis",
                          size=OBJECTIVE_PANEL_INCHES, wspace=OBJECTIVE_PANEL_SPACE, hspace=OBJECTIVE_PANEL_SPACE)
    figure = np.asarray(axes).flat[0].figure
    for panel in figure.axes:
        if panel.get_ylabel() == SKOPT_DIAGONAL_LABEL:  # a diagonal panel: one field's effect, in the score's unit
            panel.set_ylabel(f"objective [{unit}]")
        for axis in (panel.xaxis, panel.yaxis):
            _plain_ticks(axis)
    # Room for the title and the outer tick labels inside the figure, so it is saved as laid out: a tight bounding
    # box would draw this grid of panels twice (0.6 s against 0.27 s, a tenth of the report's time).
    figure.subplots_adjust(top=0.90, bottom=0.11, left=0.13)
    figure.suptitle(f"Partial dependence of the objective [{unit}] in the optimiser's GP (higher is better; each "
                    "map on its own scale, yellow its highest)\nred: the "
                    + ("recommended recipe" if recommended else "best evaluation"), y=0.995, fontsize=10)
    figure.set_gid(LAID_OUT)
    return figure


def _plain_ticks(axis) -> None:
    """Few ticks with plain numbers (1, 2, 5 x 10^k on a log axis; no minor ticks).

    scikit-optimize's panels are 2 inches wide: matplotlib's default log ticks label every minor tick as
    "2x10^2 3x10^2 ..." (they overlap) and draw them with mathtext, whose parser is built on first use; with these
    the partial-dependence figure is saved in 0.19 s instead of 0.56 s."""
    if axis.get_scale() == "log":
        axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_minor_locator(matplotlib.ticker.NullLocator())
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    elif axis.get_scale() == "linear":
        axis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=4))


def comparison_figure(table: pd.DataFrame, metrics: list[str], label_column: str = "label",
                      missing: dict[str, str] | None = None,
                      intervals: dict[str, tuple[str, str]] | None = None,
                      flags: dict[str, str] | None = None, flag_note: str = ""):
    """What-if comparison: one panel per fixed-definition metric, one bar per row (baseline first, hatched).

    Each panel has its own axis with quantity and unit (capacity, expansion and cycles do not share a scale);
    a metric that cannot be negative is never drawn below zero. Bars carry their value; a row without a value is a
    gap labelled ``missing[metric]`` (default "no value"). ``intervals`` (metric -> its low and high columns) draws
    each row's 90 % interval as an error bar; a missing upper bound (past the horizon) as an arrow to the top.
    ``flags`` (metric -> its column of booleans) marks a bar's value with ``*``, explained by ``flag_note`` under
    the figure.
    """
    from flows.metrics import axis_label, info, unit_of

    # a metric whose every value is missing keeps its panel when a missing value means something (cycles to 80 %
    # past the horizon: every row keeps its capacity), so the chart does not drop what the table says
    shown = [m for m in metrics if m in table and (table[m].notna().any() or (m in (missing or {}) and len(table)))]
    labels = table[label_column].astype(str).tolist()
    n_panels = max(len(shown), 1)
    n_columns = 2 if n_panels > 2 else n_panels  # a 2 x 2 grid stays legible in a report and in MLflow's viewer
    n_rows = -(-n_panels // n_columns)
    panel_width_in = max(3.5, 0.45 * len(labels) + 1.5)
    figure, panels = plt.subplots(n_rows, n_columns, figsize=(panel_width_in * n_columns, 4.6 * n_rows),
                                  squeeze=False)
    for axes in panels.flat[n_panels:]:
        axes.set_visible(False)
    colours = plt.cm.tab10(np.arange(len(labels)) % 10)
    for axes, metric in zip(panels.flat, shown):
        values = table[metric].to_numpy(float)
        entry = info(metric)
        if entry is None or entry.non_negative:
            values = np.where(values < 0, 0.0, values)
        bars = axes.bar(np.arange(len(labels)), np.nan_to_num(values, nan=0.0), color=colours,
                        edgecolor="black", linewidth=0.6)
        tops = values  # a bar's value is written above its error bar, not across it
        if metric in (intervals or {}):
            tops = np.fmax(values, table[intervals[metric][1]].to_numpy(float))
            _error_bars(axes, table, metric, *intervals[metric])
        for i, bar in enumerate(bars):
            if np.isnan(values[i]):
                bar.set_visible(False)
                text = (missing or {}).get(metric, "no value")
                if metric in (intervals or {}) and np.isfinite(low := float(table[intervals[metric][0]].iloc[i])):
                    text += f"\n(90 %: from {low:,.0f})"  # an open interval's own bound, as the table gives it
                # short lines, so the turned text stays within its bar's width and the panel's height
                axes.text(i, 0.02, text, rotation=90, ha="center", va="bottom", fontsize=7, color="dimgray",
                          linespacing=1.1, transform=axes.get_xaxis_transform())
            else:
                label = f"{values[i]:,.0f}" if abs(values[i]) >= 1000 else f"{values[i]:.3g}"
                if metric in (flags or {}) and table[flags[metric]].iloc[i] == True:  # noqa: E712 - NaN: no flag
                    label += "*"
                axes.text(i, tops[i], label, ha="center", va="bottom", fontsize=8)
            if labels[i].startswith("baseline"):
                bar.set_hatch("//")
        axes.set_xticks(np.arange(len(labels)), labels, rotation=35, ha="right", fontsize=9)
        axes.set_ylabel(axis_label(metric).replace(" [", "\n["), fontsize=10)
        axes.grid(axis="y", alpha=0.3)
        drawn = np.concatenate([values, *(table[c].to_numpy(float) for c in (intervals or {}).get(metric, ()))])
        finite = drawn[np.isfinite(drawn) & (drawn > 0)]
        if metric.startswith("cycles_to") and finite.size and finite.max() / finite.min() > 30:
            axes.set_yscale("log")  # cycle counts span decades across recipes
        elif unit_of(metric) in ("mAh/g", "%", "h") or metric.startswith("cycles_to"):
            axes.set_ylim(bottom=0)
        if metric in (intervals or {}):
            _open_intervals(axes, table, metric, *intervals[metric])
    figure.suptitle("What-if comparison (same definitions for every row; baseline hatched)"  # two lines: two
                    + ("\nerror bars: the model's 90 % interval" if intervals else ""))  # panels are narrow
    if any((table[column] == True).any() for column in (flags or {}).values()):  # noqa: E712
        figure.supxlabel(flag_note, fontsize=9)
    figure.tight_layout()
    return figure


def _error_bars(axes, table: pd.DataFrame, metric: str, low_column: str, high_column: str) -> None:
    """One panel's closed 90 % intervals: a black error bar per row."""
    values = table[metric].to_numpy(float)
    low, high = table[low_column].to_numpy(float), table[high_column].to_numpy(float)
    x = np.arange(len(values))
    closed = np.isfinite(values) & np.isfinite(low) & np.isfinite(high)
    axes.errorbar(x[closed], values[closed], yerr=[values[closed] - low[closed], high[closed] - values[closed]],
                  fmt="none", ecolor="black", elinewidth=1.2, capsize=4)


def _open_intervals(axes, table: pd.DataFrame, metric: str, low_column: str, high_column: str) -> None:
    """Intervals without an upper bound (past the horizon): a line from the low bound and an arrow to the top;
    drawn once the panel's scale is set."""
    values = table[metric].to_numpy(float)
    low, high = table[low_column].to_numpy(float), table[high_column].to_numpy(float)
    open_top = np.flatnonzero(np.isfinite(low) & ~np.isfinite(high))
    if open_top.size:  # room above the highest open bound, so its arrow is seen to leave the plotted range
        bottom, top = axes.get_ylim()
        highest = float(np.nanmax(np.fmax(low[open_top], values[open_top])))
        axes.set_ylim(bottom, max(top, highest * (4.0 if axes.get_yscale() == "log" else 1.25)))
    for i in open_top:
        start = float(np.fmax(values[i], low[i]))
        axes.vlines(i, low[i], start, colors="black", linewidth=1.2)
        axes.annotate("", xy=(i, 0.98), xycoords=("data", "axes fraction"), xytext=(i, low[i]),
                      textcoords="data", arrowprops={"arrowstyle": "->", "color": "black", "lw": 1.2})


def campaign_figures(table: pd.DataFrame, optimizer, recommended: list | None = None) -> dict:
    """The campaign's report files: evaluation table, convergence plot, partial dependence (when a model exists;
    ``recommended``: the point it marks)."""
    files = {"evaluations.csv": table, "convergence.png": convergence_figure(table)}
    objective_plot = objective_figure(optimizer, recommended)
    if objective_plot is not None:
        files["objective.png"] = objective_plot
    return files


def run_logger():
    """Prefect's run logger inside a flow or task (shown in the Prefect UI), else None."""
    try:
        from prefect import get_run_logger
        from prefect.exceptions import MissingContextError

        try:
            return get_run_logger()
        except MissingContextError:
            return None
    except ImportError:  # pragma: no cover - Prefect is a dependency
        return None


ON_CONSOLE = "snhc_on_console"  # a run-log record's flag: the console printed this line already


class _NotTwice:
    """Drops from Prefect's console handler (the Prefect UI still gets them) the run-log records the console printed
    already (every note, batch and physics-check line had been shown twice on a terminal, once timestamped), and
    the engine's report of a campaign stopped by Ctrl-C or SIGTERM (``flows.interrupts.CampaignInterrupted``),
    which the command states itself in one line with how to resume: an ERROR "Crash detected!" and a "Finished in
    state Crashed" line had come first."""

    def filter(self, record) -> bool:
        if getattr(record, ON_CONSOLE, False):
            return False
        return "CampaignInterrupted" not in record.getMessage()


def log_to_run(text: str, on_console: bool) -> None:
    """``text`` (rich markup) through Prefect's run logger inside a run, so the Prefect UI shows it; ``on_console``:
    the console shows it too, so Prefect's console handler leaves it out."""
    logger = run_logger()
    if logger is None:
        return
    import logging

    for handler in logging.getLogger().handlers:  # Prefect's console handler sits on the root logger
        if type(handler).__name__ == "PrefectConsoleHandler" and not any(
                isinstance(f, _NotTwice) for f in handler.filters):
            handler.addFilter(_NotTwice())
    try:
        plain = Text.from_markup(text).plain
    except MarkupError:  # brackets that are not markup (a config's name, say): the text as it is
        plain = text
    logger.info(plain, extra={ON_CONSOLE: on_console})


class BatchProgress:
    """Progress of a campaign's batches on stderr: a rich progress bar on a terminal (one line per batch otherwise),
    and the same line through Prefect's run logger so the Prefect UI shows it. ``quiet`` silences the console
    only."""

    def __init__(self, campaign, quiet: bool = False):
        self.campaign = campaign
        self.quiet = quiet
        self._bar = None
        self._task = None

    def line(self, batch: int) -> str:
        campaign = self.campaign
        return (f"{campaign.config.name} batch {batch + 1}: {campaign.model_evaluations()}/"
                f"{campaign.config.optimiser.n_calls} evaluations, {campaign.failed()} failed, " + self._best())

    def _best(self) -> str:
        """The best objective so far, or for several objectives the size of the front so far."""
        campaign = self.campaign
        if not campaign.config.multi_objective:
            return f"best objective {campaign.best_modelled_objective():.1f} mAh/g"
        from flows.pareto import non_dominated, oriented_matrix

        finished = [campaign.evaluations[i] for i in campaign.modelled()]
        front = int(non_dominated(oriented_matrix(finished, campaign.config.scoring())).sum()) if finished else 0
        return f"{front} non-dominated recipes so far"

    def __call__(self, batch: int) -> None:
        campaign = self.campaign
        line = self.line(batch)
        log_to_run(line, on_console=not self.quiet)
        if self.quiet:
            return
        if not progress_console.is_terminal:
            progress_console.print(line, soft_wrap=True)
            return
        total = campaign.config.optimiser.n_calls
        done = min(campaign.model_evaluations(), total)
        if self._bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("evaluations  {task.fields[best]}"), TimeElapsedColumn(),
                                 console=progress_console)
            self._task = self._bar.add_task(campaign.config.name, total=total, best="")
            self._bar.start()
        self._bar.update(self._task, completed=done,
                         best=f"best {campaign.best_modelled_objective():.1f} mAh/g, {campaign.failed()} failed")
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def note(self, text: str) -> None:
        """A line between the batches' progress and the results (the physics check's, the recommendation's notes,
        which the command's final output repeats): on stderr with the progress."""
        self.close()
        say(text, self.quiet, progress=True)


class StepProgress:
    """Progress of a long step made of a known number of parts (the PyBaMM check's recipes) on stderr: a rich
    progress bar on a terminal (one line per part otherwise), and each part's line through Prefect's run logger, so
    the Prefect UI shows it too. ``quiet`` silences the console only."""

    def __init__(self, description: str, total: int, quiet: bool = False):
        self.description, self.total, self.quiet = description, total, quiet
        self.done = 0
        self._bar = None
        self._task = None

    def advance(self, detail: str = "", parts: int = 1) -> None:
        """``parts`` more are done; ``detail`` says what came out (e.g. the last recipe's PyBaMM objective)."""
        self.done = min(self.done + parts, self.total)
        line = f"{self.description} {self.done}/{self.total}" + (f": {detail}" if detail else "")
        log_to_run(line, on_console=not self.quiet)
        if self.quiet:
            return
        if not progress_console.is_terminal:
            progress_console.print(line, soft_wrap=True)
            return
        if self._bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=progress_console)
            self._task = self._bar.add_task(self.description, total=self.total, detail="")
            self._bar.start()
        self._bar.update(self._task, completed=self.done, detail=detail)
        if self.done >= self.total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def say(text: str, quiet: bool = False, progress: bool = False) -> None:
    """One line (rich markup) on the console unless quiet, and through Prefect's run logger inside a run.
    ``progress``: a line that tells how the run goes (or that its final output repeats) goes to stderr, so stdout
    carries the results alone."""
    log_to_run(text, on_console=not quiet)
    if not quiet:
        out = progress_console if progress else console
        out.print(text, soft_wrap=not out.is_terminal)


CLASSIC_VIEW = "workflowType=machine_learning"  # MLflow 3.17 opens in its GenAI view unless told


def model_optimum_note(found, best_by_optimiser: float, added: bool, first_objective=None,
                       front: bool = False) -> str:
    """One line on the model's own optimum (:class:`flows.model_optimum.ModelOptimum`) against the optimiser's
    best, and (``added``: both were added to the candidates) the cheapest recipe as good as it.

    ``first_objective``: the first of a campaign's ``objectives`` (None for the capacity ``objective``), whose value
    the optimum and the best are (both come as the campaign's score, signed so that larger is better, and are shown
    in the objective's own sign); ``front``: a multi-objective campaign, for which only that objective has a single
    optimum."""
    regret_pct = 100.0 * (found.objective - best_by_optimiser) / abs(found.objective) if found.objective else 0.0
    sign = first_objective.sign if first_objective is not None else 1.0
    optimum, best = sign * found.objective, sign * best_by_optimiser
    if front:
        side = "worse" if regret_pct >= 0 else "better: the dense search's sampling missed it"
        return (f"[bold]model optimum of {first_objective.name}[/] alone (dense search; the front trades it for the "
                f"other objectives): {optimum:.1f}, the campaign's best {best:.1f} ({abs(regret_pct):.1f} % {side})")
    named = f" of {first_objective.name}" if first_objective is not None else ""
    regret = (f"regret {regret_pct:.1f} %" if regret_pct >= 0
              else f"{-regret_pct:.2g} % above it: the dense search stopped short of the optimiser's best")
    line = f"[bold]model optimum{named}[/] (dense search): {optimum:.1f}, the optimiser's best {best:.1f} ({regret})"
    if not added:
        return line
    cheap = found.cheapest_recipe
    return (f"{line}; cheapest within {found.tolerance_pct:g} %: "
            f"{sign * found.cheapest_objective:.1f} at Sn {cheap['sn_mass_fraction']:.3f}, "
            f"{cheap['milling_time_h']:.3g} h, {cheap['milling_speed_rpm']:.0f} rpm, "
            f"BPR {cheap['ball_to_powder_ratio']:.3g} (both added as candidates)")


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """Where a person opens an MLflow run: the tracking server's own host and port for an http(s) store (without its
    credentials: the browser asks for them, and a link is printed and published); for a local store, the ``snhc
    ui`` command that serves that store (``--tracking-uri`` unless it is the default one) and the address it serves
    (127.0.0.1:5000 by default). The link opens MLflow's classic ("Model training") view.

    Examples
    --------
    >>> mlflow_run_url("http://10.0.0.5:5050", "3", "abc")
    'http://10.0.0.5:5050/#/experiments/3/runs/abc?workflowType=machine_learning'
    >>> mlflow_run_url("http://bob:hunter2@10.0.0.5:5050", "3", "abc")
    'http://10.0.0.5:5050/#/experiments/3/runs/abc?workflowType=machine_learning'
    >>> mlflow_run_url("sqlite:///mlruns/mlflow.db", "3", "abc")
    '`snhc ui` then http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning'
    >>> mlflow_run_url("sqlite:///my runs/x.db", "3", "abc").split(" then ")[0]
    "`snhc ui --tracking-uri 'sqlite:///my runs/x.db'`"
    >>> mlflow_run_url("postgresql://bob:hunter2@db:5432/mlflow", "3", "abc").split(" then ")[0]
    "`snhc ui --tracking-uri <the store's URI>`"
    """
    path = f"#/experiments/{experiment_id}/runs/{run_id}?{CLASSIC_VIEW}"
    if tracking_uri.startswith(("http://", "https://")):
        parts = urlsplit(tracking_uri)
        server = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
        return f"{redact(server).rstrip('/')}/{path}"
    command = "snhc ui"
    if redact(tracking_uri) != tracking_uri:  # a password in it: the command names it, never prints it
        command += " --tracking-uri <the store's URI>"
    elif tracking_uri != Tracking.model_fields["tracking_uri"].default:
        command += f" --tracking-uri {shlex.quote(tracking_uri)}"
    return f"`{command}` then http://127.0.0.1:5000/{path}"


def publish_recommendation(config, recommendation, run_id: str) -> None:
    """The recommendation as a Prefect Markdown artifact (shown in the Prefect UI next to the flow run), with a
    link to its MLflow run."""
    from prefect.artifacts import create_markdown_artifact

    plt.close("all")
    markdown = recommendation_markdown(config.name, recommendation.recipe,
                                       recommendation.headline(),
                                       (recommendation.surrogate_mean, recommendation.surrogate_std), run_id,
                                       config.tracking.experiment_name,
                                       "; ".join([recommendation.fidelity_note, *recommendation.notes()]),
                                       run_url=_run_url(config.tracking.tracking_uri, run_id),
                                       intervals=recommendation.intervals, extrapolated=recommendation.extrapolated)
    create_markdown_artifact(markdown, key=artifact_key(config.name), description="Recommended Sn/HC anode recipe")


def _run_url(tracking_uri: str, run_id: str) -> str:
    from flows.tracking import open_client

    try:
        experiment_id = open_client(tracking_uri).get_run(run_id).info.experiment_id
    except Exception:  # noqa: BLE001 - a link is a convenience; the run id is printed anyway
        return ""
    return mlflow_run_url(tracking_uri, experiment_id, run_id)


def artifact_key(name: str) -> str:
    """Prefect artifact keys allow lowercase ASCII letters, digits and dashes only: any other character of a
    campaign's name (a non-ASCII letter or digit too: 'naïve', '²') becomes a dash.

    Examples
    --------
    >>> artifact_key("Straße naïve²")
    'recommendation-stra-e-na-ve'
    """
    key = "".join(c if c.isascii() and c.isalnum() else "-" for c in name.lower()).strip("-")
    return f"recommendation-{key or 'campaign'}"


# what the optimiser GP's sd at a recommended recipe is, in the console, the run's note and its table alike (short:
# it labels a row of the recommendation's table, whose first column it sets the width of)
GP_SD_MEANING = "the search's own learning, not the model's error"


def band_text(band) -> str:
    """A 90 % interval as ``low–high`` (:func:`span`, 4 significant digits); "–" for none or for a value that follows
    from the recipe (milling time: both ends equal)."""
    return span(f"{band[0]:.4g}", f"{band[1]:.4g}") if band and band[0] != band[1] else "–"


def span(low: str, high: str) -> str:
    """Two bounds as text, ``low–high``; ``low to high`` when one is negative (``-489.8–-238.1`` reads as a
    subtraction)."""
    return f"{low} to {high}" if low.startswith("-") or high.startswith("-") else f"{low}–{high}"


def recommendation_markdown(name: str, recipe: dict, metrics: dict, surrogate: tuple[float, float],
                            run_id: str, experiment_name: str, fidelity_note: str = "", run_url: str = "",
                            intervals: dict | None = None, extrapolated: dict | None = None) -> str:
    from flows.metrics import unit_of, words

    mean, std = surrogate
    intervals, extrapolated = intervals or {}, extrapolated or {}
    lines = [f"# Recommended Sn/HC anode recipe — campaign `{name}`", "",
             "| recipe | value | unit |", "|---|---|---|"]
    lines += [f"| {words(k)} | {shown_value(v)} | {unit_of(k)} |" for k, v in recipe.items()]
    lines += ["", "| predicted metric | value | 90 % interval | unit | |", "|---|---|---|---|---|"]
    lines += [f"| {words(k)} | {v:.4g} | {band_text(intervals.get(k))} | {unit_of(k)} | "
              f"{EXTRAPOLATED if extrapolated.get(k) else ''} |" for k, v in metrics.items()]
    if math.isfinite(mean):  # a multi-objective campaign has no GP on one objective
        lines += ["", f"Optimiser GP at this recipe ({GP_SD_MEANING}): "
                  f"mean {mean:.1f} mAh/g, sd {std:.1f} mAh/g."]
    lines += ["", f"Fidelity: {fidelity_note}." if fidelity_note else "",
              "", f"MLflow experiment `{experiment_name}`, run id `{run_id}`."]
    if run_url.startswith("http"):
        lines.append(f"Open it: [{run_url}]({run_url})")
    elif run_url:
        command, _, url = run_url.rpartition(" then ")
        lines.append(f"Open it: run {command}, then [{url}]({url})")
    return "\n".join(lines)


EXTRAPOLATED = "extrapolated"  # the mark of a value beyond the calibration's data


def print_recommendation(recipe: dict, metrics: dict, surrogate: tuple[float, float],
                         intervals: dict | None = None, extrapolated: dict | None = None,
                         beyond_recipes: dict | None = None, conditions_beyond: bool = False) -> None:
    """The recommended recipe and its headline metrics, ``value [90 % interval]``, flagged where extrapolated; the
    caption says why: the recipe's fields that lie beyond the calibration's materials (``beyond_recipes``), the
    objective's conditions (``conditions_beyond``), or both (a flag on every metric had read the same for either
    reason)."""
    table = Table(title="Recommended recipe", header_style="bold")
    table.add_column("")
    table.add_column("value \\[90 % interval]", justify="right")
    for key, value in recipe.items():
        table.add_row(key, shown_value(value))
    for key, value in metrics.items():  # the headline metrics (CampaignResult.summary)
        if key in recipe:  # an objective that is a recipe field (milling time): shown above, exact
            continue
        table.add_row(key, with_interval(value, (intervals or {}).get(key))
                      + (f" {EXTRAPOLATED}" if (extrapolated or {}).get(key) else ""))
    if any((extrapolated or {}).values()):
        reasons = ([f"the recipe is unlike any of the study's materials in {', '.join(beyond_recipes)} (see the "
                    f"note below)"] if beyond_recipes else []) \
            + (["the objective's current, cycle count or temperature lies beyond those measured"]
               if conditions_beyond or not beyond_recipes else [])
        table.caption = f"{EXTRAPOLATED}: beyond the study's data: " + "; and ".join(reasons)
    if math.isfinite(surrogate[0]):  # a multi-objective campaign has no GP on one objective
        table.add_row(f"optimiser GP at this recipe: mean, sd of objective ({GP_SD_MEANING})",
                      f"{surrogate[0]:.1f}, {surrogate[1]:.1f}")
    console.print(table)


def with_interval(value: float, band=None, digits: int = 1) -> str:
    """``value [low–high]`` (or the value alone without a band)."""
    text = f"{value:.{digits}f}"
    return text + (f" [{span(f'{band[0]:.{digits}f}', f'{band[1]:.{digits}f}')}]" if band else "")


def print_frame(frame: pd.DataFrame, columns: dict[str, str], title: str) -> None:
    """Print chosen columns of a table on the console (column -> header); numbers to 4 significant digits.

    On a terminal a rich table; otherwise (a pipe, a file, a CI log) plain comma-separated lines under the title,
    so nothing is folded to the width of an unknown terminal.
    """
    shown = [c for c in columns if c in frame]
    cells = [["" if pd.isna(row[c]) else f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])
              for c in shown] for _, row in frame.iterrows()]
    if not console.is_terminal:
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([columns[c] for c in shown])
        writer.writerows(cells)
        console.print(f"# {title}", markup=False, soft_wrap=True)
        console.print(buffer.getvalue().rstrip("\n"), markup=False, soft_wrap=True, highlight=False)
        return
    table = Table(title=title, header_style="bold")
    for column in shown:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        table.add_column(columns[column], justify="right" if numeric else "left", overflow="fold")
    for row in cells:
        table.add_row(*row)
    console.print(table)


def print_model_error(errors: pd.DataFrame, path) -> None:
    """Measured vs predicted at the lab points."""
    columns = {"line": "line", "metric": "metric", "measured": "measured", "model": "model", "error_pct": "error %"}
    if "lab_model" in errors:
        columns |= {"lab_model": "lab's model", "lab_model_error_pct": "error %"}
    print_frame(errors, columns, f"Model vs lab ({path})" + ("; the lab's model: the model with the parameters "
                                                             "the lab's results taught it" if "lab_model" in errors
                                                             else ""))


LAB_PARAMETER_SHOWN_SD = 0.5  # lab parameters shown on the console: those the results moved this far
LAB_PARAMETER_HEADERS = {"parameter": "parameter", "project_value": "project", "lab_estimate": "lab",
                         "moved_prior_sd": "moved (sd)", "prior_width_left": "width left", "freed": "freed",
                         "low": "low", "high": "high", "on_bound": "on a bound"}


def print_lab_parameters(table: pd.DataFrame) -> None:
    """The lab parameters the lab's results moved by at least LAB_PARAMETER_SHOWN_SD prior sd, or to an end of their
    range (all are logged)."""
    moved = table[(table["moved_prior_sd"].abs() >= LAB_PARAMETER_SHOWN_SD)
                  | (table["on_bound"] if "on_bound" in table else False)]
    if len(moved):
        print_frame(moved, LAB_PARAMETER_HEADERS, f"What the lab results taught the model (parameters moved by "
                                                  f">= {LAB_PARAMETER_SHOWN_SD:g} prior sd or to a bound of their "
                                                  f"range; all in lab_parameters.csv "
                                                  "of the MLflow run)")
