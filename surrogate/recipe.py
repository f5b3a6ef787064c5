"""The recipe: Sn:HC mass ratio plus the ball-milling condition, declared once as a schema of fields.

Each :class:`RecipeField` carries its name (with unit), kind (real or categorical), allowed range or choices, the
typical search range and the value a recipe takes when it does not give the field. Everything else is derived from
:data:`RECIPE_FIELDS`: the batch type :class:`Recipes`, the validity check, the one sameness rule
(:func:`recipe_key`), the campaign's search space and optimiser dimensions (``flows/config.py``,
``flows/search.py``), the CLI options of ``snhc predict`` and the lab-CSV columns. Adding a field is one entry here
plus the physics that uses it.

Every model takes a :class:`Recipes` and returns arrays of the same length, so a batch of 100 000 recipes costs one
numpy pass. An unmilled powder (a physical mixture, or a pure material) is a milling time of 0 h.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from surrogate.yaml_safety import plain_number

SAMENESS_SIGNIFICANT_DIGITS = 6  # two recipes equal to this many significant digits in every field are the same
LAB_SIGNIFICANT_DIGITS = 4  # a recipe handed to a lab: a balance, a mill's timer and its speed dial set no finer
# (0.6137 of Sn, 39.99 h, 371.3 rpm; suggestions had read 39.99999999999999 h and 371.2841578206109 rpm)


class RecipeError(ValueError):
    """A recipe value outside its allowed range or choices; names the field and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str, problem: str = "is out of range"):
        self.field = field
        self.allowed = allowed
        # as short as it reads, but never rounded onto the range's end (100.0000001 had read as "=100 is out of range")
        shown = (f"{value:g}" if float(f"{value:g}") == value else repr(value)) if isinstance(value, float) \
            else repr(value)
        super().__init__(f"{field}={shown} {problem}: {allowed}")


# The finest step of a real field, as a share of its allowed span: a value closer to 0 than this (a milling time of
# 1e-310 h) is no recipe, and the milling laws' logarithms overflow on it.
RESOLUTION = 1e-6


@dataclass(frozen=True)
class RecipeField:
    """One recipe field: name (unit in the name), kind, allowed values, typical search range, default.

    Parameters
    ----------
    name : field name with its unit, e.g. ``milling_time_h``.
    description : what it is, for help texts and docs.
    low, high : allowed range of a real field (what-if studies may go beyond the typical lab range).
    choices : allowed values of a categorical field (then ``low``/``high`` are unused).
    search : the default search range ``(low, high)`` of a real field, or the default choices of a categorical one.
    log_scale : search a real field on a log scale by default.
    default : value of a recipe that does not give this field (None: the field is required).
    aliases : extra command-line spellings besides ``--name-with-dashes``.
    milling_setting : a setting of the mill, which does nothing to a powder that is not milled (milling time 0).
    """

    name: str
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    search: tuple = ()
    log_scale: bool = False
    default: Any = None
    aliases: tuple[str, ...] = ()
    milling_setting: bool = False

    @property
    def categorical(self) -> bool:
        return bool(self.choices)

    @property
    def finest(self) -> float:
        """The smallest non-zero magnitude a value of this real field may have (:data:`RESOLUTION` of its span)."""
        return RESOLUTION * (self.high - self.low)

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def option(self) -> str:
        """The command-line option, e.g. ``--milling-time-h``."""
        return "--" + self.name.replace("_", "-")

    def allowed(self) -> str:
        """The allowed values as words, for error messages."""
        if self.categorical:
            return "allowed " + ", ".join(self.choices)
        zero = " (0, or at least " + format(self.finest, "g") + ")" if self.low <= 0 <= self.high else ""
        return f"allowed {self.low:g} to {self.high:g}{zero}"

    def is_valid(self, value: Any) -> bool:
        if self.categorical:
            return isinstance(value, str) and value in self.choices
        if isinstance(value, (bool, str)) or value is None:
            return False
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        return (bool(np.isfinite(number)) and self.low <= number <= self.high
                and (number == 0 or abs(number) >= self.finest))

    def check(self, value: Any, label: str | None = None) -> Any:
        """The value as the field's type (float or str); raises :class:`RecipeError` naming ``label``."""
        if not self.is_valid(value):
            problem = "is out of range"
            if self.reads_as_percentage(value):
                problem += f" (a percentage? as a fraction: {value / 100.0:.4g})"
            raise RecipeError(label or self.name, value, self.allowed(), problem)
        return value if self.categorical else float(value)

    def reads_as_percentage(self, value: Any) -> bool:
        """Whether a value of a share up to 1 (the Sn fraction, the duty cycle) reads as a percentage: above 1, and
        a hundredth of it allowed and no lower than the field's typical range starts (66.7 or 100 for the Sn
        fraction, 50 for the duty cycle; not 1.3, whose hundredth no lab would mean)."""
        if self.categorical or self.high != 1.0 or isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        least = max(self.low, self.search[0]) if self.search else self.low
        return value > 1.0 and least <= value / 100.0 <= self.high

    def parse(self, text: str) -> Any:
        """A value from text (a CSV cell, a CLI argument), checked."""
        text = str(text).strip()
        if self.categorical:
            return self.check(text)
        try:
            number = plain_number(text)
        except ValueError:
            raise RecipeError(self.name, text, self.allowed(), "is not a number") from None
        if not np.isfinite(number):
            raise RecipeError(self.name, text, self.allowed(), "is not a finite number") from None
        return self.check(number)


