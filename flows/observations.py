"""Lab results in: a CSV of measured recipes, checked line by line, told to the optimiser as they are.

Format (units in the headers; one row per milled batch / coin cell):

* required: the recipe fields without a default (``surrogate/recipe.py``: ``sn_mass_fraction, milling_time_h,
  milling_speed_rpm, ball_to_powder_ratio``); fields with a default may be given;
* optional: ``sample_id`` and ``notes`` (free text), and any measured metric the models predict, named as they are
  (``objective``, ``objective_capacity_mAh_per_g``, ``particle_expansion_pct``, ``reversible_capacity_mAh_per_g``,
  ``initial_coulombic_efficiency_pct``, ``capacity_at_1.7_A_per_g_mAh_per_g``, ``capacity_at_cycle_1000_mAh_per_g``,
  ``electrode_expansion_after_1000_cycles_pct``, ...).

A row with measured metrics must give ``objective`` or ``objective_capacity_mAh_per_g`` (the capacity at the
campaign's target current after its target cycles); its objective is then that capacity minus the campaign's
expansion penalty on the measured ``particle_expansion_pct`` (none if it was not measured). A row with no
measured metric is a recipe still in the lab: *pending*; suggestions avoid it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from flows.config import CampaignConfig, ConfigError, printed_text
from flows.evaluation import LAB, Evaluation
from flows.inputs import MAX_CSV_BYTES, excerpt
from surrogate.yaml_safety import YamlInputError, plain_number, read_text_file
from flows.metrics import AT_CURRENT, AT_CYCLE, condition_out_of_range
from flows.objective import OBJECTIVE_SPAN
from flows.metrics import info as metric_info
from flows.objective import CAPACITY, EXPANSION, PENALTY, SCORE
from surrogate.recipe import FIELDS, RECIPE_FIELDS, RecipeError, recipe_key
from surrogate.status import Status

TEXT_COLUMNS = ("sample_id", "notes")
# A lab makes tens to a few hundred recipes; 1 000 rows took snhc suggest 100 s (the lab fit and the discrepancy GP
# grow with the cube of the rows), 5 000 did not finish in 300 s
MAX_LAB_ROWS = 500


@dataclass(frozen=True)
class LabData:
    """Measured evaluations and pending recipes from one CSV file (replicate rows of one recipe averaged into one
    evaluation, at the line of the first; ``replicates``: the lines of each recipe made more than once)."""

    path: Path
    measured: list[Evaluation]
    measured_lines: list[int]
    pending: list[dict[str, float]]
    replicates: tuple[tuple[int, ...], ...] = ()
    # replicate rows of one recipe whose values of a metric scatter more than lab_uncertainty_pct allows
    # (:func:`disagreeing_replicates`): (their lines, the metric, their values)
    disagreeing: tuple[tuple[tuple[int, ...], str, tuple[float, ...]], ...] = ()
    saved: bool = False  # rebuilt from a resumed campaign's saved rows, not read now: the file may have moved
    # columns the file names otherwise than their quantity (the objective's capacity by its measured name,
    # capacity_at_cycle_1000_mAh_per_g): quantity -> the header as written, so messages name what the user wrote
    written_as: tuple[tuple[str, str], ...] = ()

    def column(self, name: str) -> str:
        """The file's own header of quantity ``name``."""
        return dict(self.written_as).get(name, name)


