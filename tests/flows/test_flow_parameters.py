"""Typed flow parameters: Prefect's run form (the flow's parameter schema) shows each overrides field with its type
and range, and both Prefect's schema check (the server, the UI form) and the flow call reject a bad value."""

import pytest
from prefect.exceptions import ParameterTypeError
from prefect.utilities.schema_tools import validate

from flows.config import ConfigError, overrides_document
from flows.optimise import optimise_anode
from flows.whatif import what_if


def _field(schema: dict, *path: str) -> dict:
    """The schema of a nested overrides field (its non-null alternative)."""
    node = schema["properties"]["overrides"]
    for key in ("overrides", *path):
        if key != "overrides":
            node = node["properties"][key]
        refs = [a["$ref"] for a in node.get("anyOf", [node]) if "$ref" in a]
        if refs:
            node = schema["definitions"][refs[0].rsplit("/", 1)[-1]]
    return next((a for a in node.get("anyOf", [node]) if a.get("type") != "null"), node)


@pytest.mark.parametrize("flow", [optimise_anode, what_if])
def test_overrides_are_typed_fields_with_ranges_not_a_json_box(flow):
    schema = flow.parameters.model_dump()
    assert _field(schema, "optimiser", "n_calls") == {"type": "integer", "minimum": 2, "maximum": 2000}
    assert _field(schema, "objective", "current_A_per_g")["type"] == "number"
    assert _field(schema, "tracking", "tracking_uri")["type"] == "string"
    assert _field(schema, "optimiser")["additionalProperties"] is False  # a typo is an error, not ignored

    good = {"overrides": {"optimiser": {"n_calls": 20}, "tracking": {"tracking_uri": "sqlite:///x.db"}}}
    if flow is what_if:
        good["scenario_paths"] = ["configs/whatif"]
    assert validate(good, schema, raise_on_error=False) == []
    for bad in ({"optimiser": {"n_calls": 1}}, {"optimiser": {"n_calls": "many"}}, {"optimser": {"n_calls": 20}}):
        assert validate(good | {"overrides": bad}, schema, raise_on_error=False), bad


def test_the_flow_call_rejects_a_bad_value_and_keeps_only_the_keys_given():
    with pytest.raises(ParameterTypeError, match="overrides.optimiser.n_calls"):
        optimise_anode.validate_parameters({"overrides": {"optimiser": {"n_calls": 1}}})
    validated = optimise_anode.validate_parameters({"overrides": {"optimiser": {"n_calls": 20}}})["overrides"]
    # what the campaign merges onto its config: the keys given, nothing else (no defaults, no nulls)
    assert overrides_document(validated) == {"optimiser": {"n_calls": 20}}
    assert overrides_document(None) == {}
    with pytest.raises(ConfigError, match="optimiser.batch_size"):
        overrides_document({"optimiser": {"batch_size": 0}})
