"""Campaign configuration: YAML validated into pydantic models, failing fast with the key path and allowed range.

A campaign is a search space over the recipe, an objective, overrides of assumed model parameters, optimiser
settings and tracking settings. ``configs/default.yaml`` is the embedded default; what-if scenarios are overrides
deep-merged onto it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
import typing
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model,
                      field_validator, model_serializer, model_validator)

from flows.inputs import (EXCERPT_CHARS, InputError, NumbersNotBooleans, check_artifact_location, check_finite,
                          check_tracking_scheme, excerpt, keep_secret, read_yaml_mapping)
from flows.objective import MAXIMISE, MINIMISE, OBJECTIVE_KINDS, OBJECTIVE_SPAN, CapacityObjective, ObjectiveSet
from surrogate.parameters import ModelParameters, ParameterError
from surrogate.paths import config_dir
from surrogate.yaml_safety import finite_as_float
from surrogate.recipe import FIELD_NAMES, FIELDS, RECIPE_FIELDS, RecipeField


class ConfigError(InputError):
    """An invalid campaign or scenario config; the message names the file, the key path and the allowed values."""


class Strict(NumbersNotBooleans):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # "nan" / "inf" strings too


# A name shown in MLflow and on the console: printable, without leading or trailing blanks (" " or a NUL had become
# an experiment and a run name), and within MLflow's store columns: an experiment name 256 characters; a run name
# 250, of which a campaign's or scenario's name leaves room for what the run name adds (-seed<N>-<timestamp>)
EXPERIMENT_NAME_MAX = 256
NAME_MAX = 200


# Characters a one-line name may not hold: control characters, format ones (a right-to-left override U+202E shows a
# name reversed, a zero-width space two names alike), and the line and paragraph separators U+2028 / U+2029 (a name
# on two lines in a table or a log)
NOT_IN_A_NAME = ("Cc", "Cf", "Zl", "Zp")


def _printed(name: str) -> str:
    if name != name.strip() or any(unicodedata.category(c) in NOT_IN_A_NAME for c in name):
        raise ValueError("use printable characters, without leading or trailing blanks")
    return name


def _one_path_part(name: str) -> str:
    """A campaign's or scenario's name also names its files and folders (what-if outputs): one path part, so
    '../../x' cannot write outside the output folder."""
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError("names files and folders: no / or \\, and not . or ..")
    return name


def _fits_a_file_name(name: str) -> str:
    """A name that also names a file holds at most NAME_MAX bytes as UTF-8: a file name's limit is 255 bytes, which
    200 accented letters (400 bytes) had passed as 200 characters, then failed a what-if study half written."""
    if len(name.encode("utf-8")) > NAME_MAX:
        raise ValueError(f"at most {NAME_MAX} bytes as UTF-8 (a letter outside ASCII takes 2-4): it names files")
    return name


PrintedName = Annotated[str, Field(min_length=1, max_length=NAME_MAX), AfterValidator(_printed),
                        AfterValidator(_one_path_part), AfterValidator(_fits_a_file_name)]


# why a config with 'objectives' is not scored by PyBaMM (a campaign's fidelity, snhc predict's --fidelity)
PHYSICS_SCORES_CAPACITY_ONLY = ("scores the capacity 'objective' only (PyBaMM gives the capacity, not milling cost or "
                                "expansion); a config with 'objectives' is scored by the numpy model (fidelity: model)")


def printed_text(text: str) -> str:
    """``text`` if it holds only printable characters, line breaks and tabs; else ValueError."""
    # a description may span lines and hold tabs; other control and format characters (a NUL, a right-to-left override)
    # are refused as in a name
    if any(unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\r\t" for c in text):
        raise ValueError("use printable characters (line breaks and tabs allowed)")
    return text
ExperimentName = Annotated[str, Field(min_length=1, max_length=EXPERIMENT_NAME_MAX), AfterValidator(_printed)]


def checked_experiment_name(name: str, key: str) -> str:
    """An experiment name given outside a config (``what-if --experiment``), by the config's own rule."""
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(ExperimentName).validate_python(name)
    except ValidationError as error:
        raise ConfigError(f"{key} {name[:40]!r}: {error.errors()[0]['msg'].removeprefix('Value error, ')}") from None


# A search range may hold a sliver that is no recipe (milling_time_h from 0: 0 is unmilled, and times between 0 and
# its finest, 0.0001 h, are none), whose rare samples fail as evaluations; a range mostly made of it failed every one
NO_RECIPE_SHARE_MAX = 0.01


class Dimension(Strict):
    """One recipe field in the search: searched between ``low`` and ``high`` (optionally on a log scale), or over
    ``choices`` (a categorical field), or fixed at ``value``. A range that does not state ``log_scale`` takes its
    field's scale (:class:`surrogate.recipe.RecipeField`)."""

    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    value: float | str | None = None
    log_scale: bool = False

    @property
    def fixed(self) -> bool:
        return self.value is not None

    def checked(self, field: RecipeField) -> "Dimension":
        """This dimension, checked against its recipe field (kind, allowed range or choices)."""
        name = field.name
        if self.fixed:
            if self.low is not None or self.high is not None or self.choices is not None:
                raise ValueError(f"{name}: give either 'value' (fixed) or a range/choices to search, not both")
            if self.log_scale:  # it would do nothing: a fixed value is not searched
                raise ValueError(f"{name}: log_scale applies to a searched range, not a fixed 'value'")
            if not field.is_valid(self.value):
                raise ValueError(f"{name}.value={self.value!r} is out of range: {field.allowed()}")
            return self
        if field.categorical:
            if self.low is not None or self.high is not None or self.log_scale:
                raise ValueError(f"{name}: a categorical field takes 'choices' (or a fixed 'value'), not a range")
            if not self.choices or len(set(self.choices)) < 2:
                raise ValueError(f"{name}: needs at least two distinct 'choices' (or a fixed 'value')")
            if len(set(self.choices)) != len(self.choices):
                repeated = next(c for c in self.choices if self.choices.count(c) > 1)
                raise ValueError(f"{name}.choices: {repeated!r} appears more than once")
            for choice in self.choices:
                if not field.is_valid(choice):
                    raise ValueError(f"{name}.choices: {choice!r} is not allowed: {field.allowed()}")
            return self
        if self.choices is not None:
            raise ValueError(f"{name}: a real field takes 'low' and 'high', not 'choices'")
        if self.low is None or self.high is None:
            raise ValueError(f"{name}: needs 'low' and 'high' (or a fixed 'value')")
        for key in ("low", "high"):
            bound = getattr(self, key)
            if not field.is_valid(bound):
                raise ValueError(f"{name}.{key}={bound:g} is out of range: {field.allowed()}")
        if self.low >= self.high:
            raise ValueError(f"{name}: low ({self.low:g}) must be below high ({self.high:g})")
        if self.log_scale and self.low <= 0:
            raise ValueError(f"{name}: log_scale needs low > 0")
        finest = field.finest  # a range or log-scale low finer than the recipe's resolution is no recipe (and below
        # ~1e-300 scikit-optimize's log-uniform prior cannot sample at all)
        if self.high - self.low < finest or (self.log_scale and self.low < finest):
            raise ValueError(f"{name}: low {self.low:.10g} and high {self.high:.10g} must be at least {finest:g} apart "
                             f"{'and low at least ' + format(finest, 'g') + ' ' if self.log_scale else ''}"
                             f"(a millionth of the allowed span: {field.allowed()})")
        gap = max(0.0, min(finest, self.high) - max(self.low, 0.0)) if self.low < finest else 0.0
        if gap > NO_RECIPE_SHARE_MAX * (self.high - self.low):  # between 0 and the finest non-zero value: no recipe
            raise ValueError(f"{name}: low {self.low:g} and high {self.high:g}: values between 0 and {finest:g} are no "
                             f"recipe ({field.allowed()}), and they would be {gap / (self.high - self.low):.0%} of "
                             f"the range: give low >= {finest:g}, or high >= {finest / NO_RECIPE_SHARE_MAX:g}")
        return self


