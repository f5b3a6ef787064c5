"""The recipe schema (surrogate/recipe.py): every recipe rule derives from RECIPE_FIELDS."""

import numpy as np
import pytest

from surrogate.recipe import (FIELD_NAMES, RECIPE_FIELDS, RecipeError, RecipeField, Recipes, complete,
                              recipe_key, same_value)

REFERENCE = {"sn_mass_fraction": 2 / 3, "milling_time_h": 10.0, "milling_speed_rpm": 400.0,
             "ball_to_powder_ratio": 20.0}


@pytest.mark.parametrize("field", RECIPE_FIELDS, ids=lambda f: f.name)
def test_each_field_refuses_what_it_does_not_allow(field):
    bad = ["plasma"] if field.categorical else [field.low - 1, field.high + 1, float("nan"), float("inf"), "7", None,
                                                True]
    for value in bad:
        assert not field.is_valid(value), value
        with pytest.raises(RecipeError, match=field.name):
            field.check(value)
    good = field.choices[0] if field.categorical else (field.low + field.high) / 2
    assert field.is_valid(good)


def test_batches_are_validated_by_the_same_rule():
    with pytest.raises(RecipeError, match=r"sn_mass_fraction=1.2 is out of range: allowed 0 to 1"):
        Recipes(**REFERENCE | {"sn_mass_fraction": [0.5, 1.2]})
    with pytest.raises(RecipeError, match="unknown recipe field"):
        Recipes(**REFERENCE, colour=[1.0])


def test_a_batch_broadcasts_and_round_trips_through_records():
    batch = Recipes(sn_mass_fraction=[0.2, 0.5, 0.8], milling_time_h=10.0, milling_speed_rpm=400.0,
                    ball_to_powder_ratio=20.0)
    assert batch.size == 3 and np.allclose(batch.milling_time_h, 10.0)
    again = Recipes.from_records(batch.to_records())
    for name in FIELD_NAMES:
        assert list(getattr(again, name)) == list(getattr(batch, name))
    assert batch.take([1]).to_records()[0]["sn_mass_fraction"] == 0.5


def test_the_sameness_rule_ignores_digits_beyond_its_precision_and_nothing_else():
    assert recipe_key(REFERENCE) == recipe_key(REFERENCE | {"sn_mass_fraction": 2 / 3 + 1e-9})
    assert recipe_key(REFERENCE) != recipe_key(REFERENCE | {"sn_mass_fraction": 0.6667})
    assert same_value("milling_time_h", 10.0, 10.0000001) and not same_value("milling_time_h", 10.0, 10.01)


def test_complete_names_missing_and_unknown_fields():
    with pytest.raises(RecipeError, match="milling_time_h"):
        complete({k: v for k, v in REFERENCE.items() if k != "milling_time_h"})
    with pytest.raises(RecipeError, match="colour"):
        complete(REFERENCE | {"colour": "blue"})


def test_a_categorical_field_with_a_default_is_optional_everywhere(monkeypatch):
    """A new field is one entry in the schema; recipes that do not give it take its default."""
    import surrogate.recipe as recipe

    balls = RecipeField("ball_material", "material of the milling balls", choices=("steel", "zirconia"),
                        search=("steel", "zirconia"), default="steel")
    fields = (*RECIPE_FIELDS, balls)
    monkeypatch.setattr(recipe, "RECIPE_FIELDS", fields)
    monkeypatch.setattr(recipe, "FIELDS", {f.name: f for f in fields})
    monkeypatch.setattr(recipe, "FIELD_NAMES", tuple(f.name for f in fields))
    assert "ball_material" not in REFERENCE
    batch = recipe.Recipes.from_records([REFERENCE, REFERENCE | {"ball_material": "zirconia"}])
    assert list(batch.ball_material) == ["steel", "zirconia"]
    assert recipe.complete(REFERENCE)["ball_material"] == "steel"
    with pytest.raises(RecipeError, match="allowed steel, zirconia"):
        recipe.Recipes.from_records([REFERENCE | {"ball_material": "glass"}])
    assert recipe.recipe_key(REFERENCE) != recipe.recipe_key(REFERENCE | {"ball_material": "zirconia"})


def test_a_value_just_past_a_bound_is_shown_as_given_not_rounded_onto_it():
    from surrogate.recipe import FIELDS, RecipeError

    with pytest.raises(RecipeError, match=r"^ball_to_powder_ratio=100.0000001 is out of range: allowed 1 to 100$"):
        FIELDS["ball_to_powder_ratio"].check(100.0000001)
    with pytest.raises(RecipeError, match=r"^ball_to_powder_ratio=101 is out of range"):
        FIELDS["ball_to_powder_ratio"].check(101.0)