def read_observations(path: str | Path, config: CampaignConfig, allow_empty: bool = False) -> LabData:
    """Read and check a lab CSV; any problem raises ConfigError naming the file, line and column. ``allow_empty``: a
    file with a header and no rows is a lab with nothing made yet (``snhc suggest``'s start), not an error."""
    path = Path(path)
    try:
        text = read_text_file(path, "lab CSV file", MAX_CSV_BYTES)
    except YamlInputError as error:
        raise ConfigError(str(error)) from None
    if not text.strip():
        raise ConfigError(f"{path}: empty file: expected a header line and one row per recipe")
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # Windows and old Mac line ends alike
    records = []  # (the line a record starts on, its fields); a quoted field may hold line breaks
    reader = csv.reader(io.StringIO(text), strict=True, skipinitialspace=True)  # an unclosed quote is an error
    try:
        first = 1
        for fields in reader:
            if any(field.strip() for field in fields):  # blank rows, and a spreadsheet's ',,,,' rows, are no rows
                records.append((first, fields))
            first = reader.line_num + 1
    except csv.Error as error:  # a NUL byte, an unclosed quote, a field beyond the csv module's size limit
        raise ConfigError(f"{path} line {reader.line_num}: not a readable CSV: {excerpt(str(error), 120)}") from None
    if not records:
        raise ConfigError(f"{path}: empty file: expected a header line and one row per recipe")
    (header_line, header_fields), data = records[0], records[1:]
    separator = next((s for s in (";", "\t") if len(header_fields) == 1 and s in header_fields[0]), None)
    if separator is not None:  # one column holding them all: a spreadsheet's other list separator (checked before
        # the rows, whose decimal commas would otherwise read as '6 fields where the header has 1')
        raise ConfigError(f"{path}: columns separated by {separator!r}; a lab file is comma-separated with '.' as "
                          f"the decimal point (save it as CSV with commas)")
    for line, fields in data:
        if len(fields) != len(header_fields):
            raise ConfigError(f"{path} line {line}: not a readable CSV: {len(fields)} fields where the header has "
                              f"{len(header_fields)}")
    header = [c.strip() for c in header_fields]
    if "" in header:
        raise ConfigError(f"{path} line {header_line}: column {header.index('') + 1} of the header has no name "
                          f"(a trailing comma?)")
    duplicated = [c for c in header if header.count(c) > 1]
    if duplicated:
        raise ConfigError(f"{path}: column {excerpt(duplicated[0])} appears twice")
    if len(data) > MAX_LAB_ROWS:
        raise ConfigError(f"{path}: {len(data)} rows: at most {MAX_LAB_ROWS} (a lab's recipes and replicates; the "
                          f"lab fit and its GP grow with the cube of the rows)")
    table = pd.DataFrame([[field.lstrip() for field in fields] for _, fields in data], columns=header, dtype=str)
    lines = [line for line, _ in data]

    required = [f.name for f in RECIPE_FIELDS if f.required]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ConfigError(f"{path}: missing column {missing[0]!r}; a lab file needs {', '.join(required)}")
    header_as_written = list(table.columns)
    table = _named_for_its_objectives(table, config, path, lines)
    # a column renamed to its quantity's name (a rename keeps the columns' order; a merge drops one) is named in the
    # messages below as the file names it
    written = dict(zip(table.columns, header_as_written)) if len(table.columns) == len(header_as_written) else {}
    recipe_columns = [c for c in table.columns if c in FIELDS]
    metric_columns = [c for c in table.columns if c not in FIELDS and c not in TEXT_COLUMNS]
    for column in metric_columns:
        if metric_info(column) is None:
            raise ConfigError(f"{path}: unknown column {excerpt(column)}; allowed: the recipe columns, "
                              f"{', '.join(TEXT_COLUMNS)}, and metric names such as objective_capacity_mAh_per_g")
        if (reason := condition_out_of_range(column)) is not None:
            raise ConfigError(f"{path}: column {excerpt(column)}: {reason}")
    if table.empty:
        if allow_empty:
            return LabData(path, [], [], [])
        raise ConfigError(f"{path}: no rows: expected one row per recipe after the header")

    ceilings = _capacity_ceiling(config)
    rows: dict[tuple, list[tuple[int, dict, dict]]] = {}  # recipe -> its rows (line, recipe, measured metrics)
    samples: dict[str, tuple[int, tuple]] = {}  # sample_id -> (its first line, its recipe)
    for line, (_, row) in zip(lines, table.iterrows()):
        for column in (c for c in TEXT_COLUMNS if c in table.columns):
            try:  # a NUL or an escape code in a sample id had been copied into the suggestions and the run's files
                printed_text(str(row[column]))
            except ValueError as error:
                raise ConfigError(f"{path} line {line}: {column}: {error}") from None
        recipe = _recipe(row, recipe_columns, path, line)
        allowed = {c: _allowed_values(c, recipe, ceilings) for c in metric_columns}
        metrics = {c: _number(row[c], path, line, written.get(c, c), allowed=allowed[c][0]) for c in metric_columns}
        metrics = {c: v for c, v in metrics.items() if v is not None}
        for name, value in metrics.items():
            text, least, most = allowed[name]
            if not least <= value <= most:
                raise ConfigError(f"{path} line {line}: {written.get(name, name)}={value:g} is out of range: {text}")
        if metrics.get(SCORE, -np.inf) > metrics.get(CAPACITY, np.inf):  # the optimiser takes the lab's objective
            raise ConfigError(f"{path} line {line}: {SCORE}={metrics[SCORE]:g} is above {CAPACITY}="
                              f"{metrics[CAPACITY]:g}: the objective is that capacity less a swelling penalty (>= 0); "
                              f"correct one, or leave {SCORE} out and it is computed")
        if metrics:
            _objective(metrics, config, path, line)  # a measured row must say what the optimiser can use
        rows.setdefault(recipe_key(recipe), []).append((line, recipe, metrics))
        if "sample_id" in table.columns and (sample := str(row["sample_id"]).strip()):
            earlier = samples.setdefault(sample, (line, recipe_key(recipe)))
            if earlier[1] != recipe_key(recipe):  # one cell or batch cannot have two recipes: a copy-paste error?
                raise ConfigError(f"{path} line {line}: sample_id {excerpt(sample)} is line {earlier[0]}'s, which "
                                  f"has another recipe; give each sample its own id")

    measured, lines, pending = [], [], []
    for replicates in rows.values():
        line, recipe, _ = replicates[0]
        metrics = _averaged([m for _, _, m in replicates])
        if not metrics:
            pending.append(recipe)
            continue
        measured.append(Evaluation(recipe, Status.FINISHED, _objective(metrics, config, path, line), metrics, "", LAB))
        lines.append(line)
    replicated = tuple(tuple(line for line, _, _ in r) for r in rows.values() if len(r) > 1)
    disagreeing = tuple(d for r in rows.values() if len(r) > 1
                        for d in disagreeing_replicates(r, config.lab_uncertainty_pct))
    return LabData(path, measured, lines, pending, replicated, disagreeing,
                   written_as=tuple((k, v) for k, v in written.items() if k != v))