RECIPE_FIELDS: tuple[RecipeField, ...] = (
    # Typical lab ranges of a planetary mill (science.md 3.4) are the default search ranges; the allowed ranges are
    # wider so that what-if studies can explore beyond them.
    RecipeField("sn_mass_fraction", "Sn / (Sn + HC) by mass (2:1 is 0.6667)", 0.0, 1.0, search=(0.05, 0.95),
                aliases=("--sn-fraction",)),
    RecipeField("milling_time_h", "ball-milling time, h (0 = unmilled)", 0.0, 100.0, search=(0.5, 40.0),
                log_scale=True),
    # Time, speed and BPR on log scales: the milling laws are power laws in them (impact energy ~ rpm^2, dose
    # ~ BPR t rpm^3), so their ridges of equal effect are planes there (measured in configs/default.yaml's comment).
    RecipeField("milling_speed_rpm", "planetary-mill speed, rpm", 50.0, 1000.0, search=(150.0, 600.0),
                log_scale=True, milling_setting=True),
    RecipeField("ball_to_powder_ratio", "ball-to-powder mass ratio", 1.0, 100.0, search=(5.0, 40.0),
                log_scale=True, milling_setting=True),
    # Fields with a default and no search range are fixed at their default unless a config searches them.
    RecipeField("milling_atmosphere", "gas in the milling vial", choices=("argon", "air"), default="argon",
                milling_setting=True),
    RecipeField("pause_duty_cycle", "share of the milling time the mill runs (pause cycles; 1 = no pauses)",
                0.1, 1.0, default=1.0, milling_setting=True),
)
FIELDS: dict[str, RecipeField] = {f.name: f for f in RECIPE_FIELDS}
FIELD_NAMES: tuple[str, ...] = tuple(FIELDS)