def _default_dimension(field: RecipeField) -> Dimension:
    """The search of a field when a config does not say: its typical lab range from the recipe schema, or its
    default value when the schema gives no search range (an optional process variable a config may search)."""
    if not field.search:
        return Dimension(value=field.default)
    if field.categorical:
        return Dimension(choices=tuple(field.search or field.choices))
    return Dimension(low=field.search[0], high=field.search[1], log_scale=field.log_scale)


class _SearchSpaceBase(Strict):
    @model_validator(mode="before")
    @classmethod
    def _field_scales(cls, data: Any) -> Any:
        """A range that does not state ``log_scale`` takes its recipe field's (log for the milling time, speed and
        BPR), where it can: a range from 0 stays linear."""
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for name, dimension in data.items():
            field = FIELDS.get(name)
            if (field is not None and field.log_scale and isinstance(dimension, dict) and "log_scale" not in dimension
                    and isinstance(dimension.get("low"), (int, float)) and not isinstance(dimension["low"], bool)
                    and dimension["low"] > 0):
                filled[name] = {**dimension, "log_scale": True}
        return filled

    @model_validator(mode="after")
    def _fields_checked(self) -> "_SearchSpaceBase":
        for field in RECIPE_FIELDS:
            getattr(self, field.name).checked(field)
        if all(getattr(self, name).fixed for name in FIELD_NAMES):
            raise ValueError("every dimension is fixed: nothing to optimise")
        time = getattr(self, "milling_time_h")
        idle = [f.name for f in RECIPE_FIELDS if f.milling_setting and not getattr(self, f.name).fixed]
        if time.fixed and not time.value and idle:  # an unmilled powder: the mill's settings do nothing to it
            raise ValueError(f"{idle[0]}: searched, but milling_time_h is fixed at 0 (unmilled), where the mill's "
                             f"settings do nothing; fix {idle[0]} or search milling_time_h")
        return self

    def searched(self) -> list[str]:
        return [name for name in FIELD_NAMES if not getattr(self, name).fixed]

    def fixed_values(self) -> dict[str, Any]:
        return {name: getattr(self, name).value for name in FIELD_NAMES if getattr(self, name).fixed}


# One config key per recipe field, derived from the schema (surrogate/recipe.py): a new field needs no code here.
SearchSpace = create_model(
    "SearchSpace", __base__=_SearchSpaceBase,
    **{field.name: (Dimension, _default_dimension(field)) for field in RECIPE_FIELDS})


