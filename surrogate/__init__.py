"""Models of Sn / hard-carbon composite anodes for sodium-ion batteries.

The pipeline reads top to bottom:

recipe -> :mod:`surrogate.milling` (microstructure) -> :mod:`surrogate.capacity` (composition and rate capability)
-> :mod:`surrogate.expansion` and :mod:`surrogate.cycle_life` -> :mod:`surrogate.objective`.

:mod:`surrogate.calibration` fits the free parameters to the study's data. Everything here is plain numpy/scipy and
evaluates a batch of recipes at once; Prefect and MLflow live in ``flows/``.
"""

from surrogate.parameters import ModelParameters, ParameterError
from surrogate.recipe import RecipeError, Recipes

__all__ = ["ModelParameters", "ParameterError", "RecipeError", "Recipes"]
