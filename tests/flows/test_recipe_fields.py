"""The two process fields of issue 12 (milling_atmosphere, pause_duty_cycle) reach every place the recipe schema
feeds: CLI options of `snhc predict`, optional lab-CSV columns, the config's search space and the optimiser."""

import json

import pytest
from skopt.space import Categorical, Real

from flows.cli import main
from flows.config import ConfigError, load_config
from flows.observations import read_observations
from flows.search import make_optimizer, recipe_of, search_dimensions


def predict_json(capsys, *args):
    assert main(["predict", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_predict_takes_the_atmosphere_and_duty_cycle(capsys, params):
    argon = predict_json(capsys)
    air = predict_json(capsys, "--milling-atmosphere", "air")
    paused = predict_json(capsys, "--pause-duty-cycle", "0.5", "--milling-time-h", "20")
    assert air["reversible_capacity_mAh_per_g"] < argon["reversible_capacity_mAh_per_g"]
    assert paused["reversible_capacity_mAh_per_g"] != pytest.approx(argon["reversible_capacity_mAh_per_g"], rel=1e-9)


def test_bad_process_values_exit_2_with_one_line(capsys, params):
    with pytest.raises(SystemExit) as exit:
        main(["predict", "--milling-atmosphere", "nitrogen"])
    assert exit.value.code == 2 and "invalid choice: 'nitrogen'" in capsys.readouterr().err
    assert main(["predict", "--pause-duty-cycle", "0.05"]) == 2
    assert "--pause-duty-cycle=0.05 is out of range: allowed 0.1 to 1" in capsys.readouterr().err


def test_lab_csv_takes_the_new_fields_as_optional_columns(tmp_path):
    config = load_config()
    path = tmp_path / "lab.csv"
    path.write_text("sn_mass_fraction,milling_time_h,milling_speed_rpm,ball_to_powder_ratio,milling_atmosphere,"
                    "pause_duty_cycle,objective_capacity_mAh_per_g\n"
                    "0.6667,10,400,20,air,0.5,300\n0.5,6,450,20,,,310\n", encoding="utf-8")
    lab = read_observations(path, config)
    assert [e.recipe["milling_atmosphere"] for e in lab.measured] == ["air", "argon"]
    assert [e.recipe["pause_duty_cycle"] for e in lab.measured] == [0.5, 1.0]
    path.write_text("sn_mass_fraction,milling_time_h,milling_speed_rpm,ball_to_powder_ratio,milling_atmosphere,"
                    "objective_capacity_mAh_per_g\n0.6667,10,400,20,vacuum,300\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2: milling_atmosphere='vacuum' is out of range: allowed argon, air"):
        read_observations(path, config)


def test_the_default_campaign_fixes_them_at_their_defaults():
    space = load_config().search_space
    assert space.fixed_values() == {"milling_atmosphere": "argon", "pause_duty_cycle": 1.0}


def test_a_config_searches_them_as_a_categorical_and_a_real_dimension():
    config = load_config(None, {"search_space": {"milling_atmosphere": {"choices": ["argon", "air"]},
                                                 "pause_duty_cycle": {"low": 0.25, "high": 1.0}}})
    dimensions = {d.name: d for d in search_dimensions(config)}
    assert isinstance(dimensions["milling_atmosphere"], Categorical)
    assert set(dimensions["milling_atmosphere"].categories) == {"argon", "air"}
    assert isinstance(dimensions["pause_duty_cycle"], Real) and dimensions["pause_duty_cycle"].low == 0.25
    optimizer = make_optimizer(config)
    recipes = [recipe_of(point, config) for point in optimizer.ask(n_points=6)]
    assert {r["milling_atmosphere"] for r in recipes} <= {"argon", "air"}
    assert all(0.25 <= r["pause_duty_cycle"] <= 1.0 for r in recipes)


@pytest.mark.parametrize("override, message", [
    ({"milling_atmosphere": {"choices": ["argon", "helium"]}}, "'helium' is not allowed: allowed argon, air"),
    ({"milling_atmosphere": {"low": 0.0, "high": 1.0}}, "a categorical field takes 'choices'"),
    ({"pause_duty_cycle": {"low": 0.0, "high": 1.0}}, "pause_duty_cycle.low=0 is out of range: allowed 0.1 to 1"),
])
def test_bad_search_of_the_new_fields_is_refused(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(None, {"search_space": override})