class Optimiser(Strict):
    n_calls: int = Field(40, ge=2, le=2000, description="total evaluations")
    n_initial_points: int = Field(10, ge=1, le=1000, description="random points before the surrogate is used")
    batch_size: int = Field(4, ge=1, le=64, description="points per ask")
    surrogate: Literal["GP", "RF", "ET", "physics_gp"] = Field(
        "GP", description="GP: scikit-optimize's Gaussian process; physics_gp: the model as prior mean, a GP on the "
                          "discrepancy (flows/physics_gp.py); RF, ET: forests")
    acquisition: Literal["gp_hedge", "EI", "PI", "LCB"] = "EI"
    physics_initial_points: int = Field(
        4, ge=1, le=1000, description="physics_gp: the space-filling first batch of a search that has no result "
                                      "yet; from the first result on it leads (the model's prior already shapes the "
                                      "surrogate)")
    parameter_draw_points: int = Field(
        1, ge=0, le=64, description="physics_gp with lab parameters: points of each batch (its last ones, never its "
                                    "first) chosen as the best recipe of the model under one draw of the lab "
                                    "parameters' posterior (Thompson sampling), so the search explores where what the "
                                    "lab has not yet pinned down moves the optimum")
    anchor_points: int = Field(
        1, ge=0, le=64, description="multi-objective campaigns: points of each ParEGO batch (its last ones, never its "
                                    "first) that maximise the expected improvement of the first modelled objective alone "
                                    "(e.g. capacity), so the front's far end in it is searched as a single-objective "
                                    "campaign would; the others take random weights (benchmarks/pareto_front.py)")
    seed: int = Field(42, ge=0, le=2**32 - 1)
    initial_point_generator: Literal["random", "lhs", "sobol", "halton", "hammersly"] = Field(
        "lhs", description="design of the initial points")
    acq_optimizer: Literal["sampling", "lbfgs"] = Field(
        "sampling", description="GP: acquisition maximised over random samples, or L-BFGS from the best of them")
    acquisition_samples: int = Field(10000, ge=10, le=1_000_000, description="random points the acquisition is "
                                                                             "evaluated on per ask")
    acquisition_restarts: int = Field(5, ge=1, le=100, description="lbfgs: starts from the best samples")
    local_candidates_share: float = Field(
        0.5, ge=0.0, le=1.0, description="GP, physics_gp: share of the acquisition's samples drawn around the best "
                                         "evaluated recipes "
                                         "rather than over the whole space (a thin optimum ridge is rarely hit by "
                                         "uniform samples)")
    local_candidates_scale: float | tuple[float, float] = Field(
        0.02, description="sd of those local samples, as a share of each searched range (on the optimiser's axes: "
                          "log where a field is searched on a log scale); [low, high]: each sample's sd drawn "
                          "log-uniformly between them, so steps of every size from fine to coarse")

    @field_validator("local_candidates_scale", mode="before")
    @classmethod
    def _scale_in_range(cls, scale: Any) -> float | tuple[float, float]:
        """A share of each range, or a [low, high] pair of shares: numbers only (no true, no '0.1'), 0 < low <= high
        <= 1, checked here so that every wrong shape gets the same one line with the allowed values."""
        allowed = "allowed a share above 0 and at most 1, or [low, high] with 0 < low <= high <= 1"
        pair = isinstance(scale, (list, tuple)) and len(scale) == 2
        values = list(scale) if pair else [scale]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and finite_as_float(v) for v in values):
            raise ValueError(f"{excerpt(scale)}: {allowed}")
        low, high = float(values[0]), float(values[-1])
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"{excerpt(scale)}: {allowed}")
        return (low, high) if pair else low
    composite: bool = Field(
        True, description="GP: model the objective's inputs (capacity, expansion) with one GP each and score their "
                           "posterior draws with the objective's own formula (composite BO): the expansion penalty's "
                           "kink, where the optimum sits, is then known exactly instead of learned")
    gp_noise: float | Literal["gaussian"] = Field(
        "gaussian", description="GP noise variance (normalised objective): a fixed level, or 'gaussian' (fitted)")
    gp_restarts: int = Field(2, ge=0, le=50, description="GP hyperparameter fit: restarts of its optimiser")
    gp_fit_tolerance: float = Field(
        1e-4, ge=1e-12, le=1e-2, allow_inf_nan=False,
        description="GP hyperparameter fit: stop once an L-BFGS-B step changes the log marginal likelihood by less "
                    "than this share (scipy's default 2.2e-9; measured: 1e-4 cuts the optimiser's CPU per evaluation "
                    "at 50 by about a sixth with no loss in evaluations to the optimum, "
                    "benchmarks/optimiser_efficiency.py)")
    gp_features: Literal["recipe", "milling_dose"] = Field(
        "milling_dose", description="GP: axes its length scales belong to: the recipe's own, or the milling time, "
                                    "the dose BPR t rpm^3 (in place of the speed) and BPR, when all three are "
                                    "searched on log axes (a linear map of the same points)")
    output_warping: Literal["none", "yeo-johnson"] = Field(
        "none", description="losses the surrogate is fitted to: as told, or Yeo-Johnson transformed (tames the "
                            "expansion penalty's cliff)")
    liar: Literal["cl_min", "cl_mean", "cl_max"] = Field(
        "cl_min", description="value told for a batch's pending points while the rest of the batch is chosen")
    failure_penalty: float = Field(0.0, ge=-OBJECTIVE_SPAN, le=OBJECTIVE_SPAN,
                                   description="objective told to the optimiser for a failed evaluation (its units)")

    @field_validator("gp_noise")
    @classmethod
    def _noise_in_range(cls, noise: float | str) -> float | str:
        if noise != "gaussian" and not 1e-12 <= noise <= 1.0:
            raise ValueError(f"gp_noise={noise:g} is out of range: allowed 1e-12 to 1, or 'gaussian'")
        return noise

    @model_validator(mode="after")
    def _initial_within_budget(self) -> "Optimiser":
        if self.n_initial_points > self.n_calls:
            raise ValueError(f"n_initial_points ({self.n_initial_points}) must not exceed n_calls ({self.n_calls})")
        if self.batch_size > self.n_calls:  # it had run one batch of n_calls, logged as batch_size
            raise ValueError(f"batch_size ({self.batch_size}) must not exceed n_calls ({self.n_calls})")
        if self.anchor_points > self.batch_size:  # each batch's first point keeps random weights whatever this says
            raise ValueError(f"anchor_points ({self.anchor_points}) must not exceed batch_size ({self.batch_size}): "
                             f"the last points of a batch, never its first")
        return self


