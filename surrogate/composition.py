"""Composition -> theoretical capacity (science.md 2.1): a mass-fraction-weighted sum, exact by construction."""

import numpy as np

from surrogate.parameters import ModelParameters


def theoretical_capacity_mAh_per_g(sn_mass_fraction: np.ndarray, p: ModelParameters) -> np.ndarray:
    """Theoretical capacity of the Sn/HC mixture per g of active material.

    Examples
    --------
    >>> import numpy as np
    >>> from surrogate.parameters import ModelParameters
    >>> round(float(theoretical_capacity_mAh_per_g(np.array(2 / 3), ModelParameters.load())), 1)
    664.7
    """
    w_sn = np.asarray(sn_mass_fraction, dtype=float)
    return w_sn * p.sn_capacity_mAh_per_g + (1.0 - w_sn) * p.hc_capacity_mAh_per_g


def sn_plateau_capacities_mAh_per_g(p: ModelParameters) -> np.ndarray:
    """Capacity of each Na-Sn plateau per g of Sn, from the Na content at each plateau's end."""
    x_end = np.asarray(p.sn_plateau_end_na_per_sn, dtype=float)
    steps = np.diff(np.concatenate([[0.0], x_end]))
    return p.sn_capacity_mAh_per_g * steps / x_end[-1]


def hc_segments(p: ModelParameters) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HC open-circuit potential as segments: potentials (V), capacities (mAh/g of HC), and a pore-filling mask.

    The sloping region is split into equal-capacity steps between its top and bottom potentials; the last segment
    is the low-voltage plateau. Capacities are one row per segment; where the HC's capacity or plateau share is an
    array (one value per recipe, as a parameter ensemble stacks its members), each row holds one value per recipe.
    """
    n = int(p.hc_slope_segments)
    slope_capacity = p.hc_capacity_mAh_per_g * (1.0 - np.asarray(p.hc_plateau_fraction))
    edges = np.linspace(p.hc_slope_top_potential_V, p.hc_slope_bottom_potential_V, n + 1)
    potentials = np.concatenate([0.5 * (edges[:-1] + edges[1:]), [p.hc_plateau_potential_V]])
    capacities = np.stack(np.broadcast_arrays(*[slope_capacity / n] * n,
                                              p.hc_capacity_mAh_per_g * np.asarray(p.hc_plateau_fraction)))
    is_plateau = np.concatenate([np.zeros(n, bool), [True]])
    return potentials, capacities, is_plateau
