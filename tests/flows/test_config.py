"""Bad campaign configs fail fast: exit code 2, one line naming the key and the allowed range, no MLflow store."""

import pytest

from flows.cli import main
from flows.config import ConfigError, load_config

GOOD = """
name: test
search_space:
  sn_mass_fraction: {low: 0.1, high: 0.9}
  milling_time_h: {low: 1.0, high: 20.0}
  milling_speed_rpm: {low: 200.0, high: 500.0}
  ball_to_powder_ratio: {value: 20.0}
optimiser: {n_calls: 6, n_initial_points: 3, batch_size: 3}
"""

BAD_CONFIGS = [
    ("malformed YAML", "search_space: {sn_mass_fraction: [low: 0.1\n", "malformed YAML at line"),
    ("unknown top-level key", GOOD + "colour: blue\n", "colour: unknown key"),
    ("unknown nested key", GOOD.replace("batch_size: 3", "batch_size: 3, speed: 9"), "optimiser.speed: unknown key"),
    ("fraction above 1", GOOD.replace("high: 0.9", "high: 1.3"), "sn_mass_fraction.high=1.3 is out of range: allowed 0 to 1"),
    ("negative milling time", GOOD.replace("low: 1.0, high: 20.0", "low: -1.0, high: 20.0"),
     "milling_time_h.low=-1 is out of range: allowed 0 to 100"),
    ("low above high", GOOD.replace("low: 200.0, high: 500.0", "low: 500.0, high: 200.0"), "must be below high"),
    # a range whose values are mostly no recipe (between an unmilled 0 h and the finest time, 0.0001 h) had failed
    # every evaluation of the campaign
    ("a range mostly between 0 and the finest value", GOOD.replace("low: 1.0, high: 20.0", "low: 0, high: 1.0e-4"),
     "milling_time_h: low 0 and high 0.0001: values between 0 and 0.0001 are no recipe"),
    ("a range half between 0 and the finest value", GOOD.replace("low: 1.0, high: 20.0", "low: 0, high: 2.0e-4"),
     "they would be 50% of the range: give low >= 0.0001, or high >= 0.01"),
    ("string for a number", GOOD.replace("n_calls: 6", "n_calls: many"), "optimiser.n_calls"),
    ("a fractional cycle", GOOD + "objective: {cycle: 1000.5}\n",
     "objective.cycle: Input should be a valid integer, got a number with a fractional part (got 1000.5): allowed 1 "
     "to 100000"),
    ("a name too long in bytes for a file name", GOOD.replace("name: test", "name: " + "é" * 200),
     "name: at most 200 bytes as UTF-8"),
    ("budget too small", GOOD.replace("n_calls: 6", "n_calls: 1").replace("n_initial_points: 3", "n_initial_points: 1"),
     "optimiser.n_calls: 1 is out of range: allowed 2 to 2000"),
    ("unknown surrogate", GOOD.replace("batch_size: 3}", "batch_size: 3, surrogate: GBRT}"), "optimiser.surrogate"),
    ("negative current", GOOD + "objective: {current_A_per_g: -1.7}\n",
     "objective.current_A_per_g: -1.7 is out of range: allowed 0 (exclusive) to 1000"),
    ("unknown model parameter", GOOD + "model_parameters: {tin_magic: 3}\n", "tin_magic: unknown parameter"),
    ("fitted parameter overridden", GOOD + "model_parameters: {ohmic_resistance_ohm_g: 0.1}\n",
     "fitted by the calibration"),
    ("negative capacity", GOOD + "model_parameters: {hc_capacity_mAh_per_g: -300}\n", "must be >= 0"),
    ("every dimension fixed", GOOD.replace("{low: 0.1, high: 0.9}", "{value: 0.5}")
     .replace("{low: 1.0, high: 20.0}", "{value: 5}").replace("{low: 200.0, high: 500.0}", "{value: 300}"),
     "nothing to optimise"),
    ("empty experiment name", GOOD + "tracking: {experiment_name: ''}\n", "tracking.experiment_name"),
    ("initial points above budget", GOOD.replace("n_initial_points: 3", "n_initial_points: 30"),
     "must not exceed n_calls"),
    ("not a mapping", "- just\n- a list\n", "expected a mapping"),
    # objectives (issue 12): an unknown kind, a weight or limit naming no objective, a limit outside its range
    ("unknown objective", GOOD + "objectives: [{kind: capacity}, {kind: happiness}]\n",
     "objectives[1].kind='happiness' is unknown: allowed capacity, particle_expansion"),
    ("objective kind a list", GOOD + "objectives: [{kind: [capacity]}, {kind: milling_time}]\n",
     "objectives[0].kind=['capacity'] is unknown: allowed capacity"),
    ("objective kind a mapping", GOOD + "objectives: [{kind: capacity}, {kind: {a: 1}}]\n",
     "objectives[1].kind={'a': 1} is unknown: allowed capacity"),
    ("weight without an objective", GOOD + "objectives: [{kind: capacity}, {kind: milling_time}]\n"
     "recommendation: {rule: weights, weights: {particle_expansion_pct: 1}}\n",
     "recommendation.weights.particle_expansion_pct: no objective of that name"),
    ("weights that the knee rule would ignore", GOOD + "objectives: [{kind: capacity}, {kind: milling_time}]\n"
     "recommendation: {weights: {milling_time_h: 1}}\n",
     "recommendation.weights: used only with recommendation.rule: weights"),
    ("weight on the single objective", GOOD + "recommendation: {weights: {objective: 1}}\n",
     "recommendation.weights.objective: a weight or limit needs a list of 'objectives'"),
    ("limit outside its range", GOOD + "objectives: [{kind: capacity}, {kind: particle_expansion}]\n"
     "recommendation: {limits: {particle_expansion_pct: -20}}\n",
     "recommendation.limits.particle_expansion_pct=-20 is out of range: allowed 0 to 2000 %"),
    # a limit inside its range that no recipe of the search space can meet
    ("a milling time below the searched ones", GOOD + "objectives: [{kind: capacity}, {kind: milling_time}]\n"
     "recommendation: {limits: {milling_time_h: 0.1}}\n",
     "recommendation.limits.milling_time_h=0.1 cannot be met: no recipe of the search space has less than"),
    ("a capacity above the searched Sn fractions' theoretical", GOOD + "objectives: [{kind: capacity}, "
     "{kind: milling_time}]\nrecommendation: {limits: {capacity_mAh_per_g: 846}}\n",
     "recommendation.limits.capacity_mAh_per_g=846 cannot be met: no recipe of the search space reaches more than"),
    # limits each within reach that no recipe meets together under the model (a capacity only Sn-rich recipes
    # reach, a swelling only Sn-poor ones keep), and a model-predicted limit beyond the model's reach
    ("limits that exclude each other", GOOD + "objectives: [{kind: capacity}, {kind: particle_expansion}]\n"
     "recommendation: {limits: {capacity_mAh_per_g: 350, particle_expansion_pct: 150}}\n",
     "recommendation.limits: no recipe of the search space meets capacity_mAh_per_g >= 350 mAh/g and "
     "particle_expansion_pct <= 150 % together under the model; the closest reaches"),
    ("a swelling below any recipe's", GOOD + "objectives: [{kind: capacity}, {kind: particle_expansion}]\n"
     "recommendation: {limits: {particle_expansion_pct: 5}}\n",
     "recommendation.limits: no recipe of the search space meets particle_expansion_pct <= 5 % under the model"),
    ("objective setting out of range", GOOD + "objectives: [{kind: cycles_to_retention, retention_pct: 120}]\n",
     "objectives.0.retention_pct: 120 is out of range: allowed 0 (exclusive) to 100 (exclusive)"),
    ("objective and objectives", GOOD + "objective: {cycle: 400}\nobjectives: [{kind: milling_time}]\n",
     "not both"),
    # settings that are each valid but would do nothing in the campaign they are given to (they had run silently)
    ("a batch larger than the budget", GOOD.replace("batch_size: 3", "batch_size: 8"),
     "batch_size (8) must not exceed n_calls (6)"),
    ("two objectives of one kind", GOOD + "objectives: [{kind: capacity, name: a}, {kind: capacity, name: b}]\n",
     "two objectives of kind 'capacity' with the same settings"),
    ("a PyBaMM check on several objectives", GOOD + "objectives: [{kind: capacity}, {kind: milling_time}]\n"
     "physics_check: {top_k: 5}\n", "physics_check.top_k=5: the PyBaMM check re-ranks a single-objective campaign"),
    ("a tolerance on several objectives", GOOD + "objectives: [{kind: capacity}, {kind: milling_time}]\n"
     "recommendation: {tolerance_pct: 20}\n", "recommendation.tolerance_pct: used by a single objective only"),
    ("a log scale on a fixed value", GOOD.replace("{value: 20.0}", "{value: 20.0, log_scale: true}"),
     "log_scale applies to a searched range"),
    ("a milling energy below any recipe's", GOOD + "objectives: [{kind: capacity}, {kind: milling_energy}]\n"
     "recommendation: {limits: {milling_energy_kWh_per_kg: 0.0001}}\n", "milling_energy_kWh_per_kg"),
    ("mill settings searched for an unmilled powder", GOOD.replace("{low: 1.0, high: 20.0}", "{value: 0}"),
     "searched, but milling_time_h is fixed at 0 (unmilled)"),
]


