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
    assert set(record) == PREDICT_KEYS | {"interval_90", "extrapolated", "beyond_calibrated_recipes",
                                           "objective_definition", "inputs"}
    # what was predicted, so a saved record answers for itself
    assert record["inputs"]["recipe"]["sn_mass_fraction"] == pytest.approx(2 / 3)
    assert record["inputs"]["cycling_current_A_per_g"] == 1.7 and record["inputs"]["temperature_C"] == 25.0
    assert record["inputs"]["currents_A_per_g"] == [0.17, 0.42, 0.84, 1.7, 4.2]
    assert record["theoretical_capacity_mAh_per_g"] == pytest.approx(664.7, abs=0.5)
    assert record["beyond_calibrated_recipes"] == {}, "a material of the calibration is within it"
    for value in record["capacity_at_current_mAh_per_g"].values():
        assert isinstance(value, float)


def test_every_value_has_a_90_pct_interval_around_it_and_an_extrapolation_flag(capsys, params):
    """interval_90 and extrapolated mirror the value keys: r["interval_90"][k][sub] == [low, high]."""
    record = run_json(capsys, "--material", "Sn@HC-2-1", "--current", "0.17", "4.2", "10", "--cycles", "1", "20000")
    for key in PREDICT_KEYS:
        value, band, flag = record[key], record["interval_90"][key], record["extrapolated"][key]
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            low, high = band[sub] if sub is not None else band
            assert low <= v <= high, (key, sub)
            assert isinstance(flag[sub] if sub is not None else flag, bool)
    rate = record["interval_90"]["capacity_at_current_mAh_per_g"]
    assert rate["10"][1] - rate["10"][0] > rate["0.17"][1] - rate["0.17"][0]  # wider beyond the data
    flags = record["extrapolated"]
    assert flags["capacity_at_current_mAh_per_g"] == {"0.17": False, "4.2": False, "10": True}
    assert flags["capacity_at_cycle_mAh_per_g"] == {"1": False, "20000": True}
    assert flags["theoretical_capacity_mAh_per_g"] is False


def test_a_temperature_outside_the_measured_one_is_flagged_as_extrapolated(capsys, params):
    record = run_json(capsys, "--material", "Sn@HC-2-1", "--temperature-C", "45")
    assert record["extrapolated"]["reversible_capacity_mAh_per_g"] is True
    assert all(record["extrapolated"]["capacity_at_current_mAh_per_g"].values())


@pytest.mark.parametrize("args, fields", [
    (["--material", "nano-Sn"], {}),
    (["--milling-time-h", "20"], {"milling_time_h": "20,"}),
    (["--sn-fraction", "0.5", "--milling-speed-rpm", "550", "--ball-to-powder-ratio", "5"],
     {"sn_mass_fraction": "0.5,", "milling_speed_rpm": "550,", "ball_to_powder_ratio": "5,"}),
    (["--milling-atmosphere", "air", "--pause-duty-cycle", "0.5"],
     {"milling_atmosphere": "air,", "pause_duty_cycle": "0.5,"}),
    (["--sn-fraction", "0.5", "--milling-time-h", "0"], {"sn_mass_fraction": "0.5, an unmilled blend"}),
])
def test_a_recipe_beyond_the_calibrations_materials_says_which_fields_and_why(capsys, params, args, fields):
    """The study milled at one condition: a recipe milled otherwise, or an unmilled blend, is predicted by the
    model's physics with assumed constants, and the record names each field that leaves the materials."""
    beyond = run_json(capsys, *args)["beyond_calibrated_recipes"]
    assert set(beyond) == set(fields)
    for field, start in fields.items():
        assert beyond[field].startswith(start)
    assert main(["predict", *args]) == 0
    out = capsys.readouterr().out
    assert ("beyond the calibration's materials" in out) == bool(fields)


def test_the_console_shows_value_and_interval(capsys, params):
    assert main(["predict", "--material", "Sn@HC-2-1", "--current", "10"]) == 0
    out = capsys.readouterr().out
    assert "extrapolated" in out and "–" in out and "90 % interval" in out


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


@pytest.mark.parametrize("temperature_C", ["-40", "0", "80"])
def test_the_objective_keeps_its_own_conditions_whatever_the_predictions_temperature(capsys, params, temperature_C):
    """--temperature-C sets the reported metrics' temperature; the objective, described at its own (the config's),
    is scored there, every input of it: its expansion penalty had been read at --temperature-C (331.2 mAh/g at
    25 C, 335.1 at -40 C)."""
    base = run_json(capsys, "--material", "Sn@HC-2-1")  # swells above the default allowance: a penalty
    other = run_json(capsys, "--material", "Sn@HC-2-1", "--temperature-C", temperature_C)
    assert other["particle_expansion_pct"] != base["particle_expansion_pct"]  # the metrics do move with it
    assert other["objective"] == base["objective"]
    assert other["interval_90"]["objective"] == base["interval_90"]["objective"]
    assert other["extrapolated"]["objective"] == base["extrapolated"]["objective"]


