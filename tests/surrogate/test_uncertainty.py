"""The parameter ensemble behind every 90 % interval (surrogate/uncertainty.py) and the leave-out report."""

import dataclasses

import numpy as np
import pytest

from surrogate.calibration import ParameterTransform, calibrate
from surrogate.model import PredictionRequest
from surrogate.parameters import ModelParameters, ParameterError
from surrogate.recipe import Recipes
from surrogate.uncertainty import UncertaintySettings, build_ensemble
from surrogate.validation import STUDIES, LeaveOut, validate

REFERENCE = Recipes(sn_mass_fraction=[2 / 3], milling_time_h=[10], milling_speed_rpm=[400], ball_to_powder_ratio=[20])


@pytest.fixture(scope="module")
def ensemble():
    p = ModelParameters.load()
    return build_ensemble(p, calibrate(p))


def test_the_same_settings_give_the_same_ensemble(ensemble, isolated_cache):
    import surrogate.uncertainty as uncertainty

    p = ModelParameters.load()
    for saved in isolated_cache.glob("ensemble-*.json"):
        saved.unlink()
    uncertainty._BUILT.clear()  # a real rebuild from the seed, not the process's or the disk's copy
    again = build_ensemble(p, calibrate(p))
    assert again is not ensemble
    assert [m.digest() for m in again.members] == [m.digest() for m in ensemble.members]


def test_an_ensemble_saved_by_one_process_is_loaded_bit_for_bit_and_a_broken_file_is_rebuilt(ensemble, isolated_cache,
                                                                                              monkeypatch):
    import surrogate.uncertainty as uncertainty

    p = ModelParameters.load()
    for other in isolated_cache.glob("ensemble-*.json"):  # other tests' ensembles (other data, other settings)
        other.unlink()
    uncertainty._BUILT.clear()
    built = build_ensemble(p, calibrate(p))
    (saved,) = isolated_cache.glob("ensemble-*.json")
    monkeypatch.setattr(uncertainty, "_build", lambda *args: pytest.fail("rebuilt although a file was saved"))
    uncertainty._BUILT.clear()
    loaded = build_ensemble(p, calibrate(p))
    assert loaded is not built
    assert [m.digest() for m in loaded.members] == [m.digest() for m in built.members]
    assert loaded.measurement_factors == built.measurement_factors
    assert loaded.effective_size == built.effective_size

    monkeypatch.undo()
    for broken in ("{not json", '{"members": [{"no_such_parameter": 1.0}]}'):
        saved.write_text(broken, encoding="utf-8")
        uncertainty._BUILT.clear()
        rebuilt = build_ensemble(p, calibrate(p))
        assert [m.digest() for m in rebuilt.members] == [m.digest() for m in built.members]


def test_members_differ_in_fitted_parameters_and_keep_their_bounds(ensemble):
    names = ensemble.central.names("fitted")
    values = np.array([[m[n].value for n in names] for m in ensemble.members])
    assert len(ensemble.members) == ensemble.settings.ensemble_size
    assert (values.std(axis=0) > 0).sum() >= len(names) // 2
    for j, n in enumerate(names):
        low, high = ensemble.central[n].bounds
        assert np.all((values[:, j] >= low) & (values[:, j] <= high))


@pytest.mark.parametrize("stacked_rows", [2**16, 7])  # all members in one call; a few members per call
def test_members_stacked_into_one_batch_predict_what_each_member_predicts_alone(ensemble, stacked_rows, monkeypatch):
    import surrogate.uncertainty as uncertainty
    from surrogate.model import predict

    monkeypatch.setattr(uncertainty, "STACKED_ROWS", stacked_rows)
    recipes = Recipes(sn_mass_fraction=[0.3, 2 / 3, 0.9], milling_time_h=[1.0, 10.0, 40.0],
                      milling_speed_rpm=[200, 400, 600], ball_to_powder_ratio=[5, 20, 40])
    request = PredictionRequest(currents_A_per_g=(0.17, 4.2, 10.0), cycles=(1, 400, 12000), temperature_C=45.0)
    stacked = ensemble.predict(recipes, request)
    for alone, member in zip((predict(recipes, m, request) for m in ensemble.members), stacked.members):
        expected = alone.scalar_metrics()
        assert member.scalar_metrics().keys() == expected.keys()
        for name, value in member.scalar_metrics().items():
            np.testing.assert_allclose(value, expected[name], rtol=1e-12, err_msg=name)


def test_intervals_widen_with_extrapolation_in_current(ensemble):
    request = PredictionRequest(currents_A_per_g=(0.84, 10.0))
    band = ensemble.predict(REFERENCE, request).record(0)["interval_90"]["capacity_at_current_mAh_per_g"]
    assert band["10"][1] - band["10"][0] > 1.5 * (band["0.84"][1] - band["0.84"][0])


def test_hard_carbons_interval_widens_beyond_its_one_measured_current_not_narrows(ensemble):
    """HC's rate was measured at 1.7 A/g only; its parametric members pivot about that point and converge near
    5-10 A/g, so its interval had narrowed from +-7 % at 1.7 to +-4 % at 10 A/g. The rate model's form error per
    e-fold beyond the data widens it there, and leaves every current within the data as it was."""
    from surrogate.recipe import Recipes as R

    hc = R.from_records([_material("HC")])
    request = PredictionRequest(currents_A_per_g=(0.84, 1.7, 10.0))

    def half_widths(settings):
        record = dataclasses.replace(ensemble, settings=settings).predict(hc, request).record(0)
        value, band = record["capacity_at_current_mAh_per_g"], record["interval_90"]["capacity_at_current_mAh_per_g"]
        return {c: (band[c][1] - band[c][0]) / 2 / value[c] for c in value}

    configured = ensemble.settings
    without = half_widths(dataclasses.replace(configured, rate_extrapolation_sigma_pct_per_e_fold=0.0))
    with_form = half_widths(configured)
    assert without["10"] < without["1.7"]  # the pivot the term corrects
    assert with_form["10"] > with_form["1.7"] and with_form["10"] > 1.5 * without["10"]
    assert with_form["0.84"] == without["0.84"] and with_form["1.7"] == without["1.7"]


def test_an_unknown_or_unranged_uncertain_parameter_is_refused():
    p = ModelParameters.load()
    settings = UncertaintySettings.load()
    for name in ("no_such_parameter", "sn_capacity_mAh_per_g"):
        with pytest.raises(ParameterError, match=name):
            build_ensemble(p, calibrate(p), settings=dataclasses.replace(settings,
                                                                         uncertain_assumed_parameters=(name,)))


def test_an_uncertain_assumed_parameter_widens_the_interval_it_acts_on(ensemble):
    """A milling constant's range, declared uncertain, must widen the intervals of a recipe it changes."""
    p = ModelParameters.load()
    # Against the same ensemble without any uncertain assumed parameter, so the comparison is of that one range; a
    # 64-member 90 % width moves by tens of percent with the random stream, so the recipe is one it dominates.
    configured = UncertaintySettings.load()
    base = build_ensemble(p, calibrate(p), settings=dataclasses.replace(configured, uncertain_assumed_parameters=()))
    wider = build_ensemble(p, calibrate(p), settings=dataclasses.replace(
        configured, uncertain_assumed_parameters=("oxide_growth_exponent",)))
    # 100 h in air: the oxide exponent's range (0.2-1.0) moves the capacity by ~90 mAh/g, more than the rest
    air = Recipes(sn_mass_fraction=[2 / 3], milling_time_h=[100], milling_speed_rpm=[400], ball_to_powder_ratio=[20],
                  milling_atmosphere=["air"])
    def width(e):
        low, high = e.predict(air).record(0)["interval_90"]["reversible_capacity_mAh_per_g"]
        return high - low
    assert width(wider) > width(base)


