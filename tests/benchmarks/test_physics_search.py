"""benchmarks/physics_search.py: a tiny run prints the documented JSON, counts PyBaMM evaluations per method and
never scores a method above the reference it is measured against."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "physics_search.py"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def physics_search():
    spec = importlib.util.spec_from_file_location("physics_search", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["physics_search"] = module
    spec.loader.exec_module(module)
    return module


def test_a_tiny_run_prints_the_documented_json(physics_search, params, capsys):
    assert physics_search.main(["--seeds", "1", "--budget", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["methods"]) == {"physics_gp", "plain_gp"}
    assert result["target"] == pytest.approx(0.99 * result["reference_objective"])
    assert result["pybamm_seconds_per_evaluation"] > 0
    for row in result["methods"].values():
        assert len(row["per_seed"]) == 1 and 1 <= row["per_seed"][0] <= 9
        assert row["not_reached"] == (row["per_seed"][0] == 9)
        best = row["median_best_after"]
        assert set(best) == {"8"} and best["8"] <= result["reference_objective"] + 1e-9
        assert row["optimiser_cpu_s_per_evaluation"] > 0


def test_bad_options_get_one_line_and_exit_2(physics_search, capsys):
    assert physics_search.main(["--seeds", "0"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
