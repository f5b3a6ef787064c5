"""The PyBaMM model of the Na half cell with a two-phase (HC, Sn) electrode: its parameter values (with
``[input]`` placeholders for everything per recipe) and its options. It is handed its parameters; it never fits."""

from __future__ import annotations

import os

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")  # before pybamm is imported

import pybamm
from pybamm.input.parameters.sodium_ion import Chayambuka2022 as chayambuka

from surrogate.kinetics import FARADAY_C_PER_MOL, GAS_CONSTANT_J_PER_MOL_K, kelvin
from surrogate.parameters import ModelParameters

from surrogate.physics.design import max_concentrations_mol_per_m3
from surrogate.physics.ocp import _chayambuka_table, _full_sodiation_wall_V, sn_ocp_table

# --- the PyBaMM model ----------------------------------------------------------------------------------------------

AVOGADRO_PER_MOL = 6.02214076e23

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

    reference_K = kelvin(p.reference_temperature_C)

    def arrhenius(activation_energy_kJ_per_mol: float, T):
        """exp(-Ea/R (1/T - 1/T_ref)): 1 at the reference temperature, where everything was calibrated."""
        return pybamm.exp(-activation_energy_kJ_per_mol * 1e3 / GAS_CONSTANT_J_PER_MOL_K * (1.0 / T - 1.0 / reference_K))

    # Chayambuka2022's electrolyte tables have no temperature law; without one a warmer cell's Butler-Volmer and
    # concentration terms (proportional to RT/F) grew while transport stayed put, so capacity at 4.2 A/g fell on
    # warming (443 -> 435 mAh/g from 25 to 60 C). The electrolyte and the Na counter electrode take the numpy model's
    # barriers (assumed, configs/model_parameters.yaml), as its polarisation terms do.
    def electrolyte_diffusivity(c_e, T):
        return (chayambuka.electrolyte_diffusivity_Chayambuka2022(c_e, T)
                * arrhenius(p.electrolyte_activation_energy_kJ_per_mol, T))

    def electrolyte_conductivity(c_e, T):
        return (chayambuka.electrolyte_conductivity_Chayambuka2022(c_e, T)
                * arrhenius(p.electrolyte_activation_energy_kJ_per_mol, T))

    def sodium_exchange_current(c_e, c_na, T):
        return (q.sodium_metal_exchange_current_A_per_m2 * arrhenius(p.counter_activation_energy_kJ_per_mol, T)
                * pybamm.sqrt(pybamm.maximum(c_e, tiny_mol_per_m3) / c_e0))

    # Volume change laws of the swelling output: Na-Sn grows ~linearly with Na (science.md 3.1), HC a few percent.
    sn_na_range = float(p.sn_plateau_end_na_per_sn[-1])
    sn_full_volume_change = sn_na_range * p.sn_volume_per_na_A3 / p.sn_volume_per_atom_A3
    sn_partial_molar_volume = p.sn_volume_per_na_A3 * 1e-30 * AVOGADRO_PER_MOL
    hc_full_volume_change = p.hc_expansion_pct / 100.0

    def sn_volume_change(sto):
        return sn_full_volume_change * sto

    def hc_volume_change(sto):
        return hc_full_volume_change * sto

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
        "Electrolyte diffusivity [m2.s-1]": electrolyte_diffusivity,
        "Electrolyte conductivity [S.m-1]": electrolyte_conductivity,
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
