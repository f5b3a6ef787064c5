"""The calibration is cached on the data hash: a refit happens only when the data (or an assumption) changes."""

import shutil

import pytest

import surrogate.calibration as calibration
from surrogate.parameters import ModelParameters
from surrogate.paths import config_dir


@pytest.fixture()
def counted_fits(monkeypatch, tmp_path):
    monkeypatch.setenv("SNHC_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    real_fit = calibration.fit

    def counting_fit(*args, **kwargs):
        calls.append(args)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(calibration, "fit", counting_fit)
    return calls


def test_refit_only_when_the_data_changes(counted_fits, tmp_path):
    data = tmp_path / "data.yaml"
    shutil.copy(config_dir() / "calibration" / "li2025.yaml", data)
    p = ModelParameters.load()

    first = calibration.calibrate(p, data)
    again = calibration.calibrate(p, data)
    assert len(counted_fits) == 1
    assert again.fitted_values == pytest.approx(first.fitted_values)

    data.write_text(data.read_text().replace("value: 449.0", "value: 430.0"))
    changed = calibration.calibrate(p, data)
    assert len(counted_fits) == 2
    assert changed.data_sha256 != first.data_sha256


def test_a_damaged_or_edited_cache_file_is_fitted_again_and_rewritten(tmp_path, monkeypatch):
    """A cache only saves time: a truncated, edited or foreign file costs a fit, not a traceback or a wrong fit."""
    import json

    monkeypatch.setenv("SNHC_CACHE_DIR", str(tmp_path / "cache"))
    p = ModelParameters.load()
    first = calibration.calibrate(p)
    fits = []
    monkeypatch.setattr(calibration, "fit", lambda *args: fits.append(args) or first)  # the fit itself is tested apart
    (cached,) = (tmp_path / "cache").glob("calibration-*.json")
    good = json.loads(cached.read_text())
    name = next(iter(good["fitted_values"]))
    beyond = dict(good, fitted_values={**good["fitted_values"], name: p[name].bounds[1] * 10 + 1})
    damages = ["", "{not json", "[1, 2]", "\udcff", '{"fitted_values": {"no_such_parameter": 1.0}}',
               json.dumps(beyond)]
    for k, damage in enumerate(damages, start=1):
        cached.write_bytes(damage.encode("utf-8", "surrogateescape"))
        assert calibration.calibrate(p).fitted_values == pytest.approx(first.fitted_values), damage
        assert len(fits) == k, f"{damage!r} was trusted"
        assert json.loads(cached.read_text()) == good  # rewritten: the next call reads it
        assert calibration.calibrate(p).fitted_values == pytest.approx(first.fitted_values)
        assert len(fits) == k


def test_changing_an_assumption_gets_its_own_calibration(counted_fits):
    p = ModelParameters.load()
    calibration.calibrate(p)
    calibration.calibrate(p.with_values(hc_capacity_mAh_per_g=330.0))
    calibration.calibrate(p)
    assert len(counted_fits) == 2


def test_fit_report_lists_every_point_with_model_value_and_residual(params):
    result = calibration.calibrate(ModelParameters.load())
    report = result.report
    assert len(report) == len(calibration.load_observations())
    assert (report["residual"] == report["model"] - report["measured"]).all()
    text = result.report_text()
    assert "Sn@HC-2-1" in text and "residual" in text and "fitted parameters:" in text


def test_fit_diagnostics_count_dof_and_name_what_the_data_cannot_check():
    """dof = fitted rows - fitted parameters; a row a parameter meets exactly, a correlated pair and a parameter
    put on its bound are each named."""
    from surrogate.calibration import Calibration, calibrate, diagnostics

    p = ModelParameters.load()
    calibration = calibrate(p)
    d = diagnostics(p, calibration)
    fitted_rows = int(calibration.report["fit"].sum())
    assert d.degrees_of_freedom == fitted_rows - len(p.names("fitted"))
    # each material's ICE has its own irreversible-capacity parameter, so the fit meets it to round-off
    assert any("HC initial_coulombic_efficiency_pct" in row for row in d.met_by_construction)
    # the shipped parameter set is identifiable: what the data could not separate is assumed (configs/)
    assert 1.0 < d.condition_number < 1e3 and not d.correlated and not d.on_bound
    high = p["ohmic_resistance_ohm_g"].bounds[1]
    pushed = Calibration({**calibration.fitted_values, "ohmic_resistance_ohm_g": high}, calibration.report,
                         calibration.data_sha256, calibration.parameters_sha256)
    assert "ohmic_resistance_ohm_g" in diagnostics(p, pushed).on_bound
    assert "ohmic_resistance_ohm_g" not in d.on_bound
    # a bounded fit stops just short of a bound it presses against: that is on the bound too
    low, high = p["electrode_expansion_exponent"].bounds
    short = Calibration({**calibration.fitted_values,
                         "electrode_expansion_exponent": low + 1e-3 * (high - low)},
                        calibration.report, calibration.data_sha256, calibration.parameters_sha256)
    assert "electrode_expansion_exponent" in diagnostics(p, short).on_bound


def test_fit_diagnostics_name_a_pair_the_data_cannot_separate(tmp_path):
    """Fitting the interface's barrier as well as its exchange current (the composite's one apparent activation
    energy for both) is what the diagnostics exist to catch: the pair is named, the condition number explodes."""
    from surrogate.calibration import calibrate, diagnostics

    text = (config_dir() / "model_parameters.yaml").read_text()
    block = "interface_activation_energy_kJ_per_mol:\n  value: 6.7\n  unit: kJ/mol\n  tag: assumed"
    assert block in text
    path = tmp_path / "model_parameters.yaml"
    path.write_text(text.replace(block, block.replace("assumed", "fitted")))
    p = ModelParameters.load(path)
    d = diagnostics(p, calibrate(p))
    pairs = {frozenset((a, b)) for a, b, _ in d.correlated}
    assert frozenset(("interface_activation_energy_kJ_per_mol", "interface_exchange_current_A_per_g")) in pairs
    assert d.condition_number > 1e5
