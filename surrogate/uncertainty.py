"""Uncertainty on every prediction: a calibrated parameter ensemble, widened by the assumed parameters' ranges.

Why: a lab acts on a predicted number, so it must know how far to trust it. Four sources are combined
(``configs/uncertainty.yaml`` says which and how much):

* **parametric** - the fitted parameters are drawn around the weighted least-squares fit's Laplace approximation,
  precision J^T J / s^2 (s^2 = the reduced chi-square when above 1) plus a weak prior spanning each parameter's
  allowed range, so directions the data cannot see stay inside physical bounds instead of blowing up: candidates
  from a Student-t of that shape, importance-weighted by the real fit (the posterior), then resampled;
* **assumed** - every assumed parameter listed as uncertain is drawn from its range read as +-2 sd (on a log scale
  where the range spans decades). Where it moves the data's residuals, the fitted parameters follow it as a refit
  would (linearised: d fitted / d assumed = -H^-1 J^T d residual / d assumed), so each member still fits the data;
  where it moves none (a milling constant that acts only away from the study's milling condition, a temperature
  law at the study's one temperature), it is drawn apart and widens only the predictions it acts on;
* **measurement** - each member's value is scattered by the data's own stated sigma for that kind of quantity, so
  the interval is where a new measurement should fall;
* **model form** - a quantity predicted away from the materials it was measured on is scattered by the error of the
  model's form that the leave-out validation measured, in proportion to the distance.

The interval is the ensemble's central 90 %. A prediction beyond the calibrated domain (a current above the highest
measured one, a cycle past the last, a temperature other than the measured ones) is flagged as extrapolated, and a
recipe beyond the calibration's materials (milled otherwise than the study's one condition, or a Sn fraction outside
the milled ones) gets its reasons in ``beyond_calibrated_recipes``: its numbers rest on the milling model's assumed
constants, and the ranges of those the study's data cannot see are inside the intervals.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from surrogate.calibration import (Calibration, LeastSquaresProblem, ParameterTransform, load_observations,
                                  model_source_digest)
from surrogate.model import AT_CURRENT, Prediction, PredictionRequest, predict
from surrogate.parameters import ModelParameters, ParameterError
from surrogate.paths import cache_dir, config_dir, read_cached, write_cached
from surrogate.recipe import FIELDS, Recipes, acting_fields, load_materials
from surrogate.yaml_safety import YamlInputError, excerpt, read_yaml_file

# Which measurement sigma applies to a metric of Prediction.record (its top-level key).
FAMILY_OF_METRIC = {
    "theoretical_capacity_mAh_per_g": None,  # arithmetic on composition: no measurement scatter
    "reversible_capacity_mAh_per_g": "capacity",
    "initial_coulombic_efficiency_pct": "efficiency",
    "capacity_at_current_mAh_per_g": "capacity",
    "capacity_at_cycle_mAh_per_g": "cycling",
    "particle_expansion_pct": "particle_expansion",
    "electrode_expansion_after_1000_cycles_pct": "electrode_expansion",
    "activation_energy_kJ_per_mol": "activation_energy",
}
# A family whose model is a power law of another's output carries that one's model-form error to the power: the
# electrode thickens as (particle swelling)^electrode_expansion_exponent (surrogate/expansion.py), so where the
# particles' swelling is uncertain by a factor F (milled in air, another Sn fraction) the thickening is by F^exponent.
# Without it an air-milled 2:1 had particle expansion 260 % [86-550] beside an electrode expansion of 15 % [11.6-18.2],
# the measured composite's band, though nano-Sn, swelling 685 %, thickens 280 %.
# A capacity after cycles is a capacity: where the Sn's utilisation at another composition or milling is off by a
# factor, so is what is left of it after cycling (exponent None: the factor itself). Drawn apart, a member's capacity
# at 1.7 A/g and its capacity at cycle 1 at 1.7 A/g had erred independently.
FORM_ERROR_FOLLOWS = {"electrode_expansion": ("particle_expansion", "electrode_expansion_exponent"),
                      "cycling": ("capacity", None)}
# Families whose form error grows away from the measured temperature (model_form_distance.temperature_C): capacities
# and the first cycle's loss rest on temperature laws no data row checks (kinetics, transport, SEI). The swelling at
# full sodiation is a matter of phases and agglomerates, not of rate: its model and its error do not move with it.
TEMPERATURE_FORM_FAMILIES = ("capacity", "efficiency")
REVERSIBLE, FADE = "reversible_capacity_mAh_per_g", "capacity_at_cycle_mAh_per_g"  # calibration quantities
CAPACITY_FAMILIES = ("capacity", "cycling")  # families whose quantities are capacities (mAh/g)
INITIAL_EFFICIENCY, CURRENT = "initial_coulombic_efficiency_pct", "capacity_at_current_mAh_per_g"
_QUANTITY_OF_FLAT_NAME = (  # flat metric names (Prediction.scalar_metrics, objective inputs) -> the quantity they
    # are a value of; the first pattern that matches (a capacity after cycles at a current is a cycling one)
    (re.compile(r"^(capacity_at_cycle_|retention|objective_capacity|capacity_at_.+_after_[0-9]+_cycles)"), FADE),
    (re.compile(r"^capacity_at_"), CURRENT), (re.compile(r"^reversible_capacity"), REVERSIBLE),
    (re.compile(r"^initial_coulombic_efficiency"), INITIAL_EFFICIENCY),
    (re.compile(r"^activation_energy"), "activation_energy_kJ_per_mol"),
    (re.compile(r"^particle_expansion"), "particle_expansion_pct"),
    (re.compile(r"^electrode_expansion"), "electrode_expansion_after_1000_cycles_pct"),
)


def measured_quantity(name: str) -> str | None:
    """The quantity (a key of ``Prediction.record``, as the calibration's data name it) that a metric is a value
    of, by its record key or its flat name; None for what nobody measures (a microstructure size, a score).

    Examples
    --------
    >>> measured_quantity("capacity_at_1.7_A_per_g_after_1000_cycles_mAh_per_g")
    'capacity_at_cycle_mAh_per_g'
    >>> measured_quantity("capacity_at_4.2_A_per_g_mAh_per_g"), measured_quantity("sn_size_nm")
    ('capacity_at_current_mAh_per_g', None)
    """
    if name in FAMILY_OF_METRIC:
        return name
    return next((quantity for pattern, quantity in _QUANTITY_OF_FLAT_NAME if pattern.match(name)), None)


_MEASURED_CYCLE = re.compile(r"(?:^capacity_at_cycle_|_after_)([0-9]+)(?:_cycles)?_mAh_per_g$")


def measured_cycle(name: str, target_cycle: int | None = None) -> int | None:
    """The cycle a cycling capacity's metric name was measured after (``capacity_at_cycle_400_mAh_per_g``,
    ``capacity_at_1.7_A_per_g_after_1000_cycles_mAh_per_g``); ``target_cycle`` for one that names none (the
    objective's capacity, measured at the objective's cycle); None if unknown or not a cycling capacity.

    Examples
    --------
    >>> measured_cycle("capacity_at_cycle_400_mAh_per_g"), measured_cycle("objective_capacity_mAh_per_g", 1000)
    (400, 1000)
    """
    if measured_quantity(name) != FADE:
        return None
    match = _MEASURED_CYCLE.search(name)
    return int(match.group(1)) if match else target_cycle


def within(value: float, low: float, high: float) -> bool:
    """``low <= value <= high`` up to a relative 1e-9: a current read back from a metric's name (4.2 from
    ``capacity_at_4.2_A_per_g``) is the measured one, whatever its last binary digit."""
    return low * (1 - 1e-9) <= value <= high * (1 + 1e-9)


class MeasuredNear(frozenset):
    """The quantities lab rows near a recipe measured (a frozenset of ``Prediction.record`` keys), the span of
    cycles their cycling capacities were measured after (``cycles``: (first, last); None when some row's cycle is
    unknown, which then vouches for no cycle), and the span of currents of their rate-test capacities
    (``currents``, A/g: (lowest, highest); None when they measured none). A lab that measured cycles 400 and 1000
    has not measured cycle 12 000, nor the fresh capacity; one that measured 6 and 10 A/g has measured up to 10."""

    cycles: tuple[int, int] | None
    currents: tuple[float, float] | None

    def __new__(cls, quantities=(), cycles: tuple[int, int] | None = None,
                currents: tuple[float, float] | None = None):
        made = super().__new__(cls, quantities)
        made.cycles = cycles
        made.currents = currents
        return made

    def __reduce__(self):  # pickled (a Dask worker's copy) with its spans
        return (MeasuredNear, (frozenset(self), self.cycles, self.currents))

    def covers(self, quantity: str, cycle: int | None = None, current: float | None = None) -> bool:
        """Whether the rows measured ``quantity`` there (a cycling capacity: after a cycle within their span; a
        rate-test capacity: at a current within theirs)."""
        if quantity not in self:
            return False
        if quantity == CURRENT and current is not None:
            return self.currents is not None and within(current, *self.currents)
        if quantity != FADE or cycle is None:
            return True
        return self.cycles is not None and self.cycles[0] <= cycle <= self.cycles[1]  # an unknown span vouches for none

    @classmethod
    def joined(cls, parts) -> "MeasuredNear":
        """The quantities of several rows, their cycles' span joined (unknown if any row's is unknown)."""
        parts = list(parts)
        cycled = [part for part in parts if FADE in part]
        spans = [part.cycles for part in cycled]
        cycles = None if not spans or any(span is None for span in spans) else (
            min(span[0] for span in spans), max(span[1] for span in spans))
        rated = [part.currents for part in parts if part.currents is not None]
        currents = (min(span[0] for span in rated), max(span[1] for span in rated)) if rated else None
        return cls(frozenset().union(*parts), cycles, currents)


def measurement_family(name: str) -> str | None:
    """Which measurement sigma of configs/uncertainty.yaml applies to a metric name (None: no measurement)."""
    quantity = measured_quantity(name)
    return None if quantity is None else FAMILY_OF_METRIC[quantity]


def scattered_by(family: str | None, values, factor):
    """Values of a family scattered by a relative error factor (1 + sd x normal draw): a measured quantity moves in
    proportion, but a first-cycle efficiency's error is its irreversible loss's (the SEI and trapping losses,
    100 - ICE, are what the model predicts and a cell varies in): 100 ICE / (ICE + factor (100 - ICE)), so it stays
    within 0-100 % and an 83 % cell does not scatter to 97 %.

    Examples
    --------
    >>> float(scattered_by("efficiency", 80.0, 1.5)), float(scattered_by("capacity", 80.0, 1.5))
    (72.72727272727273, 120.0)
    """
    values = np.asarray(values, dtype=float)
    if family == "efficiency":
        return 100.0 * values / (values + np.maximum(factor, 0.0) * (100.0 - values))
    return values * factor


@dataclass(frozen=True)
class ModelFormDistance:
    """How far apart two recipes are for the model's form error: across the study's materials, a third apart in Sn
    fraction, the leave-material-out errors behind ``model_form_sigma_pct`` were measured, so that far counts 1.

    ``sn_mass_fraction``: the Sn-fraction difference that counts 1; ``milling_factor``: the factor by which a
    milling setting (time, speed, BPR, duty cycle) must change to count 1 (distances add in quadrature, each setting
    on a log scale); ``unmilled_time_h``: a milling time short enough to leave a powder as it was, so that between an
    unmilled material and a recipe milled for t the time counts as the factor (t + t0) / t0, and the distance grows
    smoothly from 0 (a powder milled for seconds is the unmilled one; it had jumped to the full form error) to many
    units within half an hour. Another milling atmosphere is another material. ``temperature_C``: the difference
    from a temperature the quantity was measured at that counts 1 (:meth:`CalibratedDomain.model_form_weight` adds
    it in quadrature): the study measured at room temperature only, so a prediction at 45 C is a form the data never
    checked, as another material is.
    """

    sn_mass_fraction: float
    milling_factor: float
    unmilled_time_h: float
    temperature_C: float

    def between(self, recipe: dict[str, Any], material: dict[str, Any]) -> float:
        """Distance between a recipe and a material's recipe (inf: not comparable).

        Examples
        --------
        >>> scale = ModelFormDistance(1 / 3, 2.0, 0.05, 30.0)
        >>> milled = {"sn_mass_fraction": 2 / 3, "milling_time_h": 10.0, "milling_speed_rpm": 400.0}
        >>> round(scale.between(milled | {"milling_time_h": 20.0}, milled), 6)
        1.0
        >>> round(scale.between(milled | {"sn_mass_fraction": 0.5}, milled), 6)
        0.5
        >>> unmilled = milled | {"milling_time_h": 0.0}
        >>> [round(scale.between(milled | {"milling_time_h": t}, unmilled), 4) for t in (1e-4, 0.05, 0.5, 10.0)]
        [0.0029, 1.0, 3.4594, 7.6511]
        """
        squares = ((float(recipe["sn_mass_fraction"]) - float(material["sn_mass_fraction"]))
                   / self.sn_mass_fraction) ** 2
        milled = float(material["milling_time_h"]) > 0.0
        if (float(recipe["milling_time_h"]) > 0.0) != milled:  # one unmilled: how far milling has taken the other
            time_h = max(float(recipe["milling_time_h"]), float(material["milling_time_h"]))
            return float(np.sqrt(squares + (np.log1p(time_h / self.unmilled_time_h) / np.log(self.milling_factor)) ** 2))
        for name in acting_fields(material):
            if name == "sn_mass_fraction" or not milled or name not in recipe:  # unmilled: the Sn fraction alone
                continue
            if FIELDS[name].categorical:
                if recipe[name] != material[name]:
                    return float("inf")
                continue
            squares += (np.log(float(recipe[name]) / float(material[name])) / np.log(self.milling_factor)) ** 2
        return float(np.sqrt(squares))


@dataclass(frozen=True)
class UncertaintySettings:
    """The ensemble's size, seed, interval, uncertain assumed parameters and measurement sigmas."""

    ensemble_size: int
    candidates_per_member: int
    min_effective_share: float
    seed: int
    interval_probability: float
    prior_sd_per_range: float
    finite_difference_step_per_range: float
    proposal_degrees_of_freedom: float
    rate_extrapolation_sigma_pct_per_e_fold: float  # model-form sd of a capacity per e-fold beyond the data's currents
    same_temperature_within_C: float  # a temperature this close to a measured one is not an extrapolation
    same_recipe_within_pct: float  # nor a recipe whose every field is this close to a measured material's
    lab_row_near_distance: float  # nor, for a lab-taught model, a quantity a lab row this close measured
    uncertain_assumed_parameters: tuple[str, ...]
    measurement_sigma_pct: dict[str, float]
    model_form_sigma_pct: dict[str, float]  # families without: none
    model_form_errors: dict[str, int]  # per measured family of model_form_sigma_pct: how many errors its RMS is of
    # (a family of model_form_sigma_pct not listed has an assumed sd, drawn Gaussian)
    model_form_distance: ModelFormDistance

    @classmethod
    def load(cls, path: str | Path | None = None) -> "UncertaintySettings":
        """Read and check ``configs/uncertainty.yaml``; a problem raises ParameterError naming the field."""
        path = Path(path) if path else config_dir() / "uncertainty.yaml"
        try:
            document = read_yaml_file(path, "uncertainty settings")
        except YamlInputError as error:
            raise ParameterError(str(error)) from None
        listed = ["measurement_sigma_pct", "model_form_distance", "model_form_errors", "model_form_sigma_pct",
                  "uncertain_assumed_parameters"]
        if not isinstance(document, dict) or set(document) != set(_SETTINGS_RANGES) | set(listed):
            raise ParameterError(f"{path}: expected exactly the keys {sorted(_SETTINGS_RANGES)} + {listed}")
        values = {}
        for key, (kind, low, high) in _SETTINGS_RANGES.items():
            value = document[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high) or (
                    kind is int and value != int(value)):
                raise ParameterError(f"{path}: {key}={excerpt(value)} is out of range: allowed {kind.__name__} "
                                     f"{low:g} to {high:g}")
            values[key] = kind(value)
        names = document["uncertain_assumed_parameters"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ParameterError(f"{path}: uncertain_assumed_parameters must be a list of parameter names")
        sigmas = document["measurement_sigma_pct"]
        if not isinstance(sigmas, dict) or set(sigmas) != set(FAMILIES) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 50.0 for v in sigmas.values()):
            raise ParameterError(f"{path}: measurement_sigma_pct needs exactly {list(FAMILIES)}, each 0 to 50 (%)")
        forms = document["model_form_sigma_pct"]
        if isinstance(forms, dict) and (following := sorted(set(forms) & set(FORM_ERROR_FOLLOWS))):
            raise ParameterError(f"{path}: model_form_sigma_pct.{following[0]}: that family carries "
                                 f"{FORM_ERROR_FOLLOWS[following[0]][0]}'s form error; set that one instead")
        if not isinstance(forms, dict) or not set(forms) <= set(FAMILIES) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 100.0 for v in forms.values()):
            raise ParameterError(f"{path}: model_form_sigma_pct takes some of {list(FAMILIES)}, each 0 to 100 (%)")
        counts = document["model_form_errors"]
        if not isinstance(counts, dict) or not set(counts) <= set(forms) or not all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1000 for v in counts.values()):
            raise ParameterError(f"{path}: model_form_errors takes some of the families of model_form_sigma_pct "
                                 f"({sorted(forms)}), each a count 1 to 1000 (a family not listed: an assumed sd)")
        distance = document["model_form_distance"]
        if not isinstance(distance, dict) or set(distance) != set(_DISTANCE_RANGES):
            raise ParameterError(f"{path}: model_form_distance needs exactly {sorted(_DISTANCE_RANGES)}")
        for key, (low, high) in _DISTANCE_RANGES.items():
            value = distance[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
                raise ParameterError(f"{path}: model_form_distance.{key}={excerpt(value)} is out of range: allowed "
                                     f"{low:g} to {high:g}")
        return cls(**values, uncertain_assumed_parameters=tuple(names),
                   measurement_sigma_pct={k: float(v) for k, v in sigmas.items()},
                   model_form_sigma_pct={k: float(v) for k, v in forms.items()},
                   model_form_errors={k: int(v) for k, v in counts.items()},
                   model_form_distance=ModelFormDistance(**{k: float(v) for k, v in distance.items()}))


FAMILIES = ("capacity", "cycling", "efficiency", "activation_energy", "particle_expansion", "electrode_expansion")
_DISTANCE_RANGES = {"sn_mass_fraction": (0.01, 1.0), "milling_factor": (1.05, 100.0),  # key: (low, high)
                    "unmilled_time_h": (0.001, 1.0), "temperature_C": (1.0, 1000.0)}
_SETTINGS_RANGES = {  # key: (type, low, high)
    "ensemble_size": (int, 8, 4096),
    "candidates_per_member": (int, 1, 64),
    "min_effective_share": (float, 0.01, 1.0),
    "seed": (int, 0, 2**32 - 1),
    "interval_probability": (float, 0.5, 0.99),
    "prior_sd_per_range": (float, 0.01, 10.0),
    "finite_difference_step_per_range": (float, 1e-8, 1e-2),
    "proposal_degrees_of_freedom": (float, 1.0, 1e6),
    "rate_extrapolation_sigma_pct_per_e_fold": (float, 0.0, 50.0),
    "same_temperature_within_C": (float, 0.0, 5.0),
    "same_recipe_within_pct": (float, 0.0, 5.0),
    "lab_row_near_distance": (float, 0.0, 1.0),
}


@dataclass(frozen=True)
class DataExtent:
    """The conditions at which one material (or the study as a whole) was measured: predictions of its quantities
    outside them are extrapolations."""

    quantities: frozenset[str]          # the model metrics measured (Prediction.record's keys)
    min_current_A_per_g: float          # lowest current of a measured capacity (inf: none)
    max_current_A_per_g: float          # highest (0: none)
    max_cycle: int                      # last cycle of a measured capacity fade (0: none)
    cycling_currents_A_per_g: tuple[float, ...] = ()  # currents the fade was measured at

    @classmethod
    def of(cls, rows: pd.DataFrame) -> "DataExtent":
        capacities = rows[rows["quantity"].str.startswith("capacity_at_") | (rows["quantity"] == REVERSIBLE)]
        currents = capacities["current_A_per_g"].dropna()
        fade = rows[rows["quantity"] == FADE].dropna(subset=["cycle"])
        return cls(frozenset(rows["quantity"]), float(currents.min()) if len(currents) else float("inf"),
                   float(currents.max()) if len(currents) else 0.0, int(fade["cycle"].max()) if len(fade) else 0,
                   tuple(sorted(set(fade["current_A_per_g"].dropna().astype(float)))))

    def current_beyond(self, current_A_per_g: float, also: tuple[float, float] | None = None) -> bool:
        """A current outside the measured ones (``also``: a lab's span of currents measured near the recipe, joined
        to them: 5 A/g between the study's 4.2 and a lab's 6 is between measurements)."""
        low, high = self.min_current_A_per_g, self.max_current_A_per_g
        if also is not None:
            low, high = min(low, also[0]), max(high, also[1])
        return not within(current_A_per_g, low, high)

    def fade_beyond(self, cycle: int, cycling_current_A_per_g: float) -> bool:
        """A capacity after ``cycle`` cycles at that current: past the last measured cycle, or cycled at a current
        the fade was not measured at (the fade law's current dependence is the model's, not the data's)."""
        return cycle > self.max_cycle or self.cycled_otherwise(cycling_current_A_per_g)

    def cycled_otherwise(self, cycling_current_A_per_g: float) -> bool:
        return not any(abs(cycling_current_A_per_g - c) <= 1e-6 * c for c in self.cycling_currents_A_per_g)


@dataclass(frozen=True)
class CalibratedDomain:
    """Where the calibration data lie; predictions outside are extrapolations.

    ``materials`` are the recipes of the materials behind the fitted rows (configs/materials.yaml). The study milled
    at one condition, which its text does not give (the materials file assumes one), so a recipe milled otherwise is
    predicted by the milling model's assumed constants: :meth:`recipe_beyond` says so, field by field.
    ``extents`` pairs each of those recipes with what was measured on it, so a prediction for a study material is
    judged against that material's own data (nano-Sn's rate capability was never measured); any other recipe
    against the study's as a whole.
    """

    temperatures_C: tuple[float, ...]
    materials: tuple[dict[str, Any], ...] = ()
    extents: tuple[DataExtent, ...] = ()  # one per material, in the order of ``materials``
    overall: DataExtent = DataExtent(frozenset(), float("inf"), 0.0, 0)  # the study's data as a whole (none: all beyond)
    temperature_within_C: float = 0.0  # a temperature this close to a measured one is that one (settings)
    recipe_within_pct: float = 0.0  # a recipe value this close to a material's is that material's (settings)
    # recipes a lab measured, each with the quantities measured on it (:meth:`with_lab_rows`): a lab-taught model was
    # fitted to them, so they count as measured materials for the model-form error, and a prediction of a quantity
    # within ``lab_near_distance`` (``lab_distance``'s units) of a row that measured it is not an extrapolation
    lab_measured: tuple[tuple[dict[str, Any], frozenset[str]], ...] = ()
    lab_distance: "ModelFormDistance | None" = None
    lab_near_distance: float = 0.0
    lab_temperature_C: float | None = None  # what the lab's rows were measured at: the campaign's objective's

    @classmethod
    def of(cls, observations: pd.DataFrame, p: ModelParameters, materials: dict[str, Recipes] | None = None,
           settings: "UncertaintySettings | None" = None) -> "CalibratedDomain":
        fitted = observations[observations["fit"]]
        materials = materials if materials is not None else load_materials(config_dir() / "materials.yaml")
        names = [name for name in dict.fromkeys(fitted["material"]) if name in materials]
        settings = settings or UncertaintySettings.load()
        return cls((float(p.reference_temperature_C),), tuple(materials[n].to_records()[0] for n in names),
                   tuple(DataExtent.of(fitted[fitted["material"] == n]) for n in names), DataExtent.of(fitted),
                   settings.same_temperature_within_C, settings.same_recipe_within_pct)

    def _same(self, value, measured, fraction: bool = False) -> bool:
        """Whether a recipe value is a measured material's: as stated (:func:`_shown`), or a number within
        ``recipe_within_pct`` of it. A mass ``fraction`` is weighed as two masses, so its tolerance is that share of
        the larger one (a trace of Sn in HC, 1e-6, is HC; 2:1 is 0.6667 +- 0.0033)."""
        if _shown(value) == _shown(measured):
            return True
        if isinstance(value, str) or isinstance(measured, str):
            return False
        scale = max(float(measured), 1.0 - float(measured)) if fraction else abs(float(measured))
        # up to a relative 1e-9 as :func:`within`: 0.5 % off had been the same for 398 rpm and not for BPR 19.9,
        # by the last binary digit of 0.995 x 20
        return abs(float(value) - float(measured)) <= self.recipe_within_pct / 100.0 * scale * (1 + 1e-9)

    def extent_of(self, recipe: dict[str, Any]) -> DataExtent:
        """What was measured on this recipe: its material's data if it is one of the study's materials (as a lab
        states it; an unmilled powder whatever mill settings it states), else the study's as a whole."""
        for material, extent in zip(self.materials, self.extents):
            if all(name in recipe and self._same(recipe[name], material[name], name == "sn_mass_fraction")
                   for name in acting_fields(material)):
                return extent
        return self.overall

    def current_distance(self, recipe: dict[str, Any], current_A_per_g: float) -> float:
        """How far a rate-test current lies above the highest one measured on this recipe's material (the study's
        highest if its rate was never measured; a lab's, measured near the recipe, if higher), in e-folds:
        ``ln(current / highest)``, 0 at or below it."""
        extent = self.extent_of(recipe)
        highest = extent.max_current_A_per_g if extent.max_current_A_per_g > 0 else self.overall.max_current_A_per_g
        near = self.measured_near(recipe)
        if near.currents is not None:
            highest = max(highest, near.currents[1])
        if not highest > 0 or not current_A_per_g > highest:
            return 0.0
        return math.log(current_A_per_g / highest)

    def model_form_weight(self, recipe: dict[str, Any], quantity: str, scale: "ModelFormDistance",
                          temperature_C: float | None = None) -> float:
        """How much of a quantity's model-form error (``model_form_sigma_pct``) a recipe's prediction carries: 0 on
        a material the quantity was measured on (a study material, or a lab's recipe for a lab-taught model), growing
        linearly with the recipe's distance from the nearest such material (:meth:`ModelFormDistance.between`) to 1
        at distance 1 and beyond, and 1 where no material measured it. So an interval widens smoothly away from the
        data instead of jumping at a recipe's last stated digit. A prediction at ``temperature_C`` (None: at the
        measured one) adds its distance from the temperature the material was measured at, in quadrature: the
        composite at 40 C had read a narrower capacity band than at the measured 25 C (a sceptical modeller's
        audit), its members agreeing more where kinetics are faster."""
        def apart(measured_at: tuple[float, ...]) -> float:
            if temperature_C is None or not measured_at:
                return 0.0
            return min(abs(float(temperature_C) - t) for t in measured_at) / scale.temperature_C

        lab_at = (self.lab_temperature_C,) if self.lab_temperature_C is not None else self.temperatures_C
        distances = [np.hypot(scale.between(recipe, material), apart(self.temperatures_C))
                     for material, extent in zip(self.materials, self.extents) if quantity in extent.quantities]
        distances += [np.hypot(scale.between(recipe, made), apart(lab_at))
                      for made, quantities in self.lab_measured if quantity in quantities]
        return float(min(1.0, min(distances, default=1.0)))

    def with_lab_rows(self, rows, distance: "ModelFormDistance | None" = None,
                      near_distance: float = 0.0, target_cycle: int | None = None,
                      temperature_C: float | None = None) -> "CalibratedDomain":
        """The domain of a model taught by a lab's rows as well: ``rows`` are (recipe, names of the metrics measured
        on it) pairs. The lab-taught model was fitted to them as the study's model to its materials, so near a lab's
        recipe a quantity it measured carries as little model-form error as near a study material: a lab that measured
        the swelling of six recipes around the recommended one had seen the interval there widen (82-526 % before,
        82-583 % after), as if nothing had been measured. With ``distance`` (the model-form distance) and
        ``near_distance`` > 0, a quantity a row within ``near_distance`` of a recipe measured is not an extrapolation
        there (:meth:`measured_near`): every suggestion had been flagged, beside the lab's rows or far from them. A
        cycling capacity is so only after a cycle within the span the rows measured (``target_cycle``: the cycle of
        the objective's capacity, which names none): a lab's 400 and 1000 cycles had un-flagged cycle 12 000 and the
        fresh capacity. ``temperature_C``: what the rows were measured at (the objective's; None: the study's)."""
        added = []
        for recipe, names in rows:
            quantities = frozenset(q for name in names if (q := measured_quantity(name)) is not None)
            cycles = [measured_cycle(name, target_cycle) for name in names if measured_quantity(name) == FADE]
            span = None if not cycles or None in cycles else (min(cycles), max(cycles))
            currents = [float(match.group(1)) for name in names if (match := AT_CURRENT.match(name))]
            rated = (min(currents), max(currents)) if currents else None
            if quantities:
                added.append((dict(recipe), MeasuredNear(quantities, span, rated)))
        return replace(self, lab_measured=self.lab_measured + tuple(added),
                       lab_temperature_C=temperature_C if temperature_C is not None else self.lab_temperature_C,
                       lab_distance=distance or self.lab_distance,
                       lab_near_distance=near_distance if distance is not None else self.lab_near_distance)

    def measured_near(self, recipe: dict[str, Any]) -> MeasuredNear:
        """The quantities that lab rows within ``lab_near_distance`` of ``recipe`` measured (:meth:`with_lab_rows`):
        the lab-taught model interpolates its own data there, so its predictions of them are not extrapolations."""
        if self.lab_distance is None or not self.lab_near_distance > 0.0:
            return MeasuredNear()
        return MeasuredNear.joined(quantities for made, quantities in self.lab_measured
                                   if self.lab_distance.between(recipe, made) <= self.lab_near_distance)

    def temperature_outside(self, temperature_C: float) -> bool:
        return not any(abs(temperature_C - t) <= self.temperature_within_C for t in self.temperatures_C)

    def recipe_beyond(self, recipe: dict[str, Any]) -> dict[str, str]:
        """Why a recipe lies beyond the calibration's materials: recipe field -> reason (empty: it is one of them,
        or a milled recipe of the measured milling condition between the milled Sn fractions).

        Examples
        --------
        >>> domain = CalibratedDomain((25.0,), (
        ...     {"sn_mass_fraction": 0.0, "milling_time_h": 0.0}, {"sn_mass_fraction": 1.0, "milling_time_h": 0.0},
        ...     {"sn_mass_fraction": 1 / 3, "milling_time_h": 10.0}, {"sn_mass_fraction": 2 / 3, "milling_time_h": 10.0}))
        >>> domain.recipe_beyond({"sn_mass_fraction": 0.5, "milling_time_h": 10.0})
        {}
        >>> domain.recipe_beyond({"sn_mass_fraction": 0.6667, "milling_time_h": 10.0})  # 2:1, as a lab states it
        {}
        >>> for field, reason in domain.recipe_beyond({"sn_mass_fraction": 0.8, "milling_time_h": 20.0}).items():
        ...     print(f"{field}: {reason}")
        sn_mass_fraction: 0.8, outside the calibration's milled materials' 0.3333 to 0.6667
        milling_time_h: 20, where the calibration's milled materials have 10
        """
        if not self.materials:
            return {}
        milling = float(recipe["milling_time_h"]) > 0.0
        anchors = [m for m in self.materials if (float(m["milling_time_h"]) > 0.0) == milling]
        fraction = float(recipe["sn_mass_fraction"])
        fractions = sorted({float(m["sn_mass_fraction"]) for m in anchors})
        measured_fraction = any(self._same(fraction, f, fraction=True) for f in fractions)
        if not milling:
            return {} if measured_fraction else {
                "sn_mass_fraction": f"{fraction:.4g}, an unmilled blend: the calibration's unmilled materials have "
                                    f"{_listed(fractions) or 'none'}"}
        if not anchors:
            return {"milling_time_h": f"{_shown(recipe['milling_time_h'])}: the calibration has no milled material"}
        reasons = {}
        if not (measured_fraction or fractions[0] < fraction < fractions[-1]):
            span = _shown(fractions[0]) if len(fractions) == 1 else f"{_shown(fractions[0])} to {_shown(fractions[-1])}"
            reasons["sn_mass_fraction"] = f"{_shown(fraction)}, outside the calibration's milled materials' {span}"
        for name, value in recipe.items():
            if name == "sn_mass_fraction" or any(name not in m for m in anchors):
                continue
            measured = list(dict.fromkeys(m[name] for m in anchors))
            if not any(self._same(value, v) for v in measured):
                reasons[name] = f"{_shown(value)}, where the calibration's milled materials have {_listed(measured)}"
        return reasons


def _listed(values) -> str:
    return ", ".join(_shown(v) for v in values)


def _shown(value) -> str:
    """A recipe value as :meth:`CalibratedDomain.recipe_beyond` states it, and compares it: to 4 significant digits,
    the precision a lab states a recipe with (2:1 is 0.6667), so a value the reason would show as the material's own
    is the material's."""
    return value if isinstance(value, str) else f"{float(value):.4g}"


@dataclass(frozen=True)
class Ensemble:
    """Parameter sets that each fit the data, and the scatter of a measurement for each member."""

    central: ModelParameters
    members: tuple[ModelParameters, ...]
    measurement_factors: tuple[dict[str, float], ...]  # per member: family -> 1 + relative measurement error
    domain: CalibratedDomain
    settings: UncertaintySettings
    effective_size: float  # effective number of independent candidates behind the members (importance weights)
    weight_temperature: float  # 1 = exact importance correction; larger = tempered (see _tempered)

    def reweighted(self, log_weights, size: int | None = None) -> "Ensemble":
        """``size`` members (default: ``ensemble_size``) importance-resampled from this ensemble (or pool) by
        ``log_weights`` (one per member: what other data say of each, e.g. a lab's rows), tempered as the build
        tempers its candidates (:func:`_tempered`: at least ``min_effective_share`` of ``size`` stay effectively
        distinct) and resampled systematically from a stream fixed by the seed, so the same weights give the same
        ensemble. Each member draws its own measurement factors (:func:`drawn_measurement_factors`, the study's sigmas:
        widen them after, as :meth:`with_measurement_sigma` does): a cell's scatter has nothing to do with the
        parameters the weights chose, and a member picked k times had scattered k times alike, so the lab-taught
        interval held as few distinct draws of it as distinct members (the example lab's half-tin recipe: reversible
        capacity +5 % at the top of its interval, where the lab's 5 % scatter reaches +8 %)."""
        log_weights = np.asarray(log_weights, dtype=float)
        n, size = len(self.members), size or self.settings.ensemble_size
        if log_weights.shape != (n,) or not np.all(np.isfinite(log_weights)):
            raise ValueError(f"need {n} finite log-weights, one per member")
        temperature, weights = _tempered(log_weights, self.settings.min_effective_share * size)
        rng = np.random.default_rng([self.settings.seed, REWEIGHT_STREAM])
        picked = np.minimum(np.searchsorted(np.cumsum(weights), (rng.random() + np.arange(size)) / size), n - 1)
        return replace(self, members=tuple(self.members[k] for k in picked),
                       measurement_factors=drawn_measurement_factors(self.settings, size, rng),
                       effective_size=float(1.0 / np.sum(weights**2)),
                       weight_temperature=float(temperature))

    def with_measurement_sigma(self, sigma_pct: float) -> "Ensemble":
        """This ensemble with every family's measurement scatter at least ``sigma_pct`` (%): each member's draw of a
        family's error, 1 + s z, is also scaled by exp(e z), e = (sigma_pct - s) / 100, with the same z (so the two
        add to about sigma_pct; a factor, so a measurement stays positive at any stated scatter). For predictions of
        what another lab will measure: its cells scatter as it states (a lab-taught model's ``lab_uncertainty_pct``),
        not as the study's tables did (2 % for a capacity). A lab stating 5 % had seen its own row's capacity,
        560 mAh/g, fall outside the interval of the model its rows taught, 509-539."""
        sigmas = self.settings.measurement_sigma_pct

        def widened(family: str, value: float) -> float:
            s = sigmas.get(family, 0.0)
            if not 0.0 < s < sigma_pct:
                return value
            z = (value - 1.0) / (s / 100.0)
            return float(value * np.exp(z * (sigma_pct - s) / 100.0))

        factors = tuple({family: widened(family, value) for family, value in factor.items()}
                        for factor in self.measurement_factors)
        return replace(self, measurement_factors=factors)

    def with_extra_scatter(self, sigma_pct: dict[str, tuple[float, int]]) -> "Ensemble":
        """This ensemble with each member's measurement factor of a family (``family -> (sd %, rows)``) also scattered
        by exp(sd t), t a Student-t draw with as many degrees of freedom as rows the sd was estimated from (the law of
        :attr:`model_form_factors`; its own random stream, so nothing else the members draw changes). For what a
        model misses on data it was fitted to beyond their stated scatter (a lab's rows: the lab-taught model's
        misfit), which no parameter of it spreads."""
        if not sigma_pct:
            return self
        rng = np.random.default_rng([self.settings.seed, EXTRA_SCATTER_STREAM])
        factors = tuple({**factor, **{family: factor.get(family, 1.0) * float(np.exp(sd / 100.0 * rng.standard_t(rows)))
                                      for family, (sd, rows) in sorted(sigma_pct.items())}}
                        for factor in self.measurement_factors)
        return replace(self, measurement_factors=factors)

    @functools.cached_property
    def model_form_factors(self) -> tuple[dict[str, float], ...]:
        """Per member: family -> the factor measured / predicted that the model's form errs by, which scatters a
        quantity never measured on the material it is predicted for: exp(sigma t), with sigma the RMS of
        ``model_form_errors`` leave-material-out log errors (``model_form_sigma_pct``) and t a Student-t draw with
        that many degrees of freedom, the predictive law of a new error when the variance is estimated from n
        zero-mean ones (a Gaussian would take the RMS of two errors as the true sd). On the log scale a factor stays
        positive, as a swelling or an efficiency's loss does. A family whose sd is assumed, not the RMS of measured
        errors (no ``model_form_errors`` count: the capacity's), is drawn Gaussian, from a stream of its own. The
        factors have their own random streams, so the members, their measurement factors and the measured families'
        factors are those an ensemble without the assumed ones has."""
        sigmas, counts = self.settings.model_form_sigma_pct, self.settings.model_form_errors
        rng = np.random.default_rng([self.settings.seed, MODEL_FORM_STREAM])
        assumed_rng = np.random.default_rng([self.settings.seed, MODEL_FORM_STREAM, ASSUMED_FORM_STREAM])
        measured, assumed = sorted(f for f in sigmas if f in counts), sorted(f for f in sigmas if f not in counts)
        return tuple({**{f: float(np.exp(sigmas[f] / 100.0 * rng.standard_t(counts[f]))) for f in measured},
                      **{f: float(np.exp(sigmas[f] / 100.0 * assumed_rng.standard_normal())) for f in assumed}}
                     for _ in self.members)

    @functools.cached_property
    def rate_extrapolation_draws(self) -> np.ndarray:
        """Per member: a standard normal draw of the rate model's form error beyond the measured currents (its own
        random stream: the members and their other factors are those of an ensemble without it)."""
        return np.random.default_rng([self.settings.seed, RATE_EXTRAPOLATION_STREAM]).standard_normal(
            len(self.members))

    def current_distances(self, recipes: list[dict[str, Any]], name: str) -> np.ndarray | float:
        """Each recipe's :meth:`CalibratedDomain.current_distance` for a rate-test capacity's flat name
        (``capacity_at_4.2_A_per_g_mAh_per_g``); 0 for any other metric."""
        match = AT_CURRENT.match(name or "")
        if match is None:
            return 0.0
        return np.array([self.domain.current_distance(recipe, float(match.group(1))) for recipe in recipes])

    def member_factor(self, k: int, family: str | None, form_weight: float = 0.0) -> float:
        """Member k's relative error factor for a quantity of ``family`` (:func:`scattered_by` applies it): its
        measurement scatter, times its model-form scatter in proportion to ``form_weight``
        (:meth:`CalibratedDomain.model_form_weight`; 0 on a material the quantity was measured on). A family whose
        model follows another's (:data:`FORM_ERROR_FOLLOWS`) takes that one's form factor to the member's power."""
        if family is None:
            return 1.0
        form = self.model_form_factors[k].get(family, 1.0)
        if family in FORM_ERROR_FOLLOWS:
            source, exponent = FORM_ERROR_FOLLOWS[family]
            power = 1.0 if exponent is None else float(getattr(self.members[k], exponent))
            form = self.model_form_factors[k].get(source, 1.0) ** power
        return self.measurement_factors[k].get(family, 1.0) * (1.0 + form_weight * (form - 1.0))

    def form_weights(self, recipes: list[dict[str, Any]], name: str, temperature_C: float | None = None) -> np.ndarray:
        """Each recipe's share of the model-form error of metric ``name`` (record key or flat name):
        :meth:`CalibratedDomain.model_form_weight`, or 0 for a quantity whose family has no model-form sigma (of its
        own or through :data:`FORM_ERROR_FOLLOWS`).

        The error belongs to its family, so a quantity carries it only where neither it nor any quantity of that
        family was measured near: a nano-Sn electrode, whose particles' swelling was measured, carries none of the
        swelling's (hidden, it had read 24-2190 %), nor does a recipe whose electrode a lab row measured; HC's
        rate-test capacity at 1.7 A/g, never run as a rate test but measured as a first cycle at 0.08 A/g and at
        1.7 A/g, carries none of the capacity's (how far its current lies from those measured is the rate
        extrapolation's part, :meth:`current_distances`). ``temperature_C``: the prediction's (None: the measured
        one), whose distance from the measured temperatures adds to the recipe's."""
        quantity = measured_quantity(name)
        family = None if quantity is None else FAMILY_OF_METRIC[quantity]
        sigmas = self.settings.model_form_sigma_pct
        source = family if family in sigmas else FORM_ERROR_FOLLOWS.get(family, (None,))[0]
        if source not in sigmas:
            return np.zeros(len(recipes))
        # the family and those that carry its very factor (exponent None: a capacity after cycles), both ways: a
        # lab row that measured only the cycled capacity had left the rate capacity's form error beside it whole
        group = [quantity, *(q for q, f in FAMILY_OF_METRIC.items()
                             if q != quantity and (f == source or FORM_ERROR_FOLLOWS.get(f) == (source, None)))]
        scale = self.settings.model_form_distance
        temperature_C = temperature_C if source in TEMPERATURE_FORM_FAMILIES else None
        return np.array([min(self.domain.model_form_weight(recipe, q, scale, temperature_C) for q in group)
                         for recipe in recipes])

    def scattered(self, k: int, name: str, values, form_weight=0.0, ceiling=None, current_distance=0.0) -> np.ndarray:
        """Member k's ``values`` of metric ``name`` as a measurement could read them: scattered by the member's
        measurement error and, in proportion to ``form_weight`` (:meth:`form_weights`), its model-form error
        (:func:`scattered_by`: an efficiency by its loss); a rate-test capacity ``current_distance`` e-folds above
        the currents measured on its material (:meth:`current_distances`) also by the rate model's form error,
        ``rate_extrapolation_sigma_pct_per_e_fold`` per e-fold, so an interval widens with the extrapolation
        instead of following the members where the parametric ones happen to converge (HC's had narrowed from +-7 %
        at the measured 1.7 A/g to +-4 % at 10 A/g); a capacity kept within ``ceiling``, the member's theoretical
        capacity (a cell cannot store more than its Sn and HC hold: a reading above it is a mass error). The one
        rule of ``snhc predict``, the campaigns' and what-ifs' intervals and the validation."""
        family = measurement_family(name)
        out = scattered_by(family, values, self.member_factor(k, family, form_weight))
        if np.any(np.asarray(current_distance) > 0):
            sd = self.settings.rate_extrapolation_sigma_pct_per_e_fold / 100.0
            out = out * np.maximum(1.0 + sd * np.asarray(current_distance) * self.rate_extrapolation_draws[k], 0.0)
        if ceiling is not None and family in CAPACITY_FAMILIES:
            out = np.minimum(out, ceiling)
        return out

    def predict(self, recipes: Recipes, request: PredictionRequest | None = None) -> "UncertainPrediction":
        """The central prediction and every member's (members stacked into one batch, see :meth:`evaluate`)."""
        request = request or PredictionRequest()
        members = self.evaluate(recipes, lambda batch, p: predict(batch, p, request),
                                lambda prediction, rows: prediction.take(rows))
        return UncertainPrediction(predict(recipes, self.central, request), tuple(members), self, recipes)

    @functools.cached_property
    def varying(self) -> tuple[str, ...]:
        """Names of the parameters whose value differs between members (the rest are the central values)."""
        return tuple(name for name in self.central
                     if any(m[name].value != self.central[name].value for m in self.members))

    def evaluate(self, recipes: Recipes, model, split) -> list:
        """``model(batch, parameters)`` of every member on ``recipes``, one result per member.

        The members differ only in the values of some parameters, and the model is elementwise in its recipes, so
        the batch is tiled once per member and the members' values become one array per parameter, aligned with the
        tiled rows: one model call evaluates them all (64 members of a 4-recipe batch: about 15 times faster than a
        call per member, and equal to the last bit). ``split(result, rows)`` takes one member's rows out of a
        result; at most :data:`STACKED_ROWS` rows go into one call. Members that differ in a parameter that is not
        a real number (a count, a list) are evaluated one call each.
        """
        n = recipes.size
        varying = self.varying
        if not all(type(self.central[name].value) is float for name in varying):
            return [split(model(recipes, m), slice(None)) for m in self.members]
        per_call = max(1, STACKED_ROWS // max(n, 1))
        results = []
        for start in range(0, len(self.members), per_call):
            group = self.members[start:start + per_call]
            stacked = self.central.with_arrays({name: np.repeat([float(m[name].value) for m in group], n)
                                                for name in varying})
            result = model(recipes.take(np.tile(np.arange(n), len(group))), stacked)
            results += [split(result, slice(k * n, (k + 1) * n)) for k in range(len(group))]
        return results


@dataclass(frozen=True)
class UncertainPrediction:
    """A central prediction with its ensemble: values, 90 % intervals and extrapolation flags."""

    central: Prediction
    members: tuple[Prediction, ...]
    ensemble: Ensemble
    recipes: Recipes

    def record(self, i: int, current_labels=None) -> dict[str, Any]:
        """Recipe i's metrics (``Prediction.record`` shape), plus ``interval_90`` and ``extrapolated`` with the same
        keys: ``r["interval_90"]["capacity_at_current_mAh_per_g"]["10"] == [low, high]``, and
        ``beyond_calibrated_recipes``: recipe field -> why it lies beyond the calibration's materials (empty if it
        does not; :meth:`CalibratedDomain.recipe_beyond`). A recipe beyond them has every metric flagged as
        extrapolated (but its theoretical capacity, which is arithmetic)."""
        value = self.central.record(i, current_labels)
        beyond, extent = self._judged(i)
        temperature = self.central.request.temperature_C
        form_weights = {key: float(self.ensemble.form_weights([self._records[i]], key, temperature)[0])
                        for key in value}
        currents = self.central.request.currents_A_per_g
        distances = {label: self.ensemble.domain.current_distance(self._records[i], current)
                     for label, current in zip(value.get("capacity_at_current_mAh_per_g", {}), currents)}
        member_records = [self._scattered(m.record(i, current_labels), k, form_weights, distances)
                          for k, m in enumerate(self.members)]
        near = self.ensemble.domain.measured_near(self._records[i])
        return {**value, "interval_90": _intervals(value, member_records, self.ensemble.settings.interval_probability),
                "extrapolated": self._extrapolated(value, extent, bool(beyond), near),
                "beyond_calibrated_recipes": beyond}

    def target_extrapolated(self, i: int) -> bool:
        """Whether recipe i's capacity at the request's target condition (an objective's capacity after its cycles at
        its current and temperature) lies beyond the data; an objective that also reads the expansion at the
        request's temperature is beyond them if that temperature is."""
        request, domain = self.central.request, self.ensemble.domain
        beyond, extent = self._judged(i)
        target_temperature = (request.target_temperature_C if request.target_temperature_C is not None
                              else request.temperature_C)
        # a lab row near measured it
        beyond = beyond and not domain.measured_near(self._records[i]).covers(FADE, int(request.target_cycle))
        return bool(beyond or domain.temperature_outside(target_temperature)
                    or domain.temperature_outside(request.temperature_C)
                    or extent.fade_beyond(int(request.target_cycle), float(request.target_current_A_per_g)))

    def extrapolated(self, i: int, quantity: str, **condition) -> bool:
        """Whether recipe i's ``quantity`` (a record key) at ``condition`` (``current``, ``cycle``,
        ``cycling_current``, as :func:`quantity_extrapolated` takes them) lies beyond the data: the flag
        :meth:`record` gives it."""
        beyond, extent = self._judged(i)
        return quantity_extrapolated(quantity, self.ensemble.domain, extent, bool(beyond), self.central.request,
                                     measured_near=self.ensemble.domain.measured_near(self._records[i]), **condition)

    @functools.cached_property
    def _records(self) -> list[dict[str, Any]]:
        """The recipes as dicts, made once (a record per recipe of a batch would otherwise remake them all)."""
        return self.recipes.to_records()

    def _judged(self, i: int) -> tuple[dict[str, str], DataExtent]:
        """Recipe i's reasons for lying beyond the calibration's materials, and the data it is judged against."""
        recipe = self._records[i]
        return self.ensemble.domain.recipe_beyond(recipe), self.ensemble.domain.extent_of(recipe)

    def scalar_interval(self, values_of, quantity: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Interval of any per-recipe array derived from a prediction, e.g. ``lambda p: p.target_capacity_mAh_per_g``.

        ``quantity`` (a metric name, see :func:`measured_quantity`) scatters each member as a measurement of that
        quantity would read it (:meth:`Ensemble.scattered`, as :meth:`record` does); without it (an objective, a model
        quantity) there is no scatter. The interval always contains a finite central value; a NaN central value (the
        quantity is undefined for the central parameters) leaves the members' interval as it is.
        """
        weights = (self.ensemble.form_weights(self._records, quantity, self.central.request.temperature_C)
                   if quantity else 0.0)
        distances = self.ensemble.current_distances(self._records, quantity) if quantity else 0.0
        stack = np.vstack([self.ensemble.scattered(k, quantity, values_of(m), weights, m.theoretical_capacity_mAh_per_g,
                                                   distances)
                           if quantity else np.asarray(values_of(m), dtype=float)
                           for k, m in enumerate(self.members)])
        tail = 50.0 * (1.0 - self.ensemble.settings.interval_probability)
        low, high = np.nanpercentile(stack, [tail, 100.0 - tail], axis=0)
        central = np.asarray(values_of(self.central), dtype=float)
        return np.fmin(low, central), np.fmax(high, central)

    def _scattered(self, record: dict, k: int, form_weights: dict[str, float] | None = None,
                   current_distances: dict[str, float] | None = None) -> dict:
        """Member k's record as a measurement could read it (:meth:`Ensemble.scattered`), each quantity with its
        model-form weight in ``form_weights`` (none when not given), each rate-test current with its distance
        beyond the measured ones in ``current_distances`` (by current label; none when not given)."""
        ceiling = record["theoretical_capacity_mAh_per_g"]
        form_weights, current_distances = form_weights or {}, current_distances or {}
        out = {}
        for key, value in record.items():
            def scattered(v: float, distance: float = 0.0) -> float:
                return float(self.ensemble.scattered(k, key, v, form_weights.get(key, 0.0), ceiling, distance))
            if key == "capacity_at_current_mAh_per_g":
                out[key] = {c: scattered(v, current_distances.get(c, 0.0)) for c, v in value.items()}
            else:
                out[key] = {c: scattered(v) for c, v in value.items()} if isinstance(value, dict) else scattered(value)
        return out

    def _extrapolated(self, value: dict, extent: DataExtent, beyond: bool, near: frozenset[str]) -> dict:
        """Each metric's flag (:func:`quantity_extrapolated`), at the request's currents and cycles; ``near``: the
        quantities lab rows near the recipe measured (:meth:`CalibratedDomain.measured_near`)."""
        domain, request = self.ensemble.domain, self.central.request
        flags: dict[str, Any] = {}
        for key, item in value.items():
            if key == "capacity_at_current_mAh_per_g":
                flags[key] = {label: quantity_extrapolated(key, domain, extent, beyond, request, current=current,
                                                           measured_near=near)
                              for label, current in zip(item, request.currents_A_per_g)}
            elif key == "capacity_at_cycle_mAh_per_g":
                flags[key] = {c: quantity_extrapolated(key, domain, extent, beyond, request, cycle=int(c),
                                                       measured_near=near)
                              for c in item}
            else:
                flags[key] = quantity_extrapolated(key, domain, extent, beyond, request, measured_near=near)
        return flags


def quantity_extrapolated(quantity: str, domain: CalibratedDomain, extent: DataExtent, beyond: bool,
                          request: PredictionRequest, current: float | None = None, cycle: int | None = None,
                          cycling_current: float | None = None, measured_near: MeasuredNear = MeasuredNear()) -> bool:
    """Whether a prediction of ``quantity`` (a ``Prediction.record`` key) lies beyond the data it is judged by:
    the recipe beyond the calibration's materials (``beyond``; never the theoretical capacity, which is
    arithmetic), a temperature other than the measured ones, a quantity never measured on this material
    (``extent``), a capacity at a ``current`` outside the measured ones, or one after ``cycle`` cycles past the last
    measured or at a ``cycling_current`` (default the request's) the fade was not measured at. The activation
    energy was measured across temperatures (variable-temperature EIS), so the temperature does not flag it; the
    electrode expansion was measured after cycling at the study's fade currents. A recipe beyond the materials is
    not, for a quantity in ``measured_near`` (lab rows near it measured it: :meth:`CalibratedDomain.measured_near`)."""
    if quantity == "theoretical_capacity_mAh_per_g":
        return False
    beyond = beyond and not measured_near.covers(quantity, cycle, current)
    hot_or_cold = domain.temperature_outside(request.temperature_C)
    cycling_current = request.cycling_current_A_per_g if cycling_current is None else cycling_current
    unmeasured = quantity not in extent.quantities
    if quantity == CURRENT:
        flag = hot_or_cold or extent.current_beyond(current, measured_near.currents)
    elif quantity == "capacity_at_cycle_mAh_per_g":
        flag = hot_or_cold or extent.fade_beyond(int(cycle), cycling_current)
    elif quantity == "activation_energy_kJ_per_mol":
        flag = unmeasured
    elif quantity == "electrode_expansion_after_1000_cycles_pct":
        flag = unmeasured or hot_or_cold or domain.overall.cycled_otherwise(cycling_current)
    else:
        flag = unmeasured or hot_or_cold
    return bool(beyond or flag)


def _intervals(value: dict, members: list[dict], probability: float) -> dict:
    tail = 50.0 * (1.0 - probability)

    def band(central: float, samples: list[float]) -> list[float]:
        low, high = np.nanpercentile(np.asarray(samples, dtype=float), [tail, 100.0 - tail])
        return [float(min(low, central)), float(max(high, central))]

    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            out[key] = {c: band(v, [m[key][c] for m in members]) for c, v in item.items()}
        else:
            out[key] = band(item, [m[key] for m in members])
    return out


STACKED_ROWS = 2**16  # rows of one stacked model call (members x recipes): bounds its memory to tens of MB
RANGE_IN_SD = 4.0  # an assumed parameter's allowed range is read as +-2 sd of its prior (lab parameters too)
UNSEEN_STREAM = 1  # the random stream (beside the seed) of the assumed parameters that the data do not see
MODEL_FORM_STREAM = 2  # the random stream of the model-form factors
ASSUMED_FORM_STREAM = 1  # within it, the stream of the families whose sd is assumed
REWEIGHT_STREAM = 4  # the random stream of Ensemble.reweighted's resampling
RATE_EXTRAPOLATION_STREAM = 3  # the random stream of the rate model's form error beyond the measured currents
EXTRA_SCATTER_STREAM = 5  # the random stream of Ensemble.with_extra_scatter (a lab-taught model's misfit)
_BUILT: dict[tuple, Ensemble] = {}  # ensembles built in this process (deterministic for their inputs and seed)
_BUILT_KEPT = 16


def build_ensemble(p: ModelParameters, calibration: Calibration, data_path: str | Path | None = None,
                   observations: pd.DataFrame | None = None,
                   settings: UncertaintySettings | None = None,
                   assumed_draws: Callable[[int], list[dict[str, float]]] | None = None,
                   draws_per_member: int = 1) -> Ensemble:
    """The ensemble around a calibration of ``p`` (its non-fitted values as given) to its data.

    ``assumed_draws(n)`` gives n draws of some assumed parameters from what other data say of them (a lab's results
    of its mill and powders: ``flows.physics_gp.LabCalibratedPrior.posterior_values``); member k then takes draw k
    in place of ``p``'s value, so the intervals carry how well those data pinned the values down. With
    ``draws_per_member`` m > 1 the result is a pool of m times the members, each study member with m draws, for
    :meth:`Ensemble.reweighted` to resample from.

    ``observations`` is the table the calibration was fitted to (default: read ``data_path``); a leave-out study
    passes its own, so the ensemble knows only what that fit knew. The ensemble depends only on the calibrated
    parameters, the table and the settings (its seed among them), so one built before in this process is reused:
    a campaign asks for it for its child runs, its physics check and its recommendation. It is also kept on disk
    beside the calibration it belongs to (:func:`_cached_build`): building it takes seconds (a residual evaluation
    per candidate), and every command that reports intervals needs it.
    """
    settings = settings or UncertaintySettings.load()
    central = calibration.apply(p)
    study = _fitted_under(calibration, central)
    if study is None and assumed_draws is not None and central.digest(exclude_tag="fitted") == (
            calibration.parameters_sha256):  # draws around values that happen not to have moved
        study = central
    if study is not None:  # assumed values moved after the fit: the study's ensemble, carried to them
        study_ensemble = build_ensemble(study, calibration, data_path, observations, settings)
        draws = (assumed_draws(len(study_ensemble.members) * draws_per_member) if assumed_draws is not None
                 else None)
        return _moved(study_ensemble, central, draws)
    materials = load_materials(config_dir() / "materials.yaml")
    observations = observations if observations is not None else load_observations(data_path, materials)
    key = (central.digest(), tuple((name, central[name].tag) for name in central),
           int(pd.util.hash_pandas_object(observations, index=False).sum()), repr(settings))
    if key not in _BUILT:
        if len(_BUILT) >= _BUILT_KEPT:
            _BUILT.pop(next(iter(_BUILT)))
        _BUILT[key] = _cached_build(key, central, observations, materials, settings)
    return _BUILT[key]


def refitted(ensemble: Ensemble, p: ModelParameters) -> Ensemble:
    """``ensemble`` carried to ``p``'s fitted values, those of a refit on more data than the study's (a lab's rows
    beside it: ``recalibrate_on_observations``): its central takes them, and each member's fitted values move by the
    same step on each parameter's scale (log10 for a range of decades), within bounds. ``build_ensemble`` puts the
    calibration's fitted values back on the model it is given, so without this a recalibrated model's values and
    intervals were the study fit's (``snhc predict --observations`` printed the plain prediction bit for bit)."""
    study = ensemble.central
    names = [name for name in study.names("fitted") if p[name].value != study[name].value]
    if not names:
        return ensemble
    scale_of = ParameterTransform(study, names)

    def scaled(q: ModelParameters) -> np.ndarray:
        return scale_of.forward(np.array([float(q[name].value) for name in names]))

    step = scaled(p) - scaled(study)
    members = tuple(_drawn(member, scale_of, scaled(member) + step) for member in ensemble.members)
    return replace(ensemble, central=study.with_values(**{name: p[name].value for name in names}), members=members)


def _fitted_under(calibration: Calibration, central: ModelParameters) -> ModelParameters | None:
    """The calibrated project model when ``central`` has other assumed values than the ones the calibration was fitted
    under (a lab's estimates of its mill and powders; a what-if of another material with ``recalibrate: false``), or
    None when ``central`` is the fitted model itself or the calibration was fitted under other values."""
    fitted_under = calibration.parameters_sha256
    if central.digest(exclude_tag="fitted") == fitted_under:
        return None
    project = calibration.apply(ModelParameters.load())
    return project if project.digest(exclude_tag="fitted") == fitted_under else None


def _moved(ensemble: Ensemble, central: ModelParameters, draws: list[dict[str, float]] | None = None) -> Ensemble:
    """``ensemble`` (of the calibrated study model) carried to ``central``, the same fit with some assumed values
    moved: each member takes the moved values; where the ensemble spreads a moved parameter (an uncertain assumed
    one), each member's draw is shifted by the same step on the parameter's scale (log10 for a range of decades),
    within its bounds. With ``draws`` (one per member), member k takes draw k's values of the parameters it names
    instead: a posterior over them that already holds their prior, so it replaces the study's spread of them. With
    m times as many draws as members, each member appears m times (a pool), each time with its own draw.

    Why not an ensemble built around ``central``: the study's data no longer fit a model whose assumed values moved
    (a lab's rows taught it), so the fit's residual scale grew with the misfit and widened every parameter's spread:
    a lab-taught model whose lab measured 200-265 mAh/g had members that kept their fresh capacity after 1000
    cycles (90 % interval 252-468 mAh/g). The fitted parameters' uncertainty is the study's; the moved values are
    the model's, as its central value says."""
    study = ensemble.central
    posterior = sorted(draws[0]) if draws else []
    moved = [name for name in central if central[name].tag != "fitted" and central[name].value != study[name].value
             and name not in posterior]
    drawn = [name for name in moved if name in ensemble.settings.uncertain_assumed_parameters]
    fixed = {name: central[name].value for name in moved if name not in drawn}
    members = [member.with_values(**fixed) for member in ensemble.members]
    factors = ensemble.measurement_factors
    if posterior:
        n = len(members)
        if len(draws) % n or any(sorted(draw) != posterior for draw in draws):
            raise ValueError(f"need a multiple of {n} draws of the same parameters, one or more per member")
        members = [members[k % n].with_values(**draw) for k, draw in enumerate(draws)]
        factors = tuple(factors[k % n] for k in range(len(draws)))
    if drawn:
        scale_of = ParameterTransform(study, drawn)

        def scaled(p: ModelParameters) -> np.ndarray:
            return scale_of.forward(np.array([float(p[name].value) for name in drawn]))

        step = scaled(central) - scaled(study)
        members = [_drawn(member, scale_of, scaled(member) + step) for member in members]
    return replace(ensemble, central=central, members=tuple(members), measurement_factors=factors)


def _cached_build(key: tuple, central: ModelParameters, observations: pd.DataFrame, materials,
                  settings: UncertaintySettings) -> Ensemble:
    """:func:`_build`, or the ensemble a previous process built for the same key and model source.

    The file holds each member's values that differ from the central ones and its measurement factors; JSON keeps
    floats to the last bit, so a loaded ensemble is the one built. An unreadable or inconsistent file is rebuilt.
    """
    text = json.dumps([str(part) for part in key]) + model_source_digest()
    cache_file = cache_dir() / f"ensemble-{hashlib.sha256(text.encode()).hexdigest()[:20]}.json"
    saved = read_cached(cache_file)
    try:
        members = tuple(central.with_values(**values) for values in saved["members"])
        domain = CalibratedDomain.of(observations, central, materials, settings)
        return Ensemble(central, members, tuple(saved["measurement_factors"]), domain, settings,
                        float(saved["effective_size"]), float(saved["weight_temperature"]))
    except (ValueError, KeyError, TypeError, ParameterError):
        pass  # none yet, or not one this code can read: build it
    ensemble = _build(central, observations, materials, settings)
    document = {"members": [{name: m[name].value for name in ensemble.varying} for m in ensemble.members],
                "measurement_factors": list(ensemble.measurement_factors),
                "effective_size": ensemble.effective_size, "weight_temperature": ensemble.weight_temperature}
    write_cached(cache_file, document)
    return ensemble


def _build(central: ModelParameters, observations: pd.DataFrame, materials, settings: UncertaintySettings) -> Ensemble:
    problem = LeastSquaresProblem(central, observations, materials)
    transform = problem.transform
    low, high = transform.box()
    span = np.maximum(high - low, 1e-12)
    x0 = transform.forward(np.array([central[n].value for n in transform.names], float))
    r0 = problem.residuals(x0)

    # One Laplace approximation over the fitted parameters and the uncertain assumed ones the data see together: the
    # data's precision J^T J / s^2 plus a prior on each - weak (a quarter of the allowed range) on the fitted ones,
    # the assumed range (taken as +-2 sd) on the assumed ones. Combinations the data pin down come out narrow, ones
    # the data cannot see keep their prior width.
    fd_step = settings.finite_difference_step_per_range
    step = np.where(x0 + fd_step * span <= high, 1.0, -1.0) * fd_step * span  # stay inside the box
    columns = [(problem.residuals(x0 + step[j] * _unit(j, x0.size)) - r0) / step[j] for j in range(x0.size)]
    # The assumed parameters on the calibration's scale (log10 for a range of decades, as the fitted ones and the lab
    # parameters): a range [0.01, 1] around 0.08 is read as a factor, not as +-0.25 that would reach 0.5 as often
    # as 0.01.
    listed = [_check_uncertain(central, name)[0] for name in settings.uncertain_assumed_parameters]
    assumed_columns = {name: _assumed_column(problem, central, name, x0, r0) for name in listed}
    # An assumed parameter that moves none of the data's residuals (a milling constant that acts only away from the
    # study's milling condition) cannot trade off with the fit: it is drawn apart, after the resampling, from its
    # own random stream, so listing it changes no prediction at the study's materials.
    assumed = [name for name in listed if np.any(assumed_columns[name] != 0.0)]
    unseen = [name for name in listed if name not in assumed]
    columns += [assumed_columns[name] for name in assumed]
    scale_of = ParameterTransform(central, assumed)
    a0 = scale_of.forward(np.array([float(central[name].value) for name in assumed]))
    a_low, a_high = scale_of.box()
    jacobian = np.column_stack(columns)
    dof = max(len(r0) - x0.size, 1)
    scale = max(1.0, float(r0 @ r0) / dof)
    prior_sd = np.concatenate([settings.prior_sd_per_range * span, (a_high - a_low) / RANGE_IN_SD])
    precision = jacobian.T @ jacobian / scale + np.diag(1.0 / prior_sd**2)
    covariance = np.linalg.inv(precision)
    root = np.linalg.cholesky(0.5 * (covariance + covariance.T) + 1e-12 * np.diag(prior_sd**2))

    # Candidates from a multivariate Student-t with that Gaussian's centre and shape (defensive importance sampling,
    # Geweke 1989), importance-weighted by the posterior (the data's fit and the priors) over the t's density, then
    # resampled to ``ensemble_size`` equal members (sampling-importance-resampling). The t's heavy tails keep every
    # weight bounded: from the Gaussian itself, a candidate 3.5 sd out that fit the data badly (chi-square 245
    # against 1.5 at the fit) but less badly than the linearisation said took one seed's ensemble alone, and the
    # tempering that this forced made the intervals depend on the seed (Sn@HC-2-1 at cycle 12 000: lower bound
    # 200 to 256 mAh/g over seeds 1-5; now 254 to 262).
    rng = np.random.default_rng(settings.seed)
    n_fitted = x0.size
    n_candidates = settings.candidates_per_member * settings.ensemble_size
    nu = settings.proposal_degrees_of_freedom
    candidates, log_weights = [], np.empty(n_candidates)
    for c in range(n_candidates):
        u = rng.standard_normal(n_fitted + len(assumed)) / np.sqrt(rng.chisquare(nu) / nu)
        draw = root @ u
        x = np.clip(x0 + draw[:n_fitted], low, high)
        base = _drawn(central, scale_of, a0 + draw[n_fitted:])
        delta = np.concatenate([x - x0, scale_of.forward(np.array([float(base[name].value) for name in assumed])) - a0])
        actual = problem.residuals(x, base)
        log_posterior = -0.5 * (actual @ actual / scale + np.sum((delta / prior_sd) ** 2))
        log_proposal = -0.5 * (nu + u.size) * np.log1p(u @ u / nu)
        log_weights[c] = log_posterior - log_proposal
        candidates.append(problem.parameters(x, base))
    temperature, weights = _tempered(log_weights, settings.min_effective_share * settings.ensemble_size)
    effective_size = float(1.0 / np.sum(weights**2))
    positions = (rng.random() + np.arange(settings.ensemble_size)) / settings.ensemble_size  # systematic resampling
    members = [candidates[k] for k in np.minimum(np.searchsorted(np.cumsum(weights), positions), n_candidates - 1)]
    if unseen:
        unseen_scale = ParameterTransform(central, unseen)
        u0 = unseen_scale.forward(np.array([float(central[name].value) for name in unseen]))
        u_low, u_high = unseen_scale.box()
        unseen_rng = np.random.default_rng([settings.seed, UNSEEN_STREAM])
        members = [_drawn(m, unseen_scale, u0 + (u_high - u_low) / RANGE_IN_SD * unseen_rng.standard_normal(len(unseen)))
                   for m in members]
    domain = CalibratedDomain.of(observations, central, materials, settings)
    return Ensemble(central, tuple(members), drawn_measurement_factors(settings, len(members), rng), domain, settings,
                    effective_size, temperature)


def drawn_measurement_factors(settings: UncertaintySettings, n: int, rng: np.random.Generator
                              ) -> tuple[dict[str, float], ...]:
    """n members' measurement errors: per family of ``measurement_sigma_pct``, 1 + sigma x a normal draw (a
    cell's reading relative to what the model's parameters give)."""
    families = sorted(settings.measurement_sigma_pct)
    return tuple({f: 1.0 + settings.measurement_sigma_pct[f] / 100.0 * rng.standard_normal() for f in families}
                 for _ in range(n))


def _assumed_column(problem: LeastSquaresProblem, central: ModelParameters, name: str, x0: np.ndarray,
                    r0: np.ndarray) -> np.ndarray:
    """d residuals / d (the assumed parameter ``name`` on the calibration's scale), by a forward step of 1e-3 of its
    range (a count moves by one), inside its bounds."""
    scale_of = ParameterTransform(central, [name])
    value = float(central[name].value)
    (g_low,), (g_high,) = scale_of.box()
    (g0,) = scale_of.forward(np.array([value]))
    if isinstance(central[name].value, int):
        moved = value + 1.0 if value + 1 <= scale_of.bounds[0, 1] else value - 1.0
    else:
        h = 1e-3 * (g_high - g_low)
        (moved,) = scale_of.backward(np.array([g0 + (h if g0 + h <= g_high else -h)]))
    g_step = float(scale_of.forward(np.array([moved]))[0] - g0)
    return (problem.residuals(x0, central.with_values(**{name: _typed(central, name, moved)})) - r0) / g_step


def _drawn(p: ModelParameters, scale_of: ParameterTransform, g: np.ndarray) -> ModelParameters:
    """``p`` with ``scale_of``'s parameters at the point ``g`` of their scale, clipped to their bounds."""
    low, high = scale_of.box()
    values = scale_of.backward(np.clip(g, low, high))
    return p.with_values(**{name: _typed(p, name, v) for name, v in zip(scale_of.names, values)})


def _tempered(log_weights: np.ndarray, min_effective_size: float) -> tuple[float, np.ndarray]:
    """Importance weights raised to 1 / T, with the smallest T >= 1 that keeps ``min_effective_size`` candidates.

    T = 1 is the exact correction; a larger T stops part way from the Gaussian towards it (one step of tempered
    sequential Monte Carlo), so a few lucky candidates cannot stand for the whole ensemble.
    """
    def weights_at(t: float) -> np.ndarray:
        w = np.exp((log_weights - log_weights.max()) / t)
        return w / w.sum()

    def ess(t: float) -> float:
        return 1.0 / float(np.sum(weights_at(t) ** 2))

    if ess(1.0) >= min_effective_size:
        return 1.0, weights_at(1.0)
    low, high = 1.0, 2.0
    while ess(high) < min_effective_size and high < 1e12:
        low, high = high, high * 2.0
    for _ in range(40):
        middle = np.sqrt(low * high)
        low, high = (middle, high) if ess(middle) < min_effective_size else (low, middle)
    return high, weights_at(high)


def _unit(j: int, n: int) -> np.ndarray:
    e = np.zeros(n)
    e[j] = 1.0
    return e


def _typed(p: ModelParameters, name: str, value: float):
    return int(round(value)) if isinstance(p[name].value, int) else float(value)


def _check_uncertain(p: ModelParameters, name: str) -> tuple[str, float, float]:
    if name not in p:
        raise ParameterError(f"uncertain_assumed_parameters: {name!r} is not a model parameter")
    entry = p[name]
    if entry.tag != "assumed" or entry.bounds is None:
        raise ParameterError(f"uncertain_assumed_parameters: {name!r} must be an assumed parameter with bounds")
    return name, float(entry.bounds[0]), float(entry.bounds[1])
