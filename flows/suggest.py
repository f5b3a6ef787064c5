"""Next experiments out: the Q recipes the lab should make next, with predicted metrics and uncertainty.

The optimiser is told the lab results (or, without any, a campaign's saved evaluations); recipes still in the lab
(pending rows of the lab file) are told at the surrogate's own mean there (kriging believer), so the batch spreads
away from them without an invented result pulling it towards them. No suggestion duplicates a made or pending
recipe.

The optimiser's surrogate is the physics-informed GP (``flows/physics_gp.py``) unless the campaign chooses a forest
(``optimiser.surrogate: RF`` or ``ET``): on lab data the model is the prior and the GP learns the lab's discrepancy.
Each suggestion shows the model's own prediction, the correction the lab data taught it, and the combined mean and sd,
on the console and in an MLflow run of the campaign's experiment (:func:`log_suggestions`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flows.campaign import Campaign
from flows.evaluation import LAB, campaign_parameters, evaluate_batch, lazy_ensemble
from flows.metrics import extrapolated_column, interval_columns
from flows.objective import EXPANSION, SCORE
from flows.observations import teaching_notes
from flows.search import (in_search_space, make_optimizer, plain_gp, point_of, recipe_of, surrogate_prediction,
                          teaching_rows, tell_known)
from surrogate.recipe import FIELD_NAMES, as_made, recipe_key


def suggest(campaign: Campaign, batch_size: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Q new recipes with the model's predicted metrics and the optimiser surrogate's mean and sd, the lab
    parameters the physics-informed GP inferred from the results (:func:`lab_parameter_table`; empty without), and
    notes on what those parameters did beyond the rows: a quantity no lab row measured moved out of the model's
    interval (:func:`flows.observations.unmeasured_moves`), a measured one the lab's model fits worse than the
    study's (:func:`flows.observations.fitted_worse`)."""
    config = campaign.config
    p, _ = campaign_parameters(config)
    if config.recalibrate_on_observations and campaign.lab and campaign.lab.measured:
        from flows.recalibration import recalibrate

        p = recalibrate(config, campaign.lab).parameters  # the model taught by the lab rows is the prior
    optimizer = make_optimizer(config, p, surrogate=lab_surrogate(config))
    # With lab results the optimiser learns the lab: the model is its prior already, and a campaign's model
    # evaluations told beside the lab rows would read as lab results that agree with the model exactly.
    measured = bool(campaign.lab and campaign.lab.measured)
    known = [(point, e) for point, e in zip(campaign.points, campaign.evaluations) if e.source == LAB or not measured]
    tell_known(optimizer, config, known)
    pending = campaign.lab.pending if campaign.lab else []
    optimizer.pending_ = [point_of(r, config) for r in pending if in_search_space(r, config, optimizer.space)]
    space = config.search_space  # the searched numbers (not a choice) and their ranges, for as_made
    searched = {name: (d.low, d.high) for name in space.searched() if (d := getattr(space, name)).choices is None}
    made = [e.recipe for _, e in known] + list(pending)
    # a suggestion is handed over rounded (as_made): it must not be a made recipe as rounded either
    taken = {recipe_key(r) for r in made} | {recipe_key(as_made(r, searched, config.lab_steps)) for r in made}

    # and not within the lab's batch resolution of one: a suggestion 1-2 % of each range from a pending row (a
    # lab-parameter draw, which the pending rows do not steer) was the same batch to the lab
    def unit(recipe: dict) -> np.ndarray:  # the recipe in the search's unit cube (log where searched so)
        return optimizer.space.transform([point_of(recipe, config)])[0]

    near = [unit(r) for r in made if in_search_space(r, config, optimizer.space)]

    def same_batch(recipe: dict) -> bool:
        return any(np.max(np.abs(unit(recipe) - y)) < config.lab_batch_resolution for y in near)

    suggestions: list[dict] = []
    chosen_by: list[str] = []
    attempts = 0
    lab_pending = list(optimizer.pending_)
    while len(suggestions) < batch_size and attempts < 10:
        points = optimizer.ask(n_points=batch_size - len(suggestions), strategy=config.optimiser.liar)
        for point, how in zip(points, optimizer.asked_by_):
            recipe = as_made(recipe_of(point, config), searched, config.lab_steps)  # as a lab sets it, predicted so
            if recipe_key(recipe) not in taken and not same_batch(recipe):
                taken.add(recipe_key(recipe))
                near.append(unit(recipe))
                suggestions.append(recipe)
                chosen_by.append(how)
        # the next ask believes this round's points as pending, so it looks elsewhere instead of asking them again
        optimizer.pending_ = [*optimizer.pending_, *points]
        attempts += 1
    optimizer.pending_ = lab_pending  # the suggestions' own means and sds are the lab's surrogate's, not believed
    mean_std = _uncertainty(optimizer, config, suggestions)
    rows = []
    taught = lab_taught_parameters(optimizer, p)
    evaluations = evaluate_batch(suggestions, taught, config.objective)
    measured_rows = campaign.lab.measured if measured else []
    bands, flags = _model_uncertainty(suggestions, evaluations, config,
                                      lab_ensemble(optimizer, p, config, measured_rows))
    for recipe, how, evaluation, (mean, std), band, flag in zip(suggestions, chosen_by, evaluations, mean_std, bands,
                                                                flags):
        metrics = {k: v for k, v in evaluation.metrics.items() if k.endswith(("_mAh_per_g", "_pct"))}
        row = {**recipe, "chosen_by": how, "predicted_objective": evaluation.objective,
               "learned_correction_objective": mean - evaluation.objective, "surrogate_mean_objective": mean,
               "surrogate_std_objective": std}
        if SCORE in band:  # the model's objective with its interval and flag, as snhc predict gives it
            row |= dict(zip(interval_columns("predicted_objective"), band[SCORE]))
            row[extrapolated_column("predicted_objective")] = bool(flag.get(SCORE, True))
        for name, value in metrics.items():  # each predicted metric with its 90 % interval and extrapolation flag
            row[name] = value
            if name in band:
                row |= dict(zip(interval_columns(name), band[name]))
                row[extrapolated_column(name)] = bool(flag.get(name, True))
        if (note := long_shot_note(mean, evaluation, campaign.lab, config)) is not None:
            row["note"] = note
        rows.append(row)
    notes = ([f"{label}: {line}" for label, line in teaching_notes(campaign.lab, p, taught, config)]
             if campaign.lab and campaign.lab.measured else [])
    searched = sum(e.source != LAB for e in campaign.evaluations)
    if measured and searched:
        notes.append(f"learned from the lab's rows only: the resumed campaign's {searched} evaluations are the "
                     f"model's own predictions, its prior already, and are only kept from being suggested again")
    return pd.DataFrame(rows), lab_parameter_table(optimizer), notes