# Replicate cells of one recipe whose sample variance of a metric exceeds this quantile of its chi-square law under
# the stated scatter (lab_uncertainty_pct) are named: at 0.99 one honest pair in a hundred is named by chance, while
# a dead or shorted cell beside a good one (330 and 30 mAh/g) is named at any stated scatter below ~45 %.
REPLICATE_SPREAD_QUANTILE = 0.99


def disagreeing_replicates(replicates: list[tuple[int, dict, dict]], sigma_pct: float
                           ) -> list[tuple[tuple[int, ...], str, tuple[float, ...]]]:
    """The metrics on which the rows ``(line, recipe, metrics)`` of one recipe disagree beyond the stated scatter:
    (the lines, the metric, the values) where ``(n - 1) s^2 / sigma^2`` exceeds the chi-square quantile
    :data:`REPLICATE_SPREAD_QUANTILE` with n - 1 degrees of freedom, sigma being ``sigma_pct`` of the values' mean
    magnitude (:func:`scatter_scale`). Their mean is what the model learns from, so one failed cell among good ones
    pulls it (and the lab parameters) as far as a real difference would.

    >>> disagreeing_replicates([(2, {}, {"c": 330.0}), (3, {}, {"c": 30.0})], 5.0)
    [((2, 3), 'c', (330.0, 30.0))]
    >>> disagreeing_replicates([(2, {}, {"c": 330.0}), (3, {}, {"c": 322.0})], 5.0)
    []
    """
    from scipy.stats import chi2

    out = []
    names = dict.fromkeys(name for _, _, metrics in replicates for name in metrics)
    for name in names:
        held = [(line, metrics[name]) for line, _, metrics in replicates if name in metrics]
        if len(held) < 2:
            continue
        values = np.array([v for _, v in held], dtype=float)
        sigma = sigma_pct / 100.0 * float(scatter_scale(np.mean(values), 0.0))
        statistic = float(np.sum((values - values.mean()) ** 2)) / sigma**2
        if statistic > chi2.ppf(REPLICATE_SPREAD_QUANTILE, len(values) - 1):
            out.append((tuple(line for line, _ in held), name, tuple(float(v) for v in values)))
    return out


# The smallest size a lab value's stated scatter (lab_uncertainty_pct) is a share of, in the value's own unit (mAh/g,
# %): a coin cell reads a capacity to about 1 mAh/g, so a share of a smaller value (a dead cell's 0, a typed 1e-4)
# would claim a precision no instrument has and weight its row without bound (it had broken the lab fit's algebra).
SMALLEST_READING = 1.0


def scatter_scale(values, typical) -> np.ndarray:
    """The size each lab value's stated scatter is a share of: its magnitude, or the typical magnitude of its kind
    of value when larger (so a measured 0 is a result with an uncertainty), and never below
    :data:`SMALLEST_READING`."""
    return np.maximum(np.abs(np.asarray(values, dtype=float)), np.maximum(typical, SMALLEST_READING))


def _averaged(rows: list[dict[str, float]]) -> dict[str, float]:
    """Replicate cells of one recipe: each metric the mean of the rows that measured it (pending rows add nothing)."""
    names = dict.fromkeys(name for metrics in rows for name in metrics)
    return {name: float(np.mean([m[name] for m in rows if name in m])) for name in names}


@dataclass(frozen=True)
class CapacityCeiling:
    """The most an electrode of a Sn fraction can store, mAh/g: its theoretical capacity with its HC at the most a
    hard carbon stores (whatever HC batch the lab has). A lab capacity above it is a mass or unit error (e.g.
    capacity per g of Sn, or of carbon), not a result: 700 mAh/g from a third of Sn would need its HC to store 680."""

    p: Any  # model parameters with hc_capacity_mAh_per_g at the most a hard carbon stores

    def capacity_of(self, sn_mass_fraction: float) -> float:
        from surrogate.composition import theoretical_capacity_mAh_per_g

        return float(theoretical_capacity_mAh_per_g(sn_mass_fraction, self.p))

    def reason(self, sn_mass_fraction: float) -> str:
        return (f"Sn at {self.p.sn_capacity_mAh_per_g:g} and HC at up to {self.p.hc_capacity_mAh_per_g:g} mAh/g: "
                f"no electrode of sn_mass_fraction {sn_mass_fraction:g} stores more")


def _capacity_ceiling(config: CampaignConfig) -> CapacityCeiling:
    """The campaign's capacity ceiling: its parameters (configs/model_parameters.yaml with the config's overrides)
    with the HC at the most a hard carbon stores, or at its own capacity if a what-if sets that higher."""
    from surrogate.parameters import ModelParameters

    p = ModelParameters.load().with_values(**config.model_parameters)
    return CapacityCeiling(p.with_values(hc_capacity_mAh_per_g=max(p.hc_capacity_most_mAh_per_g,
                                                                   p.hc_capacity_mAh_per_g)))


def _recipe(row, columns: list[str], path, line: int) -> dict:
    """The recipe of one row, every field checked by the recipe schema (defaults for fields not given)."""
    recipe = {}
    for name in columns:
        field = FIELDS[name]
        text = str(row[name]).strip()
        if not text:
            if field.required:
                raise ConfigError(f"{path} line {line}: {name} is empty: {field.allowed()}")
            continue
        try:
            recipe[name] = field.parse(text)
        except RecipeError as error:
            raise ConfigError(f"{path} line {line}: {error}") from None
    return {f.name: recipe.get(f.name, f.default) for f in RECIPE_FIELDS}