def test_a_leave_out_study_refits_without_the_hidden_rows_and_reports_each():
    study = LeaveOut("rate 4.2 A/g from <= 1.7 A/g", "rate points up to 1.7 A/g",
                     lambda r: r["quantity"] == "capacity_at_current_mAh_per_g" and r["current_A_per_g"] > 1.7)
    (row,) = validate(studies=(study,))
    assert set(row) >= {"name", "predicted", "measured", "error_pct", "interval_90", "covered"}
    assert row["measured"] == 449.0
    low, high = row["interval_90"]
    assert low <= row["predicted"] <= high
    assert row["covered"] == (low <= row["measured"] <= high)
    assert row["error_pct"] == pytest.approx(100 * (row["predicted"] - 449.0) / 449.0)
    # hidden from the fit: the full calibration meets 4.2 A/g far more closely than this extrapolation
    assert abs(row["error_pct"]) > 1.0


def test_an_interval_hardly_depends_on_the_ensembles_seed():
    """The ensemble is a sample of one posterior, so another seed moves an interval's ends by sampling noise only.
    With Gaussian candidates, a few far out in its tails took the importance weights, and the tempering they forced
    moved Sn@HC-2-1's lower bound at cycle 12 000 from 200 to 256 mAh/g over seeds 1-5 (Student-t candidates:
    254-262)."""
    p = ModelParameters.load()
    calibration = calibrate(p)
    ends = []
    for seed in (1, 2, 3):
        settings = dataclasses.replace(UncertaintySettings.load(), seed=seed)
        record = build_ensemble(p, calibration, settings=settings).predict(
            REFERENCE, PredictionRequest(currents_A_per_g=(4.2,), cycles=(12000,))).record(0)
        ends.append([*record["interval_90"]["capacity_at_cycle_mAh_per_g"]["12000"],
                     *record["interval_90"]["capacity_at_current_mAh_per_g"]["4.2"]])
        central = [record["capacity_at_cycle_mAh_per_g"]["12000"]] * 2 + [record["capacity_at_current_mAh_per_g"]["4.2"]] * 2
    spread = np.ptp(np.array(ends), axis=0) / np.array(central)
    assert np.all(spread < 0.05), (ends, spread)


def test_cycles_up_to_400_bound_the_capacity_at_cycle_12000():
    """Issue 10's done-when on the long-cycling leave-out: fitted on cycles up to 400, the interval at 12 000 covers
    the measurement (270 mAh/g) and is not vacuous (half-width below 30 %). A sqrt(time) SEI loss fitted beside the
    mechanical loss, which two cycling points cannot tell apart from it, made this interval 0-431 mAh/g."""
    (row,) = validate(studies=tuple(s for s in STUDIES if s.name == "cycle 12000 from <= 400"))
    assert row["measured"] == 270.0
    assert row["covered"]
    assert row["half_width_pct"] < 30.0
    assert abs(row["error_pct"]) < 10.0  # and the accuracy target for this extrapolation


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(ensemble_size=0), "ensemble_size=0 is out of range: allowed int 8 to 4096"),
    (lambda d: d.update(interval_probability=float("nan")), "interval_probability"),
    (lambda d: d.update(seed=1.5), "seed=1.5 is out of range"),
    (lambda d: d.update(prior_sd_per_range=0), "prior_sd_per_range=0 is out of range: allowed float 0.01 to 10"),
    (lambda d: d.update(finite_difference_step_per_range=0.5), "finite_difference_step_per_range=0.5 is out of range"),
    (lambda d: d.pop("seed"), "expected exactly the keys"),
    (lambda d: d.update(proposal_degrees_of_freedom=0.5), "proposal_degrees_of_freedom=0.5 is out of range"),
    (lambda d: d.update(uncertain_assumed_parameters="separator"), "uncertain_assumed_parameters must be a list"),
    (lambda d: d["measurement_sigma_pct"].update(capacity=-1), "measurement_sigma_pct needs exactly"),
    (lambda d: d["model_form_sigma_pct"].update(colour=3), "model_form_sigma_pct takes some of"),
    (lambda d: d["model_form_sigma_pct"].update(efficiency=float("nan")), "model_form_sigma_pct takes some of"),
    (lambda d: d["model_form_errors"].update(efficiency=0), "model_form_errors takes some of the families"),
    (lambda d: d["model_form_errors"].update(efficiency=2.5), "model_form_errors takes some of the families"),
    (lambda d: d["model_form_errors"].update(cycling=3), "model_form_errors takes some of the families"),
    (lambda d: d["model_form_sigma_pct"].update(cycling=5), "model_form_sigma_pct.cycling: that family carries "
                                                           "capacity's form error"),
    (lambda d: d["model_form_sigma_pct"].pop("particle_expansion"), "model_form_errors takes some of the families"),
    (lambda d: d["model_form_distance"].update(milling_factor=1.0), "model_form_distance.milling_factor=1.0 is out of range: allowed 1.05 to 100"),
    (lambda d: d["model_form_distance"].pop("sn_mass_fraction"), "model_form_distance needs exactly"),
    (lambda d: d.update(model_form_distance=[0.3, 2]), "model_form_distance needs exactly"),
])
def test_a_broken_uncertainty_file_is_refused_naming_the_field(tmp_path, edit, message):
    import yaml

    from surrogate.paths import config_dir

    document = yaml.safe_load((config_dir() / "uncertainty.yaml").read_text())
    edit(document)
    path = tmp_path / "uncertainty.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        UncertaintySettings.load(path)
    assert len(str(error.value).splitlines()) == 1


def test_milling_constants_the_data_cannot_see_widen_only_recipes_milled_otherwise():
    """The configured milling constants move none of the study's data, so they are drawn apart from the calibrated
    ensemble: at the study's own recipe every interval is the one without them, bit for bit; 40 h of milling, four
    times the study's dose, rests on them (cold welding, the vial's heat), and its interval widens."""
    p = ModelParameters.load()
    configured = UncertaintySettings.load()
    milling = {"sn_welding_onset_exponent", "sn_welding_saturation", "sn_welding_activation_energy_kJ_per_mol",
               "vial_temperature_rise_at_reference_C", "oxidation_air_to_argon_ratio"}
    assert milling <= set(configured.uncertain_assumed_parameters)
    without = build_ensemble(p, calibrate(p), settings=dataclasses.replace(configured, uncertain_assumed_parameters=tuple(
        name for name in configured.uncertain_assumed_parameters if name not in milling)))
    with_them = build_ensemble(p, calibrate(p), settings=configured)
    request = PredictionRequest(currents_A_per_g=(1.7, 4.2), cycles=(1000,))
    assert (with_them.predict(REFERENCE, request).record(0)["interval_90"]
            == without.predict(REFERENCE, request).record(0)["interval_90"])
    long_milled = Recipes(sn_mass_fraction=[2 / 3], milling_time_h=[40], milling_speed_rpm=[400],
                          ball_to_powder_ratio=[20])

    def width(e):
        low, high = e.predict(long_milled, request).record(0)["interval_90"]["capacity_at_cycle_mAh_per_g"]["1000"]
        return high - low
    assert width(with_them) > 1.5 * width(without)