def long_shot_note(mean: float, evaluation, lab, config) -> str | None:
    """A sentence for a suggestion the optimiser's own mean expects to score below every recipe the lab measured
    (a lab-parameter draw or an exploratory point): made to learn where the optimum could be, not expected to win,
    with its predicted swelling when that is above the objective's allowance; None otherwise. A lab spends days on
    each recipe: a draw the model scored 44 mAh/g at 401 % swelling, against rows measured at 270-305, had been
    suggested with the general legend only."""
    scored = [(e.objective, line) for e, line in zip(lab.measured, lab.measured_lines)
              if e.ok and np.isfinite(e.objective)] if lab is not None else []
    if not scored or not np.isfinite(mean):
        return None
    lowest, line = min(scored)
    if mean >= lowest:
        return None
    swelling = evaluation.metrics.get(EXPANSION, np.nan)
    allowance = config.objective.expansion_allowance_pct
    swell = (f"; the model predicts {swelling:.0f} % swelling, above the objective's {allowance:g} % allowance"
             if np.isfinite(swelling) and swelling > allowance else "")
    return (f"a long shot: its mean {mean:.1f} mAh/g is below every recipe the lab measured (the lowest "
            f"{lowest:.1f}, line {line}){swell}; it is made to learn where the optimum could be, not expected to win")


