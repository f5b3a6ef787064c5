"""The cycling history behind each prediction: formation at its own strain, rate steps, ageing with temperature."""

import numpy as np
import pytest

from surrogate import calibration, cycle_life
from surrogate.kinetics import arrhenius_factor
from surrogate.model import PredictionRequest, _Regimes, predict
from surrogate.recipe import Recipes
from surrogate.milling import microstructure


def _regimes(materials, params, name="Sn@HC-2-1"):
    recipes = materials[name]
    return _Regimes(recipes, microstructure(recipes, params), params)


def test_formation_damages_by_the_formation_currents_strain_whatever_the_test_current(materials, params):
    regimes = _regimes(materials, params)
    formation = regimes.formation(25.0)
    states = {current: cycle_life.cycled_state([formation, regimes.at(current, 25.0).step(0.0)], 25.0, params)
              for current in (0.17, 4.2)}
    # the first test cycle has lost what formation took, at the formation strain, for a slow and a fast test alike
    lost = {c: s.vulnerable_fraction * s.mechanical_damage for c, s in states.items()}
    assert lost[0.17][0, 0] > 0.01
    np.testing.assert_allclose(lost[4.2], lost[0.17], rtol=1e-12)
    # charged with the fast test's (smaller) strain instead, formation would have cost far less
    fast_only = cycle_life.cycled_state([regimes.at(4.2, 25.0).step(float(params.formation_cycles))], 25.0, params)
    assert (fast_only.vulnerable_fraction * fast_only.mechanical_damage)[0, 0] < 0.8 * lost[4.2][0, 0]
    # cracked Sn stays cracked: cycles at the fast test's smaller strain keep the share formation made vulnerable
    formed = cycle_life.cycled_state([formation], 25.0, params).vulnerable_fraction
    tested = cycle_life.cycled_state([formation, regimes.at(4.2, 25.0).step(100.0)], 25.0, params).vulnerable_fraction
    assert fast_only.vulnerable_fraction[0, 0] < formed[0, 0]
    np.testing.assert_allclose(tested, formed, rtol=1e-12)


def test_cycles_at_different_currents_add_up_as_life_fractions(materials, params):
    regimes = _regimes(materials, params)
    slow, fast = regimes.at(0.17, 25.0), regimes.at(4.2, 25.0)
    both = cycle_life.cycled_state([slow.step(10.0), fast.step(30.0)], 25.0, params)
    # Miner's rule: 10 slow cycles spend as much life as the number of fast cycles with the same life fraction
    equivalent = 10.0 * fast.law.mechanical_life_cycles / slow.law.mechanical_life_cycles
    fast_only = cycle_life.cycled_state([slow.step(0.0), fast.step(30.0 + float(equivalent[0]))], 25.0, params)
    np.testing.assert_allclose(both.mechanical_damage, fast_only.mechanical_damage, rtol=1e-9)


def test_rate_steps_before_a_point_cost_capacity_only_when_the_protocol_runs_them(materials, params):
    recipe = materials["Sn@HC-2-1"]
    request = PredictionRequest(currents_A_per_g=(0.17, 4.2))
    right_after_formation = predict(recipe, params.with_values(rate_test_cycles_per_step=0), request)
    as_run = predict(recipe, params.with_values(rate_test_cycles_per_step=5), request)
    first_step, last_step = 0, 1
    # the first step follows formation only; the 4.2 A/g step follows 20 cycles at the lower currents
    np.testing.assert_allclose(as_run.capacity_at_current_mAh_per_g[:, first_step],
                               right_after_formation.capacity_at_current_mAh_per_g[:, first_step], rtol=1e-12)
    assert as_run.capacity_at_current_mAh_per_g[0, last_step] < \
        right_after_formation.capacity_at_current_mAh_per_g[0, last_step] - 1.0


def test_a_warm_cell_ages_faster_unless_ageing_has_no_activation_energy(materials, params):
    recipe = materials["Sn@HC-2-1"]

    def retention(p, temperature_C):
        cycles = predict(recipe, p, PredictionRequest(cycles=(1, 2000), temperature_C=temperature_C))
        return cycles.capacity_at_cycle_mAh_per_g[0, 1] / cycles.capacity_at_cycle_mAh_per_g[0, 0]

    assert retention(params, 45.0) < retention(params, 25.0) - 0.01
    assert retention(params, 0.0) > retention(params, 25.0)
    athermal = params.with_values(fatigue_activation_energy_kJ_per_mol=0.0)
    # with athermal fatigue, only the strain (which moves a little with temperature) is left
    assert abs(retention(athermal, 45.0) - retention(athermal, 25.0)) < \
        0.5 * abs(retention(params, 45.0) - retention(params, 25.0))


