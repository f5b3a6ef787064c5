"""benchmarks/lab_intervals.py: the virtual lab's readings reach the lab fit through a real lab CSV, every model's
interval is checked at every test recipe, and bad arguments exit 2."""

import numpy as np
import pytest

from benchmarks import lab_intervals


def test_the_labs_readings_are_read_back_as_a_lab_file_reads_them(tmp_path):
    from benchmarks.lab_loop import load_lab, shipped_labs
    from flows.model_optimum import sobol_recipes
    from flows.observations import read_observations

    lab = load_lab(shipped_labs()[0])
    recipes = sobol_recipes(lab.config, 3, seed=0)
    rows = lab_intervals.measured_rows(lab, recipes, np.random.default_rng(0))
    path = tmp_path / "lab.csv"
    lab_intervals.lab_csv(path, recipes, rows)
    measured = read_observations(path, lab.config).measured
    assert len(measured) == 3
    for evaluation, row in zip(measured, rows):
        assert evaluation.objective == pytest.approx(row["objective"], rel=1e-12)
        for name in lab_intervals.MEASURED:
            assert evaluation.metrics[name] == pytest.approx(row[name], rel=1e-12)


def test_each_model_is_checked_at_each_test_recipe():
    from benchmarks.lab_loop import load_lab, shipped_labs
    from flows.evaluation import campaign_parameters

    lab = load_lab(shipped_labs()[0])
    _, calibration = campaign_parameters(lab.config)
    result = lab_intervals.check(lab, seed=0, n_fit=4, n_test=3, calibration=calibration)
    assert set(result) == set(lab_intervals.MODELS)
    for metrics in result.values():
        assert set(metrics) == set(lab_intervals.CHECKED)
        assert all(len(rows) == 3 and all(width > 0 and error >= 0 for _, width, error in rows)
                   for rows in metrics.values())


@pytest.mark.parametrize("argv", [["--seeds", "0"], ["--fit", "0"], ["--test", "-1"]])
def test_bad_arguments_exit_2(argv, capsys):
    assert lab_intervals.main(argv) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_a_bad_lab_file_exits_2_with_one_line_naming_it(tmp_path, capsys):
    path = tmp_path / "lab.yaml"
    path.write_text("name: odd\nnoise_pct: 0.5\nparameter_overrides: {no_such_parameter: 1.0}\n")
    assert lab_intervals.main(["--lab-spec", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no_such_parameter" in err
