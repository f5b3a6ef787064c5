"""Ball milling -> microstructure of the Sn/HC composite (science.md 3.4 and 3.7).

Time, speed and ball-to-powder ratio (BPR) act differently on what the powder experiences. Every quantity is
expressed relative to an assumed reference condition (reference_milling_*), so the unknown mill constants drop out:

- **energy per impact** ~ ball mass x v^2 ~ rpm^2 (Burgio 1991). HC fracture and HC amorphisation need an energy per
  impact above a threshold: many gentle impacts are not worth fewer hard ones;
- **impact count** ~ BPR x (time actually milled) x rpm, where the time milled is ``pause_duty_cycle`` x
  ``milling_time_h`` (pauses occupy the mill but deliver nothing);
- **dose** = impacts x energy per impact ~ BPR x t x rpm^3: it still drives the smearing of soft Sn onto carbon
  (comminution of Sn and carbon coverage), which needs no threshold;
- **vial temperature** rises with the mean milling power ~ BPR x rpm^3 x duty cycle towards a steady state. Cold
  welding of Sn (melts at 232 C) is thermally activated (Arrhenius in the vial temperature) and grows with dose,
  with a steep onset (fracture wins at low dose) that saturates at a largest agglomerate size. Welded Sn loses
  its carbon contact, so over-milling unties Sn from the network;
- **wear debris** (Archard: load x sliding distance) ~ BPR x t x rpm^2, and **oxide** growing parabolically with
  the time milled, faster in air than under argon: both are inactive mass.

At the reference condition under argon without pauses every descriptor except the small welding contact loss equals
that of the plain dose model (the study's composites sit there, configs/materials.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surrogate.parameters import ModelParameters
from surrogate.recipe import Recipes

GAS_CONSTANT_J_PER_MOL_K = 8.314462618
CELSIUS_TO_KELVIN = 273.15


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
    impact_energy_relative: np.ndarray  # energy per impact / reference (~ rpm^2)
    impact_count_relative: np.ndarray  # impacts / reference (~ BPR x t_milled x rpm)
    vial_temperature_C: np.ndarray  # mean vial temperature while milling
    sn_welding: np.ndarray  # relative growth of Sn agglomerates by cold welding (before carbon protection)
    wear_debris_mass_fraction: np.ndarray
    oxide_mass_fraction: np.ndarray


def milled_time_h(recipes: Recipes) -> np.ndarray:
    """Time the mill actually runs: the duty cycle's share of the milling time (pauses deliver no impacts)."""
    return recipes.milling_time_h * recipes.pause_duty_cycle


def impact_energy_relative(recipes: Recipes, p: ModelParameters) -> np.ndarray:
    """Energy per impact relative to the reference: ball mass x v^2 with v ~ rpm, so (rpm / rpm_ref)^2."""
    return (recipes.milling_speed_rpm / p.reference_milling_speed_rpm) ** 2


def impact_count_relative(recipes: Recipes, p: ModelParameters) -> np.ndarray:
    """Impacts relative to the reference: number of balls (~ BPR) x time milled x impact frequency (~ rpm)."""
    return ((recipes.ball_to_powder_ratio / p.reference_ball_to_powder_ratio)
            * (milled_time_h(recipes) / p.reference_milling_time_h)
            * (recipes.milling_speed_rpm / p.reference_milling_speed_rpm))


# The dose's power law, BPR^1 t^1 rpm^3: impacts (BPR t rpm) x energy per impact (rpm^2). milling_dose is written
# out below for reading; tests/surrogate/test_milling.py checks that it scales with these exponents, which the
# optimiser's dose axis (flows.search.dose_features) takes from here.
DOSE_EXPONENTS = {"milling_time_h": 1.0, "milling_speed_rpm": 3.0, "ball_to_powder_ratio": 1.0}


def milling_dose(recipes: Recipes, p: ModelParameters) -> np.ndarray:
    """Dimensionless dose BPR x t_milled x rpm^3 relative to the reference condition (0 for unmilled powders)."""
    return impact_count_relative(recipes, p) * impact_energy_relative(recipes, p)


