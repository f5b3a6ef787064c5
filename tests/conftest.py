"""Shared fixtures: an isolated calibration cache, the calibrated parameters and the study's named materials."""

import os

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every test session fits its own calibration into a temporary cache, never the developer's."""
    path = tmp_path_factory.mktemp("snhc_cache")
    previous = os.environ.get("SNHC_CACHE_DIR")
    os.environ["SNHC_CACHE_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("SNHC_CACHE_DIR", None)
    else:
        os.environ["SNHC_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def params(isolated_cache):
    from surrogate.calibration import calibrated_parameters

    return calibrated_parameters()


@pytest.fixture(scope="session")
def materials():
    from surrogate.paths import config_dir
    from surrogate.recipe import load_materials

    return load_materials(config_dir() / "materials.yaml")


@pytest.fixture(scope="session")
def predict(params, materials):
    """predict(name, **request) -> Prediction of one named material."""
    from surrogate.objective import PredictionRequest, evaluate

    def run(name, **request):
        return evaluate(materials[name], params, PredictionRequest(**request))

    return run
