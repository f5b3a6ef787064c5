"""Where the project's configuration and its caches live, and how a cache file is read and written.

The package is installed in editable mode from the checkout, so ``configs/`` sits next to it. ``SNHC_CONFIG_DIR``
points elsewhere (for example a copied, edited set of configs).
"""

import json
import os
import threading
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def config_dir() -> Path:
    """Folder holding model parameters, calibration data and campaign configs; ``SNHC_CONFIG_DIR`` overrides it
    (set and empty counts as unset, as shells treat ``VAR=``: an empty path is the working folder)."""
    return Path(os.environ.get("SNHC_CONFIG_DIR") or PROJECT_ROOT / "configs")


def cache_dir() -> Path:
    """Folder for cached calibrations (git-ignored); ``SNHC_CACHE_DIR`` overrides it (empty counts as unset: an
    empty path had put the cache files in whatever folder the command ran from)."""
    return Path(os.environ.get("SNHC_CACHE_DIR") or PROJECT_ROOT / ".snhc_cache")


def read_cached(path: Path) -> dict[str, Any] | None:
    """A cache file's JSON object, or None when there is none or it cannot be read (truncated by a full disk,
    edited, another program's): the caller then computes the result again and rewrites the file. A cache only saves
    time, so a damaged one must cost time, not a traceback."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, not UTF-8, not JSON
        return None
    return document if isinstance(document, dict) else None


def write_cached(path: Path, document: dict[str, Any]) -> None:
    """Write a cache file atomically (a reader, in this or another process, never sees half a file); a folder that
    cannot be written (a read-only checkout) only means the result is computed again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps(document, indent=1), encoding="utf-8")
        temporary.replace(path)
    except OSError:
        pass