def _allowed_values(name: str, recipe: dict, ceilings: "CapacityCeiling") -> tuple[str, float, float]:
    """A lab metric column's allowed values at a row's recipe, as words and as (least, most): a capacity no more
    than the recipe's Sn and HC store, a non-negative quantity from 0."""
    entry = metric_info(name)
    least = 0.0 if entry.non_negative else -OBJECTIVE_SPAN
    most, why = entry.most, ""
    ceiling = ceilings.capacity_of(recipe["sn_mass_fraction"])
    if entry.unit == "mAh/g" and name != "expansion_penalty_mAh_per_g" and ceiling < most:
        most, why = ceiling, f" ({ceilings.reason(recipe['sn_mass_fraction'])})"
    return f"allowed {least:g} to {most:g} {entry.unit}".rstrip() + why, least, most


def _number(text: str, path, line: int, column: str, required: bool = False, allowed: str = "") -> float | None:
    text = str(text).strip()
    if not text:
        if required:
            raise ConfigError(f"{path} line {line}: {column} is empty")
        return None
    try:
        value = plain_number(text)
    except ValueError:
        raise ConfigError(f"{path} line {line}: {column}={excerpt(text)} is not a number"
                          + (f": {allowed}, or empty if not measured" if allowed else "")) from None
    if not np.isfinite(value):
        raise ConfigError(f"{path} line {line}: {column}={excerpt(text)} is not a finite number (leave it empty if "
                          f"not measured)")
    return value


def _named_for_its_objectives(table: pd.DataFrame, config: CampaignConfig, path, lines: list[int]) -> pd.DataFrame:
    """A campaign's lab columns, named by what they measured. One quantity under two names must agree row by row
    (330 and 150 mAh/g on one row had both been taken). A multi-objective campaign's ``objective_capacity_mAh_per_g``
    (the capacity at the target condition) is its capacity objective's ``capacity_at_cycle_N_mAh_per_g``, read at
    that objective's current (:func:`cycling_current`); a Pareto campaign had silently left it out. ``objective``,
    a single objective's score, and a target capacity with no capacity objective to say its condition are refused.
    """
    if not config.objectives:  # the objective's capacity is capacity_at_cycle_N at its own current (cycling_current)
        same = f"capacity_at_cycle_{config.objective.cycle}_mAh_per_g"
        if same not in table.columns:
            return table
        if CAPACITY not in table.columns:  # the objective's capacity under its measured name: the row's only way to
            # a score, unless it states its objective (beside which it is one more reading)
            return table if SCORE in table.columns else table.rename(columns={same: CAPACITY})
        return _merged(table, CAPACITY, same, path, lines, f"its objective: {config.objective.current_A_per_g:g} "
                                                           f"A/g after {config.objective.cycle} cycles")
    if SCORE in table.columns:
        raise ConfigError(f"{path}: column {SCORE!r}: a multi-objective campaign scores no lab row (its front is of "
                          f"the model's recipes); give what was measured instead, e.g. {CAPACITY}, "
                          f"{EXPANSION}")
    if CAPACITY not in table.columns:
        return table
    capacity = config.capacity_objective()
    if capacity is None:
        raise ConfigError(f"{path}: column {CAPACITY!r}: this campaign has no capacity objective to say at which "
                          f"current and cycle it was measured; name the column by what was measured, e.g. "
                          f"capacity_at_cycle_1000_mAh_per_g (read at {cycling_current(config):g} A/g)")
    measured = f"capacity_at_cycle_{capacity.cycle}_mAh_per_g"
    if measured not in table.columns:
        return table.rename(columns={CAPACITY: measured})
    return _merged(table, measured, CAPACITY, path, lines, f"its capacity objective: {capacity.current_A_per_g:g} "
                                                           f"A/g after {capacity.cycle} cycles")


def _merged(table: pd.DataFrame, kept: str, dropped: str, path, lines: list[int], condition: str) -> pd.DataFrame:
    """Two columns that are one quantity in this campaign as the one column ``kept``: a row giving both must give
    one value (to rounding), a row giving only ``dropped`` fills ``kept``; so it is fitted once (both names had
    counted it twice)."""
    a, b = (pd.to_numeric(table[c].str.strip(), errors="coerce").to_numpy(float) for c in (kept, dropped))
    differ = np.isfinite(a) & np.isfinite(b) & ~np.isclose(a, b, rtol=1e-6, atol=0.0)
    if differ.any():
        i = int(np.flatnonzero(differ)[0])
        raise ConfigError(f"{path} line {lines[i]}: {kept}={a[i]:g} and {dropped}={b[i]:g} are one quantity in this "
                          f"campaign ({condition}), given two values; keep one")
    given = table[kept].str.strip() != ""
    return table.assign(**{kept: table[kept].where(given, table[dropped])}).drop(columns=[dropped])


