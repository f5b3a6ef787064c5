"""Recipes, parameters and calibration data reject bad input with a message naming the field and its range."""

import re
from pathlib import Path

import pytest

from surrogate.calibration import CalibrationDataError, load_observations
from surrogate.parameters import TAGS, ModelParameters, ParameterError
from surrogate.recipe import RecipeError, Recipes


@pytest.mark.parametrize("field, value, allowed", [
    ("sn_mass_fraction", 1.3, "0 to 1"),
    ("milling_time_h", -2.0, "0 to 100"),
    ("milling_speed_rpm", 5000.0, "50 to 1000"),
    ("ball_to_powder_ratio", float("nan"), "1 to 100"),
])
def test_out_of_range_recipe_names_field_and_range(field, value, allowed):
    recipe = {"sn_mass_fraction": 0.5, "milling_time_h": 5.0, "milling_speed_rpm": 400.0, "ball_to_powder_ratio": 20.0}
    recipe[field] = value
    with pytest.raises(RecipeError, match=rf"{field}=.*allowed {allowed}"):
        Recipes.from_records([recipe])


def test_every_parameter_has_unit_tag_and_source():
    p = ModelParameters.load()
    for name in p:
        entry = p[name]
        assert entry.tag in TAGS and entry.unit and entry.source, name
        if entry.tag == "fitted":
            low, high = entry.bounds
            assert low <= entry.value <= high, name


def test_parameter_overrides_are_checked():
    p = ModelParameters.load()
    assert p.with_values(hc_capacity_mAh_per_g=330).hc_capacity_mAh_per_g == 330.0
    with pytest.raises(ParameterError, match="no_such_parameter"):
        p.with_values(no_such_parameter=1.0)
    with pytest.raises(ParameterError, match="expected a number"):
        p.with_values(hc_capacity_mAh_per_g="lots")
    with pytest.raises(ParameterError, match="overpotential_spread_V=5.0 is out of range: allowed 0.003 to 0.08"):
        p.with_values(overpotential_spread_V=5.0)
    assert p.with_values(reference_temperature_C=-10).reference_temperature_C == -10.0  # bounds allow < 0
    with pytest.raises(ParameterError, match="reference_temperature_C=-100.0 is out of range: allowed -40 to 80"):
        p.with_values(reference_temperature_C=-100)
    with pytest.raises(ParameterError, match="hc_capacity_mAh_per_g=-1.0 is out of range: must be >= 0"):
        p.with_values(hc_capacity_mAh_per_g=-1)


def test_a_count_takes_whole_numbers_only():
    p = ModelParameters.load()
    assert isinstance(p.hc_slope_segments, int)
    counted = p.with_values(hc_slope_segments=4.0, formation_cycles=2)  # 4.0 is the whole number 4 (YAML's 4e0)
    assert (counted.hc_slope_segments, counted.formation_cycles) == (4, 2)
    assert isinstance(counted.hc_slope_segments, int)
    for name, value in (("hc_slope_segments", 2.5), ("formation_cycles", 1.2), ("rate_test_cycles_per_step", 0.5)):
        with pytest.raises(ParameterError, match=f"{name}={value} is not allowed: a count, so a whole number"):
            p.with_values(**{name: value})


def test_malformed_parameter_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("sn_capacity_mAh_per_g: {value: 847}\n")
    with pytest.raises(ParameterError, match="sn_capacity_mAh_per_g"):
        ModelParameters.load(path)


