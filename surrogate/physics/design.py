"""From recipes to the PyBaMM model's physical inputs: radii, volume fractions, active mass per area, diffusivities
and exchange currents (pure numpy, no PyBaMM objects)."""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")  # before pybamm is imported

import numpy as np
from pybamm.input.parameters.sodium_ion import Chayambuka2022 as chayambuka

from surrogate.composition import theoretical_capacity_mAh_per_g
from surrogate.kinetics import FARADAY_C_PER_MOL, arrhenius_factor, exchange_currents, kelvin
from surrogate.milling import microstructure, sn_volume_fraction
from surrogate.parameters import ModelParameters
from surrogate.recipe import Recipes

from surrogate.physics.ocp import _chayambuka_table

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
    # The utilisation is the Sn that formation has disconnected (the surrogate's mechanical loss hits Sn only);
    # hard carbon hardly swells and stays connected.
    connected = powder * (1.0 - micro.inactive_mass_fraction)
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
        sn_volume_fraction=np.maximum(connected * v_sn * q.capacity_utilisation, floor),
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