def _objective(metrics: dict[str, float], config: CampaignConfig, path, line: int) -> float:
    """A row's score: the user's own ``objective``, or the campaign objective's formula on the measured values; NaN
    in a multi-objective campaign, whose lab rows teach the model's lab parameters by what they measured and score
    nothing (a Pareto front is of the searched model's recipes)."""
    if config.objectives:
        return float("nan")
    if SCORE in metrics:
        return metrics[SCORE]
    if CAPACITY not in metrics:
        raise ConfigError(f"{path} line {line}: measured metrics but neither {SCORE} nor {CAPACITY}, so the "
                          f"optimiser cannot use this row")
    return config.objective.score(metrics)[SCORE]


def replicate_note(lab: LabData | None) -> str | None:
    """A sentence naming the recipes made more than once, whose rows were averaged; None when there are none."""
    if lab is None or not lab.replicates:
        return None
    groups = "; ".join(" and ".join(str(line) for line in lines) for lines in lab.replicates)
    note = (f"{lab.path}: lines {groups} are replicates of one recipe each: each metric is their mean (the stated "
            f"lab_uncertainty_pct still weighs it as one cell)")
    for lines, name, values in lab.disagreeing:
        note += (f"; lines {' and '.join(map(str, lines))} disagree on {name} ({', '.join(f'{v:g}' for v in values)}) "
                 f"beyond the stated lab_uncertainty_pct: a failed cell or a typing error? their mean "
                 f"{np.mean(values):g} is used; remove a row that failed, or state the scatter the lab sees")
    return note


def outside_note(lab: LabData | None, config: CampaignConfig) -> str | None:
    """A sentence naming the lab rows (measured or pending) that lie outside the campaign's search space or off its
    fixed values, each with the field that puts it there: the optimiser cannot take them, and a measured one does
    not teach the model (:func:`flows.search.teaching_rows`); None when every row fits."""
    if lab is None:
        return None
    from flows.search import outside_reasons

    outside = [f"line {line} ({'; '.join(reasons)})" for line, e in zip(lab.measured_lines, lab.measured)
               if (reasons := outside_reasons(e.recipe, config))]
    outside += [f"pending {', '.join(f'{k}={v:g}' for k, v in r.items() if isinstance(v, float))} "
                f"({'; '.join(reasons)})" for r in lab.pending if (reasons := outside_reasons(r, config))]
    if not outside:
        return None
    return (f"{lab.path}: {len(outside)} row(s) outside the campaign's search space or off its fixed values, which "
            f"neither teach the model nor reach the optimiser (widen search_space, or search the fixed field, to "
            f"use them): " + "; ".join(outside))


def untaught_note(lab: LabData | None, config: CampaignConfig) -> str | None:
    """A sentence when measured lab rows cannot teach the model its lab parameters because the config lists none
    (``lab_parameters: []``; a config that leaves the key out gets configs/default.yaml's list); None otherwise.
    Its lab rows are compared and searched around, but its model and intervals stay the project's: said, not
    left for the user to discover."""
    if lab is None or not lab.measured or config.lab_parameters or config.fidelity != "model":
        return None
    return (f"{lab.path}: this config lists no lab_parameters, so the lab rows are compared with the model but do "
            f"not teach it the lab's mill, powders and cells (copy the lab_parameters groups of configs/default.yaml "
            f"to let them)")


def lab_predictions(lab: LabData, p, config: CampaignConfig) -> list[Evaluation]:
    """Model predictions at the lab recipes, for every metric the lab measured (cycles at the target current)."""
    from flows.evaluation import evaluate_batch

    return evaluate_batch([e.recipe for e in lab.measured], p, config.scoring(), _lab_request(lab, config))


def _lab_request(lab: LabData, config: CampaignConfig):
    """What the model must predict to meet every metric the lab measured (cycles at the target current)."""
    return metrics_request({name for e in lab.measured for name in e.metrics}, config)


def metrics_request(names, config: CampaignConfig):
    """The prediction request that gives every metric in ``names`` (rate-test currents and cycle numbers read from
    the names; cycles at the objective's current), besides the objective's own."""
    currents = sorted({float(m.group(1)) for n in names if (m := AT_CURRENT.match(n))})
    cycles = sorted({int(m.group(1)) for n in names if (m := AT_CYCLE.match(n))})
    return config.scoring().request(tuple(currents) or None, cycling_current(config), tuple(cycles) or None)


def cycling_current(config: CampaignConfig) -> float:
    """The current a lab's ``capacity_at_cycle_N`` columns are read at: the capacity objective's
    (:meth:`flows.config.CampaignConfig.capacity_objective`; a Pareto config has no ``objective:``, and the default
    one's 1.7 A/g had been read instead), else the first objective's that has a current."""
    capacity = config.capacity_objective()
    if capacity is not None:  # not the first objective with a current (an electrode thickening at 4.2 A/g had been
        # read as the current of a capacity objective at 1.7)
        return float(capacity.current_A_per_g)
    return next((float(o.current_A_per_g) for o in config.objectives if hasattr(o, "current_A_per_g")),
                float(config.objective.current_A_per_g))


def _values_in_intervals(lab: LabData, p, config: CampaignConfig):
    """Each measured lab value beside the model's 90 % interval at its recipe (``snhc predict``'s, where a new cell
    should fall): (line, metric, value, low, high)."""
    from flows.evaluation import batch_intervals, campaign_parameters
    from surrogate.uncertainty import build_ensemble

    if not lab.measured:
        return []
    _, calibration = campaign_parameters(config)
    bands = batch_intervals([e.recipe for e in lab.measured], build_ensemble(p, calibration), config.scoring(),
                            _lab_request(lab, config))
    return [(line, name, value, *band[name]) for line, measured, band in zip(lab.measured_lines, lab.measured, bands)
            for name, value in measured.metrics.items() if name in band]


