"""What-if studies: scenario files on a base config, one MLflow child run per scenario, a comparison table."""

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from flows.cli import main
from flows.whatif import what_if
from surrogate.paths import config_dir

TINY = {"optimiser": {"n_calls": 4, "n_initial_points": 2, "batch_size": 2}}


def test_scenarios_become_child_runs_with_a_comparison(prefect_local, params, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    folder = config_dir() / "whatif"
    rows = what_if([str(folder / "study_materials_cold.yaml"), str(folder / "milling_under_4h.yaml")],
                   overrides=TINY | {"tracking": {"tracking_uri": uri, "experiment_name": "what-if"}})
    table = pd.DataFrame(rows)
    assert set(table["scenario"]) == {"study-materials-at-0C", "milling-under-4h"}
    assert (table["status"] == "FINISHED").all()
    recommended = table[table["scenario"] == "milling-under-4h"].iloc[0]
    assert recommended["milling_time_h"] <= 4.0

    # predictions at 0 C are below the same recipe's predictions at 25 C
    warm_scenario = tmp_path / "warm.yaml"
    warm_scenario.write_text("name: warm\nmode: predict\nrecipes: [Sn@HC-2-1]\n")
    warm = what_if([str(warm_scenario)], overrides={"tracking": {"tracking_uri": uri}})
    cold_composite = table[(table["recipe_label"] == "Sn@HC-2-1")]["objective"].iloc[0]
    warm_composite = [r for r in warm if r["recipe_label"] == "Sn@HC-2-1"][0]["objective"]
    assert cold_composite < warm_composite

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("what-if")
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'what-if'")
    parent = [p for p in parents if p.data.params["scenarios"] == "study-materials-at-0C, milling-under-4h"][0]
    children = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.data.tags["scenario"] for c in children) == ["milling-under-4h", "study-materials-at-0C"]
    assert {"what_if_comparison.csv", "what_if_comparison.png"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)}


@pytest.mark.parametrize("text, message", [
    ("name: x\nmode: sideways\n", "mode"),
    ("name: x\noverrides: {optimiser: {n_calls: -1}}\n", "optimiser.n_calls"),
    ("name: x\nmode: predict\nrecipes: [Sn@HC-7-1]\n", "unknown material"),
    ("name: x\nmode: predict\n", "needs at least one recipe"),
    ("name: x\nflavour: 1\n", "flavour: unknown key"),
])
def test_bad_scenario_exits_2_before_anything_runs(tmp_path, capsys, text, message):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(text)
    assert main(["what-if", str(scenario), "--tracking-uri", f"sqlite:///{tmp_path}/store/mlflow.db"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(scenario) in err
    assert not (tmp_path / "store").exists()


def test_shipped_scenarios_are_valid():
    from flows.config import read_yaml
    from flows.whatif import load_scenarios

    scenarios = load_scenarios([str(config_dir() / "whatif")], read_yaml(config_dir() / "default.yaml"))
    assert len(scenarios) >= 3
    assert {s.mode for s, _, _ in scenarios} == {"predict", "optimise"}
