"""Parameter set of the PyBaMM model: ``configs/physics_parameters.yaml`` (values, units, tags), read once per
change of the file. Like PyBaMM's ``input/parameters``, it knows nothing of the model that uses it."""

from __future__ import annotations

import functools
import os
from pathlib import Path

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")  # before pybamm is imported


from surrogate.parameters import ModelParameters
from surrogate.paths import config_dir

def default_physics_parameters_path() -> Path:
    return config_dir() / "physics_parameters.yaml"


def load_physics_parameters(path: str | Path | None = None) -> ModelParameters:
    """Read ``configs/physics_parameters.yaml`` (or another file in the same format); re-read only when it changes."""
    return _load_parameters(*_file_stamp(Path(path or default_physics_parameters_path())))


def _file_stamp(path: Path) -> tuple[str, int, int]:
    """(path, modification time, size): a cache key that changes whenever the file does."""
    try:
        stat = path.stat()
        return str(path), stat.st_mtime_ns, stat.st_size
    except OSError:
        return str(path), -1, -1  # let the reader raise its own, clear error


@functools.lru_cache(maxsize=8)
def _load_parameters(path: str, modified_ns: int, size: int) -> ModelParameters:
    return ModelParameters.load(path)