def acting_fields(recipe: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields that shape a recipe's powder: all of them for a milled one, none of the mill's settings for an
    unmilled one (milling time 0: a pure material or a hand-mixed blend, whatever speed or BPR it states).

    Examples
    --------
    >>> acting_fields({"sn_mass_fraction": 0.0, "milling_time_h": 0.0, "milling_speed_rpm": 300.0})
    ('sn_mass_fraction', 'milling_time_h')
    """
    milled = float(recipe["milling_time_h"]) > 0.0
    return tuple(f.name for f in RECIPE_FIELDS if milled or not f.milling_setting)


def complete(recipe: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """A checked recipe dict with every field: defaults filled in, unknown or missing fields refused."""
    unknown = sorted(set(recipe) - set(FIELDS))
    if unknown:
        raise RecipeError(f"{where}{unknown[0]}", recipe[unknown[0]], "unknown recipe field; fields are "
                          + ", ".join(FIELD_NAMES))
    out = {}
    for field in RECIPE_FIELDS:
        if field.name not in recipe:
            if field.required:
                raise RecipeError(f"{where}{field.name}", None, f"required ({field.allowed()})")
            out[field.name] = field.default
        else:
            out[field.name] = field.check(recipe[field.name], f"{where}{field.name}")
    return out


def recipe_key(recipe: Mapping[str, Any]) -> tuple:
    """The one sameness rule: recipes are the same when every field agrees to
    :data:`SAMENESS_SIGNIFICANT_DIGITS` significant digits (categoricals exactly).

    Examples
    --------
    >>> a = {"sn_mass_fraction": 0.6666667, "milling_time_h": 10, "milling_speed_rpm": 400, "ball_to_powder_ratio": 20}
    >>> recipe_key(a) == recipe_key(a | {"sn_mass_fraction": 0.66666671})
    True
    """
    values = complete(recipe)
    return tuple(_normalised(f, values[f.name]) for f in RECIPE_FIELDS)


def as_made(recipe: Mapping[str, Any], searched: Mapping[str, tuple[float, float]],
            steps: Mapping[str, float] | None = None) -> dict[str, Any]:
    """A recipe as a lab can set it: each searched number (``searched``: field -> its (low, high)) on its ``steps``
    (a campaign's ``lab_steps``; a field without one to :data:`LAB_SIGNIFICANT_DIGITS` significant digits), kept
    inside its range. A fixed value stays as the config states it, so the lab's results come back on it.

    Examples
    --------
    >>> steps = {"sn_mass_fraction": 0.001, "milling_time_h": 0.1, "milling_speed_rpm": 5.0}
    >>> as_made({"sn_mass_fraction": 0.64153, "milling_time_h": 26.66, "milling_speed_rpm": 524.4,
    ...          "ball_to_powder_ratio": 5.811}, {"sn_mass_fraction": (0.05, 0.95), "milling_time_h": (0.5, 40.0),
    ...                                           "milling_speed_rpm": (150.0, 600.0)}, steps)
    {'sn_mass_fraction': 0.642, 'milling_time_h': 26.7, 'milling_speed_rpm': 525.0, 'ball_to_powder_ratio': 5.811}
    >>> as_made({"milling_time_h": 0.47}, {"milling_time_h": (0.5, 40.0)}, steps)  # not below the range it was in
    {'milling_time_h': 0.5}
    >>> as_made({"milling_speed_rpm": 151.0, "milling_time_h": 0.149},  # a step inside the range; under 10 steps,
    ...         {"milling_speed_rpm": (152.0, 598.0), "milling_time_h": (0.01, 40.0)}, steps)  # digits
    {'milling_speed_rpm': 155.0, 'milling_time_h': 0.149}
    """
    out = dict(recipe)
    for name, (low, high) in searched.items():
        if name in out and not FIELDS[name].categorical:
            out[name] = _lab_value(float(out[name]), (steps or {}).get(name), low, high)
    return out


def _lab_value(value: float, step: float | None, low: float, high: float) -> float:
    """``value`` on the nearest of ``step``'s multiples within ``[low, high]``; to :data:`LAB_SIGNIFICANT_DIGITS`
    significant digits where no multiple lies within the range, or the value is under 10 steps (a step there moves
    it by 5 % or more: 0.149 h had become 0.1 h), or there is no step."""
    if step:
        lowest, highest = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)  # the range's steps
        if value >= 10.0 * step and lowest <= highest:
            return float(f"{min(max(round(value / step), lowest), highest) * step:.{LAB_SIGNIFICANT_DIGITS + 2}g}")
    return min(max(float(f"{value:.{LAB_SIGNIFICANT_DIGITS}g}"), low), high)


def shown_value(value: Any) -> str:
    """A recipe value for people: numbers to 4 significant digits, categories as they are."""
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def same_value(name: str, a: Any, b: Any) -> bool:
    """Whether two values of one field are the same by the rule of :func:`recipe_key`."""
    return _normalised(FIELDS[name], a) == _normalised(FIELDS[name], b)


def _normalised(field: RecipeField, value: Any):
    return value if field.categorical else float(f"{float(value):.{SAMENESS_SIGNIFICANT_DIGITS}g}")


class Recipes:
    """N recipes as parallel arrays, one per field of :data:`RECIPE_FIELDS` (attributes by field name).

    Examples
    --------
    >>> r = Recipes.from_records([{"sn_mass_fraction": 2 / 3, "milling_time_h": 10,
    ...                            "milling_speed_rpm": 400, "ball_to_powder_ratio": 20}])
    >>> r.size
    1
    >>> float(r.milling_time_h[0])
    10.0
    """

    __slots__ = ("_columns",)

    def __init__(self, *values, **columns):
        if len(values) > len(RECIPE_FIELDS):
            raise TypeError(f"Recipes takes at most {len(RECIPE_FIELDS)} positional fields")
        columns = dict(zip(FIELD_NAMES, values)) | columns
        unknown = sorted(set(columns) - set(FIELDS))
        if unknown:
            raise RecipeError(unknown[0], "...", "unknown recipe field; fields are " + ", ".join(FIELD_NAMES))
        arrays = {}
        for field in RECIPE_FIELDS:
            if field.name not in columns and field.required:
                raise RecipeError(field.name, None, f"required ({field.allowed()})")
            raw = columns.get(field.name, field.default)
            arrays[field.name] = np.atleast_1d(np.asarray(raw, dtype=object if field.categorical else float))
        size = max(a.size for a in arrays.values())
        checked = {}
        for field in RECIPE_FIELDS:
            array = np.broadcast_to(arrays[field.name], (size,)).copy()
            if field.categorical:
                bad = ~np.isin(array, field.choices)
            else:
                bad = ~np.isfinite(array) | (array < field.low) | (array > field.high)
            if bad.any():
                raise RecipeError(field.name, array[bad][0].item() if not field.categorical else array[bad][0],
                                  field.allowed())
            checked[field.name] = array
        object.__setattr__(self, "_columns", checked)

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return object.__getattribute__(self, "_columns")[name]
        except KeyError:
            raise AttributeError(f"no recipe field named {name!r}") from None

    def __setattr__(self, name, value):
        raise AttributeError("Recipes are read-only")

    @property
    def size(self) -> int:
        return self._columns[FIELD_NAMES[0]].size

    @property
    def hc_mass_fraction(self) -> np.ndarray:
        return 1.0 - self.sn_mass_fraction

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> "Recipes":
        """Build a batch from dicts keyed by field names (fields with a default may be left out)."""
        records = [complete(r) for r in records]
        return cls(**{name: [r[name] for r in records] for name in FIELD_NAMES})

    def to_records(self) -> list[dict[str, Any]]:
        return [{name: _plain(self._columns[name][i]) for name in FIELD_NAMES} for i in range(self.size)]

    def take(self, index) -> "Recipes":
        """Sub-batch by integer or boolean index."""
        return Recipes(**{name: self._columns[name][index] for name in FIELD_NAMES})


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def load_materials(path) -> dict[str, Recipes]:
    """Named materials (``configs/materials.yaml``) as one-recipe batches, read by the strict YAML rules of every
    config file; a problem raises :class:`surrogate.parameters.ParameterError` naming the file."""
    from surrogate.parameters import ParameterError
    from surrogate.yaml_safety import YamlInputError, excerpt, read_yaml_file

    try:
        document = read_yaml_file(path, "materials file")
    except YamlInputError as error:
        raise ParameterError(str(error)) from None
    materials = document.get("materials") if isinstance(document, dict) else None
    if not isinstance(materials, dict) or not materials:
        raise ParameterError(f"{path}: expected 'materials:', a mapping of names to entries with a 'recipe'")
    out = {}
    for name, entry in materials.items():
        try:
            out[str(name)] = Recipes.from_records([entry["recipe"]])
        except (KeyError, TypeError, ValueError) as error:
            raise ParameterError(f"{path}: materials.{excerpt(name)}: {excerpt(str(error), 160)}") from None
    return out


# The study's own composite in configs/materials.yaml: snhc predict's default recipe, and the recipe a
# recommendation is weighed against (flows.recommendation.study_note)
STUDY_MATERIAL = "Sn@HC-2-1"


def study_recipe() -> dict[str, Any]:
    """The recipe of :data:`STUDY_MATERIAL` as configs/materials.yaml states it (every field)."""
    from surrogate.parameters import ParameterError
    from surrogate.paths import config_dir

    path = config_dir() / "materials.yaml"
    materials = load_materials(path)
    if STUDY_MATERIAL not in materials:  # an edited copy (SNHC_CONFIG_DIR) had ended in KeyError: 'Sn@HC-2-1'
        raise ParameterError(f"{path}: materials: lacks {STUDY_MATERIAL}, the study's composite (snhc predict's "
                             f"default recipe and what a recommendation is weighed against)")
    return materials[STUDY_MATERIAL].to_records()[0]