def test_no_capacity_interval_reaches_above_the_theoretical_capacity(ensemble):
    """A capacity's band, measurement scatter included, stays within what the electrode's Sn and HC can hold: near
    the theoretical capacity (slow, warm, Sn-rich or pure HC) the scatter would otherwise carry it above."""
    recipes = Recipes(sn_mass_fraction=[0.95, 2 / 3, 0.0, 0.3], milling_time_h=[10, 0.5, 0.0, 10],
                      milling_speed_rpm=[400, 400, 400, 400], ball_to_powder_ratio=[20, 20, 20, 20])
    for temperature_C in (25.0, 60.0):
        uncertain = ensemble.predict(recipes, PredictionRequest(currents_A_per_g=(0.01, 0.05, 1.7), cycles=(1, 1000),
                                                                temperature_C=temperature_C))
        for i in range(recipes.size):
            record = uncertain.record(i)
            ceiling = record["theoretical_capacity_mAh_per_g"] * (1 + 1e-12)
            bands = [record["interval_90"]["reversible_capacity_mAh_per_g"],
                     *record["interval_90"]["capacity_at_current_mAh_per_g"].values(),
                     *record["interval_90"]["capacity_at_cycle_mAh_per_g"].values()]
            assert all(0.0 <= low <= high <= ceiling for low, high in bands), (i, temperature_C, bands, ceiling)
        low, high = uncertain.scalar_interval(lambda m: m.reversible_capacity_mAh_per_g, "reversible_capacity_mAh_per_g")
        theoretical = uncertain.central.theoretical_capacity_mAh_per_g
        assert np.all(high <= theoretical * (1 + 1e-12)) and np.all(low >= 0)


def _flags(ensemble, recipe: dict, **request):
    from surrogate.recipe import Recipes as R

    return ensemble.predict(R.from_records([recipe]), PredictionRequest(**request)).record(0)["extrapolated"]


def _material(name: str) -> dict:
    from surrogate.paths import config_dir
    from surrogate.recipe import load_materials

    return load_materials(config_dir() / "materials.yaml")[name].to_records()[0]


def test_a_study_material_is_judged_by_its_own_data(ensemble):
    """The composite was measured at 0.08-4.2 A/g and to cycle 12 000 at 1.7 A/g; HC only at 0.08 A/g and at cycle 1
    (1.7 A/g), never for its expansion; nano-Sn's rate and fade never. Each is judged against what was measured on
    it, a recipe stated as a lab states it (2:1 as 0.6667) included."""
    conditions = dict(currents_A_per_g=(0.17, 1.7, 4.2), cycles=(1, 400, 12000))
    composite = _flags(ensemble, _material("Sn@HC-2-1") | {"sn_mass_fraction": 0.6667}, **conditions)
    assert not any(composite["capacity_at_current_mAh_per_g"].values())
    assert not any(composite["capacity_at_cycle_mAh_per_g"].values())
    assert not composite["particle_expansion_pct"] and not composite["electrode_expansion_after_1000_cycles_pct"]
    hc = _flags(ensemble, _material("HC"), **conditions)
    assert hc["capacity_at_current_mAh_per_g"] == {"0.17": False, "1.7": False, "4.2": True}
    assert hc["capacity_at_cycle_mAh_per_g"] == {"1": False, "400": True, "12000": True}
    assert hc["particle_expansion_pct"] and not hc["initial_coulombic_efficiency_pct"]
    nano = _flags(ensemble, _material("nano-Sn"), **conditions)
    assert all(nano["capacity_at_current_mAh_per_g"].values()) and all(nano["capacity_at_cycle_mAh_per_g"].values())
    assert not nano["particle_expansion_pct"] and not nano["electrode_expansion_after_1000_cycles_pct"]


@pytest.mark.parametrize("change", [{"milling_time_h": 40.0}, {"milling_atmosphere": "air"},
                                    {"sn_mass_fraction": 0.9}, {"pause_duty_cycle": 0.5}])
def test_every_metric_of_a_recipe_beyond_the_materials_is_flagged_but_its_arithmetic(ensemble, change):
    flags = _flags(ensemble, _material("Sn@HC-2-1") | change, currents_A_per_g=(1.7,), cycles=(1, 400))
    assert flags.pop("theoretical_capacity_mAh_per_g") is False
    assert all(all(v.values()) if isinstance(v, dict) else v for v in flags.values()), flags


@pytest.mark.parametrize("material", ["HC", "nano-Sn"])
@pytest.mark.parametrize("settings", [{"milling_speed_rpm": 300.0}, {"ball_to_powder_ratio": 90.0},
                                      {"milling_atmosphere": "air", "pause_duty_cycle": 0.2}])
def test_an_unmilled_powder_is_its_material_whatever_mill_settings_it_states(ensemble, material, settings):
    """A powder that is not milled is the same powder at any stated speed, BPR, atmosphere or duty cycle: the model
    gives the same values, and it is judged by the same material's data (flags and intervals), not by the study's as
    a whole (which had dropped HC's 4.2 A/g flag and nano-Sn's rate flags)."""
    request = dict(currents_A_per_g=(1.7, 4.2), cycles=(1, 12000))
    recipes = Recipes.from_records([_material(material), _material(material) | settings])
    stated, restated = (ensemble.predict(recipes, PredictionRequest(**request)).record(i) for i in (0, 1))
    assert restated == stated


@pytest.mark.parametrize("field, values", [("milling_time_h", (10.0, 10.001, 10.1, 14.0, 20.0)),
                                           ("sn_mass_fraction", (2 / 3, 0.6666, 0.66, 0.6, 0.5))])
def test_a_quantitys_interval_widens_smoothly_away_from_the_material_it_was_measured_on(ensemble, field, values):
    """The model-form error (never measured on a recipe) grows with the distance from the measured material instead
    of switching on at a recipe's fourth significant digit: nearly the same recipe has nearly the same interval, and
    farther ones wider intervals (2:1 milled 10 h had ICE 80-84 %, and 10.1 h 73-97 %)."""
    recipes = Recipes.from_records([_material("Sn@HC-2-1") | {field: v} for v in values])
    uncertain = ensemble.predict(recipes, PredictionRequest(currents_A_per_g=(1.7,), cycles=(1,)))
    for quantity in ("initial_coulombic_efficiency_pct", "particle_expansion_pct"):
        widths = [np.diff(uncertain.record(i)["interval_90"][quantity])[0] / uncertain.record(i)[quantity]
                  for i in range(recipes.size)]
        assert abs(widths[1] - widths[0]) < 0.01 * widths[0], (quantity, widths)
        assert widths[-1] > 1.5 * widths[0], (quantity, widths)


