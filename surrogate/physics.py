"""PyBaMM model of the Sn / hard-carbon (HC) composite electrode: the project's high-fidelity check.

The surrogate (:mod:`surrogate.kinetics`) reasons about plateau drop-out with closed-form overpotentials. This module
solves the same electrode as a porous-electrode model, so the two can be compared recipe by recipe.

The model
---------
* **Cell.** A half cell of the Sn/HC electrode against Na metal: PyBaMM's ``lithium_ion`` models with the
  ``"working electrode": "positive"`` option. The composite is PyBaMM's "positive" electrode and the Na foil the
  planar counter electrode, so a positive current *sodiates* the composite, as in the study's discharge down to the
  0.01 V cut-off. PyBaMM's lithium models are chemistry-agnostic; the parameters below make them sodium.
* **Two particle phases** in one electrode (``"particle phases": ("1", "2")``, as in ``Chen2020_composite``):
  primary = HC, secondary = Sn. Both share the electrode potential, so the current splits between them by their
  open-circuit potentials (OCPs) and kinetics, which is what sets which plateaus a given current still reaches.
* **Model class.** ``SPMe`` by default (``pybamm_model`` in ``configs/physics_parameters.yaml``; ``SPM`` and
  ``DFN`` work too). The SPMe keeps electrolyte transport, is robust with the composite and solves a six-current
  rate curve in ~50 ms after the build; the DFN takes ~2.5x longer and gives up to ~7 % less at 4.2 A/g (its
  through-thickness gradients), the SPM (no electrolyte) much more.
* **HC phase.** OCP, diffusivity and exchange-current density of PyBaMM's ``Chayambuka2022`` hard carbon. Its
  tables are keyed by concentration on Chayambuka's c_max (14 540 mol/m3); here they are mapped through the
  stoichiometry onto the HC phase, whose own c_max follows from 300 mAh/g and the HC density. Chayambuka's
  exchange current (carbonate electrolyte) is ~220x below what the study's HC needs; by default its magnitude is
  therefore scaled to the kinetics surrogate's HC exchange current, keeping its shape in stoichiometry
  (``hc_exchange_current_magnitude``; ``"chayambuka2022"`` gives PyBaMM's values as published).
* **Sn phase.** A staircase OCP from the Na-Sn plateaus (``sn_plateau_potentials_V`` ending at
  ``sn_plateau_end_na_per_sn``). Each plateau is spread in potential by the surrogate's fitted spread of local
  overpotentials (a single particle with flat plateaus would drop a whole plateau at once; the spread gives the
  surrogate's smooth plateau drop-out), and the steps between plateaus are smoothed by tanh so the solver copes
  (:func:`sn_ocp_table`). Diffusivity and exchange current are the kinetics surrogate's, interface effect
  included: D = D_unmilled x 10^(gain x anchoring), and i0 per g of Sn from
  :func:`surrogate.kinetics.exchange_currents` (Sn surface + Sn-HC interface paths, Arrhenius in temperature).
* **From per gram to per area.** The surrogate's i0 is per g of Sn; PyBaMM wants A per m2 of particle surface.
  Spheres of diameter d and density rho have a specific surface 6 / (rho d) (m2/g), so
  j0 [A/m2] = i0 [A/g] / (6 / (rho d)) = i0 rho d / 6. PyBaMM multiplies j0 back by its surface per volume
  3 eps / R = 6 eps / d, so the electrode's volumetric exchange current is exactly the surrogate's per-gram one.
* **Capacities and currents.** c_max of each phase is set from its capacity (847 mAh/g Sn, 300 mAh/g HC) and
  density, so the phases' volume fractions, taken from the recipe's mass fractions, give each phase its share of
  capacity. The cell is 1 m2 of electrode; a current in A/g is multiplied by the active mass per m2 (thickness x
  powder volume fraction x density). The capacity is I t at the 0.01 V cut-off of the sodiation.
* **Contact/film resistance and capacity utilisation** (fitted by :func:`fit_physics`). PyBaMM's
  ``"contact resistance"`` option carries a lumped resistance, per gram of active material. The rate data are
  measured after formation cycles, so a capacity-utilisation factor scales the electrochemically connected volume
  of both phases (the surrogate uses its early-cycle retention for the same purpose).
* **Swelling.** ``"particle mechanics": "swelling only"`` works with the composite half cell. It is used with
  ``"stress-induced diffusion": "false"``: it reports, it does not feed back (small-strain stress-driven diffusion
  is meaningless at Sn's 420 % volume change). Reported are the Sn phase's volume change at the end of sodiation
  (3 x PyBaMM's surface displacement / R, i.e. the partial-molar-volume law Omega x c, relative to Na-free Sn) and
  the electrode thickness change (PyBaMM's sum over phases of eps x volume change, no pore buffering). Neither is
  the study's apparent particle size (which includes agglomeration and the HC around the Sn).

Not modelled (left to the surrogate): HC amorphisation by milling (the Chayambuka OCP is used as is), the
interface's suppression of the last Na-Sn phase, first-cycle losses and ageing. HC capacity is treated as bulk
diffusion throughout, so at 1.7 A/g pure HC gives far less here than measured (the surrogate treats HC's sloping
region as surface-like).

Inputs, builds and threads
--------------------------
Everything PyBaMM accepts as ``"[input]"`` is an input: current, volume fractions, initial concentrations,
diffusivities, exchange currents, contact resistance, temperature. Particle radii cannot be inputs, so they are
rounded to a log grid and one simulation is built per (rounded Sn radius, rounded HC radius). The rounding costs
no accuracy: with D scaled by (R_built/R)^2 and j0 by R_built/R, a Fickian sphere with Butler-Volmer kinetics
has exactly the same solution. Built simulations are cached per thread (a ``pybamm.Simulation`` is not
thread-safe; builds themselves are serialised by a lock), and all discharges that share a build are solved in one
multi-input IDAKLU call.

Failures never raise: a discharge that errors, ends before delivering a useful capacity or never reaches the
cut-off makes the recipe's :class:`PhysicsResult` ``FAILED`` with the reason.

Examples
--------
>>> from surrogate.calibration import calibrated_parameters
>>> from surrogate.recipe import Recipes
>>> p = calibrated_parameters()
>>> r = Recipes(sn_mass_fraction=[2 / 3], milling_time_h=[10], milling_speed_rpm=[400], ball_to_powder_ratio=[20])
>>> result = evaluate_physics(r, [0.17, 4.2], p)[0]  # doctest: +SKIP
>>> result.status, round(result.capacity_by_current[0.17])  # doctest: +SKIP
('OK', 542)
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")  # before pybamm is imported

import numpy as np
import pandas as pd
import pybamm
from pybamm.input.parameters.sodium_ion import Chayambuka2022 as chayambuka
from scipy.interpolate import PchipInterpolator
from scipy.optimize import brentq, least_squares
from scipy.special import expit

from surrogate.composition import theoretical_capacity_mAh_per_g
from surrogate.kinetics import FARADAY_C_PER_MOL, arrhenius_factor, exchange_currents, kelvin
from surrogate.milling import microstructure, sn_volume_fraction
from surrogate.parameters import ModelParameters
from surrogate.paths import cache_dir, config_dir
from surrogate.recipe import Recipes

AVOGADRO_PER_MOL = 6.02214076e23
CALIBRATION_MATERIAL = "Sn@HC-2-1"
STATUS_OK, STATUS_FAILED = "OK", "FAILED"
MODEL_CLASSES = ("SPM", "SPMe", "DFN")

# Values of configs/model_parameters.yaml that shape a built simulation (the rest enter as inputs).
_BUILD_PARAMETERS = ("sn_capacity_mAh_per_g", "hc_capacity_mAh_per_g", "sn_density_g_per_cm3", "hc_density_g_per_cm3",
                     "sn_plateau_potentials_V", "sn_plateau_end_na_per_sn", "lower_cutoff_V", "sn_volume_per_na_A3",
                     "sn_volume_per_atom_A3", "hc_expansion_pct", "reference_temperature_C", "charge_transfer_coefficient",
                     "overpotential_spread_V")

# Names of the PyBaMM inputs set per discharge.
_CURRENT = "Current function [A]"
_TEMPERATURE = "Ambient temperature [K]"
_INITIAL_TEMPERATURE = "Initial temperature [K]"
_CONTACT = "Contact resistance [Ohm]"
_HC_FRACTION = "Primary: Positive electrode active material volume fraction"
_SN_FRACTION = "Secondary: Positive electrode active material volume fraction"
_HC_INITIAL = "Primary: Initial concentration in positive electrode [mol.m-3]"
_SN_INITIAL = "Secondary: Initial concentration in positive electrode [mol.m-3]"
_SN_DIFFUSIVITY = "Sn particle diffusivity [m2.s-1]"
_SN_EXCHANGE = "Sn exchange-current density [A.m-2]"
_HC_DIFFUSIVITY_FACTOR = "HC diffusivity factor"
_HC_EXCHANGE_FACTOR = "HC exchange-current factor"

# Outputs read from each solution.
_VOLTAGE = "Voltage [V]"
_HC_STOICHIOMETRY = "Positive electrode primary volume-averaged concentration"
_SN_STOICHIOMETRY = "Positive electrode secondary volume-averaged concentration"
_SN_DISPLACEMENT = "X-averaged positive secondary particle surface displacement [m]"
_THICKNESS_CHANGE = "Positive electrode thickness change [m]"
_OUTPUT_VARIABLES = (_VOLTAGE, _HC_STOICHIOMETRY, _SN_STOICHIOMETRY, _SN_DISPLACEMENT, _THICKNESS_CHANGE)


def default_physics_parameters_path() -> Path:
    return config_dir() / "physics_parameters.yaml"


def load_physics_parameters(path: str | Path | None = None) -> ModelParameters:
    """Read ``configs/physics_parameters.yaml`` (or another file in the same format); re-read only when it changes."""
    return _load_parameters(*_file_stamp(Path(path or default_physics_parameters_path())))


def _file_stamp(path: Path) -> tuple[str, int, int]:
    """(path, modification time, size): a cache key that changes whenever the file does."""
    try:
        stat = path.stat()
        return str(path), stat.st_mtime_ns, stat.st_size
    except OSError:
        return str(path), -1, -1  # let the reader raise its own, clear error


@functools.lru_cache(maxsize=8)
def _load_parameters(path: str, modified_ns: int, size: int) -> ModelParameters:
    return ModelParameters.load(path)


# --- open-circuit potentials ---------------------------------------------------------------------------------------

def _step(z, tanh):
    """Smooth unit step 0.5 (1 + tanh z)."""
    return 0.5 * (1.0 + tanh(z))


def _full_sodiation_wall_V(stoichiometry, q: ModelParameters, tanh):
    """Steep OCP drop as a phase fills, so a full particle pulls the voltage to the cut-off."""
    return q.full_sodiation_wall_depth_V * _step(
        (stoichiometry - q.full_sodiation_wall_stoichiometry) / q.full_sodiation_wall_width_stoichiometry, tanh)


def sn_plateau_sodiation(potential_V, p: ModelParameters):
    """Na content (over Na15Sn4's) of an ensemble of Sn particles in equilibrium at a potential.

    Each plateau's potential is spread across particles by a logistic distribution with the same standard
    deviation as the surrogate's spread of local overpotentials (``overpotential_spread_V``): plateau k holds the
    share q_k of the capacity and is filled to 1 / (1 + exp((U - V_k) / s)), s = sigma sqrt(3) / pi. Under a
    uniform overpotential this gives exactly the surrogate's smooth plateau drop-out, instead of an all-or-nothing
    cliff that a single particle with flat plateaus would show.
    """
    plateaus_V = np.asarray(p.sn_plateau_potentials_V, dtype=float)
    shares = np.diff(np.concatenate([[0.0], np.asarray(p.sn_plateau_end_na_per_sn, dtype=float)]))
    shares = shares / shares.sum()
    scale_V = p.overpotential_spread_V * np.sqrt(3.0) / np.pi
    potential = np.asarray(potential_V, dtype=float)[..., None]
    return (shares * expit((plateaus_V - potential) / scale_V)).sum(-1)


def sn_ocp_table(p: ModelParameters, q: ModelParameters) -> tuple[np.ndarray, np.ndarray]:
    """Sn OCP vs stoichiometry as a table: the plateau ensemble inverted, tanh-smoothed, with start rise and wall.

    Built in three steps: (1) invert :func:`sn_plateau_sodiation` on a fine grid; (2) convolve with the logistic
    density of half-width ``sn_ocp_step_width_na_per_sn``, which turns each jump between plateaus into a tanh step
    the solver can follow; (3) add the rise below ``sn_solid_solution_na_per_sn`` towards
    ``sn_desodiated_potential_V`` and the full-sodiation wall. Returns ``sn_ocp_table_points`` nodes; PyBaMM
    interpolates them with monotone cubics (pchip), which spares the solver a kink at every node.
    """
    key = json.dumps({"p": {n: p[n].value for n in _SN_OCP_PARAMETERS}, "q": {n: q[n].value for n in _SN_OCP_PHYSICS}},
                     sort_keys=True)
    nodes, potential_V = _sn_ocp_table(key)
    return nodes.copy(), potential_V.copy()


_SN_OCP_PARAMETERS = ("sn_plateau_potentials_V", "sn_plateau_end_na_per_sn", "overpotential_spread_V")
_SN_OCP_PHYSICS = ("sn_ocp_step_width_na_per_sn", "sn_ocp_table_points", "sn_solid_solution_na_per_sn",
                   "sn_desodiated_potential_V", "full_sodiation_wall_depth_V", "full_sodiation_wall_stoichiometry",
                   "full_sodiation_wall_width_stoichiometry")


@functools.lru_cache(maxsize=16)
def _sn_ocp_table(key: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sn_ocp_table` from the JSON of the values it uses (cached: brentq and every build call it)."""
    values = json.loads(key)
    p, q = _Values(values["p"]), _Values(values["q"])
    plateaus_V = np.asarray(p.sn_plateau_potentials_V, dtype=float)
    scale_V = p.overpotential_spread_V * np.sqrt(3.0) / np.pi
    potentials = np.linspace(plateaus_V.min() - 40 * scale_V, plateaus_V.max() + 40 * scale_V, 200_001)
    sodiation = sn_plateau_sodiation(potentials, p)  # decreasing in potential
    fine = np.linspace(0.0, 1.0, 20_001)
    ensemble_V = np.interp(fine, sodiation[::-1], potentials[::-1])

    na_range = float(p.sn_plateau_end_na_per_sn[-1])
    width = q.sn_ocp_step_width_na_per_sn / na_range
    offsets = np.arange(-12 * width, 12 * width + 0.5 * (fine[1] - fine[0]), fine[1] - fine[0])
    kernel = 0.25 / np.cosh(0.5 * offsets / width) ** 2  # logistic density: a step convolved with it is a tanh
    kernel /= kernel.sum()
    padded = np.pad(ensemble_V, kernel.size // 2, mode="edge")
    smoothed_V = np.convolve(padded, kernel, mode="valid")

    nodes = np.linspace(0.0, 1.0, int(q.sn_ocp_table_points))
    potential_V = np.interp(nodes, fine, smoothed_V)
    solid_solution = q.sn_solid_solution_na_per_sn / na_range
    potential_V = potential_V + (q.sn_desodiated_potential_V - potential_V) * _step(
        (solid_solution - nodes) / width, np.tanh)
    return nodes, potential_V - _full_sodiation_wall_V(nodes, q, np.tanh)


class _Values:
    """Attribute access to a plain dict of parameter values (what the OCP helpers read from p and q)."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


def sn_ocp_V(stoichiometry, p: ModelParameters, q: ModelParameters):
    """Staircase OCP of Na-Sn vs Na+/Na (numpy), from :func:`sn_ocp_table`.

    The stoichiometry is Na per Sn over the Na15Sn4 content. Mid-plateau, the OCP sits at the plateau potentials.

    Examples
    --------
    >>> from surrogate.parameters import ModelParameters
    >>> p, q = ModelParameters.load(), load_physics_parameters()
    >>> [round(float(sn_ocp_V(x / 3.75, p, q)), 2) for x in (0.25, 0.75, 1.6, 3.0)]
    [0.53, 0.46, 0.16, 0.08]
    """
    nodes, potential_V = sn_ocp_table(p, q)
    return PchipInterpolator(nodes, potential_V)(stoichiometry)  # monotone cubic, as the PyBaMM interpolant


def _chayambuka_table(data) -> tuple[np.ndarray, np.ndarray]:
    _, (x, y) = data
    return np.asarray(x[0], dtype=float), np.asarray(y, dtype=float)


def hc_ocp_V(stoichiometry, q: ModelParameters):
    """HC OCP of PyBaMM's Chayambuka2022 plus the full-sodiation wall (numpy; linear in the table, as PyBaMM)."""
    x, y = _chayambuka_table(chayambuka.U_n_data)
    return np.interp(stoichiometry, x, y) - _full_sodiation_wall_V(np.asarray(stoichiometry), q, np.tanh)


def initial_stoichiometries(p: ModelParameters, q: ModelParameters) -> tuple[float, float]:
    """Stoichiometries (Sn, HC) at which each phase's OCP equals the start potential: both start in equilibrium."""
    target_V = q.sodiation_start_potential_V
    first_plateau_end = float(p.sn_plateau_end_na_per_sn[0]) / float(p.sn_plateau_end_na_per_sn[-1])
    sn = brentq(lambda s: float(sn_ocp_V(s, p, q)) - target_V, 0.0, first_plateau_end)
    hc = brentq(lambda s: float(hc_ocp_V(s, q)) - target_V, 0.0, 0.5)
    return sn, hc


# --- from recipes to the model's inputs ----------------------------------------------------------------------------

def max_concentrations_mol_per_m3(p: ModelParameters) -> tuple[float, float]:
    """c_max of the Sn and HC phases from their capacities and densities: Q [mAh/g] x 3.6 x rho [g/m3] / F."""
    sn = p.sn_capacity_mAh_per_g * 3.6 * p.sn_density_g_per_cm3 * 1e6 / FARADAY_C_PER_MOL
    hc = p.hc_capacity_mAh_per_g * 3.6 * p.hc_density_g_per_cm3 * 1e6 / FARADAY_C_PER_MOL
    return sn, hc


def exchange_current_density_A_per_m2(exchange_current_A_per_g, density_g_per_cm3, diameter_m):
    """Per-gram exchange current to PyBaMM's per-area density, i0 / (6 / (rho d)).

    Examples
    --------
    >>> round(float(exchange_current_density_A_per_m2(8.0, 7.29, 100e-9)), 3)  # 100 nm Sn: 8.23 m2/g
    0.972
    """
    specific_surface_m2_per_g = 6.0 / (density_g_per_cm3 * 1e6 * np.asarray(diameter_m))
    return np.asarray(exchange_current_A_per_g) / specific_surface_m2_per_g


@dataclass(frozen=True)
class ElectrodeDesign:
    """Per-recipe physical inputs of the PyBaMM model (arrays of length N; SI units unless named otherwise)."""

    sn_mass_fraction: np.ndarray
    sn_radius_m: np.ndarray
    hc_radius_m: np.ndarray
    sn_volume_fraction: np.ndarray  # connected Sn, of the electrode volume
    hc_volume_fraction: np.ndarray
    active_mass_g_per_m2: np.ndarray  # Sn/HC powder per m2 of electrode: currents are per g of it
    theoretical_capacity_mAh_per_g: np.ndarray
    sn_diffusivity_m2_per_s: np.ndarray
    sn_exchange_current_A_per_m2: np.ndarray
    hc_diffusivity_factor: np.ndarray  # multiplier on Chayambuka2022 (scale x Arrhenius)
    hc_exchange_current_factor: np.ndarray
    contact_resistance_ohm_m2: np.ndarray
    temperature_K: float


def electrode_design(recipes: Recipes, p: ModelParameters, q: ModelParameters,
                     temperature_C: float = 25.0) -> ElectrodeDesign:
    """Translate recipes into the model's geometry, volume fractions and kinetic inputs (pure numpy)."""
    micro = microstructure(recipes, p)
    w_sn = recipes.sn_mass_fraction
    v_sn = sn_volume_fraction(w_sn, p)
    powder = q.electrode_powder_volume_fraction
    connected = powder * (1.0 - micro.inactive_mass_fraction) * q.capacity_utilisation
    floor = powder * q.absent_phase_volume_share
    mix_density_g_per_m3 = 1e6 / (w_sn / p.sn_density_g_per_cm3 + (1.0 - w_sn) / p.hc_density_g_per_cm3)
    active_mass = q.electrode_thickness_um * 1e-6 * powder * mix_density_g_per_m3

    i0 = exchange_currents(w_sn, micro, temperature_C, p)
    sn_diameter_m = micro.sn_size_nm * 1e-9
    diffusion_T = arrhenius_factor(p.diffusion_activation_energy_kJ_per_mol, temperature_C, p)
    sn_diffusivity_cm2_per_s = (p.sn_diffusivity_unmilled_cm2_per_s
                                * 10.0 ** (p.interface_diffusivity_gain_decades * micro.sn_anchoring))
    ones = np.ones(recipes.size)  # broadcast scalar factors to the batch
    return ElectrodeDesign(
        sn_mass_fraction=w_sn,
        sn_radius_m=0.5 * sn_diameter_m,
        hc_radius_m=0.5 * micro.hc_size_um * 1e-6,
        sn_volume_fraction=np.maximum(connected * v_sn, floor),
        hc_volume_fraction=np.maximum(connected * (1.0 - v_sn), floor),
        active_mass_g_per_m2=active_mass,
        theoretical_capacity_mAh_per_g=theoretical_capacity_mAh_per_g(w_sn, p),
        sn_diffusivity_m2_per_s=sn_diffusivity_cm2_per_s * 1e-4 * diffusion_T * q.sn_diffusivity_scale,
        sn_exchange_current_A_per_m2=exchange_current_density_A_per_m2(i0.sn_A_per_g_sn, p.sn_density_g_per_cm3,
                                                                       sn_diameter_m),
        hc_diffusivity_factor=ones * q.hc_diffusivity_scale * diffusion_T,
        hc_exchange_current_factor=_hc_exchange_current_factor(i0.hc_A_per_g_hc, micro.hc_size_um, temperature_C,
                                                               p, q) * ones,
        # PyBaMM's contact resistance is in ohm for the whole (1 m2) cell: R = R_g / (g of active material per m2).
        contact_resistance_ohm_m2=q.contact_resistance_ohm_g / active_mass,
        temperature_K=kelvin(temperature_C),
    )


def chayambuka_mean_exchange_current_A_per_m2(q: ModelParameters) -> float:
    """Chayambuka2022's HC exchange-current density averaged over stoichiometry, at the initial electrolyte
    concentration (the reference its magnitude is scaled from)."""
    k_x, k_y = _chayambuka_table(chayambuka.k_n_data)
    c_max = q.chayambuka_hc_max_concentration_mol_per_m3
    concentration = np.linspace(0.0, 1.0, 10_001) * c_max
    j0 = FARADAY_C_PER_MOL * np.interp(concentration, k_x, k_y) * np.sqrt(concentration * (c_max - concentration)) / 2
    return float(j0.mean())


def _hc_exchange_current_factor(hc_exchange_current_A_per_g, hc_size_um, temperature_C: float, p: ModelParameters,
                                q: ModelParameters):
    """Multiplier on Chayambuka2022's HC exchange-current density (see ``hc_exchange_current_magnitude``)."""
    if q.hc_exchange_current_magnitude == "chayambuka2022":
        return arrhenius_factor(p.hc_activation_energy_kJ_per_mol, temperature_C, p)
    if q.hc_exchange_current_magnitude != "surrogate":
        raise ValueError(f"physics_parameters.hc_exchange_current_magnitude={q.hc_exchange_current_magnitude!r}: "
                         "expected 'surrogate' or 'chayambuka2022'")
    # The surrogate's i0 is per g of HC and already carries the Arrhenius factor and the 1/size scaling.
    target = exchange_current_density_A_per_m2(hc_exchange_current_A_per_g, p.hc_density_g_per_cm3,
                                               np.asarray(hc_size_um) * 1e-6)
    return target / chayambuka_mean_exchange_current_A_per_m2(q)


def rounded_radius_m(radius_m, points_per_decade: float):
    """Radius rounded to a log grid with ``points_per_decade`` points per decade (one build per grid point)."""
    exponent = np.round(np.log10(np.asarray(radius_m, dtype=float)) * points_per_decade) / points_per_decade
    return 10.0 ** exponent


# --- the PyBaMM model ----------------------------------------------------------------------------------------------

def _pybamm_parameter_values(sn_radius_m: float, hc_radius_m: float, p: ModelParameters,
                             q: ModelParameters) -> pybamm.ParameterValues:
    """Parameter values of the Na half cell; per-recipe quantities are ``[input]`` or InputParameters."""
    sn_c_max, hc_c_max = max_concentrations_mol_per_m3(p)
    ch_c_max = q.chayambuka_hc_max_concentration_mol_per_m3
    c_e0 = q.electrolyte_concentration_mol_per_m3
    ocp_x, ocp_y = _chayambuka_table(chayambuka.U_n_data)
    d_x, d_y = _chayambuka_table(chayambuka.D_n_data)
    k_x, k_y = _chayambuka_table(chayambuka.k_n_data)
    tiny_mol_per_m3 = 1e-6 * ch_c_max  # keeps square roots real at the table ends

    def hc_ocp(sto):
        return pybamm.Interpolant(ocp_x, ocp_y, sto, "HC OCP (Chayambuka2022)") - _full_sodiation_wall_V(
            sto, q, pybamm.tanh)

    def hc_diffusivity(sto, T):
        table = pybamm.Interpolant(d_x, d_y, sto * ch_c_max, "HC diffusivity (Chayambuka2022)")
        return table * pybamm.InputParameter(_HC_DIFFUSIVITY_FACTOR)

    def hc_exchange_current(c_e, c_s_surf, c_s_max, T):
        # Chayambuka2022's form F k (c_e/c_e0)^0.5 c_s^0.5 (c_max - c_s)^0.5 / 2, on Chayambuka's concentration scale.
        c_ch = c_s_surf / c_s_max * ch_c_max
        k = pybamm.Interpolant(k_x, k_y, c_ch, "HC rate constant (Chayambuka2022)")
        return (pybamm.InputParameter(_HC_EXCHANGE_FACTOR) * FARADAY_C_PER_MOL * k
                * pybamm.sqrt(pybamm.maximum(c_e, tiny_mol_per_m3) / c_e0)
                * pybamm.sqrt(pybamm.maximum(c_ch, tiny_mol_per_m3))
                * pybamm.sqrt(pybamm.maximum(ch_c_max - c_ch, tiny_mol_per_m3)) / 2.0)

    sn_nodes, sn_potentials = sn_ocp_table(p, q)

    def sn_ocp(sto):
        return pybamm.Interpolant(sn_nodes, sn_potentials, sto, "Sn OCP (Na-Sn plateaus)", interpolator="pchip")

    def sn_diffusivity(sto, T):
        return pybamm.InputParameter(_SN_DIFFUSIVITY)

    def sn_exchange_current(c_e, c_s_surf, c_s_max, T):
        # Two-phase (plateau) reactions: j0 independent of Na content, as the surrogate's i0 per g.
        return pybamm.InputParameter(_SN_EXCHANGE) * pybamm.sqrt(pybamm.maximum(c_e, tiny_mol_per_m3) / c_e0)

    def sodium_exchange_current(c_e, c_na, T):
        return q.sodium_metal_exchange_current_A_per_m2 * pybamm.sqrt(pybamm.maximum(c_e, tiny_mol_per_m3) / c_e0)

    # Volume change laws of the swelling output: Na-Sn grows ~linearly with Na (science.md 3.1), HC a few percent.
    sn_na_range = float(p.sn_plateau_end_na_per_sn[-1])
    sn_full_volume_change = sn_na_range * p.sn_volume_per_na_A3 / p.sn_volume_per_atom_A3
    sn_partial_molar_volume = p.sn_volume_per_na_A3 * 1e-30 * AVOGADRO_PER_MOL
    hc_full_volume_change = p.hc_expansion_pct / 100.0

    def sn_volume_change(sto):
        return sn_full_volume_change * sto

    def hc_volume_change(sto):
        return hc_full_volume_change * sto

    reference_K = kelvin(p.reference_temperature_C)
    alpha = p.charge_transfer_coefficient
    values = {
        "chemistry": "lithium_ion",  # PyBaMM's lithium models are generic insertion models; the values are Na's
        # cell: 1 m2 of electrode, so currents are A/m2 and the contact resistance is ohm m2
        "Electrode height [m]": 1.0,
        "Electrode width [m]": 1.0,
        "Nominal cell capacity [A.h]": 1.0,
        "Current function [A]": "[input]",
        "Contact resistance [Ohm]": "[input]",
        "Number of electrodes connected in parallel to make a cell": 1.0,
        "Number of cells connected in series to make a battery": 1.0,
        "Lower voltage cut-off [V]": p.lower_cutoff_V,
        "Upper voltage cut-off [V]": q.sn_desodiated_potential_V + 1.0,
        "Open-circuit voltage at 0% SOC [V]": p.lower_cutoff_V,
        "Open-circuit voltage at 100% SOC [V]": q.sodiation_start_potential_V,
        "Reference temperature [K]": reference_K,
        "Ambient temperature [K]": "[input]",
        "Initial temperature [K]": "[input]",
        # Na metal counter electrode
        "Negative electrode thickness [m]": q.sodium_metal_thickness_um * 1e-6,
        "Negative electrode conductivity [S.m-1]": q.sodium_metal_conductivity_S_per_m,
        "Negative electrode OCP [V]": 0.0,
        "Exchange-current density for lithium metal electrode [A.m-2]": sodium_exchange_current,
        "Lithium metal partial molar volume [m3.mol-1]": q.sodium_metal_molar_volume_m3_per_mol,
        "Negative electrode charge transfer coefficient": alpha,
        # separator and electrolyte (Chayambuka2022's NaPF6 as a stand-in)
        "Separator thickness [m]": q.separator_thickness_um * 1e-6,
        "Separator porosity": q.separator_porosity,
        "Separator Bruggeman coefficient (electrolyte)": q.bruggeman_exponent,
        "Initial concentration in electrolyte [mol.m-3]": c_e0,
        "Cation transference number": q.cation_transference_number,
        "Thermodynamic factor": 1.0,
        "Electrolyte diffusivity [m2.s-1]": chayambuka.electrolyte_diffusivity_Chayambuka2022,
        "Electrolyte conductivity [S.m-1]": chayambuka.electrolyte_conductivity_Chayambuka2022,
        # the Sn/HC electrode
        "Positive electrode thickness [m]": q.electrode_thickness_um * 1e-6,
        "Positive electrode porosity": q.electrode_porosity,
        "Positive electrode conductivity [S.m-1]": q.electrode_conductivity_S_per_m,
        "Positive electrode Bruggeman coefficient (electrolyte)": q.bruggeman_exponent,
        "Positive electrode Bruggeman coefficient (electrode)": 0.0,  # the conductivity above is already effective
        # primary phase: hard carbon
        "Primary: Maximum concentration in positive electrode [mol.m-3]": hc_c_max,
        "Primary: Initial concentration in positive electrode [mol.m-3]": "[input]",
        "Primary: Positive electrode active material volume fraction": "[input]",
        "Primary: Positive particle radius [m]": hc_radius_m,
        "Primary: Positive electrode OCP [V]": hc_ocp,
        "Primary: Positive electrode OCP entropic change [V.K-1]": 0.0,
        "Primary: Positive particle diffusivity [m2.s-1]": hc_diffusivity,
        "Primary: Positive electrode exchange-current density [A.m-2]": hc_exchange_current,
        "Primary: Positive electrode charge transfer coefficient": alpha,
        "Primary: Positive electrode Young's modulus [Pa]": q.hc_young_modulus_GPa * 1e9,
        "Primary: Positive electrode Poisson's ratio": q.hc_poisson_ratio,
        "Primary: Positive electrode partial molar volume [m3.mol-1]": hc_full_volume_change / hc_c_max,
        "Primary: Positive electrode reference concentration for free of deformation [mol.m-3]": 0.0,
        "Primary: Positive electrode volume change": hc_volume_change,
        # secondary phase: tin
        "Secondary: Maximum concentration in positive electrode [mol.m-3]": sn_c_max,
        "Secondary: Initial concentration in positive electrode [mol.m-3]": "[input]",
        "Secondary: Positive electrode active material volume fraction": "[input]",
        "Secondary: Positive particle radius [m]": sn_radius_m,
        "Secondary: Positive electrode OCP [V]": sn_ocp,
        "Secondary: Positive electrode OCP entropic change [V.K-1]": 0.0,
        "Secondary: Positive particle diffusivity [m2.s-1]": sn_diffusivity,
        "Secondary: Positive electrode exchange-current density [A.m-2]": sn_exchange_current,
        "Secondary: Positive electrode charge transfer coefficient": alpha,
        "Secondary: Positive electrode Young's modulus [Pa]": q.sn_young_modulus_GPa * 1e9,
        "Secondary: Positive electrode Poisson's ratio": q.sn_poisson_ratio,
        "Secondary: Positive electrode partial molar volume [m3.mol-1]": sn_partial_molar_volume,
        "Secondary: Positive electrode reference concentration for free of deformation [mol.m-3]": 0.0,
        "Secondary: Positive electrode volume change": sn_volume_change,
    }
    return pybamm.ParameterValues(values)


def model_options() -> dict:
    """PyBaMM options: Na half cell, two particle phases (HC, Sn), lumped contact resistance, swelling output."""
    return {
        "working electrode": "positive",
        "particle phases": ("1", "2"),
        "contact resistance": "true",
        "particle mechanics": "swelling only",
        "stress-induced diffusion": "false",
    }


@dataclass
class _Built:
    """A built simulation and the geometry it was built for."""

    simulation: pybamm.Simulation
    sn_radius_m: float
    hc_radius_m: float
    sn_initial_stoichiometry: float
    hc_initial_stoichiometry: float


_local = threading.local()
_build_lock = threading.Lock()  # PyBaMM's model processing is not known to be thread-safe: one build at a time
_builds = 0


def build_count() -> int:
    """Simulations built in this process so far (all threads): shows how well batches share builds."""
    return _builds


def clear_simulation_cache() -> None:
    """Forget this thread's built simulations (the next evaluation rebuilds)."""
    _local.simulations = OrderedDict()


def _build_key(sn_radius_m: float, hc_radius_m: float, p: ModelParameters, q: ModelParameters) -> tuple:
    static = json.dumps({"q": q.digest(exclude_tag="fitted"), "p": {n: p[n].value for n in _BUILD_PARAMETERS}},
                        sort_keys=True)
    return (float(sn_radius_m), float(hc_radius_m), hashlib.sha256(static.encode()).hexdigest())


def _simulation(sn_radius_m: float, hc_radius_m: float, p: ModelParameters, q: ModelParameters) -> _Built:
    """This thread's simulation for a pair of (rounded) radii, built on first use (least recently used evicted)."""
    global _builds
    cache = getattr(_local, "simulations", None)
    if cache is None:
        cache = _local.simulations = OrderedDict()
    key = _build_key(sn_radius_m, hc_radius_m, p, q)
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    if q.pybamm_model not in MODEL_CLASSES:
        raise ValueError(f"physics_parameters.pybamm_model={q.pybamm_model!r}: expected one of {MODEL_CLASSES}")
    with _build_lock:
        model = getattr(pybamm.lithium_ion, q.pybamm_model)(model_options())
        points = dict(model.default_var_pts)
        points.update({"x_s": int(q.electrolyte_mesh_points), "x_p": int(q.electrolyte_mesh_points),
                       "r_p_prim": int(q.particle_mesh_points), "r_p_sec": int(q.particle_mesh_points)})
        solver = pybamm.IDAKLUSolver(rtol=q.solver_relative_tolerance, atol=q.solver_absolute_tolerance,
                                     output_variables=list(_OUTPUT_VARIABLES),
                                     options={"num_threads": int(q.solver_threads),
                                              "silence_sundials_errors": True})  # failures go into the results
        simulation = pybamm.Simulation(model, solver=solver, var_pts=points,
                                       parameter_values=_pybamm_parameter_values(sn_radius_m, hc_radius_m, p, q))
        simulation.build()
        _builds += 1
    sn_initial, hc_initial = initial_stoichiometries(p, q)
    cache[key] = built = _Built(simulation, float(sn_radius_m), float(hc_radius_m), sn_initial, hc_initial)
    while len(cache) > int(q.simulation_cache_size):
        cache.popitem(last=False)
    return built


# --- results -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PhysicsResult:
    """Rate capability of one recipe from the PyBaMM model.

    Arrays are per current (same order as ``currents_A_per_g``); capacities are per g of active material. A current
    whose discharge failed has NaN values and its reason in ``reason``; then ``status`` is ``"FAILED"``.
    """

    status: str  # "OK" or "FAILED"
    reason: str  # "" when OK
    currents_A_per_g: tuple[float, ...]
    capacity_mAh_per_g: np.ndarray  # sodiation capacity down to the cut-off (the reversible capacity here)
    sn_capacity_mAh_per_g: np.ndarray  # the Sn phase's part
    hc_capacity_mAh_per_g: np.ndarray  # the HC phase's part
    sn_swelling_pct: np.ndarray  # Sn-phase volume change at the end of sodiation, vs Na-free Sn
    electrode_thickness_change_pct: np.ndarray  # PyBaMM's thickness change over the sodiation, no pore buffering
    termination: tuple[str, ...]  # why each discharge stopped
    theoretical_capacity_mAh_per_g: float
    sn_radius_m: float  # radii from the milling model (the build used the rounded ones)
    hc_radius_m: float
    failed_currents_A_per_g: tuple[float, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def capacity_by_current(self) -> dict[float, float]:
        """current (A/g) -> capacity (mAh/g)."""
        return {c: float(v) for c, v in zip(self.currents_A_per_g, self.capacity_mAh_per_g)}

    def record(self) -> dict:
        """JSON-ready view."""
        def listed(values):
            return [None if not np.isfinite(v) else float(v) for v in values]

        return {
            "status": self.status, "reason": self.reason,
            "currents_A_per_g": list(self.currents_A_per_g),
            "capacity_mAh_per_g": listed(self.capacity_mAh_per_g),
            "sn_capacity_mAh_per_g": listed(self.sn_capacity_mAh_per_g),
            "hc_capacity_mAh_per_g": listed(self.hc_capacity_mAh_per_g),
            "sn_swelling_pct": listed(self.sn_swelling_pct),
            "electrode_thickness_change_pct": listed(self.electrode_thickness_change_pct),
            "termination": list(self.termination),
        }


@dataclass
class _Outcome:
    """One discharge: capacity and outputs, or a failure reason."""

    capacity_mAh_per_g: float = np.nan
    sn_mAh_per_g: float = np.nan
    hc_mAh_per_g: float = np.nan
    sn_swelling_pct: float = np.nan
    thickness_change_pct: float = np.nan
    termination: str = ""
    failure: str = ""


def _discharge_inputs(design: ElectrodeDesign, i: int, current_A_per_g: float, built: _Built) -> dict:
    sn_c_max = built.simulation.parameter_values["Secondary: Maximum concentration in positive electrode [mol.m-3]"]
    hc_c_max = built.simulation.parameter_values["Primary: Maximum concentration in positive electrode [mol.m-3]"]
    # Exact similarity rescaling from the true radius to the built one: D ~ R^2, j0 ~ R.
    sn_ratio = built.sn_radius_m / design.sn_radius_m[i]
    hc_ratio = built.hc_radius_m / design.hc_radius_m[i]
    return {
        _CURRENT: current_A_per_g * design.active_mass_g_per_m2[i],
        _CONTACT: design.contact_resistance_ohm_m2[i],
        _TEMPERATURE: design.temperature_K,
        _INITIAL_TEMPERATURE: design.temperature_K,
        _HC_FRACTION: design.hc_volume_fraction[i],
        _SN_FRACTION: design.sn_volume_fraction[i],
        _HC_INITIAL: built.hc_initial_stoichiometry * hc_c_max,
        _SN_INITIAL: built.sn_initial_stoichiometry * sn_c_max,
        _SN_DIFFUSIVITY: design.sn_diffusivity_m2_per_s[i] * sn_ratio**2,
        _SN_EXCHANGE: design.sn_exchange_current_A_per_m2[i] * sn_ratio,
        _HC_DIFFUSIVITY_FACTOR: design.hc_diffusivity_factor[i] * hc_ratio**2,
        _HC_EXCHANGE_FACTOR: design.hc_exchange_current_factor[i] * hc_ratio,
    }


def _time_limit_s(design: ElectrodeDesign, i: int, current_A_per_g: float, q: ModelParameters) -> float:
    return q.time_limit_factor * 3.6 * design.theoretical_capacity_mAh_per_g[i] / current_A_per_g


def _read_outcome(solution, design: ElectrodeDesign, i: int, current_A_per_g: float, built: _Built,
                  p: ModelParameters, q: ModelParameters) -> _Outcome:
    """Capacity and outputs of one solved discharge, or why it does not count."""
    termination = str(getattr(solution, "termination", ""))
    if "event" not in termination:
        return _Outcome(termination=termination, failure=(
            f"did not reach the {p.lower_cutoff_V:g} V cut-off within {q.time_limit_factor:g}x the theoretical "
            f"discharge time ({termination or 'no termination reported'})"))
    end_s = float(solution.t[-1])
    capacity = current_A_per_g * end_s / 3.6  # constant current: Q = I t
    sn_c_max, hc_c_max = max_concentrations_mol_per_m3(p)
    area_to_gram = q.electrode_thickness_um * 1e-6 * FARADAY_C_PER_MOL / 3.6 / design.active_mass_g_per_m2[i]
    sn_sto = float(solution[_SN_STOICHIOMETRY].entries[-1])
    hc_sto = float(solution[_HC_STOICHIOMETRY].entries[-1])
    sn_part = (sn_sto - built.sn_initial_stoichiometry) * sn_c_max * design.sn_volume_fraction[i] * area_to_gram
    hc_part = (hc_sto - built.hc_initial_stoichiometry) * hc_c_max * design.hc_volume_fraction[i] * area_to_gram
    swelling = 300.0 * float(solution[_SN_DISPLACEMENT].entries[-1]) / built.sn_radius_m
    thickness = 100.0 * float(solution[_THICKNESS_CHANGE].entries[-1]) / (q.electrode_thickness_um * 1e-6)
    values = np.array([capacity, sn_part, hc_part, swelling, thickness])
    if not np.all(np.isfinite(values)):
        return _Outcome(termination=termination, failure="the solution contains non-finite values")
    minimum = q.failed_capacity_fraction * design.theoretical_capacity_mAh_per_g[i]
    if capacity < minimum:
        return _Outcome(capacity, sn_part, hc_part, swelling, thickness, termination, failure=(
            f"reached the {p.lower_cutoff_V:g} V cut-off after only {capacity:.3g} mAh/g (< "
            f"{100 * q.failed_capacity_fraction:g} % of theoretical): the current is beyond what the electrode carries"))
    return _Outcome(capacity, sn_part, hc_part, swelling, thickness, termination)


def _describe(error: Exception) -> str:
    """One-line reason for a failed solve; PyBaMM's long dump of the inputs is left out."""
    text = " ".join(str(error).split())
    text = re.sub(r" with inputs \{.*", "", text)
    if "non-positive at initial conditions" in text:
        return f"the voltage is below the cut-off from the start: the current is beyond what the electrode carries " \
               f"({type(error).__name__}: {text[:200]})"
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


def _solve_jobs(built: _Built, jobs: list[tuple[int, float]], design: ElectrodeDesign, p: ModelParameters,
                q: ModelParameters) -> dict[tuple[int, float], _Outcome]:
    """Solve the discharges that share one build: one multi-input IDAKLU call, then one by one if that fails."""
    inputs = [_discharge_inputs(design, i, current, built) for i, current in jobs]
    limits = [_time_limit_s(design, i, current, q) for i, current in jobs]
    outcomes: dict[tuple[int, float], _Outcome] = {}
    try:
        end = max(limits)
        solutions = built.simulation.solve([0.0, end], inputs=inputs, t_interp=np.array([0.0, end]))
        solutions = solutions if isinstance(solutions, list) else [solutions]
        for job, solution, limit in zip(jobs, solutions, limits):
            outcome = _read_outcome(solution, design, job[0], job[1], built, p, q)
            if not outcome.failure and solution.t[-1] > limit:
                outcome = _Outcome(termination=outcome.termination, failure=(
                    f"did not reach the {p.lower_cutoff_V:g} V cut-off within {q.time_limit_factor:g}x the "
                    "theoretical discharge time"))
            outcomes[job] = outcome
        return outcomes
    except Exception:  # noqa: BLE001 - one bad discharge fails the joint call: isolate it below
        pass
    for job, single, limit in zip(jobs, inputs, limits):
        try:
            solution = built.simulation.solve([0.0, limit], inputs=single, t_interp=np.array([0.0, limit]))
            outcomes[job] = _read_outcome(solution, design, job[0], job[1], built, p, q)
        except Exception as error:  # noqa: BLE001 - a failed solve is a result, never an exception to the caller
            outcomes[job] = _Outcome(termination="solver error", failure=_describe(error))
    return outcomes


def evaluate_physics(recipes: Recipes, currents_A_per_g: Sequence[float], p: ModelParameters,
                     temperature_C: float = 25.0,
                     physics_parameters: ModelParameters | None = None) -> list[PhysicsResult]:
    """Reversible capacity vs current of each recipe from the PyBaMM half-cell model.

    Parameters
    ----------
    recipes
        A batch of recipes; recipes whose rounded particle radii coincide share one built simulation.
    currents_A_per_g
        Galvanostatic sodiation currents per g of active material.
    p
        The surrogate's model parameters with fitted values (``surrogate.calibration.calibrated_parameters()``).
    temperature_C
        Cell temperature (Arrhenius factors on exchange currents and diffusivities).
    physics_parameters
        Parameters of this model; by default ``configs/physics_parameters.yaml`` with the values fitted by
        :func:`fit_physics` (cached).

    Returns
    -------
    list of PhysicsResult
        One per recipe, in order. Never raises for a failed solve: the result is ``FAILED`` with the reason.
    """
    q = physics_parameters if physics_parameters is not None else calibrated_physics_parameters(p)
    currents = tuple(float(c) for c in currents_A_per_g)
    n = recipes.size
    results: list[PhysicsResult | None] = [None] * n
    try:
        if not currents or any(not np.isfinite(c) or c <= 0 for c in currents):
            raise ValueError(f"currents must be positive and finite, got {list(currents)}")
        design = electrode_design(recipes, p, q, temperature_C)
        points = q.radius_grid_points_per_decade
        sn_built = rounded_radius_m(design.sn_radius_m, points)
        hc_built = rounded_radius_m(design.hc_radius_m, points)
    except Exception as error:  # noqa: BLE001
        return [_failed_result(currents, f"cannot set up the model: {_describe(error)}") for _ in range(n)]

    outcomes: dict[tuple[int, float], _Outcome] = {}
    groups: dict[tuple[float, float], list[int]] = {}
    for i in range(n):
        groups.setdefault((float(sn_built[i]), float(hc_built[i])), []).append(i)
    for (sn_radius, hc_radius), members in groups.items():
        try:
            built = _simulation(sn_radius, hc_radius, p, q)
        except Exception as error:  # noqa: BLE001
            for i in members:
                results[i] = _failed_result(currents, f"cannot build the PyBaMM model: {_describe(error)}",
                                            design, i)
            continue
        outcomes.update(_solve_jobs(built, [(i, c) for i in members for c in currents], design, p, q))

    for i in range(n):
        if results[i] is None:
            results[i] = _result(currents, [outcomes[(i, c)] for c in currents], design, i)
    return results


def _result(currents, outcomes: list[_Outcome], design: ElectrodeDesign, i: int) -> PhysicsResult:
    failed = [(c, o.failure) for c, o in zip(currents, outcomes) if o.failure]
    reason = "; ".join(f"{c:g} A/g: {why}" for c, why in failed)

    def column(name):
        return np.array([np.nan if o.failure else getattr(o, name) for o in outcomes], dtype=float)

    swelling = column("sn_swelling_pct")
    if design.sn_mass_fraction[i] <= 0.0:
        swelling[:] = np.nan  # only the negligible placeholder Sn phase swells: nothing to report

    return PhysicsResult(
        status=STATUS_FAILED if failed else STATUS_OK, reason=reason, currents_A_per_g=tuple(currents),
        capacity_mAh_per_g=column("capacity_mAh_per_g"), sn_capacity_mAh_per_g=column("sn_mAh_per_g"),
        hc_capacity_mAh_per_g=column("hc_mAh_per_g"), sn_swelling_pct=swelling,
        electrode_thickness_change_pct=column("thickness_change_pct"),
        termination=tuple(o.termination for o in outcomes),
        theoretical_capacity_mAh_per_g=float(design.theoretical_capacity_mAh_per_g[i]),
        sn_radius_m=float(design.sn_radius_m[i]), hc_radius_m=float(design.hc_radius_m[i]),
        failed_currents_A_per_g=tuple(c for c, _ in failed))


def _failed_result(currents, reason: str, design: ElectrodeDesign | None = None, i: int = 0) -> PhysicsResult:
    nan = np.full(len(currents), np.nan)
    return PhysicsResult(
        status=STATUS_FAILED, reason=reason, currents_A_per_g=tuple(currents), capacity_mAh_per_g=nan,
        sn_capacity_mAh_per_g=nan.copy(), hc_capacity_mAh_per_g=nan.copy(), sn_swelling_pct=nan.copy(),
        electrode_thickness_change_pct=nan.copy(), termination=("not solved",) * len(currents),
        theoretical_capacity_mAh_per_g=float(design.theoretical_capacity_mAh_per_g[i]) if design else np.nan,
        sn_radius_m=float(design.sn_radius_m[i]) if design else np.nan,
        hc_radius_m=float(design.hc_radius_m[i]) if design else np.nan,
        failed_currents_A_per_g=tuple(currents))


# --- calibration ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PhysicsCalibration:
    """The physics model's fit: fitted values, a residual table and the digests that identify what it was fitted to."""

    fitted_values: dict[str, float]
    report: pd.DataFrame  # current_A_per_g, measured/model capacity (mAh/g), residual (mAh/g and %)
    data_sha256: str
    parameters_sha256: str

    @property
    def mape_pct(self) -> float:
        """Mean absolute percentage error over the rate points."""
        return float(self.report["residual_pct"].abs().mean())

    def apply(self, q: ModelParameters) -> ModelParameters:
        return q.with_values(**self.fitted_values)

    def report_text(self) -> str:
        lines = [self.report.to_string(index=False, float_format=lambda v: f"{v:.4g}"), "",
                 f"MAPE {self.mape_pct:.2f} %", "fitted physics parameters:"]
        lines += [f"  {name} = {value:.6g}" for name, value in self.fitted_values.items()]
        return "\n".join(lines)


def rate_observations(data_path: str | Path | None = None) -> pd.DataFrame:
    """Sn@HC-2-1's rate-capability rows of the calibration data (current, capacity, sigma)."""
    from surrogate.calibration import default_data_path

    data = _file_stamp(Path(data_path or default_data_path()))
    return _rate_observations(data, _file_stamp(config_dir() / "materials.yaml")).copy()


@functools.lru_cache(maxsize=8)
def _rate_observations(data: tuple[str, int, int], materials: tuple[str, int, int]) -> pd.DataFrame:
    from surrogate.calibration import load_observations

    table = load_observations(data[0])
    rows = table[(table["material"] == CALIBRATION_MATERIAL)
                 & (table["quantity"] == "capacity_at_current_mAh_per_g") & table["fit"]]
    return rows[["current_A_per_g", "value", "sigma_pct"]].sort_values("current_A_per_g").reset_index(drop=True)


def _digests(p: ModelParameters, q: ModelParameters, observations: pd.DataFrame) -> tuple[str, str]:
    data = hashlib.sha256(observations.to_json(orient="records").encode()).hexdigest()
    parameters = hashlib.sha256((p.digest() + q.digest(exclude_tag="fitted")).encode()).hexdigest()
    return data, parameters


def _calibration_material() -> Recipes:
    from surrogate.recipe import load_materials

    return load_materials(config_dir() / "materials.yaml")[CALIBRATION_MATERIAL]


def _rate_report(p: ModelParameters, q: ModelParameters, observations: pd.DataFrame) -> pd.DataFrame:
    currents = observations["current_A_per_g"].to_numpy(float)
    result = evaluate_physics(_calibration_material(), currents, p, physics_parameters=q)[0]
    report = pd.DataFrame({"current_A_per_g": currents,
                           "measured_mAh_per_g": observations["value"].to_numpy(float),
                           "model_mAh_per_g": result.capacity_mAh_per_g})
    report["residual_mAh_per_g"] = report["model_mAh_per_g"] - report["measured_mAh_per_g"]
    report["residual_pct"] = 100.0 * report["residual_mAh_per_g"] / report["measured_mAh_per_g"]
    return report


def fit_physics(p: ModelParameters | None = None, physics_parameters: ModelParameters | None = None,
                data_path: str | Path | None = None, refit: bool = False) -> PhysicsCalibration:
    """Fit the physics model's 'fitted' parameters to Sn@HC-2-1's rate data by least squares, with a cache.

    Residuals are (model - measured) / (sigma_pct x measured), as in :mod:`surrogate.calibration`. A failed
    discharge counts as zero capacity: a large, finite residual, so the optimiser steers away instead of crashing.
    The fit is cached as JSON in :func:`surrogate.paths.cache_dir`, keyed on the SHA-256 of the rate data and of
    every parameter value it depends on (all of ``p``, the non-fitted ones of the physics parameters).

    Parameters
    ----------
    p
        The surrogate's parameters with fitted values; default ``calibrated_parameters()``.
    physics_parameters
        Default ``configs/physics_parameters.yaml``; its 'fitted' values are the starting guess.
    data_path
        Calibration data (default ``configs/calibration/li2025.yaml``).
    refit
        Fit even if a cached fit exists.
    """
    from surrogate.calibration import calibrated_parameters

    p = p if p is not None else calibrated_parameters()
    q = physics_parameters if physics_parameters is not None else load_physics_parameters()
    observations = rate_observations(data_path)
    fitted, data_sha, parameters_sha = _fitted_values(p, q, observations, refit)
    report = _rate_report(p, q.with_values(**fitted), observations)
    return PhysicsCalibration(fitted, report, data_sha, parameters_sha)


_fits_in_memory: dict[tuple[Path, str], dict[str, float]] = {}  # skips re-reading the JSON on every evaluation


def _fitted_values(p: ModelParameters, q: ModelParameters, observations: pd.DataFrame,
                   refit: bool = False) -> tuple[dict[str, float], str, str]:
    """Fitted values from the cache, or from a new fit that is then cached."""
    data_sha, parameters_sha = _digests(p, q, observations)
    key = hashlib.sha256((data_sha + parameters_sha).encode()).hexdigest()[:20]
    cache_file = cache_dir() / f"physics-calibration-{key}.json"
    if not refit and (cache_file, key) in _fits_in_memory:
        return dict(_fits_in_memory[(cache_file, key)]), data_sha, parameters_sha
    if cache_file.exists() and not refit:
        fitted = json.loads(cache_file.read_text(encoding="utf-8"))["fitted_values"]
        _fits_in_memory[(cache_file, key)] = dict(fitted)
        return fitted, data_sha, parameters_sha
    fitted = _least_squares(p, q, observations)
    _fits_in_memory[(cache_file, key)] = dict(fitted)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache_file.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps({"data_sha256": data_sha, "parameters_sha256": parameters_sha,
                                     "fitted_values": fitted}, indent=2), encoding="utf-8")
    temporary.replace(cache_file)  # atomic: a reader never sees half a file
    return fitted, data_sha, parameters_sha


def _least_squares(p: ModelParameters, q: ModelParameters, observations: pd.DataFrame) -> dict[str, float]:
    """Grid search over the fitted parameters' box, then trust-region least squares from the best grid point.

    The grid is needed because plateau drop-out makes capacity a steep function of polarisation: started on the
    wrong side of a drop, a local method stalls. Parameters are mapped onto [0, 1] (log scale for ranges of 50x or
    more), so finite-difference steps are a fixed share of each range.
    """
    names = q.names("fitted")
    if not names:
        return {}
    bounds = np.array([q[n].bounds for n in names], dtype=float)
    logarithmic = (bounds[:, 0] > 0) & (bounds[:, 1] / np.maximum(bounds[:, 0], 1e-300) >= 50)
    low = np.where(logarithmic, np.log10(np.maximum(bounds[:, 0], 1e-300)), bounds[:, 0])
    span = np.where(logarithmic, np.log10(np.maximum(bounds[:, 1], 1e-300)), bounds[:, 1]) - low

    def to_values(x):
        scaled = low + np.clip(x, 0.0, 1.0) * span
        return np.clip(np.where(logarithmic, 10.0**scaled, scaled), bounds[:, 0], bounds[:, 1])

    measured = observations["value"].to_numpy(float)
    sigma = observations["sigma_pct"].to_numpy(float) / 100.0 * measured
    currents = observations["current_A_per_g"].to_numpy(float)
    material = _calibration_material()

    def residuals(x):
        trial = q.with_values(**dict(zip(names, to_values(x).tolist())))
        model = evaluate_physics(material, currents, p, physics_parameters=trial)[0].capacity_mAh_per_g
        return (np.nan_to_num(model, nan=0.0) - measured) / sigma

    grid = np.linspace(0.0, 1.0, int(q.fit_grid_points_per_parameter))
    candidates = [np.array(point) for point in itertools.product(grid, repeat=len(names))]
    start = min(candidates, key=lambda x: float(np.sum(residuals(x) ** 2)))
    # Finite-difference steps of 0.5 % of each range: well above the ODE solver's tolerance, below a plateau's drop.
    solution = least_squares(residuals, start, bounds=(0.0, 1.0), x_scale=1.0, diff_step=5e-3, max_nfev=200)
    best = solution.x if solution.cost <= 0.5 * np.sum(residuals(start) ** 2) else start
    return dict(zip(names, to_values(best).tolist()))


def calibrated_physics_parameters(p: ModelParameters | None = None,
                                  physics_parameters: ModelParameters | None = None,
                                  data_path: str | Path | None = None) -> ModelParameters:
    """Physics parameters with the fitted values filled in (fits once, then reads the cache)."""
    from surrogate.calibration import calibrated_parameters

    p = p if p is not None else calibrated_parameters()
    q = physics_parameters if physics_parameters is not None else load_physics_parameters()
    fitted, _, _ = _fitted_values(p, q, rate_observations(data_path))
    return q.with_values(**fitted)