@pytest.mark.parametrize("args, message", [
    (["--sn-fraction", "1.3"], "--sn-mass-fraction=1.3 is out of range: allowed 0 to 1"),
    (["--sn-fraction", "66.7"], "--sn-mass-fraction=66.7 is out of range (a percentage? as a fraction: 0.667)"),
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
    assert "degrees of freedom:" in out and "condition number" in out and "parameters on a bound:" in out


def test_calibrate_json_has_the_fit_its_rows_and_the_diagnostics(capsys, params):
    assert main(["calibrate", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document["fitted_values"]) == set(params.names("fitted"))
    rate = [r for r in document["rows"] if r["quantity"] == "capacity_at_current_mAh_per_g"]
    assert len(rate) == 5 and all(abs(r["residual_pct"]) < 3.0 for r in rate)  # the study's rate MAPE target
    assert document["diagnostics"]["degrees_of_freedom"] == sum(r["fit"] for r in document["rows"]) - len(
        document["fitted_values"])


def test_calibrate_with_lab_rows_as_json_has_the_moves(capsys, params, monkeypatch):
    """--json is honoured with --observations: each fitted parameter before and after, and each lab prediction.
    (The shape, not the fit, is tested here: tests/flows/test_recalibration.py runs the full refit.)"""
    monkeypatch.setattr("flows.recalibration.MAX_FUNCTION_EVALUATIONS", 3)
    assert main(["calibrate", "--observations", "configs/lab_results_example.csv", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert {r["parameter"] for r in document["parameters"]} == set(params.names("fitted"))
    assert all({"before", "after", "change_pct"} <= set(r) for r in document["parameters"])
    assert len(document["lab_predictions"]) > 0 and document["metrics"]


def test_calibrate_with_lab_rows_weighs_them_by_the_configs_lab_uncertainty(capsys, params, monkeypatch, tmp_path):
    """--config sets the lab rows' stated scatter (lab_uncertainty_pct) of the refit; without --observations it is
    refused (the study's calibration reads no campaign config)."""
    import flows.recalibration as recalibration

    monkeypatch.setattr(recalibration, "MAX_FUNCTION_EVALUATIONS", 3)
    seen, real = [], recalibration.recalibrate
    monkeypatch.setattr(recalibration, "recalibrate",
                        lambda config, lab, data=None: seen.append(config.lab_uncertainty_pct) or real(config, lab, data))
    config = tmp_path / "lab.yaml"
    config.write_text("lab_uncertainty_pct: 12.5\n")
    assert main(["calibrate", "--observations", "configs/lab_results_example.csv", "--config", str(config),
                 "--json"]) == 0
    assert main(["calibrate", "--observations", "configs/lab_results_example.csv", "--json"]) == 0
    assert seen == [12.5, 5.0]
    capsys.readouterr()
    assert main(["calibrate", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--config: only --observations reads a campaign config" in err and len(err.splitlines()) == 1


def test_predict_with_lab_rows_predicts_with_the_model_they_teach(capsys, params, tmp_path):
    """--observations: the lab's parameters estimated from its rows, as snhc suggest predicts with them. A lab
    whose cells read 7 % less capacity and 7 % more swelling than the model moves the prediction at its recipes
    that way, and the swelling it measured there narrows the swelling's interval; the JSON keeps its shape."""
    recipe = {"sn_mass_fraction": 0.6455, "milling_time_h": 21.35, "milling_speed_rpm": 541.0,
              "ball_to_powder_ratio": 5.0}
    options = [f"--{name.replace('_', '-')}={value}" for name, value in recipe.items()]
    plain = run_json(capsys, *options)
    rows = ["sample_id,sn_mass_fraction,milling_time_h,milling_speed_rpm,ball_to_powder_ratio,"
            "objective_capacity_mAh_per_g,particle_expansion_pct"]
    for i, (sn, hours) in enumerate([(0.6455, 21.35), (0.6, 20.0), (0.7, 20.0), (0.65, 30.0)]):
        made = run_json(capsys, f"--sn-fraction={sn}", f"--milling-time-h={hours}", "--milling-speed-rpm=541",
                        "--ball-to-powder-ratio=5", "--current", "1.7", "--cycles", "1000")
        rows.append(f"L{i},{sn},{hours},541,5,{0.93 * made['capacity_at_cycle_mAh_per_g']['1000']:.1f},"
                    f"{1.07 * made['particle_expansion_pct']:.1f}")
    lab = tmp_path / "lab.csv"
    lab.write_text("\n".join(rows) + "\n")
    assert main(["predict", *options, "--observations", str(lab), "--json"]) == 0
    out, err = capsys.readouterr()
    taught = json.loads(out)
    assert "predicted with the model taught by the 4 measured rows" in err
    assert set(taught) == set(plain)
    assert taught["capacity_at_cycle_mAh_per_g"]["1000"] < 0.97 * plain["capacity_at_cycle_mAh_per_g"]["1000"]
    assert taught["particle_expansion_pct"] > plain["particle_expansion_pct"]
    width = {name: r["interval_90"]["particle_expansion_pct"][1] - r["interval_90"]["particle_expansion_pct"][0]
             for name, r in (("plain", plain), ("taught", taught))}
    assert width["taught"] < 0.5 * width["plain"]
    # a row outside the search space (Sn 0.97 > 0.95) teaches nothing, so it narrows nothing either
    outside = {**recipe, "sn_mass_fraction": 0.97}
    far = [f"--{name.replace('_', '-')}={value}" for name, value in outside.items()]
    before = run_json(capsys, *far, "--observations", str(lab))
    lab.write_text("\n".join(rows) + "\nX,0.97,21.35,541,5,200,400\n")
    assert main(["predict", *far, "--observations", str(lab), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["interval_90"] == before["interval_90"] and "the 4 measured rows" in err
    pending = tmp_path / "pending.csv"
    pending.write_text(rows[0] + "\nP1,0.6,20,541,5,,\n")
    for args, message in ((["--observations", str(pending)], "no row has a measured result"),
                          (["--observations", str(lab), "--fidelity", "physics"], "drop --fidelity physics")):
        assert main(["predict", *options, *args]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


def test_calibrate_validate_with_an_unreachable_server_is_one_line_and_exit_2(capsys, params):
    assert main(["calibrate", "--validate", "--tracking-uri", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "127.0.0.1:9" in err


def test_the_command_exits_after_every_exit_handler_with_its_output_whole(params):
    """The command skips the interpreter's teardown (flows.cli._exit_without_teardown), but only after the exit
    handlers registered while it ran (Prefect's and MLflow's flushes, the temporary server's stop) and with its
    output flushed: a JSON document through a pipe arrives whole, and the exit code is the command's."""
    script = "\n".join([
        "import atexit, sys",
        "import flows.cli as cli",
        "command = cli.cmd_predict",
        "def predict(args):",
        "    atexit.register(lambda: print('handler registered by the command ran', file=sys.stderr))",
        "    return command(args)",
        "cli.cmd_predict = predict",
        "sys.argv = ['snhc', 'predict', '--json']",
        "sys.exit(cli.main())",
    ])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "handler registered by the command ran" in result.stderr
    assert json.loads(result.stdout)["interval_90"]["capacity_at_current_mAh_per_g"]


def test_predict_scores_a_multi_objective_configs_objectives(capsys, params):
    """With a config of several objectives, predict gives each one (value, 90 % interval, flag) instead of the
    default single objective; the reference composite's capacity is inside its data, its milling time arithmetic."""
    assert main(["predict", "--config", "configs/pareto.yaml", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    names = ["capacity_mAh_per_g", "milling_time_h", "particle_expansion_pct"]
    assert list(record["objectives"]) == names
    for name in names:
        low, high = record["interval_90"]["objectives"][name]
        assert low <= record["objectives"][name] <= high
    assert record["extrapolated"]["objectives"] == dict.fromkeys(names, False)
    assert "minimise milling_time_h" in record["objective_definition"]
    # the default single objective (capacity less a swelling penalty) is none of this config's: not given
    assert "objective" not in record and "objective" not in record["interval_90"]
    # nor is PyBaMM asked to score objectives it cannot (milling time, expansion), as a campaign refuses it
    assert main(["predict", "--config", "configs/pareto.yaml", "--fidelity", "physics"]) == 2
    assert "--fidelity physics scores the capacity 'objective' only" in capsys.readouterr().err


def test_the_objectives_interval_carries_the_scatter_of_the_capacity_it_scores(capsys, params):
    """Without a penalty the objective is the capacity after the objective's cycles, so its interval cannot be
    narrower than that capacity's (it had left out the measurement scatter: [305.7, 332.0] inside [296.3, 345.1])."""
    record = run_json(capsys, "--sn-fraction", "0.6", "--milling-time-h", "8", "--milling-speed-rpm", "400",
                      "--ball-to-powder-ratio", "20", "--cycles", "1000")
    assert record["particle_expansion_pct"] < 250.0  # inside the default allowance: no penalty
    low, high = record["interval_90"]["objective"]
    cap_low, cap_high = record["interval_90"]["capacity_at_cycle_mAh_per_g"]["1000"]
    assert high - low >= 0.9 * (cap_high - cap_low)


def test_the_ui_stops_with_its_pid_and_leaves_no_process_behind(tmp_path):
    """``snhc ui`` becomes the MLflow UI (a kill of its PID reaches MLflow); MLflow's job runner, which it would
    start with seven huey consumers that outlive that kill, is off. Stopped by PID, nothing of it is left."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_experiments()  # a store to show (the UI refuses none)
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"}
    ui = subprocess.Popen([sys.executable, "-m", "flows.cli", "ui", "--port", str(port), "--tracking-uri",
                           f"sqlite:///{tmp_path}/mlflow.db"], env=environment, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("the MLflow UI did not listen within 120 s")

        def group() -> list[str]:
            listing = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(ui.pid)], capture_output=True, text=True)
            return [line for line in listing.stdout.splitlines() if line.strip()]

        assert not any("huey" in line for line in group()), group()
        os.kill(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)
        deadline = time.monotonic() + 30
        while group() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert group() == []
    finally:
        try:
            os.killpg(ui.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_current_pybamm_cannot_carry_fails_alone(capsys):
    """With --fidelity physics, a current beyond what the electrode carries (nano-Sn at 20 A/g reaches the cut-off
    at once) is a failed value with its reason; the other currents are still predicted, with their intervals, and
    the command succeeds. Before, one such current discarded the whole prediction with exit 1."""
    assert main(["predict", "--fidelity", "physics", "--material", "nano-Sn", "--current", "0.17", "20",
                 "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["capacity_at_current_mAh_per_g"]["20"] is None
    assert record["interval_90"]["capacity_at_current_mAh_per_g"]["20"] is None
    assert "cut-off" in record["physics_failures"]["capacity_at_current_mAh_per_g.20"]
    value = record["capacity_at_current_mAh_per_g"]["0.17"]
    low, high = record["interval_90"]["capacity_at_current_mAh_per_g"]["0.17"]
    assert 0 < low <= value <= high
    assert record["objective"] is not None  # the cycling current (1.7 A/g) was carried


def test_json_output_is_strict_json_with_null_for_a_number_not_computed():
    """A --json document is read by any parser: NaN or inf (a multi-objective campaign's GP mean, which it has
    none of) becomes null, a numpy scalar its plain value; Python's default had printed a bare NaN."""
    import numpy as np

    from flows.cli import json_text

    text = json_text({"surrogate_mean": float("nan"), "values": [np.float32(1.5), np.int64(3), np.float64("-inf")],
                      "flag": np.bool_(True)})
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}")) == {
        "surrogate_mean": None, "values": [1.5, 3, None], "flag": True}


def test_predict_with_a_config_uses_its_model_parameters(capsys, params, tmp_path):
    """A config's overrides of assumed parameters are its model, for predict as for its campaign: with recalibrate
    false the study's fit is kept and only the override changes (here HC's plateau share, a different HC)."""
    from flows.config import load_config
    from flows.evaluation import campaign_parameters, model_metrics
    from surrogate.recipe import Recipes, load_materials
    from surrogate.paths import config_dir

    config = tmp_path / "softer_hc.yaml"
    config.write_text("name: softer-hc\nrecalibrate: false\nmodel_parameters: {hc_plateau_fraction: 0.3}\n")
    key = "capacity_at_cycle_mAh_per_g"

    def hc(*extra):
        assert main(["predict", "--material", "HC", "--cycles", "1000", "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    default, softer = hc(), hc("--config", str(config))
    assert softer[key]["1000"] != pytest.approx(default[key]["1000"], rel=0.01)  # the override is used
    p, _ = campaign_parameters(load_config(str(config)))  # and it is the campaign's own model
    recipes = Recipes.from_records(load_materials(config_dir() / "materials.yaml")["HC"].to_records())
    campaign = load_config(str(config)).objective
    assert softer["objective"] == pytest.approx(float(model_metrics(recipes, p, campaign)["objective"][0]), rel=1e-9)


def test_predict_with_lab_rows_and_a_refit_predicts_with_the_refitted_model(capsys, params, monkeypatch, tmp_path):
    """recalibrate_on_observations: the values and the intervals are those of the model refitted on the study's
    data and the lab's rows (the ensemble carried to its fitted values), not the study fit's, which the ensemble
    had put back on it (the prediction was the plain one, bit for bit)."""
    import flows.recalibration as recalibration
    from flows.config import load_config
    from flows.evaluation import evaluate_batch
    from flows.observations import read_observations

    monkeypatch.setattr(recalibration, "MAX_FUNCTION_EVALUATIONS", 4)
    config = tmp_path / "refit.yaml"
    config.write_text("lab_parameters: []\nrecalibrate_on_observations: true\n")
    options = ["--material", "Sn@HC-2-1"]
    plain = run_json(capsys, *options)
    lab = "configs/lab_results_example.csv"
    refit = run_json(capsys, *options, "--config", str(config), "--observations", lab)
    assert refit["objective"] != plain["objective"]
    settings = load_config(str(config))
    p = recalibration.recalibrate(settings, read_observations(lab, settings)).parameters
    from surrogate.recipe import load_materials
    from surrogate.paths import config_dir

    recipe = load_materials(config_dir() / "materials.yaml")["Sn@HC-2-1"].to_records()[0]
    (expected,) = evaluate_batch([recipe], p, settings.objective)
    assert refit["objective"] == pytest.approx(expected.objective, rel=1e-9)
    low, high = refit["interval_90"]["particle_expansion_pct"]
    assert low < refit["particle_expansion_pct"] < high  # strictly inside: the members moved with the refit


def test_a_refit_on_lab_rows_does_not_weigh_the_members_by_them_again(capsys, params, monkeypatch, tmp_path):
    """With recalibrate_on_observations the fitted values already moved with the lab's rows; the lab-taught members
    take that step and are not importance-weighted by the same rows again. Counted twice, the value had sat on its
    interval's edge (the example lab's half-tin recipe at cycle 12 000: 204.2 [204.2-264.0])."""
    import flows.recalibration as recalibration
    from flows.physics_gp import LabCalibratedPrior

    monkeypatch.setattr(recalibration, "MAX_FUNCTION_EVALUATIONS", 4)
    asked = []
    original = LabCalibratedPrior.taught_ensemble

    def spy(self, calibration, measured=(), reweight=True):
        asked.append(reweight)
        return original(self, calibration, measured, reweight)

    monkeypatch.setattr(LabCalibratedPrior, "taught_ensemble", spy)
    config = tmp_path / "refit.yaml"
    config.write_text("recalibrate_on_observations: true\n")
    recipe = ["--sn-fraction", "0.5", "--milling-time-h", "6", "--milling-speed-rpm", "450",
              "--ball-to-powder-ratio", "20", "--cycles", "1000", "12000"]
    record = run_json(capsys, *recipe, "--config", str(config), "--observations", "configs/lab_results_example.csv")
    assert asked == [False]
    for cycle in ("1000", "12000"):
        low, high = record["interval_90"]["capacity_at_cycle_mAh_per_g"][cycle]
        assert low < record["capacity_at_cycle_mAh_per_g"][cycle] < high
    record = run_json(capsys, *recipe, "--observations", "configs/lab_results_example.csv")  # no refit: weighed
    assert asked == [False, True]


def test_output_that_cannot_be_written_ends_without_a_traceback(tmp_path):
    """A reader that stopped reading (``| head -1``) had left a BrokenPipeError traceback, a full disk an
    OSError one: the first ends quietly, the second in one line; both exit 1."""
    command = [sys.executable, "-m", "flows.cli", "predict", "--json"]
    reader_gone = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader_gone.stdout.close()  # before the command writes anything
    _, err = reader_gone.communicate(timeout=120)
    assert reader_gone.returncode == 1 and err.decode().strip() == ""
    with open("/dev/full", "w") as full:
        done = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == ("snhc predict: error: cannot write (No space left on device): free some space or "
                                   "write elsewhere")


@pytest.mark.parametrize("argv, said", [
    (["predict", "--current", "0.1", "--current", "4.2"], "--current: given 2 times; give it once with every value"),
    (["predict", "--sn-fraction", "0.5", "--sn-mass-fraction=0.6"], "--sn-fraction: given 2 times"),
    (["optimise", "--seed", "1", "--seed", "2"], "--seed: given 2 times")])
def test_an_option_given_twice_is_one_line_not_the_last_value_kept(argv, said, capsys):
    """argparse kept the last value silently: --current 0.1 --current 4.2 had predicted 4.2 alone."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err, err
