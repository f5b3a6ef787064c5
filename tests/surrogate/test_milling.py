"""Milling physics (surrogate/milling.py): time, speed and BPR act differently (science.md 3.4, 3.7)."""

import numpy as np
import pytest

from flows.evaluation import model_metrics
from flows.objective import SCORE, CapacityObjective
from surrogate.milling import DOSE_EXPONENTS, microstructure, milling_dose
from surrogate.parameters import ModelParameters
from surrogate.recipe import Recipes


def test_the_reference_condition_keeps_the_plain_dose_models_microstructure(params, materials):
    micro = microstructure(materials["Sn@HC-2-1"], params)
    assert micro.milling_dose[0] == pytest.approx(1.0)
    assert micro.impact_energy_relative[0] == pytest.approx(1.0)
    assert micro.impact_count_relative[0] == pytest.approx(1.0)
    assert micro.inactive_mass_fraction[0] == pytest.approx(1.0 - np.exp(-0.004), rel=1e-9)
    assert micro.hc_amorphous_fraction[0] == pytest.approx(1.0 - np.exp(-params.hc_amorphisation_rate))
    assert micro.sn_welding[0] == pytest.approx(params.sn_welding_at_reference)


def test_at_equal_dose_higher_speed_runs_hotter_and_welds_more(params):
    # Same BPR x t x rpm^3: 10 h at 400 rpm against 1.25 h at 800 rpm.
    recipes = Recipes(2 / 3, [10.0, 1.25], [400.0, 800.0], 20.0)
    micro = microstructure(recipes, params)
    np.testing.assert_allclose(milling_dose(recipes, params), [1.0, 1.0])
    assert micro.vial_temperature_C[1] > micro.vial_temperature_C[0] + 20
    assert micro.sn_welding[1] > 3 * micro.sn_welding[0]
    assert micro.sn_size_nm[1] > micro.sn_size_nm[0]
    assert micro.sn_anchoring[1] < micro.sn_anchoring[0]


def test_gentle_impacts_below_the_threshold_neither_fracture_nor_amorphise_hard_carbon(params):
    # Equal dose at 150 rpm needs 19x the impacts of 400 rpm: given by the BPR at equal time.
    ratio = (400.0 / 150.0) ** 3
    recipes = Recipes(2 / 3, [10.0, 10.0], [400.0, 150.0], [5.0, 5.0 * ratio])
    micro = microstructure(recipes, params)
    np.testing.assert_allclose(micro.milling_dose, micro.milling_dose[0])
    assert micro.hc_amorphous_fraction[1] < 0.2 * micro.hc_amorphous_fraction[0]
    assert micro.hc_size_um[1] > micro.hc_size_um[0]


def test_wear_debris_follows_archard_bpr_time_rpm_squared(params):
    recipes = Recipes(2 / 3, [10.0, 20.0, 10.0, 10.0], [400.0, 400.0, 800.0, 400.0], [20.0, 20.0, 20.0, 40.0])
    debris = microstructure(recipes, params).wear_debris_mass_fraction
    np.testing.assert_allclose(debris / debris[0], [1.0, 2.0, 4.0, 2.0], rtol=1e-12)


def test_air_oxidises_more_than_argon_and_costs_capacity(params):
    recipes = Recipes(2 / 3, 10.0, 400.0, 20.0, milling_atmosphere=["argon", "air"])
    micro = microstructure(recipes, params)
    assert micro.oxide_mass_fraction[1] == pytest.approx(params.oxidation_air_to_argon_ratio
                                                         * micro.oxide_mass_fraction[0])
    assert micro.inactive_mass_fraction[1] > micro.inactive_mass_fraction[0]
    scores = model_metrics(recipes, params, CapacityObjective())[SCORE]
    assert scores[1] < scores[0]


