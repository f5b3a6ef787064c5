"""Where the project's configuration lives.

The package is installed in editable mode from the checkout, so ``configs/`` sits next to it. ``SNHC_CONFIG_DIR``
points elsewhere (for example a copied, edited set of configs).
"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def config_dir() -> Path:
    """Folder holding model parameters, calibration data and campaign configs."""
    return Path(os.environ.get("SNHC_CONFIG_DIR", PROJECT_ROOT / "configs"))


def cache_dir() -> Path:
    """Folder for cached calibrations (git-ignored); ``SNHC_CACHE_DIR`` overrides it."""
    return Path(os.environ.get("SNHC_CACHE_DIR", PROJECT_ROOT / ".snhc_cache"))