def test_a_lab_row_counts_as_a_measured_material_for_the_quantities_it_measured(ensemble):
    """A lab-taught model was fitted to the lab's rows: near a lab recipe, a quantity the row measured (the swelling)
    carries the model-form error of a measured material, and one it did not (the ICE) keeps the study's. A lab that
    measured the swelling around the recommended recipe had seen the interval there widen, not narrow."""
    made = _material("Sn@HC-2-1") | {"milling_time_h": 21.0, "milling_speed_rpm": 540.0, "ball_to_powder_ratio": 5.0}
    near = made | {"milling_time_h": 22.0}
    taught = dataclasses.replace(ensemble, domain=ensemble.domain.with_lab_rows(
        [(made, {"particle_expansion_pct": 260.0, "objective_capacity_mAh_per_g": 330.0, "objective": 320.0})]))
    scale = ensemble.settings.model_form_distance
    assert ensemble.domain.model_form_weight(near, "particle_expansion_pct", scale) == 1.0  # far from the study's
    assert taught.domain.model_form_weight(made, "particle_expansion_pct", scale) == 0.0
    assert 0.0 < taught.domain.model_form_weight(near, "particle_expansion_pct", scale) < 0.1
    assert taught.domain.model_form_weight(near, "initial_coulombic_efficiency_pct", scale) == 1.0
    request = PredictionRequest(currents_A_per_g=(1.7,), cycles=(1,))
    recipes = Recipes.from_records([near])
    study, lab = (e.predict(recipes, request).record(0)["interval_90"] for e in (ensemble, taught))
    assert np.diff(lab["particle_expansion_pct"])[0] < 0.5 * np.diff(study["particle_expansion_pct"])[0]
    assert lab["initial_coulombic_efficiency_pct"] == study["initial_coulombic_efficiency_pct"]
    assert taught.domain.recipe_beyond(made) == ensemble.domain.recipe_beyond(made)  # flags: the study's rule


def test_an_efficiencys_interval_scatters_its_irreversible_loss_not_the_efficiency(ensemble):
    """A first-cycle efficiency's error is its SEI and trapping loss's (100 - ICE): across pure, blended and milled
    powders its 90 % interval keeps at least 40 % of the central loss at its upper end (as 8.8 % of the ICE itself,
    an 83 % composite milled longer had scattered up to 97 %, a fifth of its loss). The loss's own scatter keeps about
    half; the parameters' spread takes a little more far from the data (Sn 0.9 milled 40 h keeps 49 %)."""
    fractions, times = np.meshgrid([0.0, 0.2, 0.5, 2 / 3, 0.9, 1.0], [0.0, 10.0, 40.0])
    recipes = Recipes(sn_mass_fraction=fractions.ravel(), milling_time_h=times.ravel(),
                      milling_speed_rpm=[400.0] * fractions.size, ball_to_powder_ratio=[20.0] * fractions.size)
    uncertain = ensemble.predict(recipes, PredictionRequest(currents_A_per_g=(1.7,), cycles=(1,)))
    for i in range(recipes.size):
        record = uncertain.record(i)
        central = record["initial_coulombic_efficiency_pct"]
        low, high = record["interval_90"]["initial_coulombic_efficiency_pct"]
        assert 100.0 - high >= 0.4 * (100.0 - central), (i, central, low, high)


def test_conditions_outside_the_measured_ones_are_flagged(ensemble):
    composite = _material("Sn@HC-2-1")
    slow = _flags(ensemble, composite, currents_A_per_g=(0.01, 0.08, 5.0))
    assert slow["capacity_at_current_mAh_per_g"] == {"0.01": True, "0.08": False, "5": True}
    other_fade = _flags(ensemble, composite, cycling_current_A_per_g=0.5, cycles=(1, 400))
    assert all(other_fade["capacity_at_cycle_mAh_per_g"].values())
    assert other_fade["electrode_expansion_after_1000_cycles_pct"]
    cold = _flags(ensemble, composite, temperature_C=0.0)
    assert cold["reversible_capacity_mAh_per_g"] and cold["particle_expansion_pct"]
    assert not cold["activation_energy_kJ_per_mol"]  # measured across temperatures by variable-temperature EIS


@pytest.mark.parametrize("change, flagged", [
    ({"sn_mass_fraction": 0.667}, False), ({"sn_mass_fraction": 0.6695}, False), ({"milling_time_h": 10.01}, False),
    ({"milling_speed_rpm": 0.998}, False), ({"temperature_C": 25.5}, False),
    # exactly 0.5 % off is within, whatever the last binary digit (BPR 19.9 had been flagged where 398 rpm was not)
    ({"ball_to_powder_ratio": 19.9}, False), ({"milling_speed_rpm": 0.995}, False),
    ({"sn_mass_fraction": 0.675}, True), ({"milling_time_h": 10.1}, True), ({"milling_speed_rpm": 0.99}, True),
    ({"temperature_C": 26.0}, True), ({"temperature_C": 24.0}, True)])
def test_a_recipe_or_temperature_within_the_stated_precision_is_the_studys_own(ensemble, change, flagged):
    """A recipe whose fields are within same_recipe_within_pct (0.5 %) of a study material's is that material (a lab
    that weighs 0.667 of Sn made the study's 2:1), and a temperature within same_temperature_within_C (0.5 C) of the
    measured one is that one; beyond them, every metric is flagged. (A speed is given as a share of the material's.)"""
    composite = _material("Sn@HC-2-1")
    temperature = change.pop("temperature_C", 25.0)
    if "milling_speed_rpm" in change:
        change["milling_speed_rpm"] *= composite["milling_speed_rpm"]
    flags = _flags(ensemble, composite | change, currents_A_per_g=(1.7,), cycles=(1, 400), temperature_C=temperature)
    assert flags["particle_expansion_pct"] is flagged
    assert all(flags["capacity_at_cycle_mAh_per_g"].values()) is flagged


def test_the_precision_that_makes_a_recipe_the_studys_comes_from_the_settings(ensemble):
    """With same_recipe_within_pct 0 only the stated digits count (0.6667 is 2:1, 0.667 is not)."""
    from surrogate.uncertainty import CalibratedDomain

    exact = dataclasses.replace(ensemble.domain, recipe_within_pct=0.0, temperature_within_C=0.0)
    composite = _material("Sn@HC-2-1")
    assert exact.recipe_beyond(composite | {"sn_mass_fraction": 0.6667}) == {}
    assert "sn_mass_fraction" in exact.recipe_beyond(composite | {"sn_mass_fraction": 0.667})
    assert ensemble.domain.recipe_beyond(composite | {"sn_mass_fraction": 0.667}) == {}
    assert exact.temperature_outside(25.2) and not ensemble.domain.temperature_outside(25.2)
    assert isinstance(ensemble.domain, CalibratedDomain) and ensemble.domain.recipe_within_pct == \
        UncertaintySettings.load().same_recipe_within_pct


def test_an_objective_is_flagged_where_its_capacity_or_its_recipe_lies_beyond_the_data(ensemble):
    composite = Recipes.from_records([_material("Sn@HC-2-1")])
    milled_longer = Recipes.from_records([_material("Sn@HC-2-1") | {"milling_time_h": 40.0}])
    target = dict(target_current_A_per_g=1.7, target_cycle=1000)
    assert not ensemble.predict(composite, PredictionRequest(**target)).target_extrapolated(0)
    assert ensemble.predict(milled_longer, PredictionRequest(**target)).target_extrapolated(0)
    assert ensemble.predict(composite, PredictionRequest(target_current_A_per_g=4.2, target_cycle=1000)
                            ).target_extrapolated(0)  # the fade was measured at 1.7 A/g only
    assert ensemble.predict(composite, PredictionRequest(temperature_C=0.0, **target)).target_extrapolated(0)


