"""benchmarks/lab_loop.py: lab files are checked (one line, exit 2), the shipped labs differ from the model, and a
tiny run prints the documented JSON."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lab_loop.py"


@pytest.fixture(scope="module")
def lab_loop():
    spec = importlib.util.spec_from_file_location("lab_loop", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["lab_loop"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("text, field", [
    ("name: x\nnoise_pct: 1\nparameter_overrides: {no_such_parameter: 1.0}\n", "no_such_parameter"),
    ("name: x\nnoise_pct: -1\n", "noise_pct"),
    ("name: x\nnoise_pct: .nan\n", "noise_pct"),
    ("name: x\nnoise_pct: 1\nparameter_overrides: {sn_welding_at_reference: 9.0}\n", "sn_welding_at_reference"),
    ("name: x\nnoise_pct: 1\ncolour: red\n", "colour"),
    ("name: x\nnoise_pct: [1\n", "lab"),
    ("name: x\nnoise_pct: 1\nobjective: {cycle: -5}\n", "cycle"),
    # by the configs' rules: a number is a number, a name one printable path part
    ("name: x\nnoise_pct: true\n", "noise_pct: expected a number"),
    ("name: x\nnoise_pct: '0.5'\n", "noise_pct: expected a number"),
    ("name: ../../x\nnoise_pct: 0.5\n", "name: names files and folders"),
])
def test_a_bad_lab_file_gets_one_line_and_exit_2(lab_loop, tmp_path, capsys, text, field):
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    assert lab_loop.main(["--lab-spec", str(path), "--seeds", "1", "--budget", "4", "--no-cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err and str(path) in err


def test_every_shipped_lab_is_one_the_model_does_not_know(lab_loop):
    labs = [lab_loop.load_lab(path) for path in lab_loop.shipped_labs()]
    assert len(labs) >= 3
    model_recipe = None  # the unchanged model's best recipe: the same for labs that keep the default objective
    for path, lab in zip(lab_loop.shipped_labs(), labs):
        if lab.spec.objective or model_recipe is None:
            model_recipe, _ = lab_loop.dense_optimum(lab.config, lab.p_model, n=2**12)
        targets = lab_loop.lab_targets(lab, dense_n=2**12, model_recipe=model_recipe)
        assert targets["shortfall_pct"] >= 3.0, path.name


def test_a_tiny_run_prints_the_documented_json(lab_loop, capsys):
    path = lab_loop.shipped_labs()[0]
    assert lab_loop.main(["--lab-spec", str(path), "--seeds", "1", "--budget", "8", "--json", "--no-cpu",
                          "--dense", "1024"]) == 0
    document = json.loads(capsys.readouterr().out.strip())
    assert document["lab"] == lab_loop.load_lab(path).spec.name
    assert set(document["methods"]) == {"physics_gp", "plain_gp", "tpe", "random"}
    for row in document["methods"].values():
        assert len(row["per_seed"]) == 1 and 1 <= row["per_seed"][0] <= 9
        assert row["not_reached"] == int(row["per_seed"][0] > 8)
        assert row["median_experiments"] == row["per_seed"][0]