@pytest.mark.parametrize("parameter, edit, message", [
    ("sn_capacity_mAh_per_g", {"value": "lots"}, "value='lots' is not allowed: a number"),
    ("sn_capacity_mAh_per_g", {"value": True}, "value=True is not allowed: a number"),
    ("sn_capacity_mAh_per_g", {"value": [1, 2]}, "value=[1, 2] is not allowed: a number"),
    ("sn_capacity_mAh_per_g", {"value": 0}, "value=0 is out of range: above 0"),
    ("sn_capacity_mAh_per_g", {"value": -847.0}, "value=-847.0 is out of range: above 0"),
    ("sn_capacity_mAh_per_g", {"value": 1e300}, "model_parameters.yaml: parameter 'sn_capacity_mAh_per_g': value=1e+300 "
                                                 "is out of range: allowed 84.7 to 8470"),
    ("sn_plateau_potentials_V", {"value": 0.5}, "is not allowed: a list of 4 numbers"),
    ("sn_plateau_potentials_V", {"value": [0.5, "x", 0.1]}, "is not allowed: a list of numbers > 0"),
    ("hc_plateau_fraction", {"value": 0.45, "bounds": "abc"}, "bounds='abc' is not allowed: two numbers"),
    ("hc_plateau_fraction", {"value": 0.45, "bounds": "19"}, "bounds='19' is not allowed: two numbers"),
    ("hc_plateau_fraction", {"value": 0.45, "bounds": [0.6, 0.3]}, "low <= high"),
    ("hc_plateau_fraction", {"value": 0.45, "bounds": [0.9, 0.95]}, "value=0.45 is out of range: allowed 0.9 to 0.95"),
    ("interface_exchange_current_A_per_g", {"value": "abc"}, "value='abc' is not allowed: a number"),
])
def test_a_parameter_file_with_a_value_the_models_cannot_take_is_refused_naming_it(tmp_path, parameter, edit,
                                                                                  message):
    """A parameter file (a copied and edited configs/, SNHC_CONFIG_DIR) is checked by class, as an override is: a
    value is a number inside its bounds (without bounds above 0), in the shape the project documents, a constant
    without a range within a factor of 10 of its documented value; bounds are two numbers, low <= high. A capacity of
    -847 mAh/g had run a campaign of negative capacities into the store; a word, a list or 0 had ended in a
    traceback. The project's own file and an edit within these rules load."""
    import yaml

    document = yaml.safe_load(Path("configs/model_parameters.yaml").read_text())
    document[parameter] = {**document[parameter], **edit}
    path = tmp_path / "model_parameters.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ParameterError, match=re.escape(message)) as raised:
        ModelParameters.load(path)
    assert parameter in str(raised.value)
    document[parameter] = yaml.safe_load(Path("configs/model_parameters.yaml").read_text())[parameter]
    document["sn_capacity_mAh_per_g"]["value"] = 900.0
    path.write_text(yaml.safe_dump(document))
    assert ModelParameters.load(path).sn_capacity_mAh_per_g == 900.0


@pytest.mark.parametrize("row, message", [
    ("{material: Sn@HC-9-9, quantity: particle_expansion_pct, value: 1, tag: measured, sigma_pct: 1}", "material"),
    ("{material: HC, quantity: colour, value: 1, tag: measured, sigma_pct: 1}", "quantity"),
    ("{material: HC, quantity: particle_expansion_pct, value: -3, tag: measured, sigma_pct: 1}", "value=-3"),
    ("{material: HC, quantity: particle_expansion_pct, value: 3, tag: guessed, sigma_pct: 1}", "tag"),
    ("{material: HC, quantity: particle_expansion_pct, value: 3, tag: measured, sigma_pct: 1, colour: red}", "colour"),
    ("{material: HC, quantity: capacity_at_cycle_mAh_per_g, current_A_per_g: 1.7, value: 3, tag: measured, sigma_pct: 1}",
     "cycle"),
    # a condition the model does not read is refused, not silently dropped from the fit
    ("{material: HC, quantity: particle_expansion_pct, cycle: 400, value: 3, unit: '%', tag: measured, sigma_pct: 1}",
     "cycle=400: only capacity_at_cycle_mAh_per_g is read at a cycle"),
    ("{material: HC, quantity: activation_energy_kJ_per_mol, current_A_per_g: 0.5, value: 13, unit: kJ/mol, "
     "tag: measured, sigma_pct: 1}", "current_A_per_g=0.5: activation_energy_kJ_per_mol is not read at a current"),
])
def test_broken_calibration_data_names_the_row(tmp_path, row, message):
    path = tmp_path / "data.yaml"
    path.write_text(f"observations:\n  - {row}\n")
    with pytest.raises(CalibrationDataError, match=rf"observation 1: .*{message}"):
        load_observations(path)


def test_unreadable_calibration_file(tmp_path):
    path = tmp_path / "data.yaml"
    path.write_bytes(b"\xff\xfe observations: [")
    with pytest.raises(CalibrationDataError, match=str(path)):
        load_observations(path)


def test_numbers_in_exponent_form_are_numbers_as_yaml_1_2_reads_them():
    """PyYAML (YAML 1.1) reads 1e9 as text; a user writing a capacity as 1e3 means a number, in every file."""
    from surrogate.yaml_safety import load_yaml_text

    assert load_yaml_text("a: 1e3\nb: -2E-3\nc: 1.5e+2\nd: 12\ne: 1e3x\nf: '1e3'\n", "test") == {
        "a": 1000.0, "b": -0.002, "c": 150.0, "d": 12, "e": "1e3x", "f": "1e3"}