def test_a_quantity_never_measured_on_a_material_carries_the_models_form_error(ensemble):
    """The first-cycle efficiency's form is scattered (model_form_sigma_pct) only where the material's own ICE was
    not measured: Sn@HC-1-2's interval is several times the measured composite's, whose stays the data's, and an
    ensemble without the term gives Sn@HC-1-2 the narrow interval the exactly met ICE rows imply."""
    from surrogate.recipe import Recipes as R

    def width(e, name):
        low, high = e.predict(R.from_records([_material(name)])).record(0)["interval_90"][
            "initial_coulombic_efficiency_pct"]
        return high - low

    assert ensemble.settings.model_form_sigma_pct["efficiency"] > 0
    assert width(ensemble, "Sn@HC-1-2") > 3.0 * width(ensemble, "Sn@HC-2-1")
    without = dataclasses.replace(ensemble, settings=dataclasses.replace(ensemble.settings, model_form_sigma_pct={}))
    assert width(without, "Sn@HC-2-1") == pytest.approx(width(ensemble, "Sn@HC-2-1"), rel=1e-12)
    assert width(without, "Sn@HC-1-2") < 0.5 * width(ensemble, "Sn@HC-1-2")


def test_a_form_error_estimated_from_few_errors_widens_the_interval_as_students_t_does(ensemble):
    """The model-form sigma is the RMS of two or three leave-material-out errors, so a member's form error is a
    Student-t draw with that many degrees of freedom, on the log scale: the particle expansion of Sn@HC-1-2 (never
    measured) spreads wider than with the sigma taken as exact (many errors: a Gaussian), by about t's 90 % quantile
    over the Gaussian's (2.92 / 1.64 for two errors), and every member's factor stays positive. With 64 members the
    ratio of sample percentiles scatters: over 2000 random streams, 64 t(2) draws against the same streams' Gaussian
    ones give a 90 % width ratio of 1.23-2.56 (5th-95th percentile, median 1.73); a form error taken as exact gives
    about 1, a Cauchy's (one error) a median of 3.7."""
    from surrogate.recipe import Recipes as R

    def interval(e):
        return e.predict(R.from_records([_material("Sn@HC-1-2")])).record(0)["interval_90"]["particle_expansion_pct"]

    assert ensemble.settings.model_form_errors["particle_expansion"] == 2
    many = dict(ensemble.settings.model_form_errors, particle_expansion=1000)
    gaussian = dataclasses.replace(ensemble, settings=dataclasses.replace(ensemble.settings, model_form_errors=many))
    (low_t, high_t), (low_g, high_g) = interval(ensemble), interval(gaussian)
    assert 0.0 < low_t < low_g and high_t > high_g
    assert 1.2 < np.log(high_t / low_t) / np.log(high_g / low_g) < 2.6
    assert all(factors[f] > 0 for factors in ensemble.model_form_factors for f in factors)


def test_a_capacity_at_a_composition_never_made_carries_the_capacitys_assumed_form_error(ensemble):
    """No data row checks the Sn's utilisation at a Sn fraction never made, so a capacity there carries the
    capacity's assumed form error (configs/uncertainty.yaml: no count, a Gaussian), growing with the distance from
    the materials whose capacity was measured: a 4:1 powder's capacity at 4.2 A/g had the measured 2:1's relative
    width (+-5 %). The measured 2:1 and HC keep theirs (HC's rate-test capacity at 1.7 A/g too: its capacity was
    measured), a capacity after cycles carries the same factor, and the measured families' draws do not move."""
    from surrogate.recipe import Recipes as R

    request = PredictionRequest(currents_A_per_g=(4.2,), target_cycle=1000)

    def relative_widths(e, record):
        r = e.predict(R.from_records([record]), request).record(0)
        bands = r["interval_90"]
        low, high = bands["capacity_at_current_mAh_per_g"]["4.2"]
        cycled_low, cycled_high = bands["capacity_at_cycle_mAh_per_g"]["1000"]
        return ((high - low) / r["capacity_at_current_mAh_per_g"]["4.2"],
                (cycled_high - cycled_low) / r["capacity_at_cycle_mAh_per_g"]["1000"])

    assert "capacity" in ensemble.settings.model_form_sigma_pct
    assert "capacity" not in ensemble.settings.model_form_errors  # assumed, not the RMS of measured errors
    without = dataclasses.replace(ensemble, settings=dataclasses.replace(
        ensemble.settings, model_form_sigma_pct={k: v for k, v in ensemble.settings.model_form_sigma_pct.items()
                                                 if k != "capacity"}))
    sn_rich = {**_material("Sn@HC-2-1"), "sn_mass_fraction": 0.8}
    for measured in ("Sn@HC-2-1", "HC"):
        assert relative_widths(ensemble, _material(measured)) == pytest.approx(
            relative_widths(without, _material(measured)), rel=1e-12)
    assert relative_widths(ensemble, sn_rich)[0] > 1.3 * relative_widths(without, sn_rich)[0]
    # the capacity after cycles: the same share of the form error, and each member's same factor (its spread at
    # 1000 cycles is mostly the fade parameters', so its width shows the term less)
    assert ensemble.form_weights([sn_rich], "capacity_at_cycle_mAh_per_g") == pytest.approx(
        ensemble.form_weights([sn_rich], "capacity_at_current_mAh_per_g"), rel=1e-12)
    assert 0.3 < ensemble.form_weights([sn_rich], "capacity_at_current_mAh_per_g")[0] < 0.5  # 0.133 / 0.333 apart
    # a lab row that measured only the cycled capacity takes the form error off the rate capacity beside it too:
    # one factor, one weight (the rate row's twin had read [314-496] beside the cycled [333-444])
    scale = ensemble.settings.model_form_distance
    taught = dataclasses.replace(ensemble, domain=ensemble.domain.with_lab_rows(
        [(sn_rich, {"capacity_at_cycle_1000_mAh_per_g": 300.0})], scale, 0.1, 1000))
    assert taught.form_weights([sn_rich], "capacity_at_current_mAh_per_g")[0] == 0.0
    assert taught.form_weights([sn_rich], "capacity_at_cycle_mAh_per_g")[0] == 0.0
    for k in range(len(ensemble.members)):
        measured = ensemble.measurement_factors[k]
        assert ensemble.member_factor(k, "cycling", 1.0) / measured["cycling"] == pytest.approx(
            ensemble.member_factor(k, "capacity", 1.0) / measured["capacity"], rel=1e-12)
    hc = ensemble.predict(R.from_records([_material("HC")]), PredictionRequest(currents_A_per_g=(1.7,))).record(0)
    hc_without = without.predict(R.from_records([_material("HC")]), PredictionRequest(currents_A_per_g=(1.7,))
                                 ).record(0)
    assert hc["interval_90"]["capacity_at_current_mAh_per_g"]["1.7"] == pytest.approx(
        hc_without["interval_90"]["capacity_at_current_mAh_per_g"]["1.7"], rel=1e-12)
    assert [{f: v for f, v in m.items() if f != "capacity"} for m in ensemble.model_form_factors] == list(
        without.model_form_factors)