def _model_uncertainty(recipes: list[dict], evaluations, config, ensemble) -> tuple[list[dict], list[dict]]:
    """The 90 % interval and extrapolation flag of each suggestion's metrics, by the rule of ``snhc predict`` and
    the recommendation, from ``ensemble``, that of the model the suggestions were predicted with
    (:func:`lab_ensemble`): a suggestion milled far from the study's materials must say that its ICE or swelling is
    an extrapolation, not state it bare."""
    from flows.evaluation import batch_intervals, scoring_flags

    bands = batch_intervals(recipes, ensemble, config.objective)
    flags = [scoring_flags(recipe, ensemble.domain, config.objective, e.metrics) if e.ok else {}
             for recipe, e in zip(recipes, evaluations)]
    return bands, flags


def suggestion_records(table: pd.DataFrame) -> list[dict]:
    """The suggestions as JSON records: each metric's interval and flag under ``"interval_90"`` and
    ``"extrapolated"`` beside the values (the JSON shape of ``snhc predict``), not as flat columns."""
    records = []
    for row in table.astype(object).where(table.notna(), None).to_dict("records"):  # missing values as null
        bands = {name: [row.pop(low), row.pop(high)] for name in list(row)
                 if (low := interval_columns(name)[0]) in row and (high := interval_columns(name)[1]) in row}
        flags = {name: row.pop(extrapolated_column(name)) for name in bands if extrapolated_column(name) in row}
        records.append(row | {"interval_90": bands, "extrapolated": flags})
    return records


def lab_taught_parameters(optimizer, p):
    """The model parameters the optimiser's surrogate predicts with: ``p`` with the lab parameters at their estimate
    from the lab's results (the physics-informed GP's prior), or ``p`` itself when the surrogate infers none. A
    suggestion's model value and metrics are this model's, so its ``+ lab corr.`` is only what the lab parameters
    cannot explain: with the project's model, a recipe the lab's harder HC mills well read 168 mAh/g at 327 %
    swelling, "+ 201" from the lab, where the lab's model says 357 at 251 % and its GP adds 12."""
    prior = _lab_prior(optimizer)
    return p if prior is None else prior.estimated_parameters()


def lab_ensemble(optimizer, p, config, measured=()):
    """The ensemble of the model the suggestions are predicted with (:func:`lab_taught_parameters`): with lab
    parameters inferred, the lab-taught one (:meth:`flows.physics_gp.LabCalibratedPrior.taught_ensemble`: the
    study's uncertainty, the lab parameters' posterior, weighted by the lab's ``measured`` rows, near which the
    quantities they measured carry less model-form error), else ``p``'s; carried to ``p``'s fitted values when
    the lab's rows refitted them too."""
    _, calibration = campaign_parameters(config)
    return lazy_ensemble(p, calibration, _lab_prior(optimizer), teaching_rows(config, measured))()


def _lab_prior(optimizer):
    """The surrogate's lab-calibrated prior when it infers lab parameters, else None."""
    prior = getattr(optimizer.models[-1], "prior", None) if optimizer.models else None
    return prior if hasattr(prior, "lab_parameters") and prior.lab_parameters.names else None


def lab_parameter_table(optimizer) -> pd.DataFrame:
    """What the lab's results taught the model's parameters: per lab parameter (configs/default.yaml
    ``lab_parameters``) the project's value, the lab's estimate, how far it moved (in prior sd) and the share of the
    prior's width still left (1: the results say nothing about it yet). Empty unless the surrogate infers them."""
    return prior_parameter_table(_lab_prior(optimizer))