class Tracking(Strict):
    experiment_name: ExperimentName = "snhc-optimisation"
    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_location: str | None = Field(None, description="artifact root of a new experiment (default mlruns/)")
    log_evaluation_runs: bool = Field(True, description="one child run per evaluated recipe")
    log_evaluation_intervals: bool = Field(
        True, description="each child run's metrics with their 90 % interval (one parameter ensemble per campaign, "
                          "one model evaluation per member and batch)")

    @field_validator("tracking_uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        try:
            check_tracking_scheme(uri, "")
        except InputError as error:
            raise ValueError(str(error)) from None
        return keep_secret(uri)  # the real URI stays in memory for connecting; what is written is redacted

    @field_validator("artifact_location")
    @classmethod
    def _known_artifact_scheme(cls, location: str | None) -> str | None:
        try:
            check_artifact_location(location, "")
        except InputError as error:
            raise ValueError(str(error)) from None
        return keep_secret(location)


class Runner(Strict):
    """Where candidate evaluations run: Prefect's thread runner, or a Dask cluster (local or an existing one)."""

    kind: Literal["thread", "dask"] = "thread"
    address: str | None = Field(None, description="dask: address of an existing scheduler (tcp://host:8786); "
                                                  "none starts a local cluster")
    n_workers: int = Field(2, ge=1, le=256, description="dask: workers of a local cluster")
    chunks_per_batch: int = Field(1, ge=1, le=256, description="a batch is split into this many tasks")

    @model_validator(mode="after")
    def _address_is_dask(self) -> "Runner":
        if self.address and self.kind != "dask":
            raise ValueError("address is only used with kind: dask")
        return self


class PhysicsCheck(Strict):
    """After the optimisation, re-evaluate the best recipes with the PyBaMM model and re-rank them."""

    top_k: int = Field(5, ge=0, le=50, description="how many of the best recipes to re-evaluate (0: no check)")
    numerical_noise_mAh_per_g: float = Field(
        0.1, ge=0.0, le=100.0,
        description="PyBaMM objective differences up to this are solver noise, not physics; PyBaMM replaces the "
                    "numpy model's choice only when it scores a candidate better by more than this plus the model's "
                    "90 % uncertainty on the difference (flows/fidelity.py:rank)")
    design_points: int = Field(
        64, ge=4, le=4096, description="snhc calibrate --validate: recipes of the space-filling (Sobol) design over "
                                       "the search space on which the two fidelities are compared")
    design_currents_A_per_g: list[Annotated[float, Field(gt=0.0, le=100.0, allow_inf_nan=False)]] = Field(
        [1.7, 4.2], min_length=1, max_length=8,
        description="currents (A/g) at which the design compares the fidelities' fresh capacity (measured: the "
                    "study's long-cycling current and its highest rate-test current)")


ObjectiveSpec = Annotated[Union[tuple(OBJECTIVE_KINDS.values())], Field(discriminator="kind")]


class RecommendationSettings(Strict):
    """How a campaign picks its recommendation.

    Single objective: among evaluated recipes within ``tolerance_pct`` of the best objective, the cheapest
    (shortest milling time, then lowest milling energy). Several objectives: on the Pareto front of the evaluated
    recipes that meet ``limits``, the knee (``rule: knee``: the smallest sum of the objectives normalised to 0..1
    over the front, i.e. the point farthest below the plane through the front's extremes) or the smallest
    weighted sum of the normalised objectives (``rule: weights``).
    """

    rule: Literal["knee", "weights"] = "knee"
    weights: dict[str, float] = Field(default_factory=dict, description="objective name -> weight (rule: weights)")
    limits: dict[str, float] = Field(default_factory=dict,
                                     description="objective name -> worst acceptable value (a floor for a maximised "
                                                 "objective, a ceiling for a minimised one)")
    tolerance_pct: float = Field(0.5, ge=0.0, le=50.0, description="single objective: recipes this close to the best "
                                                                   "count as equivalent (%)")

    @field_validator("weights")
    @classmethod
    def _weights_are_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        for name, weight in weights.items():
            if not 0.0 <= weight <= 1.0e6:
                raise ValueError(f"weights.{name}={weight:g} is out of range: allowed 0 to 1e+06")
        if weights and not any(weights.values()):
            raise ValueError("weights: at least one weight must be above 0")
        return weights


# The run description is MLflow's note, which MLflow cuts at 8 000 characters with the recommendation table after it,
# and the 'description' param, cut at 6 000: a longer text would push the recommendation out of the run page.
DESCRIPTION_MAX_CHARS = 2000
Description = Annotated[str, Field(max_length=DESCRIPTION_MAX_CHARS), AfterValidator(printed_text)]
# No coin cell reproduces its capacity better than a few tenths of a %; below 0.1 % a lab row's weight makes the lab
# fit's covariance singular (1e-6 %: a traceback in snhc suggest).
LAB_UNCERTAINTY_MIN_PCT = 0.1
# The assumed parameters a lab's results teach unless a config lists its own (configs/default.yaml lists the same,
# with why): a config that leaves the key out, such as configs/pareto.yaml, learns from a lab's rows as the default
# campaign does, not nothing; ``lab_parameters: []`` keeps the project's model.
# What a lab sets (assumed; a user's trial had been handed 26.66 h, 524.4 rpm and a BPR of 5.811): powders and balls
# weighed to a thousandth of the batch, the mill's timer in 6-minute steps, its speed dial in 5 rpm, the pause cycle
# in hundredths. A field not listed is handed over to 4 significant digits.
DEFAULT_LAB_STEPS = {"sn_mass_fraction": 0.001, "milling_time_h": 0.1, "milling_speed_rpm": 5.0,
                     "ball_to_powder_ratio": 0.1, "pause_duty_cycle": 0.01}
DEFAULT_LAB_PARAMETERS = {
    # the mill: impacts, cold welding and the vial's heat
    "mill": ["sn_size_dose_constant", "hc_size_dose_constant", "hc_fracture_threshold_energy_relative",
             "hc_amorphisation_threshold_energy_relative", "impact_threshold_width_relative",
             "sn_welding_at_reference", "sn_welding_saturation", "sn_welding_onset_exponent",
             "sn_welding_activation_energy_kJ_per_mol", "vial_temperature_rise_at_reference_C",
             "vial_temperature_power_exponent", "vial_thermal_time_constant_h", "welding_contact_loss",
             "wear_debris_at_reference", "carbon_process_control_strength", "interface_coverage_constant"],
    # the atmosphere: residual oxygen
    "atmosphere": ["oxide_at_reference_argon", "oxide_growth_exponent", "oxidation_air_to_argon_ratio"],
    # the powders: the HC batch and the Sn
    "powders": ["hc_amorphisation_rate", "hc_plateau_fraction", "hc_limit_size_um", "sn_limit_size_nm",
                "hc_fade_per_sqrt_cycle", "strain_exponent"],
    # the cells: loading, electrolyte, counter electrode and binder
    "cells": ["areal_loading_mg_per_cm2", "limiting_current_mA_per_cm2", "counter_exchange_current_mA_per_cm2",
              "critical_strain", "catastrophic_life_cycles"],
}


# A group of lab parameters is named like a Python identifier: the name is an MLflow param key
# (lab_parameters.<group>), which takes no brackets or commas. "nothing" names the hypothesis that no group differs.
LAB_GROUP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
RESERVED_LAB_GROUP_NAMES = ("nothing",)


def _lab_parameters_shape(stated: Any) -> Any:
    """A list of parameter names, or groups of them: anything else in one line (pydantic's union error named both
    types' internals), before the names are checked. Part of the field's type, so overrides (a Prefect run form, a
    what-if scenario) are checked by it too."""
    def names(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(name, str) for name in value)

    if names(stated):
        return stated
    if isinstance(stated, dict) and all(names(v) for v in stated.values()):
        for group in stated:
            if not isinstance(group, str) or not LAB_GROUP_NAME.fullmatch(group) or group in RESERVED_LAB_GROUP_NAMES:
                raise ValueError(f"group {str(group)[:40]!r}: a name of letters, digits and underscores (1-40, a "
                                 f"letter first), not {', '.join(RESERVED_LAB_GROUP_NAMES)}")
        return stated
    raise ValueError("expected a list of parameter names, or groups of them: {group: [name, ...], ...}")


def flattened(stated: list[str] | dict[str, list[str]]) -> list[str]:
    """The names of a lab_parameters statement, its groups (if any) flattened in their order."""
    return [name for group in stated.values() for name in group] if isinstance(stated, dict) else list(stated)


LabParameterNames = Annotated[list[str] | dict[str, list[str]], BeforeValidator(_lab_parameters_shape)]


class CampaignConfig(Strict):
    name: PrintedName = "default"
    description: Description = Field("", description="what the campaign asks, in words: the MLflow run's "
                                                     "description")
    search_space: SearchSpace = SearchSpace()
    objective: CapacityObjective = CapacityObjective()
    objectives: list[ObjectiveSpec] | None = Field(None, description="objectives to pick and combine (kinds: "
                                                   + ", ".join(OBJECTIVE_KINDS) + "); replaces 'objective'")
    recommendation: RecommendationSettings = RecommendationSettings()
    model_parameters: dict[str, Any] = Field(default_factory=dict,
                                             description="overrides of configs/model_parameters.yaml")
    recalibrate: bool = Field(True, description="refit the fitted parameters under the overridden assumptions "
                                                "(True), or keep the study's calibration and change only the "
                                                "overridden values, i.e. a different material (False)")
    recalibrate_on_observations: bool = Field(
        False, description="with lab observations, refit the fitted parameters on the study's data plus the lab rows "
                           "(flows/recalibration.py) before optimising")
    lab_uncertainty_pct: float = Field(
        5.0, ge=LAB_UNCERTAINTY_MIN_PCT, le=100.0, allow_inf_nan=False,
        description="assumed: uncertainty of a lab row's measured metrics in recalibration, % of the value "
                    "(coin cells of one batch scatter by a few %)")
    lab_batch_resolution: float = Field(
        0.02, ge=0.0, le=0.2, allow_inf_nan=False,
        description="assumed: share of each searched range (on its log scale where searched so) within which two "
                    "recipes are one batch to a lab (a mill's timer, dial and balance set a recipe to a few %); "
                    "snhc suggest proposes nothing that close to a made or pending recipe (0: only exact repeats)")
    lab_steps: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_LAB_STEPS),
        description="assumed: the step a lab sets each real recipe field in (a balance's, the mill timer's, its "
                    "speed dial's); snhc suggest hands its recipes over on these steps, and predicts them so")
    lab_parameters: LabParameterNames = Field(
        default_factory=lambda: {group: list(names) for group, names in DEFAULT_LAB_PARAMETERS.items()},
        description="assumed parameters a lab's own mill, powders, glove box or cells may set differently, as a list "
                    "or in groups ({group: [names]}, one hypothesis each of what differs in the lab); the "
                    "physics-informed GP infers them from the lab's results within their ranges, freeing the group "
                    "(or every group) the results need most (flows/physics_gp.py)")
    fidelity: Literal["model", "physics"] = Field(
        "model", description="what the optimiser's evaluations are: the numpy model (0.5 ms a recipe), or the PyBaMM "
                             "model (0.04 s a recipe once built), searched by the physics-informed GP with the numpy "
                             "model as its prior mean (flows/fidelity.py)")
    optimiser: Optimiser = Optimiser()
    tracking: Tracking = Tracking()
    runner: Runner = Runner()
    physics_check: PhysicsCheck = PhysicsCheck()

    @model_serializer(mode="wrap")
    def _as_written(self, handler):
        """Dumped as a config file would say it: a campaign with 'objectives' has no 'objective' and no
        single-objective ``tolerance_pct`` (the validator refuses both there), so a saved config (resume, the
        config.yaml artifact, a what-if's base) loads again."""
        document = handler(self)
        if self.objectives is not None and isinstance(document, dict):
            document.pop("objective", None)
            if self.multi_objective and isinstance(document.get("recommendation"), dict):
                document["recommendation"].pop("tolerance_pct", None)
        return document

    @model_validator(mode="before")
    @classmethod
    def _no_physics_check_where_it_does_not_run(cls, data: Any) -> Any:
        """``physics_check.top_k`` is 0 where the check does not run (it re-ranks a single objective of the numpy
        model): in a campaign with fidelity: physics, whose every evaluation is PyBaMM's already (so ``--fidelity
        physics`` runs on a config written for the numpy model), and in one of two or more 'objectives' that leaves it
        out (one that sets it above 0 is refused: :meth:`_objectives_and_recommendation_agree`)."""
        if not isinstance(data, dict):
            return data
        check = data.get("physics_check", {})
        if not isinstance(check, dict):
            return data
        several = isinstance(data.get("objectives"), list) and len(data["objectives"]) > 1
        if data.get("fidelity") == "physics" or (several and "top_k" not in check):
            return {**data, "physics_check": {**check, "top_k": 0}}
        return data

    @field_validator("lab_steps")
    @classmethod
    def _steps_of_real_fields(cls, steps: dict[str, float]) -> dict[str, float]:
        """Each step names a real recipe field and lies above 0 and within a tenth of its allowed range."""
        for name, step in steps.items():
            field = FIELDS.get(name)
            if field is None or field.categorical:
                raise ValueError(f"lab_steps.{name}: not a real recipe field; fields are "
                                 + ", ".join(f.name for f in RECIPE_FIELDS if not f.categorical))
            most = (field.high - field.low) / 10.0
            if not (isinstance(step, (int, float)) and math.isfinite(step) and 0.0 < step <= most):
                raise ValueError(f"lab_steps.{name}={step!r} is out of range: allowed above 0 to {most:g}")
        return steps

    @field_validator("model_parameters")
    @classmethod
    def _known_parameters(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        base = ModelParameters.load()
        fitted = [name for name in overrides if name in base and base[name].tag == "fitted"]
        if fitted:
            raise ValueError(f"{fitted[0]} is fitted by the calibration and cannot be overridden")
        try:
            base.with_values(**overrides)
        except ParameterError as error:
            raise ValueError(str(error).removeprefix("model_parameters.")) from None
        return overrides

    @field_validator("lab_parameters")
    @classmethod
    def _inferable_lab_parameters(cls, stated: list[str] | dict[str, list[str]]) -> list[str] | dict[str, list[str]]:
        base = ModelParameters.load()
        if isinstance(stated, dict) and not all(stated.values()):
            raise ValueError("a group lists no parameter")
        names = flattened(stated)
        for name in names:
            if name not in base:
                raise ValueError(f"{name}: unknown parameter (see configs/model_parameters.yaml)")
            entry = base[name]
            if entry.tag != "assumed" or not entry.bounds or not entry.bounds[0] < entry.bounds[1]:
                raise ValueError(f"{name}: a lab parameter must be assumed and have a range (bounds low < high) in "
                                 "configs/model_parameters.yaml")
        if len(set(names)) != len(names):
            raise ValueError("a parameter is listed twice")
        return stated

    @field_validator("objectives", mode="before")
    @classmethod
    def _known_objective_kinds(cls, objectives: Any) -> Any:
        if objectives is None:
            return objectives
        if not isinstance(objectives, list) or not objectives:
            raise ValueError("expected a non-empty list of objectives, each {kind: ..., ...}")
        for i, item in enumerate(objectives):
            kind = item.get("kind") if isinstance(item, dict) else None
            if not isinstance(kind, str) or kind not in OBJECTIVE_KINDS:  # a list or a mapping is no kind either
                raise ValueError(f"objectives[{i}].kind={excerpt(kind)} is unknown: allowed "
                                 f"{', '.join(OBJECTIVE_KINDS)}")
        return objectives

    @model_validator(mode="after")
    def _objectives_and_recommendation_agree(self) -> "CampaignConfig":
        settings = self.recommendation
        if self.fidelity == "physics" and self.objectives is not None:
            raise ValueError(f"fidelity: physics {PHYSICS_SCORES_CAPACITY_ONLY}")
        if self.physics_check.top_k and self.multi_objective:  # it would be skipped without a word (left out, it is 0 here:
            # _no_physics_check_where_it_does_not_run)
            raise ValueError(f"physics_check.top_k={self.physics_check.top_k}: the PyBaMM check re-ranks a "
                             f"single-objective campaign; with several 'objectives' it does not run: set top_k: 0 or "
                             f"leave it out")
        if self.multi_objective and "tolerance_pct" in settings.model_fields_set:
            raise ValueError("recommendation.tolerance_pct: used by a single objective only (a campaign with several "
                             "'objectives' recommends by recommendation.rule); leave it out")
        if self.objectives is None:
            if settings.weights or settings.limits:
                key = "weights" if settings.weights else "limits"
                name = next(iter(getattr(settings, key)))
                raise ValueError(f"recommendation.{key}.{name}: a weight or limit needs a list of 'objectives' "
                                 f"naming it (this campaign has the single 'objective')")
            if settings.rule != "knee":
                raise ValueError("recommendation.rule: weights needs a list of 'objectives'")
            return self
        if "objective" in self.model_fields_set:
            raise ValueError("give 'objective' (the capacity objective) or 'objectives' (a list), not both")
        scoring = ObjectiveSet(self.objectives)  # raises on duplicate names or conflicting conditions
        searched = set(self.search_space.searched())
        for i, objective in enumerate(scoring.objectives):
            if objective.recipe_fields and not searched & set(objective.recipe_fields):
                raise ValueError(f"objectives[{i}] ({objective.name}) is the same for every recipe: "
                                 f"{', '.join(objective.recipe_fields)} all fixed; search one of them or drop it")
        for key in ("weights", "limits"):
            for name in getattr(settings, key):
                if name not in scoring.names:
                    raise ValueError(f"recommendation.{key}.{name}: no objective of that name; objectives are "
                                     f"{', '.join(scoring.names)}")
        for name, limit in settings.limits.items():
            low, high = scoring[name].value_range
            if not low <= limit <= high:
                raise ValueError(f"recommendation.limits.{name}={limit:g} is out of range: allowed {low:g} to {high:g} "
                                 f"{scoring[name].unit}")
            self._check_reachable(name, limit, scoring[name])
        if settings.rule == "weights" and not settings.weights:
            raise ValueError("recommendation.rule: weights needs recommendation.weights (objective name -> weight)")
        if settings.weights and settings.rule != "weights":  # they would be ignored: the knee uses no weights
            raise ValueError(f"recommendation.weights: used only with recommendation.rule: weights (the rule is "
                             f"{settings.rule!r}); set the rule, or leave the weights out")
        return self

    def _check_reachable(self, name: str, limit: float, objective) -> None:
        """A limit no recipe of the search space can meet is refused before the campaign runs (it ran, then said
        the limits were ignored): a milling time below the searched ones, a capacity above what the searched Sn
        fractions store in theory."""
        from surrogate.parameters import ModelParameters

        def dimension_of(field: str) -> tuple[float, float]:
            dimension = getattr(self.search_space, field)
            return (dimension.value, dimension.value) if dimension.fixed else (dimension.low, dimension.high)

        reach = objective.reach(dimension_of, ModelParameters.load().with_values(**self.model_parameters))
        if reach is None:
            return
        least, most = reach
        if objective.direction == MINIMISE and limit < least:
            raise ValueError(f"recommendation.limits.{name}={limit:g} cannot be met: no recipe of the search space "
                             f"has less than {least:g} {objective.unit}")
        if objective.direction == MAXIMISE and limit > most:
            raise ValueError(f"recommendation.limits.{name}={limit:g} cannot be met: no recipe of the search space "
                             f"reaches more than {most:.4g} {objective.unit}")

    def scoring(self):
        """The campaign's objective stage: the objective set when ``objectives`` is given, else the capacity
        objective."""
        return ObjectiveSet(self.objectives) if self.objectives else self.objective

    def capacity_objective(self):
        """The objective that is a capacity at a target current after N cycles: the single ``objective``, or the
        ``objectives`` entry of kind capacity (None when there is none). What a lab's target capacity is read as."""
        if not self.objectives:
            return self.objective
        return next((o for o in self.objectives if o.kind == "capacity"), None)

    @property
    def lab_parameter_names(self) -> list[str]:
        """Every lab parameter, its groups (if any) flattened in their order."""
        return flattened(self.lab_parameters)

    @property
    def multi_objective(self) -> bool:
        return bool(self.objectives) and len(self.objectives) > 1

    def digest(self) -> str:
        """SHA-256 of the validated config: tags the MLflow run so identical campaigns can be found."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def default_config_path() -> Path:
    return config_dir() / "default.yaml"


def read_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """Read a YAML mapping through :func:`flows.inputs.read_yaml_mapping` (size limit, no aliases, no duplicate keys,
    not empty, finite numbers); any problem raises :class:`ConfigError` naming the file and line."""
    try:
        return read_yaml_mapping(path, what, allowed_at)
    except InputError as error:
        raise ConfigError(str(error)) from None


def allowed_at(key: str) -> str:
    """:func:`allowed_range` of a dotted key as a document names it (a scenario's ``overrides.`` prefix dropped), for
    a NaN or infinity found in it; '' where the config gives none. An item of ``objectives`` (``objectives[0].
    current_A_per_g``) is named without its kind, which pydantic's location holds: the range the kinds having
    that field agree on."""
    loc = tuple(int(part) if part.isdigit() else part for part in re.split(r"[.\[\]]+", key) if part)
    loc = loc[1:] if loc[:1] == ("overrides",) else loc
    if not loc:
        return ""
    if len(loc) == 3 and loc[0] == "objectives" and isinstance(loc[1], int):
        ranges = {allowed_range((loc[0], loc[1], kind, loc[2])) for kind in OBJECTIVE_KINDS} - {""}
        return ranges.pop() if len(ranges) == 1 else ""
    return allowed_range(loc)


def deep_merge(base: dict[str, Any], overrides: dict[str, Any], _path: tuple = ()) -> dict[str, Any]:
    """Nested dict update: mappings merge key by key, anything else replaces.

    A search-space dimension is replaced whole: ``{value: 450}`` over ``{low: 150, high: 600}`` fixes the field
    instead of mixing the two. So is ``lab_parameters``: overriding it with one group lists that group alone.
    """
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        # lab_parameters' groups are one statement of what may differ: a group not restated is not kept
        whole = _path == ("search_space",) or (not _path and key == "lab_parameters")
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and not whole:
            merged[key] = deep_merge(merged[key], value, _path + (key,))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def allowed_range(loc: tuple) -> str:
    """'allowed LOW to HIGH' for a numeric config field, or an item of a list of numbers, from its pydantic
    constraints ('' if none)."""
    item = len(loc) > 1 and isinstance(loc[-1], int) and isinstance(loc[-2], str)
    if item:  # design_currents_A_per_g.0: the list's field, then its items' constraints
        loc = tuple(loc[:-1])
    model: Any = CampaignConfig
    for previous, part in zip((None,) + tuple(loc), loc[:-1]):
        if isinstance(part, int):
            continue
        if isinstance(previous, int) and part in OBJECTIVE_KINDS:  # the tag of a list item: its objective kind
            model = OBJECTIVE_KINDS[part]
        elif hasattr(model, "model_fields") and part in model.model_fields:
            model = model.model_fields[part].annotation
        else:
            model = None
    field = model.model_fields.get(loc[-1]) if hasattr(model, "model_fields") else None
    if field is None:
        return ""
    metadata = list(field.metadata)
    if item:  # list[Annotated[float, Field(gt=..)]]: the constraints sit on the item's annotation
        (item_type,) = typing.get_args(field.annotation)[:1] or (None,)
        metadata = [c for extra in typing.get_args(item_type)[1:] for c in getattr(extra, "metadata", [extra])]

    def bound(inclusive: str, exclusive: str) -> str | None:
        for m in metadata:
            for name in (inclusive, exclusive):
                value = getattr(m, name, None)
                if value is not None:  # integers in full (a seed's 4294967295), floats to 6 digits
                    shown = str(value) if isinstance(value, int) else f"{value:g}"
                    return shown if name == inclusive else f"{shown} (exclusive)"
        return None
    low, high = bound("ge", "gt"), bound("le", "lt")
    if low is None and high is None:
        return ""
    return f"allowed {'-inf' if low is None else low} to {'inf' if high is None else high}"


def differing_keys(a: dict[str, Any], b: dict[str, Any], ignore: tuple[str, ...] = (), prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested documents (``ignore``: dotted keys or sections skipped).

    Examples
    --------
    >>> differing_keys({"x": 1, "o": {"n": 2, "m": 3}}, {"x": 1, "o": {"n": 4, "m": 5}}, ignore=("o.m",))
    ['o.n']
    """
    out = []
    for key in sorted(set(a) | set(b)):
        dotted = f"{prefix}{key}"
        if dotted in ignore:
            continue
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            out += differing_keys(left, right, ignore, f"{dotted}.")
        elif left != right:
            out.append(dotted)
    return out


def saved_config_document(document: Any) -> Any:
    """A campaign config as an earlier version of snhc saved it (state files, the config tag), in today's shape.

    Multi-objective campaigns saved before objectives were dumped as written carry the default ``objective`` beside
    ``objectives`` and each objective's name as ``name_``; both are refused on reading, so those campaigns could not
    be resumed. Only saved documents go through here: a user's file with both keys is still refused."""
    if not isinstance(document, dict) or not isinstance(document.get("objectives"), list):
        return document
    document = {**{key: value for key, value in document.items() if key != "objective"},
                "objectives": [{("name" if key == "name_" else key): value for key, value in item.items()}
                               if isinstance(item, dict) else item for item in document["objectives"]]}
    if len(document["objectives"]) > 1:  # saved before the settings a front never used were refused: the
        # single-objective tolerance and a PyBaMM check that did not run
        if isinstance(document.get("recommendation"), dict):
            document["recommendation"] = {k: v for k, v in document["recommendation"].items() if k != "tolerance_pct"}
        if isinstance(document.get("physics_check"), dict):
            document["physics_check"] = {**document["physics_check"], "top_k": 0}
    return document


def _section_fields(section: tuple[str, ...]) -> list[str]:
    """The keys of a config section (``("optimiser",)``), [] for anything that is not one."""
    model: Any = CampaignConfig
    for part in section:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return []
        model = fields[part].annotation
    return list(getattr(model, "model_fields", {}))


def validate_config(document: dict[str, Any], source: str = "config",
                    origins: dict[tuple[str, ...], str] | None = None) -> CampaignConfig:
    """Validate a config mapping; every problem is reported as ``source: key.path: message``, or, for a key that
    ``origins`` says came from elsewhere (an environment variable, a command-line option), with that as its
    source: a user is told what to change."""
    origins = origins or {}

    def origin(loc, message: str = "") -> str:
        exact = next((label for key, label in origins.items() if tuple(map(str, loc[:len(key)])) == key), None)
        if exact is not None:
            return exact
        # a section's own check names its keys in the message ("batch_size (9) must not exceed n_calls (8)"): each
        # key named there is the user's to change where it was set, an option or the file
        section = tuple(map(str, loc))
        fields = _section_fields(section)
        named = [name for name in fields if re.search(rf"\b{re.escape(name)}\b", message)]
        labels = list(dict.fromkeys(origins.get(section + (name,), source) for name in named))
        return " and ".join(labels) if labels else source
    try:
        check_finite(document, source, allowed_at)
        return CampaignConfig.model_validate(document)
    except InputError as error:
        raise ConfigError(str(error)) from None
    except ValidationError as error:
        problems, sources = [], []
        for item in error.errors():
            sources.append(origin(item["loc"], item["msg"]))
            loc = item["loc"]
            path = ".".join(str(part) for i, part in enumerate(loc)  # without an objective list item's tag
                            if not (i and isinstance(loc[i - 1], int) and part in OBJECTIVE_KINDS))
            path = path if len(path) <= 2 * EXCERPT_CHARS else path[: 2 * EXCERPT_CHARS - 3] + "..."
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown key"
            elif item["type"] in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
                message = f"{excerpt(item['input'])} is out of range: {allowed_range(item['loc'])}"
            elif "input" in item and item["type"] not in ("value_error", "missing"):
                message = f"{message} (got {excerpt(item['input'])})"
                if allowed := allowed_range(item["loc"]):  # a fractional cycle, a word for a number: its range too
                    message = f"{message}: {allowed}"
            field = re.match(r"^([A-Za-z_][\w.]*): (.*)$", message, re.DOTALL) if path else None
            if field:  # a model check's "key: problem": one dotted path, as a field's own check reads
                path, message = f"{path}.{field.group(1)}", field.group(2)
            problems.append(f"{path}: {message}" if path else message)
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        if all(s == source for s in sources):
            raise ConfigError(f"{source}: " + "; ".join(problems[:3]) + more) from None
        raise ConfigError("; ".join(f"{s}: {p}" for s, p in zip(sources[:3], problems[:3])) + more) from None


ENVIRONMENT_KEYS = {  # environment variable -> config key it overrides
    "MLFLOW_TRACKING_URI": ("tracking", "tracking_uri"),
    "SNHC_ARTIFACT_LOCATION": ("tracking", "artifact_location"),
    "SNHC_EXPERIMENT_NAME": ("tracking", "experiment_name"),
    "SNHC_DASK_ADDRESS": ("runner", "address"),
}


def environment_overrides() -> dict[str, Any]:
    """Config keys set by the environment: a team points every campaign at its servers without editing files."""
    overrides: dict[str, Any] = {}
    for variable, (section, key) in ENVIRONMENT_KEYS.items():
        if os.environ.get(variable):
            overrides.setdefault(section, {})[key] = os.environ[variable]
    if "address" in overrides.get("runner", {}):
        overrides["runner"]["kind"] = "dask"
    return overrides


def config_document(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A campaign config's document before validation: the file (default ``configs/default.yaml``), then the
    environment (:data:`ENVIRONMENT_KEYS`), then ``overrides`` (what-if scenarios merge theirs onto it)."""
    return deep_merge(deep_merge(read_yaml(Path(path) if path else default_config_path()), environment_overrides()),
                      overrides or {})


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                origins: dict[tuple[str, ...], str] | None = None) -> CampaignConfig:
    """Read and validate a campaign config (default ``configs/default.yaml``).

    Precedence, lowest first: the file, the environment (:data:`ENVIRONMENT_KEYS`), then ``overrides``. A problem
    in a key the environment set names its variable; one in ``overrides`` names ``origins[key path]`` (e.g. the
    command-line option) or "overrides".
    """
    path = Path(path) if path else default_config_path()
    document = config_document(path, overrides)
    named = {key: f"${variable}" for variable, key in ENVIRONMENT_KEYS.items() if os.environ.get(variable)}
    named |= {key: (origins or {}).get(key, "overrides") for key in _key_paths(overrides or {})}
    return validate_config(document, str(path), named)


def _key_paths(document: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The leaf key paths of a nested mapping: {"a": {"b": 1}} -> [("a", "b")]."""
    paths: list[tuple[str, ...]] = []
    for key, value in document.items():
        paths += _key_paths(value, (*prefix, str(key))) if isinstance(value, dict) and value else [(*prefix, str(key))]
    return paths


def partial_model(model: type[BaseModel], name: str | None = None) -> type[BaseModel]:
    """``model`` with every field optional (default: not given), nested models made partial too, the same types,
    ranges and descriptions, and no unknown keys: the typed shape of an overrides document.

    Only the fields' own constraints are kept; checks across fields (validators) stay with the full config, which an
    overrides document is merged into (:func:`deep_merge`, :func:`validate_config`).
    """
    from typing import Optional

    fields = {}
    for key, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = partial_model(annotation)
        elif info.metadata:  # ranges (ge, le, min_length, ...) apply to the value, not to "not given"
            annotation = Annotated[(annotation, *info.metadata)]
        fields[key] = (Optional[annotation], Field(None, alias=info.alias, description=info.description))
    return create_model(name or f"{model.__name__}Overrides",
                        __config__=ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True),
                        **fields)


# Typed overrides of a campaign: what a Prefect run form (and a flow's ``overrides`` parameter) accepts.
CampaignOverrides = partial_model(CampaignConfig, "CampaignOverrides")


def overrides_document(overrides: BaseModel | dict[str, Any] | None) -> dict[str, Any]:
    """The keys an overrides parameter sets, as the nested dict :func:`deep_merge` takes (a dict is checked as
    :data:`CampaignOverrides` first: an unknown key or a value out of its range raises a ConfigError naming it)."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        try:
            overrides = CampaignOverrides.model_validate(overrides)
        except ValidationError as error:
            first = error.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            message = first["msg"].removeprefix("Value error, ")  # a validator's own words, as the configs show them
            raise ConfigError(f"overrides: {key}: {message} (got {excerpt(first.get('input'))})") from None
    return overrides.model_dump(exclude_unset=True, by_alias=True)


def parse_setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` from a command line (the benchmarks' ``--set``) as (key, value), the value typed as true/false,
    int, float, a list of them (``[0.005, 0.2]``) or str; the config's validation then checks it like any other
    value.

    Examples
    --------
    >>> parse_setting("local_candidates_scale=[0.005, 0.2]")
    ('local_candidates_scale', [0.005, 0.2])
    >>> parse_setting("n_calls=40"), parse_setting("acquisition=EI"), parse_setting("composite=false")
    (('n_calls', 40), ('acquisition', 'EI'), ('composite', False))
    """
    key, _, value = text.partition("=")
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):  # a list: [a, b]
        return key, [_typed(item.strip()) for item in text[1:-1].split(",") if item.strip()]
    return key, _typed(value)


def _typed(value: str) -> bool | int | float | str:
    """A command-line value as true/false (YAML's spelling: ``composite=true`` had been the text 'true', which the
    strict config refuses), int, float or (none of them) the text itself."""
    if value.strip().lower() in ("true", "false"):  # True, TRUE too, as a config file's YAML reads them
        return value.strip().lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