def test_a_model_with_assumed_values_moved_after_the_fit_keeps_the_studys_spread(ensemble):
    """A lab-taught model (or a what-if of another material without a refit) moves assumed values after the fit:
    its ensemble is the study's, each member carrying the moved values (a drawn one shifted by the same step on its
    scale), not one built around a model the study's data no longer fit, whose inflated residual scale gave members
    that kept their fresh capacity after 1000 cycles."""
    p = ModelParameters.load()
    calibration = calibrate(p)
    moved_values = {"oxide_at_reference_argon": 0.02, "hc_plateau_fraction": 0.35, "sn_welding_saturation": 8.0}
    moved = build_ensemble(p.with_values(**moved_values), calibration)
    assert "sn_welding_saturation" in moved.settings.uncertain_assumed_parameters  # one drawn, two fixed
    assert moved.central.digest() == calibration.apply(p.with_values(**moved_values)).digest()
    fitted = p.names("fitted")
    scale = ParameterTransform(p, ["sn_welding_saturation"])  # the step is taken on the calibration's scale
    for before, after in zip(ensemble.members, moved.members):
        assert {n: after[n].value for n in fitted} == {n: before[n].value for n in fitted}  # the study's fit spread
        assert after["oxide_at_reference_argon"].value == 0.02 and after["hc_plateau_fraction"].value == 0.35
        low, high = p["sn_welding_saturation"].bounds
        step = scale.forward(np.array([8.0])) - scale.forward(np.array([ensemble.central["sn_welding_saturation"].value]))
        shifted = scale.backward(scale.forward(np.array([before["sn_welding_saturation"].value])) + step)[0]
        assert after["sn_welding_saturation"].value == pytest.approx(min(max(shifted, low), high), rel=1e-9)
    request = PredictionRequest(cycles=(1, 1000))
    widths = []
    for e in (ensemble, moved):
        record = e.predict(REFERENCE, request).record(0)
        low, high = record["interval_90"]["capacity_at_cycle_mAh_per_g"]["1000"]
        widths.append((high - low) / record["capacity_at_cycle_mAh_per_g"]["1000"])
    assert widths[1] < 1.5 * widths[0], widths  # not widened by the study's misfit to the moved model


def test_draws_of_moved_parameters_give_each_member_its_own_values_and_stack_as_they_predict_alone(ensemble):
    """A lab's posterior over its parameters (``assumed_draws``) reaches the members: member k takes draw k in place
    of the central value, the study's fitted spread kept, and the stacked batch (the HC plateau share among the
    drawn: its segment capacities then hold one value per row) predicts what each member predicts alone. A draw
    per member, of the same parameters, or it is refused."""
    from surrogate.model import predict

    p = ModelParameters.load()
    calibration = calibrate(p)
    taught = p.with_values(hc_plateau_fraction=0.4, sn_welding_saturation=8.0)
    rng = np.random.default_rng(3)

    def draws(n):
        return [{"hc_plateau_fraction": float(v), "sn_welding_saturation": float(w)}
                for v, w in zip(rng.uniform(0.3, 0.5, n), rng.uniform(5.0, 12.0, n))]

    drawn = build_ensemble(taught, calibration, assumed_draws=draws)
    fitted = p.names("fitted")
    values = [m["hc_plateau_fraction"].value for m in drawn.members]
    assert len(set(values)) == len(drawn.members) and all(0.3 <= v <= 0.5 for v in values)
    for before, after in zip(ensemble.members, drawn.members):
        assert {n: after[n].value for n in fitted} == {n: before[n].value for n in fitted}
    recipes = Recipes(sn_mass_fraction=[0.3, 0.9], milling_time_h=[2.0, 30.0], milling_speed_rpm=[300, 550],
                      ball_to_powder_ratio=[10, 30])
    stacked = drawn.predict(recipes)
    for member, alone in zip(stacked.members, (predict(recipes, m) for m in drawn.members)):
        for name, value in alone.scalar_metrics().items():
            np.testing.assert_allclose(member.scalar_metrics()[name], value, rtol=1e-12, err_msg=name)
    with pytest.raises(ValueError, match="one or more per member"):
        build_ensemble(taught, calibration, assumed_draws=lambda n: draws(n - 1))


def test_a_quantity_a_lab_row_near_the_recipe_measured_is_not_an_extrapolation(ensemble):
    """A lab-taught model interpolates the lab's own data: within lab_row_near_distance (model-form units) of a
    row that measured a quantity, a recipe milled otherwise than the study's materials has that quantity (and the
    capacity after cycles it measured) unflagged; what no row near it measured stays flagged, and so does every
    quantity of a recipe far from the rows (every suggestion had been flagged, beside the rows or not)."""
    settings = ensemble.settings
    made = _material("Sn@HC-2-1") | {"milling_time_h": 21.0, "milling_speed_rpm": 540.0, "ball_to_powder_ratio": 5.0}
    taught = dataclasses.replace(ensemble, domain=ensemble.domain.with_lab_rows(
        [(made, {"particle_expansion_pct": 260.0, "capacity_at_cycle_1000_mAh_per_g": 330.0})],
        settings.model_form_distance, settings.lab_row_near_distance))
    assert 0.0 < settings.lab_row_near_distance <= 1.0
    near = made | {"milling_time_h": 24.0}  # a factor 1.14: distance 0.19
    far = made | {"milling_time_h": 2.0}  # a factor 10: distance 3.3
    assert taught.domain.measured_near(near) == {"particle_expansion_pct", "capacity_at_cycle_mAh_per_g"}
    assert taught.domain.measured_near(far) == frozenset() and ensemble.domain.measured_near(near) == frozenset()
    request = PredictionRequest(currents_A_per_g=(1.7,), cycles=(1000,), target_current_A_per_g=1.7,
                                target_cycle=1000)
    uncertain = taught.predict(Recipes.from_records([near, far]), request)
    flags_near, flags_far = (uncertain.record(i)["extrapolated"] for i in range(2))
    assert not flags_near["particle_expansion_pct"] and not flags_near["capacity_at_cycle_mAh_per_g"]["1000"]
    assert flags_near["initial_coulombic_efficiency_pct"] and flags_near["capacity_at_current_mAh_per_g"]["1.7"]
    assert not uncertain.target_extrapolated(0) and uncertain.target_extrapolated(1)
    assert flags_far["particle_expansion_pct"] and flags_far["capacity_at_cycle_mAh_per_g"]["1000"]
    study = ensemble.predict(Recipes.from_records([near]), request).record(0)["extrapolated"]
    assert study["particle_expansion_pct"]  # the study's model alone: beyond its materials


def test_a_lab_row_unflags_only_the_cycles_it_measured(ensemble):
    """Rows that measured the capacity after 400 cycles and the objective's (its cycle, 1000, named by the config,
    not the column) un-flag cycles 400-1000 near them, not the fresh capacity nor cycle 12 000: with any cycle
    measured, every cycle had been un-flagged (the fresh capacity's twin in the rate test stayed flagged)."""
    settings = ensemble.settings
    made = _material("Sn@HC-2-1") | {"milling_time_h": 21.0, "milling_speed_rpm": 540.0, "ball_to_powder_ratio": 5.0}
    rows = [(made, {"capacity_at_cycle_400_mAh_per_g": 372.0, "objective_capacity_mAh_per_g": 330.0})]
    taught = dataclasses.replace(ensemble, domain=ensemble.domain.with_lab_rows(
        rows, settings.model_form_distance, settings.lab_row_near_distance, target_cycle=1000))
    assert taught.domain.measured_near(made).cycles == (400, 1000)
    request = PredictionRequest(currents_A_per_g=(1.7,), cycles=(1, 400, 700, 1000, 12000),
                                target_current_A_per_g=1.7, target_cycle=1000)
    flags = taught.predict(Recipes.from_records([made]), request).record(0)["extrapolated"]
    assert flags["capacity_at_cycle_mAh_per_g"] == {"1": True, "400": False, "700": False, "1000": False,
                                                    "12000": True}
    unknown = dataclasses.replace(ensemble, domain=ensemble.domain.with_lab_rows(
        rows, settings.model_form_distance, settings.lab_row_near_distance))  # the objective's cycle not given
    assert unknown.domain.measured_near(made).cycles is None  # then no cycle is vouched for
    assert all(unknown.predict(Recipes.from_records([made]), request).record(0)["extrapolated"][
        "capacity_at_cycle_mAh_per_g"].values())