def test_the_oxide_air_forms_costs_first_cycle_efficiency_by_its_conversion(params):
    """Milling in air oxidises Sn; the first sodiation converts the oxide to Sn and Na2O and keeps that charge, so an
    air-milled powder's ICE falls by the oxide's conversion loss (it had fallen at most 1.3 points, through its
    inactive mass alone), in proportion to oxide_irreversible_capacity_mAh_per_g; under argon (~0.1 % oxide) the
    loss is under a tenth of a point."""
    from surrogate.model import predict

    recipes = Recipes(2 / 3, 10.0, 400.0, 20.0, milling_atmosphere=["argon", "air"])
    low, high = (predict(recipes, params.with_values(oxide_irreversible_capacity_mAh_per_g=value))
                 for value in (200.0, 711.0))
    argon, air = high.initial_coulombic_efficiency_pct
    assert air < argon - 1.5
    shift = low.initial_coulombic_efficiency_pct - high.initial_coulombic_efficiency_pct
    assert 0 < shift[0] < 0.1 and shift[1] > 10 * shift[0]
    # the loss is the oxide's share of the inactive mass times its conversion capacity kept
    micro = microstructure(recipes, params)
    reversible = high.reversible_capacity_mAh_per_g[1]
    loss = 100.0 * reversible / air - 100.0 * reversible / low.initial_coulombic_efficiency_pct[1]
    assert loss == pytest.approx(511.0 * micro.oxide_mass_fraction[1] * micro.inactive_mass_fraction[1]
                                 / (micro.oxide_mass_fraction[1] + micro.wear_debris_mass_fraction[1]), rel=1e-6)


def test_oxide_grows_with_the_time_milled(params):
    oxide = microstructure(Recipes(2 / 3, [2.5, 10.0, 40.0], 400.0, 20.0), params).oxide_mass_fraction
    assert oxide[0] < oxide[1] < oxide[2]


def test_pauses_cool_the_vial_and_limit_welding_at_equal_milled_time(params):
    # 10 h of milling either straight or with a 50 % duty cycle (20 h in the mill): same impacts, cooler vial.
    recipes = Recipes(2 / 3, [10.0, 20.0], 550.0, 30.0, pause_duty_cycle=[1.0, 0.5])
    micro = microstructure(recipes, params)
    np.testing.assert_allclose(micro.milling_dose, micro.milling_dose[0])
    assert micro.vial_temperature_C[1] < micro.vial_temperature_C[0] - 10
    assert micro.sn_welding[1] < micro.sn_welding[0]


def test_welding_saturates(params):
    welding = microstructure(Recipes(2 / 3, [20.0, 40.0, 80.0], 600.0, 40.0), params).sn_welding
    assert np.all(welding <= params.sn_welding_saturation)
    assert welding[2] - welding[1] < 0.1 * params.sn_welding_saturation


def test_overmilling_costs_clearly_more_than_the_plain_dose_model_did(params):
    """Two to four times the reference dose, by time or by speed, costs well above 1 % of the objective."""
    hours = np.array([10.0, 20.0, 40.0])
    by_time = model_metrics(Recipes(2 / 3, hours, 400.0, 20.0), params, CapacityObjective())[SCORE]
    by_speed = model_metrics(Recipes(2 / 3, 10.0, 400.0 * np.cbrt(hours / 10.0), 20.0), params,
                             CapacityObjective())[SCORE]
    for scores in (by_time, by_speed):
        assert scores[1] < 0.97 * scores[0]
        assert scores[2] < 0.85 * scores[0]
    assert by_speed[1] < by_time[1], "at equal dose the faster (hotter) mill welds more"


def test_the_dose_scales_with_the_exponents_the_optimisers_dose_axis_uses(params):
    """flows.search.dose_features builds the GP's dose axis from DOSE_EXPONENTS: they must be milling_dose's own."""
    base = dict(sn_mass_fraction=0.6, milling_time_h=7.0, milling_speed_rpm=350.0, ball_to_powder_ratio=12.0)
    dose = milling_dose(Recipes(**base), params)[0]
    assert set(DOSE_EXPONENTS) == {"milling_time_h", "milling_speed_rpm", "ball_to_powder_ratio"}
    for name, exponent in DOSE_EXPONENTS.items():
        scaled = milling_dose(Recipes(**(base | {name: base[name] * 1.7})), params)[0]
        assert np.log(scaled / dose) / np.log(1.7) == pytest.approx(exponent, rel=1e-9)


def test_welding_with_the_reference_already_saturated_is_finite_and_quiet():
    """Both welding constants at the bound where they meet (a lab fit on extreme rows reaches it): the onset is
    infinite, so any milling welds to saturation and none does not; numpy's divide and 0 x inf warnings had reached
    the user's terminal."""
    import warnings

    from surrogate.milling import sn_welding

    p = ModelParameters.load().with_values(sn_welding_at_reference=0.5, sn_welding_saturation=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        welded = sn_welding(np.array([0.0, 0.1, 1.0, 5.0]), np.ones(4), p)
    np.testing.assert_array_equal(welded, [0.0, 0.5, 0.5, 0.5])