def prior_parameter_table(prior) -> pd.DataFrame:
    """:func:`lab_parameter_table` of a :class:`flows.physics_gp.LabCalibratedPrior` (None: empty)."""
    from surrogate.calibration import on_bound

    if not hasattr(prior, "estimate"):
        return pd.DataFrame(columns=LAB_PARAMETER_COLUMNS)
    estimate, lab = prior.estimate(), prior.lab_parameters
    # an estimate at an end of its range: the results push past what the range allows (a lab's vial that does not
    # warm at all drove vial_temperature_rise_at_reference_C to 0), so its "moved (sd)" understates the pull
    # a parameter the results did not free (its group is not what they say differs) keeps the project's value: they
    # have taught it nothing, so all its prior width is left, and a project value at a bound (hc_fade_per_sqrt_cycle
    # at 0) is not a pull of the results
    freed = set(lab.hypotheses()[prior.hypothesis_].tolist())
    bounded = set(on_bound([lab.names[j] for j in sorted(freed)], prior.x_[sorted(freed)],
                           *(limit[sorted(freed)] for limit in lab.box())))
    return pd.DataFrame([{"parameter": name, "project_value": float(lab.p[name].value), "lab_estimate": estimate[name],
                          "moved_prior_sd": float(prior.x_[j]),
                          "prior_width_left": float(np.sqrt(prior.covariance_[j, j])) if j in freed else 1.0,
                          "freed": j in freed,
                          "low": lab.p[name].bounds[0], "high": lab.p[name].bounds[1], "on_bound": name in bounded}
                         for j, name in enumerate(lab.names)], columns=LAB_PARAMETER_COLUMNS)


def lab_parameter_metrics(table: pd.DataFrame) -> dict[str, float]:
    """MLflow metrics of a :func:`lab_parameter_table`: ``lab_parameter.<name>`` and its ``.moved_prior_sd``."""
    return {f"lab_parameter.{r.parameter}{suffix}": float(value) for r in table.itertuples()
            for suffix, value in (("", r.lab_estimate), (".moved_prior_sd", r.moved_prior_sd))}


LAB_PARAMETER_COLUMNS = ["parameter", "project_value", "lab_estimate", "moved_prior_sd", "prior_width_left", "freed",
                         "low", "high", "on_bound"]


def lab_surrogate(config) -> str:
    """The surrogate for lab data: the physics-informed GP in place of the plain GP (forests stay as chosen)."""
    return "physics_gp" if config.optimiser.surrogate == "GP" else config.optimiser.surrogate


def _uncertainty(optimizer, config, recipes) -> list[tuple[float, float]]:
    """Surrogate mean and sd of the objective at each recipe; a GP is fitted here if the optimiser has none yet."""
    points = [point_of(r, config) for r in recipes]
    if optimizer.models:
        return [surrogate_prediction(optimizer, point) for point in points]
    if len(optimizer.yi) < 2:
        return [(float("nan"), float("nan"))] * len(points)
    model = plain_gp(optimizer.space, config.optimiser.seed, config.optimiser)
    model.fit(optimizer.space.transform(optimizer.Xi), optimizer.yi)
    mean, std = model.predict(optimizer.space.transform(points), return_std=True)
    return [(float(-m), float(s)) for m, s in zip(mean, std)]


SUGGESTION_METRICS = {  # table column -> MLflow metric (one step per suggestion)
    "predicted_objective": "suggestion.model_objective",
    "learned_correction_objective": "suggestion.learned_correction",
    "surrogate_mean_objective": "suggestion.combined_mean",
    "surrogate_std_objective": "suggestion.combined_sd",
}


