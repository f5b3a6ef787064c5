"""First-cycle loss and capacity vs cycle number (science.md 3.5).

Q(N) = Q_fresh(I) x [Sn share x its mechanical retention x its catastrophic survival + HC share x its SEI
retention], with

* mechanical loss: a strain-dependent share of the Sn capacity is vulnerable and is lost along a stretched
  exponential exp(-(N / N_m)^beta); both the share and 1 / N_m grow as (strain / reference)^m. Cracked particles
  that lose contact (including those isolated by the SEI re-formed on their cracks) are this loss;
* catastrophic failure of the Sn (pulverisation, contact loss; soft shorts where the electrode is all Sn) above a
  critical linear strain.

No SEI capacity loss: in the study's half cells the Na-metal counter electrode replaces the Na an SEI consumes, so a
growing SEI shows as impedance and particle isolation, not as lost inventory (science.md 3.6). Its impedance is
left out of the polarisation budget because the measured film is thin: 2 nm on the composite after 1000 cycles
gives at most a few mV at the study's currents (the arithmetic is the comment above
``fatigue_activation_energy_kJ_per_mol`` in configs/model_parameters.yaml). Measured on the leave-out validation (``snhc calibrate
--validate``): with a sqrt(time) SEI loss fitted alongside the mechanical one, cycles up to 400 could not tell the
two apart and the interval at cycle 12 000 was 0-431 mAh/g; the study's full fit put that SEI loss at its bound, 0.

A prediction is for one cycle of a test; the cycles run before it form a history of steps at different currents
(:class:`CyclingStep`): ``formation_cycles`` at the formation current, then for a rate test the lower rate steps,
then the test's own cycles. Each step damages by its own strain (science.md 3.6, "the rate test as run").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surrogate.kinetics import arrhenius_factor
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


@dataclass(frozen=True)
class CyclingStep:
    """A stretch of cycles run at one current before the cycle a prediction is for.

    Parameters
    ----------
    law : the degradation law at this current's Sn strain.
    cycles : cycles run at this current; a scalar, or shape (M,) for M predicted cycle numbers.
    """

    law: DegradationLaw
    cycles: np.ndarray | float


@dataclass(frozen=True)
class CycledState:
    """What a cycling history has done to the electrode; arrays of shape (N_recipes, M).

    ``vulnerable_fraction``: share of the Sn capacity that the highest strain cycled so far can remove;
    ``mechanical_damage``: share of that vulnerable capacity already lost; ``catastrophic_survival``: share of the
    Sn not yet failed catastrophically (:func:`capacity_retention` takes it from the Sn's capacity only);
    ``hc_loss``: share of the HC capacity lost to its slow SEI growth.
    """

    vulnerable_fraction: np.ndarray
    mechanical_damage: np.ndarray
    catastrophic_survival: np.ndarray
    hc_loss: np.ndarray | float = 0.0

    @property
    def electrode_damage(self) -> np.ndarray:
        """Share of the Sn mechanically damaged or failed: drives the electrode's irreversible thickening (a Sn
        domain that pulverises swells the electrode around it, even where the HC keeps its capacity)."""
        return 1.0 - (1.0 - self.vulnerable_fraction * self.mechanical_damage) * self.catastrophic_survival


def cycled_state(steps: list[CyclingStep], temperature_C: float, p: ModelParameters) -> CycledState:
    """Damage after a sequence of cycling steps at different currents (the test as it was run).

    Each step counts with its own strain: fatigue accumulates as the life fraction spent, sum of n_k / N_m,k
    (Miner's rule inside the stretched exponential), and likewise for catastrophic failure, so a formation at low
    current and high strain damages a cell later tested at high current by its own strain, not the test's. Cracked
    Sn stays cracked: the vulnerable share is the one of the highest strain that has been cycled. Fatigue speeds up
    with temperature (Arrhenius, relative to the reference temperature of the study's cycling). HC, which does not
    swell, loses capacity only to a slow SEI growth, ~ sqrt(cycles run x growth rate), the rate thermally activated
    (science.md 3.5).
    """
    fatigue_speed = _column(arrhenius_factor(p.fatigue_activation_energy_kJ_per_mol, temperature_C, p))
    sei_speed = _column(arrhenius_factor(p.sei_growth_activation_energy_kJ_per_mol, temperature_C, p))
    life_spent = catastrophic_spent = vulnerable = total_cycles = 0.0
    for step in steps:
        cycles = np.atleast_1d(np.asarray(step.cycles, dtype=float))[None, :]
        total_cycles = total_cycles + cycles
        life_spent = life_spent + cycles * fatigue_speed / step.law.mechanical_life_cycles[:, None]
        catastrophic_spent = catastrophic_spent + cycles * fatigue_speed / step.law.catastrophic_life_cycles[:, None]
        vulnerable = np.maximum(vulnerable, np.where(cycles > 0, step.law.vulnerable_fraction[:, None], 0.0))
    return CycledState(
        vulnerable_fraction=vulnerable,
        mechanical_damage=1.0 - np.exp(-life_spent ** _column(p.mechanical_loss_shape)),
        catastrophic_survival=np.exp(-catastrophic_spent ** _column(p.catastrophic_shape)),
        hc_loss=np.minimum(_column(p.hc_fade_per_sqrt_cycle) * np.sqrt(total_cycles * sei_speed), 1.0),
    )


def _column(value) -> np.ndarray:
    """A parameter as a column against (N_recipes, M) arrays: one value, or one per recipe (an ensemble's members
    stacked into one batch, ``surrogate/uncertainty.py``)."""
    return np.asarray(value, dtype=float)[..., None]


def capacity_retention(state: CycledState, sn_share):
    """Q / Q_fresh(I) after a cycling history; shape (N_recipes, M).

    ``sn_share`` is the share of the capacity at the measured current stored in Sn: only Sn suffers mechanical loss
    and catastrophic failure (its over-strained domains pulverise and lose contact), the rest (HC) its SEI's. The HC
    network keeps its own capacity when the Sn in it fails, as the measured HC electrode cycles stably: a failure of
    the whole electrode (soft shorts) is the limit of an electrode made of Sn alone, where the Sn share is 1. (As a
    multiplier of the whole capacity, the Sn failure had left a 1:2 composite 24 mAh/g after 12 000 cycles, a 4:1
    HC-rich one 57, far below the 204 of its HC alone.)
    """
    sn = np.asarray(sn_share)[:, None]
    sn_kept = (1.0 - state.vulnerable_fraction * state.mechanical_damage) * state.catastrophic_survival
    return sn * sn_kept + (1.0 - sn) * (1.0 - state.hc_loss)


def initial_coulombic_efficiency_pct(sn_mass_fraction, reversible_mAh_per_g, micro, p: ModelParameters):
    """First-cycle efficiency: reversible / (reversible + SEI and trapping losses on each phase + the conversion of
    the Sn oxide milling formed, which the first sodiation reduces to Sn and Na2O and does not give back: air-milled
    powder had lost at most 1.3 points of ICE, through its inactive mass alone)."""
    w_sn = np.asarray(sn_mass_fraction)
    hc_loss = (1.0 - w_sn) * p.hc_irreversible_capacity_mAh_per_g * p.hc_initial_size_um / micro.hc_size_um
    sn_loss = w_sn * p.sn_irreversible_capacity_mAh_per_g * (1.0 - p.interface_irreversible_reduction
                                                            * micro.sn_anchoring)
    # the oxide's share of the inactive mass (which is capped below 1, where the raw sum of debris and oxide is not)
    grown = micro.wear_debris_mass_fraction + micro.oxide_mass_fraction
    oxide = micro.inactive_mass_fraction * micro.oxide_mass_fraction / np.maximum(grown, 1e-300)
    oxide_loss = oxide * p.oxide_irreversible_capacity_mAh_per_g
    return 100.0 * reversible_mAh_per_g / (reversible_mAh_per_g + hc_loss + sn_loss + oxide_loss)