@pytest.mark.parametrize("label, text, message", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_exits_2_and_writes_nothing(tmp_path, capsys, label, text, message):
    config = tmp_path / "campaign.yaml"
    config.write_text(text, encoding="utf-8")
    store = tmp_path / "mlruns" / "mlflow.db"
    assert main(["optimise", "--config", str(config), "--tracking-uri", f"sqlite:///{store}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err, err
    assert len(err.splitlines()) == 1 and str(config) in err
    assert not store.parent.exists()


def test_non_utf8_and_missing_files(tmp_path, capsys):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    assert main(["optimise", "--config", str(binary)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert main(["optimise", "--config", str(tmp_path / "absent.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_default_config_is_valid_and_overrides_merge():
    config = load_config(overrides={"optimiser": {"n_calls": 12, "n_initial_points": 4}})
    assert config.optimiser.n_calls == 12 and config.optimiser.batch_size == 4
    assert config.search_space.searched() == ["sn_mass_fraction", "milling_time_h", "milling_speed_rpm",
                                              "ball_to_powder_ratio"]
    with pytest.raises(ConfigError):
        load_config(overrides={"optimiser": {"n_calls": 12, "n_initial_points": 40}})


def test_a_range_takes_its_fields_scale_unless_it_states_one(tmp_path):
    """Milling time, speed and BPR act through power laws, so a range given as {low, high} is searched on a log axis,
    as configs/default.yaml states; a stated scale wins, and a range from 0 stays linear."""
    path = tmp_path / "c.yaml"
    path.write_text(GOOD.replace("ball_to_powder_ratio: {value: 20.0}",
                                 "ball_to_powder_ratio: {low: 5.0, high: 40.0, log_scale: false}"))
    space = load_config(path).search_space
    assert [space.sn_mass_fraction.log_scale, space.milling_time_h.log_scale, space.milling_speed_rpm.log_scale,
            space.ball_to_powder_ratio.log_scale] == [False, True, True, False]
    path.write_text(GOOD.replace("low: 1.0, high: 20.0", "low: 0.0, high: 20.0"))
    assert load_config(path).search_space.milling_time_h.log_scale is False
    from flows.config import CampaignConfig

    stated = CampaignConfig.model_validate({"search_space": {
        "milling_time_h": {"low": 0.5, "high": 40.0}, "milling_speed_rpm": {"low": 150.0, "high": 600.0},
        "ball_to_powder_ratio": {"low": 5.0, "high": 40.0}}})
    assert stated.search_space == load_config().search_space == CampaignConfig().search_space


def test_cli_options_are_validated_like_config(tmp_path, capsys):
    assert main(["optimise", "--n-calls", "0", "--tracking-uri", f"sqlite:///{tmp_path}/x/m.db"]) == 2
    assert "optimiser.n_calls" in capsys.readouterr().err
    assert main(["optimise", "--tracking-uri", "ftp://example/store"]) == 2
    assert "tracking.tracking_uri" in capsys.readouterr().err
    assert main(["optimise", "--batch-size", "-3", "--tracking-uri", f"sqlite:///{tmp_path}/x/m.db"]) == 2
    assert "optimiser.batch_size: -3 is out of range: allowed 1 to 64" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_cold_campaign_reaches_the_models(params):
    """Config allows -40 to 80 C; the model must accept the same range (parameters once rejected < 0)."""
    from flows.evaluation import campaign_parameters, evaluate_batch

    recipe = {"sn_mass_fraction": 2 / 3, "milling_time_h": 10.0, "milling_speed_rpm": 400.0,
              "ball_to_powder_ratio": 20.0}
    cold = load_config(overrides={"objective": {"temperature_C": -10.0}})
    warm = load_config()
    p, _ = campaign_parameters(cold)
    cold_result = evaluate_batch([recipe], p, cold.objective)[0]
    warm_result = evaluate_batch([recipe], campaign_parameters(warm)[0], warm.objective)[0]
    assert cold_result.ok and cold_result.objective < warm_result.objective


@pytest.mark.parametrize("name, why", [("ohmic_resistance_ohm_g", "assumed"), ("no_such_parameter", "unknown"),
                                       ("reference_milling_time_h", "range")])
def test_a_lab_parameter_must_be_an_assumed_parameter_with_a_range(name, why, monkeypatch):
    """Only assumed parameters with bounds can be inferred from lab results: the range is the prior. (Every shipped
    assumed parameter has a range, so the last case takes one away.)"""
    import dataclasses

    from surrogate.parameters import ModelParameters

    shipped = ModelParameters.load()
    entries = {n: shipped[n] for n in shipped} | {
        "reference_milling_time_h": dataclasses.replace(shipped["reference_milling_time_h"], bounds=None)}
    monkeypatch.setattr(ModelParameters, "load", classmethod(lambda cls, path=None: cls(entries)))
    with pytest.raises(ConfigError, match=f"lab_parameters.*{name}.*{why}"):
        load_config(overrides={"lab_parameters": [name]})


def test_every_assumed_number_states_its_range():
    """The guide's rule: every assumed parameter lives in config with a range (and its rationale beside it)."""
    from surrogate.parameters import ModelParameters

    p = ModelParameters.load()
    unranged = [n for n in p if p[n].tag == "assumed" and isinstance(p[n].value, (int, float))
                and not isinstance(p[n].value, bool) and p[n].bounds is None]
    assert unranged == []
    assert all(p[n].bounds[0] <= p[n].value <= p[n].bounds[1] for n in p if p[n].bounds is not None
               and isinstance(p[n].value, (int, float)))


@pytest.mark.parametrize("stated, why", [
    ({"mill": []}, "a group lists no parameter"),
    ({"mill": ["sn_welding_at_reference"], "cells": ["sn_welding_at_reference"]}, "listed twice"),
    ({"mill": ["not_a_parameter"]}, "unknown parameter"),
    ({"mill": "sn_welding_at_reference"}, "expected a list of parameter names, or groups"),
    ({"": ["sn_welding_at_reference"]}, "a name of letters, digits and underscores"),
    ({"mill (vial)": ["sn_welding_at_reference"]}, "a name of letters"),  # an MLflow param key takes no brackets
    ({"nothing": ["sn_welding_at_reference"]}, "not nothing"),  # the hypothesis that no group differs
    (7, "expected a list of parameter names, or groups"),
    (["sn_welding_at_reference", 1], "expected a list of parameter names, or groups"),
])
def test_lab_parameter_groups_are_checked_as_a_list_is(stated, why):
    with pytest.raises(ConfigError, match=f"lab_parameters.*{why}"):
        load_config(overrides={"lab_parameters": stated})


def test_an_overrides_document_says_a_validators_words_alone():
    """A Prefect run form's (or a flow's) overrides are checked field by field: a validator's message reads as it
    does in a config file, without pydantic's 'Value error, ' in front."""
    from flows.config import overrides_document

    with pytest.raises(ConfigError) as caught:
        overrides_document({"lab_parameters": {"mill": "sn_welding_at_reference"}})
    assert str(caught.value).startswith("overrides: lab_parameters: expected a list of parameter names")


def test_a_lab_parameters_override_replaces_the_groups_whole():
    """Overriding lab_parameters with one group lists that group alone, as a list override does: merged key by key,
    the default file's other groups had stayed (and a renamed group listed its parameters twice)."""
    assert load_config(overrides={"lab_parameters": {"mill": ["sn_welding_at_reference"]}}).lab_parameters == \
        {"mill": ["sn_welding_at_reference"]}
    assert load_config(overrides={"lab_parameters": {"vial": ["sn_welding_at_reference"]}}).lab_parameter_names == \
        ["sn_welding_at_reference"]


def test_lab_parameters_as_a_list_or_in_groups_name_the_same_parameters():
    grouped = load_config()
    assert isinstance(grouped.lab_parameters, dict) and len(grouped.lab_parameters) > 1
    flat = load_config(overrides={"lab_parameters": grouped.lab_parameter_names})
    assert flat.lab_parameter_names == grouped.lab_parameter_names == \
        [name for names in grouped.lab_parameters.values() for name in names]


def test_a_config_that_leaves_a_key_out_gets_configs_default_yaml_value(tmp_path):
    """configs/default.yaml is the embedded default: every setting a config file leaves out takes the value it
    states (a partial config had learned nothing from lab rows: its lab_parameters were [], the default file's 30)."""
    from flows.config import CampaignConfig

    stated = load_config().model_dump(mode="json")
    built_in = CampaignConfig().model_dump(mode="json")
    assert {k: v for k, v in built_in.items() if k != "description"} == \
        {k: v for k, v in stated.items() if k != "description"}
    assert len(stated["lab_parameters"]) > 0
    path = tmp_path / "partial.yaml"
    path.write_text("name: partial\nsearch_space:\n  sn_mass_fraction: {low: 0.3, high: 0.7}\n")
    assert load_config(path).lab_parameters == stated["lab_parameters"]
    path.write_text("name: partial\nlab_parameters: []\n")
    assert load_config(path).lab_parameters == []


def test_settings_refused_on_a_front_are_kept_where_they_act():
    """A one-objective list is recommended by the tolerance rule and gets the PyBaMM check, as the capacity
    objective is; two retention objectives at different thresholds are two quantities, not one repeated."""
    from flows.config import validate_config

    one = validate_config({"objectives": [{"kind": "cycles_to_retention"}],
                           "recommendation": {"tolerance_pct": 2.0}, "physics_check": {"top_k": 3}})
    assert one.recommendation.tolerance_pct == 2.0 and one.physics_check.top_k == 3
    two = validate_config({"objectives": [{"kind": "capacity"},
                                          {"kind": "cycles_to_retention", "retention_pct": 90, "name": "to90"},
                                          {"kind": "cycles_to_retention", "retention_pct": 80, "name": "to80"}]})
    assert two.multi_objective and len(two.objectives) == 3
