"""Open-circuit potentials of the two phases: a smoothed Na-Sn staircase (from the plateau data) and PyBaMM's
Chayambuka2022 hard carbon, each with the wall that pulls a full particle to the cut-off."""

from __future__ import annotations

import functools
import json
import os

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")  # before pybamm is imported

import numpy as np
from pybamm.input.parameters.sodium_ion import Chayambuka2022 as chayambuka
from scipy.interpolate import PchipInterpolator
from scipy.optimize import brentq
from scipy.special import expit

from surrogate.parameters import ModelParameters

from surrogate.physics.parameters import load_physics_parameters  # noqa: F401 (doctest)

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