def test_an_integer_with_a_leading_zero_is_decimal_as_yaml_1_2_reads_it():
    """YAML 1.1 read 0400 as octal (a cycle count of 0400 became 256) and 0800 as an error; 0o and 0x say a base."""
    from surrogate.yaml_safety import load_yaml_text

    assert load_yaml_text("a: 0400\nb: 0800\nc: -012\nd: 0o17\ne: 0x1F\nf: '0400'\n", "test") == {
        "a": 400, "b": 800, "c": -12, "d": 15, "e": 31, "f": "0400"}


def test_an_empty_folder_variable_counts_as_unset(monkeypatch, tmp_path):
    """``SNHC_CACHE_DIR=`` had put the cached fits in the folder the command ran from (an empty path is '.'), and
    ``SNHC_CONFIG_DIR=`` read the configs from there: set and empty is unset, as a shell's ``VAR=`` means."""
    from surrogate.paths import PROJECT_ROOT, cache_dir, config_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SNHC_CACHE_DIR", "")
    monkeypatch.setenv("SNHC_CONFIG_DIR", "")
    assert cache_dir() == PROJECT_ROOT / ".snhc_cache"
    assert config_dir() == PROJECT_ROOT / "configs"
    monkeypatch.setenv("SNHC_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"


@pytest.mark.parametrize("parameter, value, message", [
    ("particle_mesh_points", "twenty", "value='twenty' is not allowed: a number"),
    ("particle_mesh_points", 0, "value=0 is out of range: allowed 5 to 200"),
    ("particle_mesh_points", 7.5, "value=7.5 is not allowed: a count, so a whole number from 5 to 200"),
    ("solver_threads", 100000, "value=100000 is out of range: allowed 1 to 64"),
    ("solver_relative_tolerance", -1.0, "value=-1.0 is out of range: above 0"),
])
def test_a_physics_parameter_file_is_checked_as_the_models_is(tmp_path, parameter, value, message):
    """The PyBaMM model's parameter file is read by the same loader and checked by the same classes: its counts are
    whole numbers within their ranges, its magnitudes above 0 (a word or 0 mesh points had failed inside PyBaMM as
    'could not evaluate', 100 000 solver threads had hung it)."""
    import yaml

    document = yaml.safe_load(Path("configs/physics_parameters.yaml").read_text())
    document[parameter]["value"] = value
    path = tmp_path / "physics_parameters.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ParameterError, match=re.escape(message)):
        ModelParameters.load(path)


def test_yaml_plain_scalars_are_read_by_the_core_schema():
    """YAML 1.2's core schema, as the loader promises: a date is text (a campaign named 2024-01-01 had been refused
    as "not a valid string"), 1e3 a number, yes and 1:40 text."""
    from surrogate.yaml_safety import load_yaml_text

    document = load_yaml_text("name: 2024-01-01\nwhen: 2024-01-01T10:00:00\nn: 1e3\nok: yes\nt: 1:40\n", "test")
    assert document == {"name": "2024-01-01", "when": "2024-01-01T10:00:00", "n": 1000.0, "ok": "yes", "t": "1:40"}


def test_a_copied_config_folder_that_lacks_what_the_models_read_is_refused_naming_it(tmp_path, monkeypatch):
    """An edited copy of configs/ (SNHC_CONFIG_DIR) keeps every parameter of the project's parameter files and the
    study's composite in materials.yaml: without them a campaign or a prediction had ended in a traceback deep in
    the model ('no model parameter named ...', KeyError: 'Sn@HC-2-1')."""
    import shutil

    from surrogate.recipe import study_recipe

    copied = tmp_path / "configs"
    shutil.copytree("configs", copied)
    for file_name, dropped in (("model_parameters.yaml", "hc_capacity_mAh_per_g"),
                               ("physics_parameters.yaml", "separator_porosity")):
        text = (copied / file_name).read_text()
        document = re.sub(rf"^{dropped}:\n(  .*\n)+", "", text, flags=re.M)
        assert document != text, f"{dropped} is no longer in {file_name}"
        (copied / file_name).write_text(document)
        with pytest.raises(ParameterError, match=re.escape(f"lacks the parameter(s) {dropped}: the models need")):
            ModelParameters.load(copied / file_name)
    (copied / "materials.yaml").write_text((copied / "materials.yaml").read_text().replace("Sn@HC-2-1:", "x:"))
    monkeypatch.setenv("SNHC_CONFIG_DIR", str(copied))
    with pytest.raises(ParameterError, match="materials: lacks Sn@HC-2-1"):
        study_recipe()