def test_a_lab_row_that_measured_high_currents_extends_the_measured_currents(ensemble):
    """A row that measured the rate test at 6 and 10 A/g on a study material makes those currents, and the ones
    between them and the study's 4.2 A/g, measured there: not flagged, and not widened by the rate model's form
    error per e-fold beyond 4.2; above 10 A/g the flag and the widening start from 10. Both had ignored the rows:
    6 and 10 A/g stayed flagged, and the interval at 10 A/g 125-415 mAh/g around a lab that measured 360. On a
    recipe no study material is, the rows vouch for their own currents only, as rows of cycles 400-1000 vouch for
    no other cycle."""
    settings = ensemble.settings
    material = _material("Sn@HC-2-1")
    made = material | {"milling_time_h": 21.0, "milling_speed_rpm": 540.0, "ball_to_powder_ratio": 5.0}
    measured = {"capacity_at_6_A_per_g_mAh_per_g": 390.0, "capacity_at_10_A_per_g_mAh_per_g": 360.0}
    taught = dataclasses.replace(ensemble, domain=ensemble.domain.with_lab_rows(
        [(material, measured), (made, measured)], settings.model_form_distance, settings.lab_row_near_distance))
    assert taught.domain.measured_near(material).currents == (6.0, 10.0)
    request = PredictionRequest(currents_A_per_g=(1.7, 4.2, 5.0, 8.0, 10.0, 20.0))
    on_material, on_made = (taught.predict(Recipes.from_records([material, made]), request).record(i)[
        "extrapolated"]["capacity_at_current_mAh_per_g"] for i in range(2))
    assert on_material == {"1.7": False, "4.2": False, "5": False, "8": False, "10": False, "20": True}
    assert on_made == {"1.7": True, "4.2": True, "5": True, "8": False, "10": False, "20": True}
    assert taught.domain.current_distance(material, 10.0) == 0.0
    assert taught.domain.current_distance(material, 20.0) == pytest.approx(np.log(2.0))
    assert ensemble.domain.current_distance(material, 10.0) == pytest.approx(np.log(10.0 / 4.2))
    far = made | {"milling_time_h": 2.0}
    assert taught.domain.measured_near(far).currents is None and taught.domain.current_distance(far, 10.0) > 0.0


def test_a_pure_hc_electrode_thickens_a_few_percent_with_an_interval(ensemble):
    """HC is never damaged by swelling, so the damage law alone gave a pure HC electrode exactly 0 % [0-0], a
    certainty nobody measured. Its own slow thickening (assumed, 0.5-10 %) gives it a few %, an interval of that
    range's width, and the extrapolated flag (no HC electrode was measured)."""
    from surrogate.recipe import Recipes as R

    record = ensemble.predict(R.from_records([_material("HC")])).record(0)
    name = "electrode_expansion_after_1000_cycles_pct"
    low, high = record["interval_90"][name]
    assert 0.5 <= record[name] <= 10.0
    assert low < record[name] < high and high - low > 2.0
    assert record["extrapolated"][name]


def test_an_electrode_whose_particles_swelling_is_uncertain_carries_that_uncertainty(ensemble):
    """The electrode thickens as a power of the particles' swelling, so a recipe whose particle expansion carries the
    model-form error (2:1 milled in air: the study milled in argon) carries it in the electrode expansion too, raised
    to that power; at the measured composite neither widens. (An air-milled 2:1 had kept the measured composite's
    electrode band, 11.6-18.2 %, beside a particle interval of 86-550 %.)"""
    from surrogate.recipe import Recipes as R

    def widths(recipe):
        record = ensemble.predict(R.from_records([recipe])).record(0)["interval_90"]
        return {k: np.log(record[k][1] / record[k][0])
                for k in ("particle_expansion_pct", "electrode_expansion_after_1000_cycles_pct")}

    measured, air = widths(_material("Sn@HC-2-1")), widths(_material("Sn@HC-2-1") | {"milling_atmosphere": "air"})
    assert air["particle_expansion_pct"] > 3 * measured["particle_expansion_pct"]
    assert air["electrode_expansion_after_1000_cycles_pct"] > 3 * measured["electrode_expansion_after_1000_cycles_pct"]


def test_a_powder_milled_for_seconds_has_the_unmilled_powders_interval(ensemble):
    """Milling nano-Sn for 0.36 s cannot change it: its intervals are the unmilled powder's, to a few %, where they
    had jumped to the full model-form error (particle expansion 607-742 % -> 219-1382 %); half an hour of milling
    carries all of it."""
    from surrogate.recipe import Recipes as R

    def interval(hours):
        recipe = _material("nano-Sn") | {"milling_time_h": hours}
        return np.array(ensemble.predict(R.from_records([recipe])).record(0)["interval_90"]["particle_expansion_pct"])

    unmilled, seconds, half_hour = interval(0.0), interval(1e-4), interval(0.5)
    np.testing.assert_allclose(seconds, unmilled, rtol=0.02)
    assert np.log(half_hour[1] / half_hour[0]) > 3 * np.log(unmilled[1] / unmilled[0])


def test_a_trace_of_tin_in_hard_carbon_is_judged_as_hard_carbon(ensemble):
    """A Sn mass fraction is weighed as two masses, so 1e-6 of Sn in HC is HC (within the weighing tolerance of the
    larger mass): its capacity at 1.7 A/g, measured on HC, is not an extrapolation, as at 0 (it had been flagged)."""
    flags = [_flags(ensemble, _material("HC") | {"sn_mass_fraction": w}, currents_A_per_g=(1.7,))
             for w in (0.0, 1e-6)]
    assert flags[0] == flags[1]
    assert not flags[1]["capacity_at_current_mAh_per_g"]["1.7"]


def test_the_electrode_takes_its_form_error_where_the_particles_swelling_is_unmeasured(ensemble):
    """The electrode expansion's form error is the particle swelling's, so it is weighed by the distance to the
    materials whose swelling was measured: none at nano-Sn (hidden in the validation, its electrode had read
    24-2190 % because the electrode row was gone though the swelling was measured), all of it in air."""
    electrode, particle = "electrode_expansion_after_1000_cycles_pct", "particle_expansion_pct"
    domain = ensemble.domain  # nano-Sn's electrode row hidden, as the validation hides it
    extents = tuple(dataclasses.replace(e, quantities=e.quantities - {electrode})
                    if m["sn_mass_fraction"] == 1.0 else e for m, e in zip(domain.materials, domain.extents))
    hidden = dataclasses.replace(ensemble, domain=dataclasses.replace(domain, extents=extents))
    recipes = [_material("nano-Sn"), _material("Sn@HC-2-1") | {"milling_atmosphere": "air"}]
    np.testing.assert_allclose(hidden.form_weights(recipes, electrode), [0.0, 1.0])
    np.testing.assert_allclose(hidden.form_weights(recipes, particle), [0.0, 1.0])


