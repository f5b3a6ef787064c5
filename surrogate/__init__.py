"""The model of Sn / hard-carbon composite anodes for sodium-ion batteries (plain numpy/scipy).

The pipeline reads top to bottom:

recipe (:mod:`surrogate.recipe`, the schema of its fields) -> :mod:`surrogate.milling` (microstructure) ->
:mod:`surrogate.kinetics` (composition and rate capability) -> :mod:`surrogate.expansion` and
:mod:`surrogate.cycle_life`, chained by :func:`surrogate.model.predict`.

:mod:`surrogate.calibration` fits the free parameters to the study's data; :mod:`surrogate.physics` is the PyBaMM
fidelity. The model only predicts: objectives, the optimiser and tracking live in ``flows/``, and nothing here
imports Prefect or MLflow. (The folder is called ``surrogate`` by the product's design; in the code and docs it is
"the model", and "surrogate" means only the optimiser's regressor.)
"""

from surrogate.parameters import ModelParameters, ParameterError
from surrogate.recipe import RecipeError, Recipes

__all__ = ["ModelParameters", "ParameterError", "RecipeError", "Recipes"]
