"""First-cycle loss and capacity vs cycle number (science.md 3.5).

Q(N) = Q_fresh(I) x SEI(t) x [mechanical retention of the Sn share] x catastrophic survival, with

* SEI growth: loss ~ sqrt(time), so slow cycles age faster per cycle than fast ones;
* mechanical loss: a strain-dependent share of the Sn capacity is vulnerable and is lost along a stretched
  exponential exp(-(N / N_m)^beta); both the share and 1 / N_m grow as (strain / reference)^m;
* catastrophic failure (pulverisation, contact loss, soft shorts) above a critical linear strain.

Cycles count from the cell's first cycle: ``formation_cycles`` at the formation current come before any test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surrogate.parameters import ModelParameters


@dataclass(frozen=True)
class DegradationLaw:
    """Strain-dependent constants of the degradation law for each recipe (arrays of length N)."""

    vulnerable_fraction: np.ndarray
    mechanical_life_cycles: np.ndarray
    catastrophic_life_cycles: np.ndarray


def degradation_law(linear_strain, sn_volume_fraction, p: ModelParameters) -> DegradationLaw:
    """Strain -> vulnerable share, mechanical life N_m and catastrophic life of the Sn phase.

    The catastrophic hazard grows with the volume share of over-strained Sn: an electrode with no Sn cannot fail
    this way, one made of Sn alone fails fastest.
    """
    relative = np.asarray(linear_strain) / p.mechanical_reference_strain
    scaling = relative**p.strain_exponent
    vulnerable = 1.0 - (1.0 - p.vulnerable_fraction_at_reference_strain) ** scaling
    mechanical_life = p.mechanical_life_cycles_at_reference_strain / np.maximum(scaling, 1e-12)
    catastrophic_life = p.catastrophic_life_cycles * np.exp(
        -(np.asarray(linear_strain) - p.critical_strain) / p.critical_strain_width) / np.maximum(sn_volume_fraction,
                                                                                                 1e-12)
    return DegradationLaw(vulnerable, mechanical_life, catastrophic_life)


def mechanical_damage(cycles, law: DegradationLaw, p: ModelParameters):
    """Share of the vulnerable capacity lost after N cycles (0 at the first cycle); shape (N_recipes, N_cycles)."""
    elapsed = np.maximum(np.atleast_1d(cycles)[None, :] - 1.0, 0.0)
    return 1.0 - np.exp(-(elapsed / law.mechanical_life_cycles[:, None]) ** p.mechanical_loss_shape)


def catastrophic_survival(cycles, law: DegradationLaw, p: ModelParameters):
    """Probability-like share of the electrode not yet failed catastrophically; shape (N_recipes, N_cycles)."""
    elapsed = np.maximum(np.atleast_1d(cycles)[None, :] - 1.0, 0.0)
    return np.exp(-(elapsed / law.catastrophic_life_cycles[:, None]) ** p.catastrophic_shape)


def cycle_time_h(capacity_mAh_per_g, current_A_per_g):
    """Duration of one full discharge-charge cycle at constant current."""
    return 2.0 * np.asarray(capacity_mAh_per_g) / 1000.0 / current_A_per_g


def capacity_retention(cycles, law: DegradationLaw, sn_share, capacity_mAh_per_g, current_A_per_g,
                       formation_capacity_mAh_per_g, p: ModelParameters):
    """Q(N) / Q_fresh(I) for cell cycle numbers N (formation included); shape (N_recipes, N_cycles).

    Parameters
    ----------
    cycles : cell cycle numbers, 1 = the first formation cycle.
    sn_share : share of the capacity stored in Sn (only Sn suffers mechanical loss).
    capacity_mAh_per_g, current_A_per_g : fresh capacity and current of the test cycles (set the cycle time).
    formation_capacity_mAh_per_g : capacity of the formation cycles (their time counts for SEI growth).
    """
    cycles = np.atleast_1d(np.asarray(cycles, dtype=float))
    n_formation = float(p.formation_cycles)
    formation_hours = n_formation * cycle_time_h(formation_capacity_mAh_per_g, p.formation_current_A_per_g)
    test_cycles = np.maximum(cycles[None, :] - n_formation, 0.0)
    formation_done = np.minimum(cycles[None, :], n_formation)
    hours = (formation_done / n_formation * formation_hours[:, None]
             + test_cycles * cycle_time_h(capacity_mAh_per_g, current_A_per_g)[:, None])
    sei = np.clip(1.0 - p.sei_loss_per_sqrt_hour * np.sqrt(hours), 0.0, 1.0)
    mechanical = 1.0 - (np.asarray(sn_share) * law.vulnerable_fraction)[:, None] * mechanical_damage(cycles, law, p)
    return sei * mechanical * catastrophic_survival(cycles, law, p)


def initial_coulombic_efficiency_pct(sn_mass_fraction, reversible_mAh_per_g, micro, p: ModelParameters):
    """First-cycle efficiency: reversible / (reversible + SEI and trapping losses on each phase)."""
    w_sn = np.asarray(sn_mass_fraction)
    hc_loss = (1.0 - w_sn) * p.hc_irreversible_capacity_mAh_per_g * p.hc_initial_size_um / micro.hc_size_um
    sn_loss = w_sn * p.sn_irreversible_capacity_mAh_per_g * (1.0 - p.interface_irreversible_reduction
                                                            * micro.sn_anchoring)
    return 100.0 * reversible_mAh_per_g / (reversible_mAh_per_g + hc_loss + sn_loss)
