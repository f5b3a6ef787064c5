"""Ball milling -> microstructure of the Sn/HC composite (science.md 3.4).

A Burgio-type dose (energy per impact ~ ball mass x v^2, impact frequency ~ rpm) makes the specific dose scale as
BPR x time x rpm^3. It is expressed relative to an assumed reference condition so the mill constant drops out.
Milling shrinks Sn and fractures HC, smears Sn onto carbon (interfaces), but at high dose cold-welds Sn (damped by
carbon), amorphises HC and adds inactive debris: the origin of an interior optimum in dose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surrogate.parameters import ModelParameters
from surrogate.recipe import Recipes


@dataclass(frozen=True)
class Microstructure:
    """Per-recipe microstructure descriptors (arrays of length N)."""

    milling_dose: np.ndarray  # dimensionless, 1 at the reference condition
    sn_size_nm: np.ndarray
    hc_size_um: np.ndarray
    hc_amorphous_fraction: np.ndarray  # share of HC plateau capacity destroyed
    inactive_mass_fraction: np.ndarray  # wear debris and oxide
    sn_volume_fraction: np.ndarray
    sn_carbon_coverage: np.ndarray  # share of Sn surface in contact with carbon
    sn_network_connectivity: np.ndarray  # percolation of the Sn-HC contact network, 0..1
    sn_anchoring: np.ndarray  # coverage x connectivity: share of Sn tied into the network
    interface_density: np.ndarray  # Sn-HC heterointerface area per g of electrode, relative units


def milling_dose(recipes: Recipes, p: ModelParameters) -> np.ndarray:
    """Dimensionless dose BPR x t x rpm^3 relative to the reference condition (0 for unmilled powders)."""
    return (
        (recipes.ball_to_powder_ratio / p.reference_ball_to_powder_ratio)
        * (recipes.milling_time_h / p.reference_milling_time_h)
        * (recipes.milling_speed_rpm / p.reference_milling_speed_rpm) ** 3
    )


def sn_volume_fraction(sn_mass_fraction: np.ndarray, p: ModelParameters) -> np.ndarray:
    """Volume fraction of Sn in the Sn/HC solid from mass fractions and densities."""
    sn_volume = sn_mass_fraction / p.sn_density_g_per_cm3
    hc_volume = (1.0 - sn_mass_fraction) / p.hc_density_g_per_cm3
    return sn_volume / (sn_volume + hc_volume)


def microstructure(recipes: Recipes, p: ModelParameters) -> Microstructure:
    """Microstructure of each recipe after milling."""
    dose = milling_dose(recipes, p)
    w_sn = recipes.sn_mass_fraction
    w_hc = recipes.hc_mass_fraction

    # Comminution towards a limit size, then cold welding of soft Sn; carbon acts as process-control agent.
    sn_fragment_nm = p.sn_limit_size_nm + (p.sn_initial_size_nm - p.sn_limit_size_nm) * np.exp(
        -p.sn_size_dose_constant * dose)
    unprotected_sn = w_sn / np.maximum(w_sn + p.carbon_process_control_strength * w_hc, 1e-12)
    sn_size_nm = sn_fragment_nm * (1.0 + p.sn_welding_rate * dose**2 * unprotected_sn)
    hc_size_um = p.hc_limit_size_um + (p.hc_initial_size_um - p.hc_limit_size_um) * np.exp(
        -p.hc_size_dose_constant * dose)

    hc_amorphous = 1.0 - np.exp(-p.hc_amorphisation_rate * dose)
    inactive = 1.0 - np.exp(-p.oxide_debris_rate * dose)  # ~ rate x dose while small, never above 1

    # Interfaces: carbon coverage of Sn grows with dose and with carbon per Sn; they matter only where the Sn-HC
    # contact network percolates through the composite (too little Sn leaves isolated islands).
    carbon_per_sn = w_hc / np.maximum(w_sn, 1e-12)
    coverage = 1.0 - np.exp(-p.interface_coverage_constant * dose * carbon_per_sn)
    v_sn = sn_volume_fraction(w_sn, p)
    connectivity = 1.0 / (1.0 + np.exp(-(v_sn - p.sn_percolation_threshold_volume_fraction)
                                       / p.sn_percolation_width_volume_fraction))
    anchoring = coverage * connectivity
    interface_density = w_sn * (p.sn_initial_size_nm / sn_size_nm) * anchoring

    return Microstructure(dose, sn_size_nm, hc_size_um, hc_amorphous, inactive, v_sn, coverage, connectivity,
                          anchoring, interface_density)
