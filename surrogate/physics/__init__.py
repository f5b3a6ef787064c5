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

Layout (as PyBaMM separates parameter set, model and solver)
-----------------------------------------------------------
:mod:`~surrogate.physics.parameters` (the parameter set, ``configs/physics_parameters.yaml``) ->
:mod:`~surrogate.physics.ocp` (open-circuit potentials) -> :mod:`~surrogate.physics.design` (recipes to physical
inputs) -> :mod:`~surrogate.physics.model` (PyBaMM parameter values and options) ->
:mod:`~surrogate.physics.simulation` (build, solve, results). :mod:`~surrogate.physics.calibration` fits the free
values; the model is handed them (``physics_parameters=``) and never fits itself.

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
>>> q = calibrated_physics_parameters(p)  # doctest: +SKIP
>>> r = Recipes(sn_mass_fraction=[2 / 3], milling_time_h=[10], milling_speed_rpm=[400], ball_to_powder_ratio=[20])
>>> result = evaluate_physics(r, [0.17, 4.2], p, physics_parameters=q)[0]  # doctest: +SKIP
>>> result.status, round(result.capacity_by_current[0.17])  # doctest: +SKIP
('OK', 542)
"""
from surrogate.physics.calibration import (PhysicsCalibration, calibrated_physics_parameters, fit_physics,
                                           rate_observations)
from surrogate.physics.design import (ElectrodeDesign, electrode_design, exchange_current_density_A_per_m2,
                                      max_concentrations_mol_per_m3, rounded_radius_m)
from surrogate.physics.ocp import hc_ocp_V, initial_stoichiometries, sn_ocp_table, sn_ocp_V
from surrogate.physics.parameters import load_physics_parameters
from surrogate.physics.simulation import (MODEL_CLASSES, PhysicsResult, Status, build_count,
                                          clear_simulation_cache, evaluate_physics)

__all__ = ["MODEL_CLASSES", "Status", "ElectrodeDesign", "PhysicsCalibration", "PhysicsResult",
           "build_count", "calibrated_physics_parameters", "clear_simulation_cache", "electrode_design",
           "evaluate_physics", "exchange_current_density_A_per_m2", "fit_physics", "hc_ocp_V",
           "initial_stoichiometries", "load_physics_parameters", "max_concentrations_mol_per_m3", "rate_observations",
           "rounded_radius_m", "sn_ocp_V", "sn_ocp_table"]