def _above_threshold(energy: np.ndarray, threshold: float, width: float) -> np.ndarray:
    """Effective energy per impact for a process with a threshold: energy x logistic((E - E_th) / width)."""
    return energy / (1.0 + np.exp(-(energy - threshold) / width))


def threshold_exposure(recipes: Recipes, p: ModelParameters, threshold: float, width: float) -> np.ndarray:
    """Impacts x effective energy above a threshold, relative to the reference (1 there; the dose far above it)."""
    energy = impact_energy_relative(recipes, p)
    return impact_count_relative(recipes, p) * _above_threshold(energy, threshold, width) / _above_threshold(
        np.float64(1.0), threshold, width)


def vial_temperature_C(recipes: Recipes, p: ModelParameters) -> np.ndarray:
    """Mean vial temperature while milling, C.

    The steady rise grows with the mean milling power (BPR x rpm^3 x duty cycle) to a power below one (heat losses
    grow with temperature), approached with a thermal time constant: a short run never gets hot.
    """
    power = ((recipes.ball_to_powder_ratio / p.reference_ball_to_powder_ratio)
             * (recipes.milling_speed_rpm / p.reference_milling_speed_rpm) ** 3 * recipes.pause_duty_cycle)
    steady_rise = p.vial_temperature_rise_at_reference_C * power ** p.vial_temperature_power_exponent
    return p.ambient_temperature_C + steady_rise * _warm_up(recipes.milling_time_h, p)


def _warm_up(time_h, p: ModelParameters):
    """Mean of 1 - exp(-t / tau) over a run of length t (0 for an unmilled powder)."""
    time_h, tau = np.broadcast_arrays(np.asarray(time_h, dtype=float),
                                      np.asarray(p.vial_thermal_time_constant_h, dtype=float))  # tau per member
    ratio = np.divide(tau, time_h, out=np.zeros(time_h.shape), where=time_h > 0)
    return np.where(time_h > 0, 1.0 - ratio * (1.0 - np.exp(-time_h / tau)), 0.0)


def _reference_vial_temperature_C(p: ModelParameters):
    rise = p.vial_temperature_rise_at_reference_C * _warm_up(p.reference_milling_time_h, p)
    return p.ambient_temperature_C + rise


def welding_activation(temperature_C: np.ndarray, p: ModelParameters) -> np.ndarray:
    """Arrhenius factor of Sn cold welding relative to the reference vial temperature (molten Sn: capped there)."""
    kelvin = np.minimum(temperature_C, p.sn_melting_point_C) + CELSIUS_TO_KELVIN
    reference = _reference_vial_temperature_C(p) + CELSIUS_TO_KELVIN
    return np.exp(p.sn_welding_activation_energy_kJ_per_mol * 1e3 / GAS_CONSTANT_J_PER_MOL_K
                  * (1.0 / reference - 1.0 / kelvin))


def sn_welding(dose: np.ndarray, activation: np.ndarray, p: ModelParameters) -> np.ndarray:
    """Relative growth of Sn agglomerates by cold welding: s_max (1 - exp(-a (dose x activation)^k)), with a set
    so the reference condition welds ``sn_welding_at_reference``; the onset exponent k > 1 says fracture wins over
    welding at low dose (the steady state of the two shifts to welding only once enough energy is stored)."""
    saturation = p.sn_welding_saturation
    with np.errstate(divide="ignore"):  # the reference already saturated (both at a bound): an infinite onset
        onset = -np.log1p(-p.sn_welding_at_reference / saturation)
    exposure = (dose * activation) ** p.sn_welding_onset_exponent
    with np.errstate(invalid="ignore"):  # that infinite onset times an unmilled recipe's zero exposure: no welding
        return saturation * -np.expm1(-np.where(exposure > 0, onset * exposure, 0.0))