def test_hcs_sei_fade_speeds_up_with_temperature_unless_its_growth_has_no_activation_energy(materials, params):
    """HC's SEI grows with a thermally activated rate (issue 10: SEI growth gets an Arrhenius law): a warm HC loses
    more over 12 000 cycles, a cold one less, and the more so the higher the barrier."""
    fading = params.with_values(hc_fade_per_sqrt_cycle=1e-3)

    def loss(p, temperature_C):
        capacity = predict(materials["HC"], p, PredictionRequest(cycles=(1, 12000), temperature_C=temperature_C)
                           ).capacity_at_cycle_mAh_per_g[0]
        return 1.0 - capacity[1] / capacity[0]

    assert loss(fading, 45.0) > 1.5 * loss(fading, 25.0) > 1.5 * loss(fading, 0.0) > 0.0
    low, high = (fading.with_values(sei_growth_activation_energy_kJ_per_mol=e) for e in (20.0, 80.0))
    assert loss(high, 45.0) / loss(high, 25.0) > loss(low, 45.0) / loss(low, 25.0) > 1.0
    # the film thickens as sqrt(rate x cycles): the warm cell's loss is sqrt(its Arrhenius factor) times the other's
    steps = [_regimes(materials, fading, "HC").at(1.7, 25.0).step(12000.0)]
    hc_loss = {t: cycle_life.cycled_state(steps, t, fading).hc_loss[0, 0] for t in (25.0, 45.0)}
    speed_up = arrhenius_factor(fading.sei_growth_activation_energy_kJ_per_mol, 45.0, fading)
    assert hc_loss[45.0] / hc_loss[25.0] == pytest.approx(np.sqrt(speed_up), rel=1e-9)


def test_a_cached_fit_is_keyed_on_the_models_source(monkeypatch):
    key = calibration._cache_key("data", "parameters")
    monkeypatch.setattr(calibration, "model_source_digest", lambda: "another model")
    assert calibration._cache_key("data", "parameters") != key


def test_hc_fades_as_the_square_root_of_cycles_run_and_only_its_share(materials, params):
    """HC's slow SEI fade: none in the central model (the study gives no number), sqrt(cycles) when set, counting
    formation; it takes HC's share of a composite's capacity, not the Sn share's."""
    request = PredictionRequest(cycles=(1, 1000, 12000))
    hc = predict(materials["HC"], params, request).capacity_at_cycle_mAh_per_g[0]
    np.testing.assert_allclose(hc, hc[0], rtol=1e-12)
    fading = params.with_values(hc_fade_per_sqrt_cycle=1e-3)
    faded = predict(materials["HC"], fading, request).capacity_at_cycle_mAh_per_g[0]
    ratio = 1.0 - faded / hc
    runs = np.array([0.0, 999.0, 11999.0]) + params.formation_cycles
    np.testing.assert_allclose(ratio, 1e-3 * np.sqrt(runs), rtol=1e-9)
    composite = predict(materials["Sn@HC-2-1"], params, request).capacity_at_cycle_mAh_per_g[0]
    composite_faded = predict(materials["Sn@HC-2-1"], fading, request).capacity_at_cycle_mAh_per_g[0]
    assert 0 < 1.0 - composite_faded[-1] / composite[-1] < ratio[-1]  # only the HC share fades this way


def test_sn_that_fails_in_an_hc_rich_electrode_takes_only_its_own_share_of_the_capacity(params, materials):
    """Catastrophic failure of over-strained Sn (pulverisation, contact loss) removes the Sn's capacity; the HC network
    around it keeps cycling, as HC alone does. Across HC-rich composites milled as the study's, capacity after
    12 000 cycles keeps at least the HC's mass share of pure HC's (it had fallen to 24 mAh/g for 1:2, against 204 for
    HC, when the Sn's failure multiplied the whole capacity)."""
    reference = materials["Sn@HC-2-1"]
    fractions = np.array([0.1, 0.2, 1 / 3, 0.4])
    n = len(fractions)
    recipes = Recipes(sn_mass_fraction=fractions, milling_time_h=np.repeat(reference.milling_time_h, n),
                      milling_speed_rpm=np.repeat(reference.milling_speed_rpm, n),
                      ball_to_powder_ratio=np.repeat(reference.ball_to_powder_ratio, n))
    request = PredictionRequest(cycles=(12000,))
    composites = predict(recipes, params, request)
    hc_alone = predict(materials["HC"], params, request).capacity_at_cycle_mAh_per_g[0, 0]
    assert np.all(composites.capacity_at_cycle_mAh_per_g[:, 0] >= (1.0 - fractions) * hc_alone)
    # their Sn does fail catastrophically (from 0.2 Sn on): with a 10 times longer catastrophic life (the top of its
    # range) they would keep more
    durable = params.with_values(catastrophic_life_cycles=5000.0)
    kept = predict(recipes, durable, request).capacity_at_cycle_mAh_per_g[:, 0]
    assert np.all(kept[1:] > composites.capacity_at_cycle_mAh_per_g[1:, 0] + 2.0)