def log_suggestions(campaign: Campaign, table: pd.DataFrame, lab_parameters: pd.DataFrame | None = None) -> str:
    """Record one ``snhc suggest`` as an MLflow run (tag ``snhc.kind: suggestions``) in the campaign's experiment:
    the suggestions table as an artifact and as the run's description, and per suggestion (step = its row) the
    model's objective, the learned correction and the combined mean and sd, so the MLflow UI charts how much the
    lab has taught the model; the inferred lab parameters as ``lab_parameters.csv`` and as metrics
    ``lab_parameter.<name>`` and ``lab_parameter.<name>.moved_prior_sd``. So that a suggestion can be audited and
    made again, the config is logged as a campaign's is (params and ``config.yaml``, tag ``config_sha256``) and the
    lab file as read (``observations.csv``, tag ``observations_sha256``). Returns the run id."""
    import hashlib

    import yaml

    from flows.tracking import NOTE_TAG, Tracker, flatten, run_name, source_tags

    config = campaign.config
    tracker = Tracker(config.tracking.tracking_uri, config.tracking.experiment_name,
                      config.tracking.artifact_location)
    measured = len(campaign.lab.measured) if campaign.lab else 0
    tags = {"snhc.kind": "suggestions", "campaign": config.name, "config_sha256": config.digest(),
            "surrogate": lab_surrogate(config) if measured else config.optimiser.surrogate,
            # the code and the study's data that made the suggestions, as a campaign's run records them
            "calibration_data_sha256": campaign_parameters(config)[1].data_sha256, **source_tags()}
    # as on disk: its sha256sum, its line ends (not a resumed campaign's saved rows: their file may be gone or other)
    lab_bytes = campaign.lab.path.read_bytes() if campaign.lab and not campaign.lab.saved else None
    lab_text = lab_bytes.decode("utf-8", errors="replace") if lab_bytes is not None else None
    if lab_bytes is not None:
        tags["observations_sha256"] = hashlib.sha256(lab_bytes).hexdigest()
    if campaign.run_id:
        tags["suggested_after_run"] = campaign.run_id
    if campaign.lab:
        tags["observations"] = str(campaign.lab.path)
    with tracker.run(run_name(f"{config.name}-suggest", config.optimiser.seed), tags) as run_id:
        document = config.model_dump(mode="json")
        tracker.log(run_id, params=flatten(document) | {
            "batch": len(table), "lab_rows_measured": measured,
            "lab_rows_pending": len(campaign.lab.pending) if campaign.lab else 0,
            "known_evaluations": len(campaign.evaluations)})
        tracker.log_text(run_id, yaml.safe_dump(document, sort_keys=False), "config.yaml")
        if lab_text is not None:
            tracker.log_text(run_id, lab_text, "observations.csv")
        for step, row in enumerate(table.to_dict("records")):
            tracker.log(run_id, metrics={name: row[column] for column, name in SUGGESTION_METRICS.items()},
                        step=step)
        tracker.log(run_id, tags={NOTE_TAG: suggestions_markdown(table)})
        tracker.log_files(run_id, {"suggestions.csv": table})
        if lab_parameters is not None and len(lab_parameters):
            tracker.log(run_id, metrics=lab_parameter_metrics(lab_parameters))
            tracker.log_files(run_id, {"lab_parameters.csv": lab_parameters})
    return run_id


def suggestions_markdown(table: pd.DataFrame) -> str:
    """The suggestions as a Markdown table (the MLflow run's description): recipe, then model + correction =
    combined mean, and its sd."""
    columns = ([c for c in table.columns if c in FIELD_NAMES] + list(SUGGESTION_METRICS)
               + [c for c in ("chosen_by", "note") if c in table.columns])
    lines = [f"**{len(table)} suggested recipes**: the model's objective (mAh/g), the correction the lab data "
             "taught it, the combined mean and its sd, and how each was chosen", "",
             "| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if pd.isna(v) else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row)
              + " |" for row in table[columns].itertuples(index=False)]
    return "\n".join(lines)
