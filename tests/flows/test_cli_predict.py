"""`snhc predict` and `snhc calibrate` as a user runs them."""

import json
import subprocess
import sys

import pytest

from flows.cli import main

PREDICT_KEYS = {
    "theoretical_capacity_mAh_per_g", "reversible_capacity_mAh_per_g", "initial_coulombic_efficiency_pct",
    "capacity_at_current_mAh_per_g", "capacity_at_cycle_mAh_per_g", "particle_expansion_pct",
    "electrode_expansion_after_1000_cycles_pct", "activation_energy_kJ_per_mol", "objective",
}


def run_json(capsys, *args):
    assert main(["predict", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_predict_material_json_has_exactly_the_documented_numeric_keys(capsys, params):
    record = run_json(capsys, "--material", "Sn@HC-2-1")
    assert set(record) == PREDICT_KEYS
    assert record["theoretical_capacity_mAh_per_g"] == pytest.approx(664.7, abs=0.5)
    for value in record["capacity_at_current_mAh_per_g"].values():
        assert isinstance(value, float)


def test_predict_keys_currents_as_written_and_cycles(capsys, params):
    record = run_json(capsys, "--sn-fraction", "0.6", "--milling-time-h", "8", "--milling-speed-rpm", "400",
                      "--ball-to-powder-ratio", "20", "--current", "0.17", "4.2", "8.40", "--cycles", "1", "500")
    assert list(record["capacity_at_current_mAh_per_g"]) == ["0.17", "4.2", "8.40"]
    assert list(record["capacity_at_cycle_mAh_per_g"]) == ["1", "500"]
    rate = record["capacity_at_current_mAh_per_g"]
    assert rate["0.17"] > rate["4.2"] > rate["8.40"]


def test_cycling_current_and_temperature_change_the_prediction(capsys, params):
    base = run_json(capsys, "--material", "Sn@HC-2-1")
    fast = run_json(capsys, "--material", "Sn@HC-2-1", "--cycling-current", "4.2")
    cold = run_json(capsys, "--material", "Sn@HC-2-1", "--temperature-C", "0")
    assert fast["capacity_at_cycle_mAh_per_g"]["1"] < base["capacity_at_cycle_mAh_per_g"]["1"]
    assert cold["capacity_at_current_mAh_per_g"]["4.2"] < base["capacity_at_current_mAh_per_g"]["4.2"]


@pytest.mark.parametrize("args, message", [
    (["--sn-fraction", "1.3"], "--sn-mass-fraction=1.3 is out of range: allowed 0 to 1"),
    (["--milling-time-h", "-1"], "--milling-time-h=-1 is out of range: allowed 0 to 100"),
    (["--material", "Sn@HC-5-1"], "--material 'Sn@HC-5-1' is unknown"),
    (["--current", "-4"], "--current=-4 is out of range"),
    (["--cycles", "0"], "--cycles=0 is out of range"),
    (["--temperature-C", "300"], "--temperature-C=300 is out of range: allowed -40 to 80"),
    (["--material", "HC", "--sn-fraction", "0.5"], "cannot be combined"),
])
def test_bad_input_is_one_line_with_exit_code_2(capsys, params, args, message):
    assert main(["predict", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_installed_command_exits_2_and_prints_tables(params):
    bad = subprocess.run([sys.executable, "-m", "flows.cli", "predict", "--sn-fraction", "1.3"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "allowed 0 to 1" in bad.stderr
    good = subprocess.run([sys.executable, "-m", "flows.cli", "predict", "--material", "nano-Sn"],
                          capture_output=True, text=True)
    assert good.returncode == 0 and "Predicted performance of nano-Sn" in good.stdout


def test_help_on_every_command():
    for command in ([], ["optimise"], ["suggest"], ["what-if"], ["predict"], ["calibrate"], ["ui"], ["serve"]):
        result = subprocess.run([sys.executable, "-m", "flows.cli", *command, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "usage: snhc" in result.stdout


def test_calibrate_prints_the_fit_report(capsys, params):
    assert main(["calibrate"]) == 0
    out = capsys.readouterr().out
    assert "capacity_at_current_mAh_per_g" in out and "residual_pct" in out