def sn_volume_fraction(sn_mass_fraction: np.ndarray, p: ModelParameters) -> np.ndarray:
    """Volume fraction of Sn in the Sn/HC solid from mass fractions and densities."""
    sn_volume = sn_mass_fraction / p.sn_density_g_per_cm3
    hc_volume = (1.0 - sn_mass_fraction) / p.hc_density_g_per_cm3
    return sn_volume / (sn_volume + hc_volume)


def microstructure(recipes: Recipes, p: ModelParameters) -> Microstructure:
    """Microstructure of each recipe after milling."""
    energy = impact_energy_relative(recipes, p)
    impacts = impact_count_relative(recipes, p)
    dose = impacts * energy
    w_sn = recipes.sn_mass_fraction
    w_hc = recipes.hc_mass_fraction

    # Soft Sn is comminuted and smeared by the energy delivered (no threshold); then it cold-welds, thermally
    # activated by the vial temperature; carbon acts as process-control agent.
    sn_fragment_nm = p.sn_limit_size_nm + (p.sn_initial_size_nm - p.sn_limit_size_nm) * np.exp(
        -p.sn_size_dose_constant * dose)
    unprotected_sn = w_sn / np.maximum(w_sn + p.carbon_process_control_strength * w_hc, 1e-12)
    temperature = vial_temperature_C(recipes, p)
    welding = sn_welding(dose, welding_activation(temperature, p), p)
    welded = welding * unprotected_sn
    sn_size_nm = sn_fragment_nm * (1.0 + welded)

    # Hard carbon fractures and amorphises only under impacts above a threshold energy.
    fracture = threshold_exposure(recipes, p, p.hc_fracture_threshold_energy_relative,
                                  p.impact_threshold_width_relative)
    amorphisation = threshold_exposure(recipes, p, p.hc_amorphisation_threshold_energy_relative,
                                       p.impact_threshold_width_relative)
    hc_size_um = p.hc_limit_size_um + (p.hc_initial_size_um - p.hc_limit_size_um) * np.exp(
        -p.hc_size_dose_constant * fracture)
    hc_amorphous = 1.0 - np.exp(-p.hc_amorphisation_rate * amorphisation)

    # Inactive mass: Archard wear debris ~ BPR t rpm^2, oxide ~ sqrt(time milled) x atmosphere.
    milled = milled_time_h(recipes) / p.reference_milling_time_h
    debris = p.wear_debris_at_reference * (recipes.ball_to_powder_ratio / p.reference_ball_to_powder_ratio) * milled \
        * (recipes.milling_speed_rpm / p.reference_milling_speed_rpm) ** 2
    atmosphere = np.where(recipes.milling_atmosphere == "air", p.oxidation_air_to_argon_ratio, 1.0)
    oxide = p.oxide_at_reference_argon * atmosphere * milled ** p.oxide_growth_exponent
    inactive = 1.0 - np.exp(-(debris + oxide))  # ~ their sum while small, never above 1

    # Interfaces: carbon coverage of Sn grows with dose and with carbon per Sn, and is lost where Sn welds into
    # agglomerates; they matter only where the Sn-HC contact network percolates (too little Sn leaves islands).
    carbon_per_sn = w_hc / np.maximum(w_sn, 1e-12)
    coverage = (1.0 - np.exp(-p.interface_coverage_constant * dose * carbon_per_sn)) * np.exp(
        -p.welding_contact_loss * welded)
    v_sn = sn_volume_fraction(w_sn, p)
    connectivity = 1.0 / (1.0 + np.exp(-(v_sn - p.sn_percolation_threshold_volume_fraction)
                                       / p.sn_percolation_width_volume_fraction))
    anchoring = coverage * connectivity
    interface_density = w_sn * (p.sn_initial_size_nm / sn_size_nm) * anchoring

    return Microstructure(dose, sn_size_nm, hc_size_um, hc_amorphous, inactive, v_sn, coverage, connectivity,
                          anchoring, interface_density, energy, impacts, temperature, welding, debris, oxide)
