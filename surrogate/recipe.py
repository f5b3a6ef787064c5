"""A batch of anode recipes: Sn:HC mass ratio plus the ball-milling condition.

Every model takes a :class:`Recipes` and returns arrays of the same length, so a batch of 100 000 recipes costs one
numpy pass. An unmilled powder (a physical mixture, or a pure material) is a milling time of 0 h.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable, Mapping

import numpy as np

# Allowed ranges of each recipe field: (low, high). Typical lab ranges of a planetary mill (science.md 3.4),
# widened so that what-if studies can explore beyond them.
RECIPE_RANGES: dict[str, tuple[float, float]] = {
    "sn_mass_fraction": (0.0, 1.0),
    "milling_time_h": (0.0, 100.0),
    "milling_speed_rpm": (50.0, 1000.0),
    "ball_to_powder_ratio": (1.0, 100.0),
}


class RecipeError(ValueError):
    """A recipe value outside its allowed range; names the field and the range."""

    def __init__(self, field: str, value: object, allowed: tuple[float, float]):
        self.field = field
        self.allowed = allowed
        super().__init__(f"{field}={value!r} is out of range: allowed {allowed[0]:g} to {allowed[1]:g}")


@dataclass(frozen=True)
class Recipes:
    """N recipes as parallel float arrays (units in the names).

    Examples
    --------
    >>> r = Recipes.from_records([{"sn_mass_fraction": 2 / 3, "milling_time_h": 10,
    ...                            "milling_speed_rpm": 400, "ball_to_powder_ratio": 20}])
    >>> r.size
    1
    """

    sn_mass_fraction: np.ndarray
    milling_time_h: np.ndarray
    milling_speed_rpm: np.ndarray
    ball_to_powder_ratio: np.ndarray

    def __post_init__(self) -> None:
        arrays = {f.name: np.atleast_1d(np.asarray(getattr(self, f.name), dtype=float)) for f in fields(self)}
        size = max(a.size for a in arrays.values())
        for name, values in arrays.items():
            values = np.broadcast_to(values, (size,)).copy()
            low, high = RECIPE_RANGES[name]
            bad = ~np.isfinite(values) | (values < low) | (values > high)
            if bad.any():
                raise RecipeError(name, values[bad][0].item(), (low, high))
            object.__setattr__(self, name, values)

    @property
    def size(self) -> int:
        return self.sn_mass_fraction.size

    @property
    def hc_mass_fraction(self) -> np.ndarray:
        return 1.0 - self.sn_mass_fraction

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, float]]) -> "Recipes":
        """Build a batch from dicts keyed by the field names."""
        records = list(records)
        return cls(**{f.name: np.array([r[f.name] for r in records], dtype=float) for f in fields(cls)})

    def to_records(self) -> list[dict[str, float]]:
        return [{f.name: getattr(self, f.name)[i].item() for f in fields(self)} for i in range(self.size)]

    def take(self, index) -> "Recipes":
        """Sub-batch by integer or boolean index."""
        return Recipes(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def load_materials(path) -> dict[str, Recipes]:
    """Named materials (``configs/materials.yaml``) as one-recipe batches."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    return {name: Recipes.from_records([entry["recipe"]]) for name, entry in document["materials"].items()}