def surprising_values(lab: LabData, p, config: CampaignConfig) -> list[str]:
    """One line per lab value far outside what the model expects at its recipe: beyond the model's 90 % interval
    (``snhc predict``'s, where a new cell should fall) by more than that interval's own width, or, for a positive
    interval, below it by as large a factor as the interval spans (a swelling of 2.4 % against 81-578 % had passed:
    the interval's width reaches below 0).

    Not refused: a lab that differs from the study is what the loop learns from. But one such value, a typing,
    unit or mass error or a failed cell, moves the lab parameters and the GP's correction as much as a real
    difference would (420 mAh/g after 1000 cycles at Sn 0.3 turned every suggestion towards Sn 0.2-0.3 at
    ~97 % of its theoretical capacity), so it is named for the user to check before the suggestions are trusted.
    """
    lines = []
    for line, name, value, low, high in _values_in_intervals(lab, p, config):
        width = high - low
        floor = max(low - width, low * low / high) if low > 0 else low - width
        if value < floor or value > high + width:
            lines.append(f"{lab.path} line {line}: {lab.column(name)} {value:g} lies far outside the model's 90 % "
                         f"interval at this recipe ({low:.4g}-{high:.4g}); check it (a typing, unit or mass error, a "
                         f"failed cell): it teaches the model as much as a real difference would")
    return lines


# The unit slips a lab file invites, by the column's unit: a capacity typed in Ah/g where the column is mAh/g (1000x
# too small), a percentage typed as a fraction (100x too small). Other units and the derived score and penalty are
# not checked.
UNIT_SLIPS = {"mAh/g": (1000.0, "mAh/g (not Ah/g)"), "%": (100.0, "% (not a fraction)")}
UNIT_SLIP_MIN_FACTOR = 10.0  # ... and lies at least this factor outside the model's interval


def check_unit_slips(lab: LabData | None, config: CampaignConfig) -> None:
    """Refuse (ConfigError, exit 2) a lab value that reads as a unit slip: its column's slip factor
    (:data:`UNIT_SLIPS`) brings it inside the model's 90 % interval at its recipe, where it lies at least
    :data:`UNIT_SLIP_MIN_FACTOR` outside, and the interval is narrower than that factor (so nothing but the slip
    explains it). One capacity in Ah/g (0.2688 among rows in mAh/g) had been taken as a dead cell and turned three of
    four suggestions to recipes 38-63 % below the lab's optimum; a swelling written as a fraction (2.437 for 243.7 %)
    moved the batch without a word. A dead cell's 0, a failed cell's few mAh/g and the objective (a score, derived
    from the others) are results. The config's model judges, as in :func:`surprising_values`."""
    if lab is None or not lab.measured:
        return
    from flows.evaluation import campaign_parameters

    for line, name, value, low, high in _values_in_intervals(lab, campaign_parameters(config)[0], config):
        info = metric_info(name)
        if name in (SCORE, PENALTY) or info is None or info.unit not in UNIT_SLIPS:
            continue
        factor, unit_text = UNIT_SLIPS[info.unit]
        if not (value > 0 and low > 0 and high / low < factor and value < low / UNIT_SLIP_MIN_FACTOR
                and low <= value * factor <= high):
            continue
        raise ConfigError(
            f"{lab.path} line {line}: {lab.column(name)}={value:g} reads as a unit slip: x{factor:g} gives "
            f"{value * factor:.4g}, "
            f"inside the model's 90 % interval at this recipe ({low:.4g}-{high:.4g} {info.unit}), where {value:g} "
            f"lies outside it by a factor of {low / value:.0f}; allowed: the value in {unit_text}")


# Quantities a lab can measure on its cells that the lab parameters move: checked by unmeasured_moves when no lab row
# measured them
CHECKED_UNMEASURED = ("reversible_capacity_mAh_per_g", "initial_coulombic_efficiency_pct", EXPANSION,
                      "electrode_expansion_after_1000_cycles_pct", CAPACITY)


