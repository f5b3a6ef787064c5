"""Model parameters with units and provenance, read from ``configs/model_parameters.yaml``.

Models never hold numbers of their own: they read them here by name (``p.sn_capacity_mAh_per_g``). Each entry keeps
its tag (measured, literature, derived, assumed, fitted) so reports can say where a number came from.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from surrogate.paths import PROJECT_ROOT, config_dir
from surrogate.yaml_safety import YamlInputError, excerpt, finite_as_float, non_finite_number, read_yaml_file

TAGS = ("measured", "literature", "derived", "assumed", "fitted")


class ParameterError(ValueError):
    """A malformed parameter file or override; the message names the parameter."""


@dataclass(frozen=True)
class Parameter:
    """One model parameter: value, unit, provenance tag, source or rationale, and its allowed range (for a fitted
    parameter, the fit's range). Without bounds a number must be >= 0: most parameters are magnitudes."""

    name: str
    value: Any
    unit: str
    tag: str
    source: str
    bounds: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None  # the allowed values of a named choice (a text parameter)


# A measured, literature or derived constant documented without a range may be overridden within this factor of its
# documented value: a different hard carbon's capacity or a denser Sn is a what-if, a density of 0 or a capacity of
# 1e9 mAh/g is a typing error that would divide by zero or swamp every other term. (Assumed settings without a
# range, such as a solver's tolerance or a grid's density, are choices a user may move further.)
UNRANGED_FACTOR = 10.0
CONSTANT_TAGS = ("measured", "literature", "derived")


def _check_float(name: str, value: int | float, old: Parameter) -> None:
    """A number too large for a float (a 400-digit integer) is refused by its range, not by an OverflowError."""
    if isinstance(value, int) and not finite_as_float(value):
        allowed = (f"allowed {old.bounds[0]:g} to {old.bounds[1]:g}" if old.bounds
                   else "too large for a number of the model")
        raise ParameterError(f"model_parameters.{name}={excerpt(value)} is out of range: {allowed}")


def _within_a_factor(name: str, value: float, documented: float, where: str | None = None) -> None:
    """``where``: the parameter file being read (default: an override, ``model_parameters.NAME``)."""
    if documented > 0 and not documented / UNRANGED_FACTOR <= value <= documented * UNRANGED_FACTOR:
        label = f"{where}: parameter {name!r}: value" if where else f"model_parameters.{name}"
        raise ParameterError(f"{label}={value!r} is out of range: allowed "
                             f"{documented / UNRANGED_FACTOR:g} to {documented * UNRANGED_FACTOR:g} (a factor of "
                             f"{UNRANGED_FACTOR:g} around its documented {documented:g}; it states no range)")


def _file_bounds(path, name: str, bounds) -> tuple[float, float]:
    """A parameter file's ``bounds``: two finite numbers, low <= high (a number written 1.0e6, which YAML reads
    as text, is a number)."""
    try:
        if not isinstance(bounds, list):  # a string would be read character by character ("19": 1 to 9)
            raise TypeError
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ParameterError(f"{path}: parameter {name!r}: bounds={excerpt(bounds)} is not allowed: two numbers, "
                             f"[low, high]") from None
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ParameterError(f"{path}: parameter {name!r}: bounds={excerpt(bounds)} is not allowed: two finite "
                             f"numbers with low <= high")
    return low, high


def _check_file_value(path, name: str, value, bounds: tuple[float, float] | None) -> None:
    """A parameter file's value (one without ``choices``): a number inside its bounds, or without bounds above 0 (a
    magnitude the model divides by or raises: a capacity, a density, a potential), or a list of such numbers. A
    capacity of -847 mAh/g had run a whole campaign of negative capacities into the store, and a value of 0 or a
    word had ended in a traceback."""
    items = value if isinstance(value, list) and value and bounds is None else [value]
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not finite_as_float(item):
            kind = "a list of numbers > 0" if isinstance(value, list) else "a number"
            raise ParameterError(f"{path}: parameter {name!r}: value={excerpt(value)} is not allowed: {kind}")
        if bounds is not None and not bounds[0] <= item <= bounds[1]:
            raise ParameterError(f"{path}: parameter {name!r}: value={excerpt(value)} is out of range: allowed "
                                 f"{bounds[0]:g} to {bounds[1]:g} (its bounds)")
        if bounds is None and not item > 0:
            raise ParameterError(f"{path}: parameter {name!r}: value={excerpt(value)} is out of range: above 0 (a "
                                 f"magnitude; give bounds to allow otherwise)")


def _shape(value) -> str:
    return f"a list of {len(value)} numbers" if isinstance(value, list) else "a number"


def _documented(path: Path) -> dict[str, Any]:
    """The value of each parameter of the project's own parameter file of the same name (model_parameters.yaml,
    physics_parameters.yaml), which documents what the models take; empty when ``path`` is that file (or there is
    none, or it cannot be read): then the file's own values are the documentation."""
    shipped = PROJECT_ROOT / "configs" / Path(path).name
    try:
        if Path(path).resolve() == shipped.resolve():
            return {}
        document = read_yaml_file(shipped, "parameter file")
    except (OSError, YamlInputError):
        return {}
    return {name: entry["value"] for name, entry in document.items()
            if isinstance(entry, dict) and "value" in entry and "choices" not in entry}


def _check_documented(path, name: str, entry: dict, bounds, documented: dict[str, Any]) -> None:
    """A parameter the project documents takes the shape it documents (a list where the models take one number,
    or the reverse, had ended in a traceback; a count, a whole number), and a measured, literature or derived
    constant without a range stays within :data:`UNRANGED_FACTOR` of its documented value, as an override does
    (1e300 mAh/g had overflowed)."""
    if name not in documented:
        return
    value, reference = entry["value"], documented[name]
    if _shape(value) != _shape(reference):
        raise ParameterError(f"{path}: parameter {name!r}: value={excerpt(value)} is not allowed: {_shape(reference)}")
    if type(reference) is int and not float(value).is_integer():  # a count (mesh points, threads)
        raise ParameterError(f"{path}: parameter {name!r}: value={excerpt(value)} is not allowed: a count, so a "
                             f"whole number" + (f" from {bounds[0]:g} to {bounds[1]:g}" if bounds else " above 0"))
    if bounds is None and entry["tag"] in CONSTANT_TAGS:
        for item, documented_item in zip(value if isinstance(value, list) else [value],
                                         reference if isinstance(reference, list) else [reference]):
            if isinstance(documented_item, (int, float)) and not isinstance(documented_item, bool):
                _within_a_factor(name, item, documented_item, str(path))


class ModelParameters(Mapping):
    """Read-only set of :class:`Parameter`, values reachable as attributes.

    Examples
    --------
    >>> p = ModelParameters.load()
    >>> p.sn_capacity_mAh_per_g
    847.0
    >>> p.with_values(hc_capacity_mAh_per_g=330.0).hc_capacity_mAh_per_g
    330.0
    """

    def __init__(self, entries: Mapping[str, Parameter]):
        self._entries = dict(entries)

    # Mapping interface: name -> Parameter
    def __getitem__(self, name: str) -> Parameter:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_entries"][name].value
        except KeyError:
            raise AttributeError(f"no model parameter named {name!r}") from None

    @classmethod
    def load(cls, path: str | Path | None = None) -> "ModelParameters":
        """Read and check a parameter file (default ``configs/model_parameters.yaml``)."""
        path = Path(path) if path else config_dir() / "model_parameters.yaml"
        try:
            document = read_yaml_file(path, "parameter file")
        except YamlInputError as error:
            raise ParameterError(f"cannot read parameter file: {error}") from None
        if not isinstance(document, dict):
            raise ParameterError(f"{path}: expected a mapping of parameter names")
        found = non_finite_number(document)
        if found is not None:
            raise ParameterError(f"{path}: {found[0]}={found[1]!r} is not a finite number")
        entries = {}
        documented = _documented(path)
        for name, entry in document.items():
            if not isinstance(entry, dict) or "value" not in entry or entry.get("tag") not in TAGS:
                raise ParameterError(f"{path}: parameter {name!r} needs 'value', 'unit' and a tag in {TAGS}")
            bounds = _file_bounds(path, name, entry["bounds"]) if "bounds" in entry else None
            if entry["tag"] == "fitted" and bounds is None:
                raise ParameterError(f"{path}: fitted parameter {name!r} needs 'bounds'")
            choices = tuple(str(c) for c in entry["choices"]) if "choices" in entry else None
            if choices is not None and entry["value"] not in choices:
                raise ParameterError(f"{path}: parameter {name!r}: its value is not among its 'choices'")
            if choices is None:
                _check_file_value(path, name, entry["value"], bounds)
                _check_documented(path, name, entry, bounds, documented)
            entries[name] = Parameter(name, entry["value"], str(entry.get("unit", "")), entry["tag"],
                                      str(entry.get("source", "")), bounds, choices)
        missing = [name for name in _shipped_names(Path(path).name) if name not in entries]
        if missing:  # an edited copy (SNHC_CONFIG_DIR) had failed deep in the model: "no model parameter named ..."
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise ParameterError(f"{path}: lacks the parameter(s) {shown}: the models need every parameter of the "
                                 f"project's configs/{Path(path).name}")
        return cls(entries)

    def with_values(self, **values: Any) -> "ModelParameters":
        """A copy with some values replaced; unknown names and wrong types raise :class:`ParameterError`."""
        entries = dict(self._entries)
        for name, value in values.items():
            if name not in entries:
                raise ParameterError(f"model_parameters.{name}: unknown parameter (see configs/model_parameters.yaml)")
            old = entries[name]
            if isinstance(old.value, (int, float)) and not isinstance(old.value, bool):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ParameterError(f"model_parameters.{name}: expected a number, got {excerpt(value)}")
                _check_float(name, value, old)
                if isinstance(old.value, int) and not float(value).is_integer():
                    # documented as a whole number: a count (segments, cycles), which int() would silently cut
                    raise ParameterError(f"model_parameters.{name}={value!r} is not allowed: a count, so a whole "
                                         "number" + (f" from {old.bounds[0]:g} to {old.bounds[1]:g}"
                                                     if old.bounds else " >= 0"))
                value = float(value) if isinstance(old.value, float) else int(value)
                if old.bounds and not old.bounds[0] <= value <= old.bounds[1]:
                    raise ParameterError(
                        f"model_parameters.{name}={value!r} is out of range: allowed {old.bounds[0]:g} to {old.bounds[1]:g}")
                if not old.bounds and value < 0:
                    raise ParameterError(f"model_parameters.{name}={value!r} is out of range: must be >= 0")
                if not old.bounds and old.tag in CONSTANT_TAGS:
                    _within_a_factor(name, value, old.value)
            elif isinstance(old.value, list):
                if not isinstance(value, list) or len(value) != len(old.value):
                    raise ParameterError(f"model_parameters.{name}: expected a list of {len(old.value)} numbers")
                for item, documented in zip(value, old.value):
                    if isinstance(item, (int, float)) and not isinstance(item, bool):
                        _check_float(name, item, old)
                    if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
                        raise ParameterError(f"model_parameters.{name}: expected a list of {len(old.value)} "
                                             f"numbers, got {item!r}")
                    if old.tag in CONSTANT_TAGS:
                        _within_a_factor(name, item, documented)
            elif type(value) is not type(old.value):
                raise ParameterError(f"model_parameters.{name}: expected {type(old.value).__name__}, got "
                                     f"{excerpt(value)}")
            elif old.choices is not None and value not in old.choices:
                raise ParameterError(f"model_parameters.{name}={excerpt(value)} is not allowed: allowed "
                                     f"{', '.join(old.choices)}")
            entries[name] = replace(old, value=value)
        return ModelParameters(entries)

    def with_arrays(self, values: Mapping[str, Any]) -> "ModelParameters":
        """A copy in which some numeric values are arrays, one value per recipe of a batch (unchecked: the values
        come from parameter sets that were checked, e.g. an ensemble's members stacked into one model call)."""
        entries = dict(self._entries)
        for name, value in values.items():
            entries[name] = replace(entries[name], value=np.asarray(value, dtype=float))
        return ModelParameters(entries)

    def names(self, tag: str | None = None) -> list[str]:
        """Parameter names, optionally only those with one provenance tag."""
        return [n for n, e in self._entries.items() if tag is None or e.tag == tag]

    def digest(self, exclude_tag: str | None = None) -> str:
        """SHA-256 of the values (optionally without one tag): identifies a parameter set in caches and runs."""
        chosen = {n: e.value for n, e in self._entries.items() if e.tag != exclude_tag}
        return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()


@functools.cache
def _shipped_names(file_name: str) -> tuple[str, ...]:
    """The parameter names of the project's own parameter file of that name (model_parameters.yaml,
    physics_parameters.yaml): the ones the models read, which a copied and edited file (``SNHC_CONFIG_DIR``) must
    keep. None to require when there is no such file or it cannot be read."""
    try:
        document = read_yaml_file(PROJECT_ROOT / "configs" / file_name, "parameter file")
    except (OSError, YamlInputError):
        return ()
    return tuple(str(name) for name in document) if isinstance(document, dict) else ()