def test_a_lab_row_that_measured_the_electrode_narrows_its_electrode_interval(ensemble):
    """The electrode's inherited form error is dropped where either its own quantity or the swelling it follows was
    measured: a lab row at an air-milled 2:1 that measured only the electrode's thickening carries no form error
    there (it had kept the full weight, 0.95-92 %, while flagged as measured)."""
    air = _material("Sn@HC-2-1") | {"milling_atmosphere": "air"}
    electrode = "electrode_expansion_after_1000_cycles_pct"
    taught = dataclasses.replace(ensemble, domain=ensemble.domain.with_lab_rows([(air, [electrode])]))
    assert ensemble.form_weights([air], electrode)[0] == 1.0
    assert taught.form_weights([air], electrode)[0] == 0.0


def test_extra_scatter_widens_only_its_families_and_is_the_same_every_time(ensemble):
    """A misfit beyond the stated scatter (family -> (sd %, rows)) scatters each member's measurement factor of that
    family by exp(sd t) with a Student-t of that many degrees of freedom: that family's interval widens, the others'
    factors and every member stay as they were, the same draws every time, and no misfit is the ensemble itself."""
    assert ensemble.with_extra_scatter({}) is ensemble
    wider = ensemble.with_extra_scatter({"cycling": (8.0, 5)})
    assert wider.with_extra_scatter({}) is wider and wider.measurement_factors == ensemble.with_extra_scatter(
        {"cycling": (8.0, 5)}).measurement_factors
    assert [m.digest() for m in wider.members] == [m.digest() for m in ensemble.members]
    for before, after in zip(ensemble.measurement_factors, wider.measurement_factors):
        assert {k: v for k, v in after.items() if k != "cycling"} == {k: v for k, v in before.items() if k != "cycling"}
    ratio = np.log([a["cycling"] / b.get("cycling", 1.0)
                    for a, b in zip(wider.measurement_factors, ensemble.measurement_factors)])
    assert 0.04 < np.std(ratio) < 0.2  # about 8 % (a t with 5 dof has sd 1.3)

    def width(e, key):
        low, high = e.predict(REFERENCE).record(0)["interval_90"][key]["1000"]
        return high - low

    assert width(wider, "capacity_at_cycle_mAh_per_g") > 1.2 * width(ensemble, "capacity_at_cycle_mAh_per_g")


def test_a_labs_stated_scatter_replaces_a_smaller_measurement_sigma_with_the_same_draws(ensemble):
    """What another lab measures scatters as that lab states (its lab_uncertainty_pct): a family whose study sigma
    is smaller (a capacity's 2 %) scatters by the stated 5 % with each member's own draw; a larger one (the
    electrode expansion's 10 %) keeps its own. A lab's own row had fallen outside its lab-taught interval."""
    sigmas = ensemble.settings.measurement_sigma_pct
    assert sigmas["capacity"] < 5.0 < sigmas["electrode_expansion"]
    wider = ensemble.with_measurement_sigma(5.0)
    for before, after in zip(ensemble.measurement_factors, wider.measurement_factors):
        z = (before["capacity"] - 1.0) / (sigmas["capacity"] / 100.0)  # each member's own draw, moved the same way
        assert np.sign(after["capacity"] - before["capacity"]) == np.sign(z)
        assert after["electrode_expansion"] == before["electrode_expansion"]
    spread = np.std(np.log([f["capacity"] for f in wider.measurement_factors]))
    assert spread == pytest.approx(0.05, rel=0.3)  # about the stated 5 %
    assert ensemble.with_measurement_sigma(0.5).measurement_factors == ensemble.measurement_factors
    # a lab stating 100 %: still no negative measurement (a linear scaling had made 16 % of them negative)
    assert min(f["capacity"] for f in ensemble.with_measurement_sigma(100.0).measurement_factors) > 0


def test_a_reweighted_member_draws_its_own_measurement_scatter(ensemble):
    """Importance resampling repeats the members the weights favour, but a cell's scatter has nothing to do with
    the parameters they chose: each resampled member draws its own measurement errors (the study's sigmas), from a
    stream fixed by the seed. A member picked k times had scattered k times alike, so a lab-taught interval held as
    few draws of the cells' scatter as distinct members."""
    log_weights = -0.5 * np.arange(len(ensemble.members), dtype=float) ** 2 / 10.0  # favours the first few
    taught = ensemble.reweighted(log_weights)
    assert len({member.digest() for member in taught.members}) < len(taught.members)
    capacity = np.array([factor["capacity"] for factor in taught.measurement_factors])
    assert len(np.unique(capacity)) == len(taught.members)
    sigma = taught.settings.measurement_sigma_pct["capacity"] / 100.0
    assert 0.6 * sigma < np.std(capacity) < 1.5 * sigma and abs(np.mean(capacity) - 1.0) < sigma
    assert ensemble.reweighted(log_weights).measurement_factors == taught.measurement_factors


def test_a_capacity_predicted_away_from_the_measured_temperature_carries_the_form_error(ensemble):
    """The study measured at 25 C only, so a capacity or a first-cycle efficiency at another temperature carries the
    model-form error in proportion to how far (model_form_distance.temperature_C counts 1): the composite's capacity
    band at 40 C had been narrower than at the measured 25 C, its members agreeing more where kinetics are faster.
    At 25 C nothing moves; the swelling, whose model barely moves with temperature, keeps its band's width; a lab's
    rows, measured at the campaign's temperature, take the error away near them at that temperature."""
    from surrogate.recipe import Recipes as R

    composite = _material("Sn@HC-2-1")

    def bands(temperature_C, e=ensemble):
        r = e.predict(R.from_records([composite]), PredictionRequest(currents_A_per_g=(0.17,),
                                                                     temperature_C=temperature_C)).record(0)
        return r["interval_90"]

    def width(band):
        return band[1] - band[0]

    measured, warm, hot = bands(25.0), bands(40.0), bands(60.0)
    rate = [width(b["capacity_at_current_mAh_per_g"]["0.17"]) for b in (measured, warm, hot)]
    assert rate[0] < rate[1] < rate[2] and rate[1] > 1.5 * rate[0]
    assert width(warm["initial_coulombic_efficiency_pct"]) > 1.5 * width(measured["initial_coulombic_efficiency_pct"])
    assert width(warm["particle_expansion_pct"]) == pytest.approx(width(measured["particle_expansion_pct"]), rel=0.02)
    scale = ensemble.settings.model_form_distance
    assert scale.temperature_C > 0
    assert ensemble.form_weights([composite], "capacity_at_current_mAh_per_g", 25.0)[0] == 0.0
    assert ensemble.form_weights([composite], "capacity_at_current_mAh_per_g", 40.0)[0] == pytest.approx(
        15.0 / scale.temperature_C)
    taught = dataclasses.replace(ensemble, domain=ensemble.domain.with_lab_rows(
        [(composite, {"capacity_at_cycle_1000_mAh_per_g": 300.0})], scale, 0.1, 1000, temperature_C=40.0))
    assert taught.form_weights([composite], "capacity_at_cycle_mAh_per_g", 40.0)[0] == 0.0