def unmeasured_moves(lab: LabData, p, taught, config: CampaignConfig) -> list[str]:
    """One line per quantity that no lab row measured but the lab's parameters (``taught``) move out of the project
    model's 90 % interval at some lab recipe where ``p`` lies inside it (the farthest such recipe is named): a move
    the lab fit made, not one a recalibration on the lab rows made before it.

    The lab parameters are fitted to what the lab measured; every other prediction follows them without data. The
    example lab file, which has no ICE column, moved the HC's milling constant so far that the lab's model gave the
    study's own 2:1 recipe an ICE of 74 %, where the study measured 83 %: a lab reads that as a prediction unless
    told it is not one."""
    from flows.evaluation import batch_intervals, campaign_parameters, evaluate_batch
    from surrogate.uncertainty import build_ensemble

    measured = {name for e in lab.measured for name in e.metrics}
    names = [name for name in CHECKED_UNMEASURED if name not in measured]
    if not lab.measured or not names or taught is p:
        return []
    recipes = [e.recipe for e in lab.measured]
    scoring = config.scoring()
    before, after = evaluate_batch(recipes, p, scoring), evaluate_batch(recipes, taught, scoring)
    bands = batch_intervals(recipes, build_ensemble(p, campaign_parameters(config)[1]), scoring)
    lines = []
    for name in names:
        farthest = None
        for line, b, a, band in zip(lab.measured_lines, before, after, bands):
            if name not in band or not (b.ok and a.ok):
                continue
            low, high = band[name]
            value = a.metrics[name]
            if not low <= b.metrics[name] <= high:  # already outside before the lab fit: not its move
                continue
            beyond = max(low - value, value - high) / max(high - low, np.finfo(float).tiny)
            if beyond > 0 and (farthest is None or beyond > farthest[0]):
                farthest = (beyond, line, b.metrics[name], value, low, high)
        if farthest is not None:
            _, line, old, new, low, high = farthest
            lines.append(f"{name} at the recipe of {lab.path} line {line}: {old:.4g} in the project's model, "
                         f"{new:.4g} in the lab's, outside the project model's 90 % interval ({low:.4g}-{high:.4g}); "
                         f"no lab row measured it, so the lab's value is the fit's guess: measure it to check")
    return lines


def fitted_worse(errors: pd.DataFrame, named: Callable[[str], str] = str) -> list[str]:
    """One line per measured metric that the lab's model (``lab_model_error_pct`` of :func:`model_error_table`)
    misses on the lab's own rows by more, on average, than the study's model does.

    The lab parameters are the assumed ones of the mill, the atmosphere and the powders; a metric whose rows they
    cannot explain (a cycling loss no milling constant produces) is traded against the others, and its predictions
    then come out worse for the lab's teaching. Found by a sceptical walkthrough: two cells that faded to 200 mAh/g
    pushed oxide and wear constants 15-44 times their values, and one row's objective error went from -6 % to -18 %.
    """
    if "lab_model_error_pct" not in errors:
        return []
    lines = []
    for metric, rows in errors.groupby("metric", sort=False):
        before, after = rows["error_pct"].abs().mean(), rows["lab_model_error_pct"].abs().mean()
        # worse as said: two errors that read the same to the shown tenth are no "worse" (3.8 % and 3.8 % had been)
        if np.isfinite(before) and np.isfinite(after) and round(after, 1) > round(before, 1):
            lines.append(f"{named(metric)}: the lab's model misses your {len(rows)} measured row(s) by {after:.1f} "
                         f"% on average, the study's by {before:.1f} %: the lab parameters cannot explain these rows "
                         f"(a cause they do not reach), so the lab's predictions of {named(metric)} are not better "
                         f"for them")
    return lines


MISFIT_QUANTILE = 0.95  # a metric's rows missed beyond the stated scatter at this chi-square quantile are named


def excess_scatter_pct(errors_pct, uncertainty_pct: float) -> float:
    """The sd (% of the measured value) by which a model misses rows beyond their stated scatter: sqrt(mean e^2 -
    u^2) when the rows' mean squared standardised error ``(e / u)^2`` lies above the chi-square quantile
    :data:`MISFIT_QUANTILE` for that many rows, else 0 (a miss the scatter explains). The one test of a lab model's
    misfit: named by :func:`missed_beyond_scatter`, carried into its intervals by
    :meth:`flows.physics_gp.LabCalibratedPrior.misfit_beyond_scatter`."""
    from scipy.stats import chi2

    errors = np.asarray(errors_pct, dtype=float)
    errors = errors[np.isfinite(errors)]
    if not errors.size or np.mean((errors / uncertainty_pct) ** 2) <= chi2.ppf(MISFIT_QUANTILE,
                                                                              errors.size) / errors.size:
        return 0.0
    return float(np.sqrt(np.mean(errors**2) - uncertainty_pct**2))


def family_misses(rows, uncertainty_pct: float) -> dict[str | None, tuple[float, int, float, list[str]]]:
    """What a model misses on a lab's measured values beyond their stated scatter, by kind of quantity: ``rows`` are
    (metric name, measured, model value); the result maps each ``surrogate.uncertainty.measurement_family`` that
    the test of :func:`excess_scatter_pct` names to (excess sd %, values, RMS miss %, its metric names). A metric
    no family holds (the score) is tested on its own and keyed by its own name. Each miss is relative to the
    value's :func:`scatter_scale` (a failed cell's 2.9 mAh/g beside 300 had read as a 10 000 % miss and widened
    every cycling interval to 0-628), an efficiency's to its loss, 100 - ICE, which is what its intervals scatter
    (``surrogate.uncertainty.scattered_by``). One rule for the note (:func:`missed_beyond_scatter`) and the
    lab-taught intervals (:meth:`flows.physics_gp.LabCalibratedPrior.misfit_beyond_scatter`)."""
    from surrogate.uncertainty import measurement_family

    rows = [(name, float(measured), float(model)) for name, measured, model in rows
            if np.isfinite(measured) and np.isfinite(model)]
    typical = {name: float(np.median([abs(m) for n, m, _ in rows if n == name])) for name, _, _ in rows}
    grouped: dict[tuple, tuple[list[float], list[str]]] = {}
    for name, measured, model in rows:
        family = measurement_family(name)
        if family == "efficiency":  # its loss, 100 - ICE, is what scatters
            measured, model = 100.0 - measured, 100.0 - model
            scale = float(scatter_scale(measured, 100.0 - typical[name]))
        else:
            scale = float(scatter_scale(measured, typical[name]))
        key = (family,) if family is not None else (None, name)
        errors, names = grouped.setdefault(key, ([], []))
        errors.append(100.0 * (model - measured) / scale)
        if name not in names:
            names.append(name)
    out: dict[str | None, tuple[float, int, float, list[str]]] = {}
    for key, (errors, names) in grouped.items():
        excess = excess_scatter_pct(errors, uncertainty_pct)
        if excess > 0:
            rms = float(np.sqrt(np.mean(np.square(errors))))
            out[key[0] if key[0] is not None else names[0]] = (excess, len(errors), rms, names)
    return out


