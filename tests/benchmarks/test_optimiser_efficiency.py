"""benchmarks/optimiser_efficiency.py on a tiny budget: the JSON it prints has the documented shape and finite
numbers for every method."""

import importlib.util
import json
import math
from pathlib import Path

from flows.config import load_config

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "optimiser_efficiency.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("optimiser_efficiency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_json_shape_and_finite_numbers(params):
    bench = load_benchmark()
    config = load_config(overrides={"optimiser": {"acquisition_samples": 500}})
    budget = 10  # scikit-optimize's 10 random starts: its slow GP steps only in the CPU run (to 12)
    result = bench.benchmark(config, seeds=1, budget=budget, counts=(2, 4), dense_n=2**10, log=lambda *a: None)
    document = json.loads(bench.json_document(result))
    assert set(document) == {"methods"}
    assert set(document["methods"]) == {"project", "skopt_default", "tpe"}
    for method, row in document["methods"].items():
        assert set(row) == {"median_evaluations", "max_evaluations", "not_reached", "cpu_s_per_evaluation"}
        assert 1 <= row["median_evaluations"] <= row["max_evaluations"] <= budget + 1
        assert row["not_reached"] in (0, 1)
        assert (row["max_evaluations"] == budget + 1) == (row["not_reached"] > 0)
        assert set(row["cpu_s_per_evaluation"]) == {"2", "4"}
        assert all(math.isfinite(v) and v > 0 for v in row["cpu_s_per_evaluation"].values()), method
