"""Volume expansion of Sn/HC particles and electrodes (science.md 2.5, 3.1).

Na-Sn phases grow ~30 A^3 per Na against 27 A^3 per Sn, so volume grows linearly with the Na reached. Anchored Sn
forms less Na15Sn4 (handled by the capacity model, which reports Na per Sn); unanchored Sn also agglomerates, which
the study's apparent particle sizes include.
"""

import numpy as np

from surrogate.milling import Microstructure
from surrogate.parameters import ModelParameters


def sn_volumetric_expansion(na_per_sn, p: ModelParameters):
    """Volume change of Sn (fraction) at a Na content: (V_Na / V_Sn) x."""
    return p.sn_volume_per_na_A3 / p.sn_volume_per_atom_A3 * np.asarray(na_per_sn)


def agglomeration_factor(micro: Microstructure, p: ModelParameters):
    """Apparent swelling multiplier of Sn that is not tied into the carbon network."""
    return 1.0 + p.agglomeration_amplification * (1.0 - micro.sn_anchoring)


def local_sn_linear_strain(na_per_sn, micro: Microstructure, p: ModelParameters):
    """Linear strain of a Sn domain, (1 + dV/V)^(1/3) - 1, including agglomerate swelling: drives damage."""
    volumetric = sn_volumetric_expansion(na_per_sn, p) * agglomeration_factor(micro, p)
    return np.cbrt(1.0 + volumetric) - 1.0


def sn_swelling_share(sn_mass_fraction, micro: Microstructure, p: ModelParameters):
    """Share of the electrode's swelling that the Sn carries (per ``expansion_mixing_rule``); HC carries the rest."""
    return {"mass": np.asarray(sn_mass_fraction), "volume": micro.sn_volume_fraction}[p.expansion_mixing_rule]


def particle_expansion_pct(sn_mass_fraction, na_per_sn, micro: Microstructure, p: ModelParameters):
    """Apparent particle expansion at full sodiation, % (mixing rule per ``expansion_mixing_rule``)."""
    sn_share = sn_swelling_share(sn_mass_fraction, micro, p)
    sn_swelling = sn_volumetric_expansion(na_per_sn, p) * agglomeration_factor(micro, p)
    return 100.0 * (sn_share * sn_swelling + (1.0 - sn_share) * p.hc_expansion_pct / 100.0)


def electrode_expansion_pct(sn_mass_fraction, particle_expansion, damage, micro: Microstructure, p: ModelParameters):
    """Irreversible electrode thickening, %: superlinear in particle swelling, proportional to mechanical damage,
    plus the slow thickening of the HC share that no swelling damage explains.

    The damage law is normalised at a reference swelling, ``coefficient x (swelling / reference)^exponent``, so the
    coefficient is the thickening per unit damage at that swelling and does not trade off against the exponent (in
    the unnormalised form the two correlate at -0.95 and the fit's uncertainty runs along a curved valley). HC swells
    a few % and is not damaged by it, yet its electrodes still thicken a little over cycling (SEI, binder relaxation,
    electrolyte uptake): ``hc_electrode_thickening_pct`` (assumed, with a range), in proportion to the HC's share, so
    a pure HC electrode is predicted a few %, with that range's uncertainty, rather than exactly 0."""
    relative_swelling = np.asarray(particle_expansion) / p.electrode_expansion_reference_swelling_pct
    damage_driven = (100.0 * p.electrode_expansion_coefficient * relative_swelling**p.electrode_expansion_exponent
                     * np.asarray(damage))
    return damage_driven + (1.0 - sn_swelling_share(sn_mass_fraction, micro, p)) * p.hc_electrode_thickening_pct