def missed_beyond_scatter(errors: pd.DataFrame, uncertainty_pct: float,
                          named: Callable[[str], str] = str) -> list[str]:
    """One line per kind of quantity (:func:`family_misses`) that the lab's model misses on the lab's own rows by
    more than the stated scatter (``lab_uncertainty_pct``) allows. The lab's model was fitted to these rows; missing
    them that far means the lab has an effect it has no parameter for. A virtual lab that cracked electrodes above
    Sn 0.45 was missed by 5 % on average against 2.5 % stated, and the taught model's intervals covered its capacity
    at 4 of 16 recipes, without a word; the lab-taught model's intervals of that kind now carry the excess."""
    from surrogate.uncertainty import measurement_family

    if "lab_model" not in errors:
        return []
    misses = family_misses(errors[["metric", "measured", "lab_model"]].itertuples(index=False, name=None),
                           uncertainty_pct)
    lines = []
    for (excess, n, rms, names) in misses.values():
        carried = (f"its 90 % intervals of these quantities carry the excess (sd about {excess:.1f} %)"
                   if measurement_family(names[0]) is not None else f"so trust its {named(names[0])} intervals less "
                   f"there")
        lines.append(f"{', '.join(map(named, names))}: the lab's model misses your {n} measured value(s) by "
                     f"{rms:.1f} % (RMS), "
                     f"beyond the {uncertainty_pct:g} % your rows scatter by (lab_uncertainty_pct): your lab does "
                     f"something the model has no parameter for; {carried}")
    return lines


def teaching_notes(lab: LabData, p, taught, config: CampaignConfig,
                   errors: pd.DataFrame | None = None) -> list[tuple[str, str]]:
    """(label, line) for what the lab's parameters (``taught``) did beyond the rows they were fitted to: quantities
    no row measured that they moved (:func:`unmeasured_moves`), measured metrics they fit worse than ``p`` does
    (:func:`fitted_worse`; ``errors``: the :func:`model_error_table` with the lab's model, computed when not given),
    and measured metrics it misses beyond the stated scatter (:func:`missed_beyond_scatter`). Printed by ``snhc
    suggest`` and ``snhc optimise --observations`` alike."""
    if errors is None:
        errors = model_error_table(lab, lab_predictions(lab, p, config), lab_predictions(lab, taught, config))
    fitted = errors[errors["line"].isin(_teaching_lines(lab, config))]  # an untaught row says nothing of the fit
    return ([("not measured, moved by the lab's parameters", line) for line in unmeasured_moves(lab, p, taught, config)]
            + [("fitted worse by the lab's parameters", line) for line in fitted_worse(fitted, lab.column)]
            + [("missed beyond your scatter", line)
               for line in missed_beyond_scatter(fitted, config.lab_uncertainty_pct, lab.column)])


def _teaching_lines(lab: LabData, config: CampaignConfig) -> set[int]:
    """The lines of the measured rows the lab's model was fitted to (inside the search space, on its fixed
    fields): a row outside, never told to it, says nothing of how well it fits (an HC row had read as a misfit)."""
    from flows.search import teaching_rows

    taught = {id(e) for e in teaching_rows(config, lab.measured)}
    return {line for line, e in zip(lab.measured_lines, lab.measured) if id(e) in taught}


def model_error_table(lab: LabData, predictions: list[Evaluation],
                      taught: list[Evaluation] | None = None) -> pd.DataFrame:
    """Measured vs predicted for every measured metric of every lab row: the model's error at the lab points, and
    (``taught``: predictions of the model with the lab's own parameters, ``flows.optimise.teach_lab_parameters``)
    the error left once the lab's results have taught it (columns ``lab_model``, ``lab_model_error_pct``)."""
    rows = []
    taught = taught or [None] * len(predictions)
    for line, measured, predicted, lab_model in zip(lab.measured_lines, lab.measured, predictions, taught):
        for name, value in measured.metrics.items():
            model = predicted.metrics.get(name, float("nan"))
            row = {"line": line, **measured.recipe, "metric": name, "measured": value, "model": model,
                   "error": model - value, "error_pct": _error_pct(model, value)}
            if lab_model is not None:
                row |= {"lab_model": lab_model.metrics.get(name, float("nan")),
                        "lab_model_error_pct": _error_pct(lab_model.metrics.get(name, float("nan")), value)}
            rows.append(row)
    return pd.DataFrame(rows)


def _error_pct(model: float, measured: float) -> float:
    return 100.0 * (model - measured) / measured if measured else float("nan")
