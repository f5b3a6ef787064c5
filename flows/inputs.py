"""Every check of what a user hands the CLI, by class of input, and the redaction of secrets on the way out.

Classes of input and their checks:

* YAML documents (configs, scenario files): :func:`read_yaml_mapping` (size limit, no aliases, no duplicate keys,
  not empty, a mapping at the top level, finite numbers), built on ``surrogate.yaml_safety``;
* numbers anywhere in a parsed document: :func:`check_finite`;
* paths given as options: :func:`existing_file`, :func:`existing_path`, :func:`writable_output`;
* tracking stores: :func:`check_tracking_store` (scheme, SQLite location, a server that answers within seconds) and
  :func:`check_artifact_location`;
* run ids: :func:`check_run_id`.

Each failure raises :class:`InputError` (``ConfigError`` is one): one line naming the file, option or key, which the
CLI prints before exiting with code 2 — before any Prefect flow starts or anything is written to the MLflow store.

Secrets: :func:`redact` masks ``user:password@`` in URIs and token-like query parameters. Everything that leaves
memory (MLflow params, tags and artifacts, state files, Prefect flow parameters, console lines) goes through it;
:func:`reveal` turns a redacted URI back into the real one for connecting, from memory only.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import functools
import math
import os
import re
import socket
import stat
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from pydantic import BaseModel, model_validator

from surrogate.yaml_safety import EXCERPT_CHARS, YamlInputError, excerpt, non_finite_number, read_yaml_file

REDACTED = "***"
# MLflow 3's file store (file:, ./mlruns) is in maintenance mode and refuses new experiments: not a store to offer
TRACKING_SCHEMES = ("sqlite:///", "http://", "https://", "postgresql://", "postgresql+psycopg2://")
MLFLOW_SQLITE_TABLES = {"experiments", "runs", "alembic_version"}  # an existing SQLite store must hold these (or none)
# Artifact roots MLflow can write a campaign's artifacts to; a bare path (no scheme) is a local folder. Not runs:
# and models: (they name artifacts that exist, not a root to write to), nor dbfs: (Databricks only): an experiment
# made with one failed its first and every later run with a traceback.
ARTIFACT_SCHEMES = ("file", "s3", "gs", "wasbs", "hdfs", "viewfs", "sftp", "ftp", "mlflow-artifacts", "http",
                    "https", "abfss")
# The client library MLflow needs for an artifact scheme (mlflow.store.artifact); the rest need none beyond MLflow.
ARTIFACT_LIBRARIES = {"s3": "boto3", "gs": "google.cloud.storage", "wasbs": "azure.storage.blob",
                      "abfss": "azure.storage.filedatalake", "hdfs": "pyarrow", "viewfs": "pyarrow",
                      "sftp": "pysftp"}
# A tracking server or database that does not accept a TCP connection within this time is reported as unreachable;
# MLflow's own client would retry for minutes. A healthy local server answers in milliseconds.
CONNECT_TIMEOUT_S = 3.0
DEFAULT_PORTS = {"hdfs": 8020, "http": 80, "https": 443, "postgresql": 5432, "postgresql+psycopg2": 5432,
                 "tcp": 8786, "ftp": 21, "sftp": 22}
# A lab CSV has one row per milled batch, a few hundred at most; 16 MiB bounds what a wrong file (an export of a
# whole instrument log) costs before it is refused.
MAX_CSV_BYTES = 16 * 2**20
RUN_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
# The files of a config folder every command reads (SNHC_CONFIG_DIR must hold them)
CONFIG_FILES = ("model_parameters.yaml", "materials.yaml", "default.yaml", "uncertainty.yaml",
                "physics_parameters.yaml", "schedules.yaml", "calibration/li2025.yaml")
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file

# User info sits in a whitespace- or quote-separated word holding an @ (``_WORD``); only such words are searched,
# and each pattern starts at most once per run of characters and stops at a separator, so masking is linear in the
# text (descriptions and tables of 100 kB had taken minutes: a pattern started at every letter or comma and scanned
# to the end of the text from each).
_WORD = re.compile(r"[^\s'\"]+")
# ``scheme://user:password@`` (any scheme, ``-https://`` and ``git+https://`` included: a scheme is the whole run
# before ``://``), and over http(s) a token alone as the user (``https://ghp_...@host``; a user name alone
# elsewhere, ``postgresql://postgres@``, ``wasbs://container@``, is kept)
_USERINFO = re.compile(r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s@:]*:[^/?#\s]*)@")
# the same with a blank in the password (``http://u:p w@host``), which the word-by-word pass would cut in two
_SPACED_USERINFO = re.compile(r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z0-9+.\-]*://)"
                              r"[^/?#\s@:]*:[^/?#@\n]*[ \t][^/?#@\n]*@")
_HTTP_TOKEN = re.compile(r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z0-9+.\-]*?[Hh][Tt][Tt][Pp][Ss]?://)"
                         r"(?P<userinfo>[^/?#\s@:]+)@")
# ``user:password@host`` given without a scheme (a Dask address, a mistyped tracking URI): a name, a colon, a
# password, an @ and a host, not inside a longer word or path (a comma ends a password here: a list of
# ``key:value,...`` pairs is not one)
_BARE_USERINFO = re.compile(r"(?<![\w.+\-/:@%])(?P<userinfo>[\w.%+\-]+:[^/?#\s@'\",]+)@(?=[\w\[])")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;#](?:[A-Za-z0-9_\-]*?)(?:token|password|passwd|pwd|secret|key|sig|signature|credential|auth)"
    r"[A-Za-z0-9_\-]*=)(?P<value>[^&#\s'\"]+)", re.IGNORECASE)
_SECRETS: dict[str, str] = {}  # redacted text -> the real one, for connecting; never written anywhere
# Environment variables that hold a secret itself (not an address with one in it): an error message that quotes one's
# value is masked by :func:`redact_message` (an HTTP library's error had quoted a token's whole header)
SECRET_ENVIRONMENT = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING")
SECRET_MIN_CHARS = 4  # a shorter value (a test's "x") would mask ordinary words; no real secret is that short


class InputError(ValueError):
    """Bad input from the user: printed as one line naming the file, option or key; exit code 2."""


# --- secrets -----------------------------------------------------------------------------------------------------

def redact(text: Any) -> Any:
    """Mask credentials in a string: ``scheme://user:password@`` -> ``scheme://***@`` and token-like query
    parameters (``token=``, ``password=``, ``secret=``, ``key=``, ``access_token=``, ``sig=``, ...) -> ``=***``.

    Anything that is not a string is returned unchanged, so it can be mapped over any value.
    """
    if not isinstance(text, str):
        return text
    if "@" in text:
        text = _SPACED_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
        text = _WORD.sub(lambda word: _masked_userinfo(word[0]) if "@" in word[0] else word[0], text)
    return _SECRET_QUERY.sub(lambda m: f"{m['key']}{REDACTED}", text)


def redact_message(text: str) -> str:
    """:func:`redact` for an error's message, which may also quote a secret held in the environment
    (:data:`SECRET_ENVIRONMENT`): an HTTP library's error had quoted a token's whole header. Only messages: in
    data (a path, a URI) a password's value may be an ordinary word ("mlflow")."""
    text = redact(text)
    for name in SECRET_ENVIRONMENT:
        secret = os.environ.get(name, "")
        for form in sorted({secret, secret.strip()}, key=len, reverse=True):
            if len(form) >= SECRET_MIN_CHARS and form in text:
                text = text.replace(form, REDACTED)
    return text


def _masked_userinfo(word: str) -> str:
    """One word with an @ in it, its user info masked (:func:`redact`)."""
    word = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", word)
    word = _HTTP_TOKEN.sub(lambda m: f"{m['scheme']}{REDACTED}@", word)
    return _BARE_USERINFO.sub(f"{REDACTED}@", word)


class MaskedError(RuntimeError):
    """An error whose message named a secret (a tracking URI's password, a token), re-raised with it masked: Prefect
    keeps a failed flow's exception message in its state and its run log."""


@contextlib.contextmanager
def secrets_masked():
    """Re-raise any error whose message holds a secret as a :class:`MaskedError` with it masked (its type named;
    the original, secret and all, not chained); other errors pass unchanged."""
    try:
        yield
    except Exception as error:
        text = str(error)
        if redact_message(text) == text:
            raise
        raise MaskedError(f"{type(error).__name__}: {redact_message(text)}") from None


def redact_document(document: Any) -> Any:
    """:func:`redact` applied to every string (and key) of a nested dict / list document; a new document."""
    if isinstance(document, dict):
        return {redact(key): redact_document(value) for key, value in document.items()}
    if isinstance(document, (list, tuple)):
        return type(document)(redact_document(value) for value in document)
    return redact(document)


def keep_secret(text: str | None) -> str | None:
    """Remember the real form of a URI that :func:`redact` would change, so :func:`reveal` can restore it."""
    if isinstance(text, str):
        masked = redact(text)
        if masked != text:
            _SECRETS[masked] = text
    return text


def reveal(text: str | None) -> str | None:
    """The real URI behind a redacted one seen earlier in this process (unchanged if unknown)."""
    return _SECRETS.get(text, text) if isinstance(text, str) else text


# --- YAML and numbers --------------------------------------------------------------------------------------------

def read_yaml_mapping(path: str | Path, what: str = "config",
                      allowed: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Read a user's YAML file that must hold a non-empty mapping of keys with finite numbers.

    Refused, each as one :class:`InputError` line naming the file (and line where known): a folder, a missing or
    unreadable file, more than ``MAX_YAML_BYTES``, not UTF-8, malformed YAML, anchors / aliases, a repeated key at
    any level, an empty document ("empty config"), a top level that is not a mapping, NaN or infinity anywhere.
    """
    try:
        document = read_yaml_file(path, what)
    except YamlInputError as error:
        raise InputError(str(error)) from None
    if document is None or document == {}:
        raise InputError(f"{path}: empty {what}: expected a mapping of {what} keys")
    if not isinstance(document, dict):
        raise InputError(f"{path}: expected a mapping of {what} keys at the top level, got a "
                         f"{type(document).__name__}")
    check_finite(document, str(path), allowed)
    return document


def check_finite(document: Any, source: str, allowed: Callable[[str], str] | None = None) -> None:
    """Every number in a parsed document must be finite: NaN or infinity raises, naming the key path and, where
    ``allowed`` knows it (dotted key -> 'allowed LOW to HIGH' or ''), the key's range."""
    found = non_finite_number(document)
    if found is not None:
        key, value = found
        allowed_text = allowed(key) if allowed is not None else ""
        raise InputError(f"{source}: {key}={value!r} is not a finite number" + (f": {allowed_text}" if allowed_text
                                                                                  else ""))


class NumbersNotBooleans(BaseModel):
    """A pydantic model whose fields take their own kind of value only: YAML's ``true`` is not the number 1, the
    text ``"25"`` is not the number 25, and ``1`` or ``"yes"`` is not ``true`` (pydantic would read each as the
    other), so ``seed: true``, ``temperature_C: "25"`` or ``log_scale: 1`` is a mistake to report, not a value; the
    values of a mapping of numbers (weights, limits) likewise. (A model validator, not a field one: a discriminated
    union's tag may carry no field validator.)"""

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_for_a_number(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key) if isinstance(key, str) else None
                problem = _kind_mismatch(key, value, field.annotation) if field is not None else None
                if problem:
                    raise ValueError(problem)
        return data


def _kind_mismatch(key: str, value: Any, annotation: Any) -> str | None:
    """Why ``value`` is not of the kind ``annotation`` asks for (a number, true/false, a mapping of numbers), or
    None; text where text is allowed (a ``str`` or a ``Literal`` word) passes, as does anything pydantic checks."""
    from typing import get_args, get_origin

    mappings = [a for a in (annotation, *get_args(annotation)) if get_origin(a) is dict]
    if mappings and isinstance(value, dict):
        value_type = get_args(mappings[0])[1]
        return next((problem for k, v in value.items() if (problem := _kind_mismatch(f"{key}.{k}", v, value_type))),
                    None)
    types = _leaf_types(annotation)
    numeric = bool(types & {int, float})
    free_text = str in types
    words = {t for t in types if isinstance(t, str)}  # a Literal's words
    if isinstance(value, bool):
        return f"{key}: expected a number, got {str(value).lower()}" if numeric and bool not in types else None
    if isinstance(value, str) and numeric and not free_text and value not in words:
        # "1e-3" where a number or a word is allowed (gp_noise: a level or 'gaussian') is text, not the number
        return f"{key}: expected a number{''.join(f' or {w!r}' for w in sorted(words))}, got {excerpt(value)}"
    if bool in types and not numeric and not (free_text or words) and value is not None and not isinstance(
            value, (dict, list)):
        return f"{key}: expected true or false, got {excerpt(value)}"
    return None


def _leaf_types(annotation: Any) -> set:
    """The plain types inside an annotation (through Optional, Union and Annotated)."""
    from typing import get_args

    arguments = get_args(annotation)
    if not arguments:
        return {annotation}
    return set().union(*(_leaf_types(a) for a in arguments))


# --- paths -------------------------------------------------------------------------------------------------------

# The longest name of one part of a path and of a whole path the file system takes (Linux: 255 and 4095 bytes); a
# longer one raised OSError "File name too long" from the first check that looked at it, as a traceback.
PATH_PART_MAX_BYTES = 255
PATH_MAX_BYTES = 4095


def name_length_checked(path: str | Path, option: str) -> Path:
    """``path``, refused (one line naming ``option``) when one of its parts or the whole is longer than the file
    system allows."""
    path = Path(path)
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if longest > PATH_PART_MAX_BYTES or len(os.fsencode(str(path))) > PATH_MAX_BYTES:
        raise InputError(f"{option} {_shown(path)}: name too long (allowed: each part of a path up to "
                         f"{PATH_PART_MAX_BYTES} bytes, the whole path up to {PATH_MAX_BYTES})")
    return path


def existing_file(path: str | Path, option: str) -> Path:
    """A path that must be a readable file (not a folder)."""
    path = name_length_checked(path, option)
    if path.is_dir():
        raise InputError(f"{option} {_shown(path)}: is a folder, expected a file")
    if not path.exists():
        raise InputError(f"{option} {_shown(path)}: file not found")
    if not path.is_file():
        raise InputError(f"{option} {_shown(path)}: not a regular file (a pipe, socket or device), expected a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{option} {_shown(path)}: cannot read the file (permission denied)")
    return path


def existing_path(path: str | Path, option: str) -> Path:
    """A path that must exist (a file or a folder)."""
    path = name_length_checked(path, option)
    if not path.exists():
        raise InputError(f"{option} {_shown(path)}: not found")
    if path.is_file():
        return existing_file(path, option)
    return path


def writable_output(path: str | Path, option: str, inputs: dict[str, str | Path | None] | None = None) -> Path:
    """A CSV file to write: its folder must exist and be writable, the path itself must not be a folder, nor one of
    the command's ``inputs`` (option -> path: ``suggest --output lab.csv`` had replaced the lab file it read), nor
    an existing file that is not a CSV (``--output configs/default.yaml`` had replaced the default config)."""
    path = name_length_checked(path, option)
    if path.is_dir():
        raise InputError(f"{option} {_shown(path)}: is a folder, expected a file name")
    if path.is_symlink() and not path.exists():
        raise InputError(f"{option} {_shown(path)}: is {not_a_folder(path)}; give a file name")
    for name, given in (inputs or {}).items():
        if given is not None and path.exists() and Path(given).exists() and path.samefile(given):
            raise InputError(f"{option} {_shown(path)}: is the file {name} reads; give another file name")
    stream = path.parts[:2] == ("/", "dev") or (path.exists() and not path.is_file())  # /dev/stdout, a pipe
    # an existing file is replaced only if it is a CSV, by its name and, through a link, by its target's
    is_csv = path.suffix.lower() == ".csv" == path.resolve().suffix.lower()
    if path.exists() and not stream and not is_csv:
        raise InputError(f"{option} {_shown(path)}: exists and is not a CSV file; give a new name or a .csv file")
    folder = path.parent
    if not folder.is_dir():
        placed = next((p for p in folder.parents if p.exists()), None) if not folder.exists() else folder
        if placed is not None and not placed.is_dir():  # a file where a folder must be: said as such
            raise InputError(f"{option} {_shown(path)}: {_shown(placed)} is a file, not a folder")
        raise InputError(f"{option} {_shown(path)}: folder {_shown(folder)} does not exist")
    if _is_pipe_without_reader(path):  # opening it would wait for a reader that may never come
        raise InputError(f"{option} {_shown(path)}: is a named pipe with no reader; start the reader first or give "
                         f"a file name")
    if not _can_write(path if path.exists() else folder):
        raise InputError(f"{option} {_shown(path)}: cannot write there (permission denied or read-only)")
    return path


def _is_pipe_without_reader(path: Path) -> bool:
    """Whether ``path`` is a FIFO that no process reads: a non-blocking open for writing fails with ENXIO."""
    try:
        if not stat.S_ISFIFO(path.stat().st_mode):
            return False
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as error:
        return error.errno == errno.ENXIO
    return False


def output_folder(path: str | Path, option: str) -> Path:
    """A folder to write into: one that exists, or one that can be made in its nearest existing ancestor."""
    if not str(path).strip():
        raise InputError(f"{option}: empty; give a folder")
    folder = name_length_checked(path, option)  # a what-if study had run whole before its folder could not be made
    if os.path.lexists(folder) and not folder.is_dir():
        raise InputError(f"{option} {_shown(folder)}: is {not_a_folder(folder)}, expected a folder")
    base = nearest_existing(folder)
    if not base.is_dir():
        raise InputError(f"{option} {_shown(folder)}: {_shown(base)} is {not_a_folder(base)}, so the folder cannot "
                         f"be made there")
    if not _can_write(base):
        raise InputError(f"{option} {_shown(folder)}: cannot write in {_shown(base)} (permission denied or read-only)")
    return folder


def folder_problem(folder: Path) -> str | None:
    """Why no folder can be used or made at ``folder`` (its nearest existing ancestor is not a folder, or cannot be
    written), in words; None when one can."""
    nearest = nearest_existing(folder)
    if not nearest.is_dir():
        return f"{_shown(nearest)} is {not_a_folder(nearest)}, not a folder"
    if not _can_write(nearest):
        return f"cannot write in {_shown(nearest)} (permission denied or read-only)"
    return None


def nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists: where a folder that is not there yet would be made. A broken
    symbolic link counts as existing (nothing can be made through it): the callers then refuse it as not a folder
    (:func:`not_a_folder`), where walking past it had passed the check, and the write failed mid-campaign."""
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def not_a_folder(path: Path) -> str:
    """What a path that is not a folder is, in words: a broken link (and to where), or a file."""
    if path.is_symlink() and not path.exists():
        return f"a broken link (to {_shown(Path(os.readlink(path)))})"
    return "a file"


def _can_write(path: Path) -> bool:
    """Whether this process can write a file (opened for appending, nothing written) or create one in a folder
    (a temporary file, removed at once). ``os.access`` is no answer for root or on read-only file systems."""
    try:
        if path.is_dir():
            with tempfile.TemporaryFile(dir=path):
                pass
        else:
            with path.open("ab"):
                pass
    except OSError:
        return False
    return True


def _shown(value: Any) -> str:
    """A path as it appears in a message: at most twice the excerpt length."""
    text, limit = str(value), 2 * EXCERPT_CHARS
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- tracking stores ---------------------------------------------------------------------------------------------

def check_artifact_location(location: str | None, key: str = "tracking.artifact_location") -> str | None:
    """An artifact root must be a folder that exists or can be created, or a URI of a scheme MLflow can write to
    whose client library is installed, and must hold no credentials (MLflow stores the location as given, in
    the open: cloud credentials belong in the environment, e.g. ``AWS_ACCESS_KEY_ID``)."""
    if location is None:
        return None
    if not location.strip():
        raise InputError(f"{key}: empty: give a folder or URI, or leave it out")
    shown = excerpt(redact(location))
    parts = _split(location, key, shown)
    scheme = parts.scheme.lower()
    if scheme and len(scheme) > 1 and scheme not in ARTIFACT_SCHEMES:  # one letter: a Windows drive
        raise InputError(f"{key} {shown}: unknown scheme {scheme!r}; allowed a folder or "
                         f"{', '.join(s + ':' for s in ARTIFACT_SCHEMES[:6])}, ...".lstrip())
    if redact(location) != location:
        raise InputError(f"{key} {shown}: holds credentials, which MLflow would store in the open; give them "
                         f"in the environment (e.g. AWS_ACCESS_KEY_ID) instead".lstrip())
    library = ARTIFACT_LIBRARIES.get(scheme)
    if library is not None and not _installed(library):
        raise InputError(f"{key} {shown}: {scheme}: needs the Python package {library!r}, which is not "
                         f"installed".lstrip())
    if scheme == "file" and parts.netloc.lower() not in ("", "localhost"):
        raise InputError(f"{key} {shown}: a file: URI with a host ({excerpt(parts.netloc)}), which MLflow cannot "
                         f"write to; give file:///path or a folder".lstrip())
    if not scheme or len(scheme) == 1 or scheme == "file":  # shape only: whether it can be written is checked by
        nearest = nearest_existing(_local_artifact_path(location, scheme))  # the commands that write (reachable)
        if not nearest.is_dir():
            raise InputError(f"{key} {shown}: {_shown(nearest)} is {not_a_folder(nearest)}, expected a folder"
                             .lstrip())
    return location


def _local_artifact_path(location: str, scheme: str) -> Path:
    """The folder of a local artifact root: a ``file:`` URI's path (percent-decoded), or the path as given."""
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(location).path)) if scheme == "file" else Path(location)


def _check_artifact_folder(folder: Path, key: str, shown: str) -> None:
    """A local artifact root a command will write to: a folder, or one that can be made where its nearest existing
    ancestor is writable (/proc/x had passed, and the flow failed writing its first artifact, a run already in the
    store)."""
    nearest = nearest_existing(folder)
    if not nearest.is_dir():
        raise InputError(f"{key} {shown}: {_shown(nearest)} is a file, expected a folder".lstrip())
    if not _can_write(nearest):
        raise InputError(f"{key} {shown}: cannot write artifacts under {_shown(nearest)} (permission denied or "
                         f"read-only)".lstrip())


def check_artifact_reachable(location: str, key: str) -> None:
    """An artifact root the campaign will write to, checked before anything starts: a local folder writable (or
    makeable), an ftp, sftp, http(s) or hdfs server accepting a connection. Cloud stores (s3, gs, ...) are left to
    their client library and credentials."""
    location = reveal(location)
    shown = excerpt(redact(location))[1:-1]
    parts = _split(location, key, shown)
    scheme = parts.scheme.lower()
    if not scheme or len(scheme) == 1 or scheme == "file":
        _check_artifact_folder(_local_artifact_path(location, scheme), key, shown)
    elif scheme in ("ftp", "sftp", "http", "https") or (scheme == "hdfs" and parts.hostname):
        check_server(location, key)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package (google.cloud) is missing
        return False


def check_tracking_scheme(uri: str, key: str = "tracking.tracking_uri") -> str:
    if isinstance(uri, str) and uri.startswith("file:"):
        raise InputError(f"{key} {excerpt(redact(uri))}: MLflow's file store is in maintenance mode and refuses new "
                         f"runs; use a database, e.g. sqlite:///mlruns/mlflow.db")
    if not isinstance(uri, str) or not uri.startswith(TRACKING_SCHEMES):
        raise InputError(f"{key} {excerpt(redact(uri))}: must start with one of "
                         f"{', '.join(TRACKING_SCHEMES)}".lstrip())
    if uri.startswith(("sqlite:", "http:", "https:")) and ("?" in uri or "#" in uri):
        # MLflow's REST client drops a server address's query (a ?token= never reaches the server, whose login page
        # then breaks the client mid-campaign), and SQLite's (?mode=ro was written to; a ?password= named the lock
        # file). PostgreSQL's (sslmode=...) are its driver's and kept.
        raise InputError(f"{key} {excerpt(redact(uri))}: a query string or fragment (after ? or #) is not "
                         f"supported here: give the database file or the server's address alone (a server's "
                         f"credentials as user:password@ or in MLFLOW_TRACKING_TOKEN)")
    return uri


def sqlite_path(uri: str) -> Path:
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def check_tracking_store(uri: str, must_exist: bool = False, key: str = "tracking_uri", missing: str = "") -> None:
    """Check a tracking store before anything starts, without writing to it.

    SQLite: the database must be a writable file that is empty or an MLflow store (not another program's database,
    which MLflow would add its tables to), or creatable (its nearest existing folder writable); never in memory,
    which keeps nothing. Servers (http, https): the host must accept a TCP connection and answer as MLflow within
    :data:`CONNECT_TIMEOUT_S`; PostgreSQL: a connection must open within it. With ``must_exist`` (resuming a run) a
    SQLite database that does not exist yet is an error, not a new store (``missing``: what the message adds, e.g.
    what creates one).
    """
    uri = reveal(uri)
    check_tracking_scheme(uri, key)
    shown = excerpt(redact(uri))[1:-1]
    if uri.startswith("sqlite:///"):
        database = name_length_checked(sqlite_path(uri), key)
        if str(database) in ("", ":memory:"):
            raise InputError(f"{key} {shown}: an in-memory database keeps nothing after the command; give a file, "
                             f"e.g. sqlite:///mlruns/mlflow.db")
        if database.parts and database.parts[0].startswith("~"):  # a shell's home, which a URI never expands:
            raise InputError(f"{key} {shown}: '~' is not expanded in a URI (a folder named '~' would be made here); "
                             f"give the full path, e.g. sqlite:///{Path.home()}/mlflow.db")  # it had made one
        if database.is_dir() or uri.split("?", 1)[0].endswith("/"):
            raise InputError(f"{key} {shown}: {database} is a folder, expected a SQLite database file")
        if database.is_symlink() and not database.exists():  # SQLite cannot open it, and MLflow retries for minutes
            raise InputError(f"{key} {shown}: {database} is {not_a_folder(database)}, expected a SQLite database "
                             f"file")
        if database.exists():
            if not database.is_file():
                raise InputError(f"{key} {shown}: {database} is not a regular file, expected a SQLite database")
            if not _can_write(database):
                raise InputError(f"{key} {shown}: cannot write the database (permission denied or read-only)")
            with database.open("rb") as handle:
                header = handle.read(len(SQLITE_HEADER))
            if header and header != SQLITE_HEADER:  # an empty file is a new database to SQLite
                raise InputError(f"{key} {shown}: {database} is not a SQLite database (another kind of file)")
            if header:
                _check_mlflow_sqlite(database, key, shown)
            return
        if must_exist:
            raise InputError(f"{key} {shown}: no such store ({database} does not exist), so it holds no runs"
                             + (f"; {missing}" if missing else ""))
        if (problem := folder_problem(database.parent)) is not None:
            raise InputError(f"{key} {shown}: cannot create the database: {problem}")
        return
    if uri.startswith("file:"):
        folder = Path(_split(uri, key, shown).path)
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{key} {shown}: {folder} is {not_a_folder(folder)}, expected a folder")
        return
    check_server(uri, key)
    if uri.startswith(("http://", "https://")):
        check_health(uri, key, "an MLflow tracking server", "/version")
        _check_mlflow_api(uri, key)
    else:
        _check_postgresql(uri, key, shown)


def _same_location(location: str) -> str:
    """An artifact location as a comparable string: a local path (or ``file:`` URI) resolved, a URI as written."""
    import urllib.parse
    from pathlib import Path

    parts = urllib.parse.urlsplit(reveal(location))
    if parts.scheme.lower() in ("", "file"):
        return str(Path(urllib.parse.unquote(parts.path if parts.scheme else location)).expanduser().resolve())
    return reveal(location).rstrip("/")


MLFLOW_DEFAULT_EXPERIMENT = "Default"  # the experiment MLflow creates in every new store (id 0)


def check_experiment_active(uri: str, name: str, key: str = "tracking.experiment_name",
                            artifact_location: str | None = None) -> None:
    """The campaign's experiment must be new or active: MLflow refuses to add runs to a deleted one (it had failed
    mid-run). Read without writing: a SQLite store's table, or a server's ``experiments/get-by-name``. Its artifact
    root must be reachable (:func:`check_artifact_reachable`): an existing experiment's own (MLflow writes there,
    whatever the config says), else the configured ``artifact_location``; an experiment made with an unreachable
    root had failed every later run and resume with a traceback."""
    import sqlite3
    import urllib.error
    import urllib.parse

    uri = reveal(uri)
    stage, existing = None, None
    if uri.startswith("sqlite:///") and sqlite_path(uri).is_file() and sqlite_path(uri).stat().st_size:
        try:
            with _read_only_sqlite(sqlite_path(uri)) as connection:
                row = connection.execute("SELECT lifecycle_stage, artifact_location FROM experiments WHERE name = ?",
                                         (name,)).fetchone()
        except sqlite3.Error:
            row = None  # an empty store (no tables yet): the experiment will be created
        stage, existing = row if row else (None, None)
    elif uri.startswith(("http://", "https://")):
        query = urllib.parse.urlencode({"experiment_name": name})
        request = _get_request(uri, f"/api/2.0/mlflow/experiments/get-by-name?{query}", key,
                               excerpt(redact(uri))[1:-1])
        try:
            with _open(request, CONNECT_TIMEOUT_S) as response:
                document = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            document = {}  # no such experiment (404) or no answer: the health check has spoken for the server
        experiment = document.get("experiment", {}) if isinstance(document, dict) else None
        if not isinstance(experiment, dict):  # '"ok"', a list, {"experiment": 3}: another server's answer
            raise InputError(f"{key}: {excerpt(redact(uri))} is not an MLflow tracking server (its experiments API "
                             f"answered {excerpt(str(document), 40)})")
        stage, existing = experiment.get("lifecycle_stage"), experiment.get("artifact_location")
    if stage == "deleted":
        raise InputError(f"{key} {excerpt(name)}: that experiment is deleted in the store; restore it "
                         f"(mlflow experiments restore) or choose another name")
    if name == MLFLOW_DEFAULT_EXPERIMENT and uri.startswith("sqlite:///"):
        # MLflow makes it with the store, its artifacts under the mlruns/ of the folder the store was first opened
        # in, not beside the store: runs into it had written into the working folder's mlruns/
        raise InputError(f"{key} {excerpt(name)}: MLflow's own default experiment keeps its artifacts in the "
                         f"folder the store was first opened from"
                         + (f" ({excerpt(existing, 200)})" if existing else "")
                         + ", not with the store; give another experiment name")
    if existing and artifact_location and _same_location(existing) != _same_location(artifact_location):
        raise InputError(f"tracking.artifact_location {excerpt(redact(artifact_location), 200)}: experiment "
                         f"{excerpt(name)} keeps its artifacts at {excerpt(redact(existing), 200)} (set when it was "
                         f"created; MLflow writes there whatever the config says): leave artifact_location out, or "
                         f"give another tracking.experiment_name for the new location")
    location, location_key = ((existing, f"experiment {excerpt(name)}'s artifact location") if existing
                              else (artifact_location, "tracking.artifact_location"))
    if not location:
        return
    if (urllib.parse.urlsplit(reveal(location)).scheme.lower() == "mlflow-artifacts"
            and not uri.startswith(("http://", "https://"))):
        # only a tracking server resolves mlflow-artifacts: a database store failed the first run's first log
        raise InputError(f"{location_key} {excerpt(redact(location))}: mlflow-artifacts: is served by an MLflow "
                         f"tracking server, so it needs tracking.tracking_uri http(s)://...; with "
                         f"{excerpt(redact(uri))} give a folder or a cloud URI")
    check_artifact_reachable(location, location_key)


def _check_mlflow_sqlite(database: Path, key: str, shown: str) -> None:
    """An existing SQLite file must open and hold an MLflow store's tables, or no tables at all."""
    import sqlite3

    try:
        with _read_only_sqlite(database) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as error:
        raise InputError(f"{key} {shown}: {database} cannot be read as a SQLite database ({error})") from None
    if tables and not MLFLOW_SQLITE_TABLES <= tables:
        raise InputError(f"{key} {shown}: {database} is another program's database (tables "
                         f"{', '.join(sorted(tables)[:3])}), not an MLflow store; give a new or an MLflow file")
    if tables:  # a store of another MLflow version: MLflow refuses it at the first run, after the flow started
        from filelock import FileLock, Timeout

        lock = database.with_name(database.name + ".lock")  # flows.tracking.open_client's: a command creating or
        if lock.exists():  # migrating the store holds it; its schema is read once that is done (no new file made)
            try:
                with FileLock(str(lock), timeout=CONNECT_TIMEOUT_S):
                    pass
            except Timeout:
                return  # still migrating: the store is this MLflow's own in the making
        with _read_only_sqlite(database) as connection:
            found = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        expected = mlflow_schema_head()
        if expected is not None and (found is None or found[0] != expected):
            from importlib.metadata import version

            raise InputError(f"{key} {shown}: {database} was written by another MLflow version (schema "
                             f"{found[0] if found else 'none'}; MLflow {version('mlflow')} uses {expected}): "
                             f"upgrade it with `mlflow db upgrade {redact(shown).strip(chr(39))}` (back it up first), "
                             f"or give another store")


@functools.lru_cache(maxsize=1)
def mlflow_schema_head() -> str | None:
    """The schema revision this MLflow writes: the one migration of its alembic chain no other builds on. Read from
    the migration files' ``revision`` and ``down_revision`` lines: MLflow's own helper imports alembic and its
    store, 3 s of a command's start-up that a check before anything starts should not cost."""
    spec = importlib.util.find_spec("mlflow")  # its files, without importing it
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "store" / "db_migrations" / "versions"
    revisions, parents = set(), set()
    for path in folder.glob("*.py"):
        text = path.read_text(encoding="utf-8", errors="replace")
        revision = re.search(r"^revision\s*=\s*['\"](\w+)['\"]", text, re.M)
        down = re.search(r"^down_revision\s*=\s*(.+)$", text, re.M)
        if revision is not None:
            revisions.add(revision.group(1))
        if down is not None:  # one parent, a tuple of them (a merge), or None (the first migration)
            parents.update(re.findall(r"['\"](\w+)['\"]", down.group(1)))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _check_postgresql(uri: str, key: str, shown: str) -> None:
    """A PostgreSQL store must answer as PostgreSQL within :data:`CONNECT_TIMEOUT_S` (a port that accepts the
    connection and never speaks PostgreSQL had hung a campaign for good)."""
    try:
        import psycopg2
    except ImportError:
        raise InputError(f"{key} {shown}: PostgreSQL needs the psycopg2 package (pip install psycopg2-binary)") \
            from None
    try:
        psycopg2.connect(uri.replace("postgresql+psycopg2://", "postgresql://", 1),
                         connect_timeout=max(1, int(CONNECT_TIMEOUT_S))).close()
    except psycopg2.Error as error:
        reason = redact(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
        raise InputError(f"{key} {shown}: no PostgreSQL connection within {CONNECT_TIMEOUT_S:g} s ({reason[:80]}): "
                         f"is it PostgreSQL there, and are the database and credentials right?") from None


def check_health(uri: str, key: str, what: str, version_path: str) -> None:
    """``GET <uri>/health`` and ``GET <uri><version_path>`` must each answer 200 (or ask for credentials, 401 or
    403) within :data:`CONNECT_TIMEOUT_S`: an MLflow server (``/version``), or Prefect's API (``.../api/health``,
    ``.../api/admin/version``), the version's answer a version number (an MLflow server's plain text, Prefect's a
    JSON string). Another web server on that port (one that answers every path with 200 and a page included), or one
    that accepts the connection and never answers, is refused before anything starts."""
    _probe(uri, key, what, "/health")
    _probe(uri, key, what, version_path, version=True)


def _get_request(uri: str, path: str, key: str, shown: str):
    """A GET of ``path`` under a server's address with the credentials MLflow's client would send: the address's
    ``user:password@`` as basic auth (not in the URL), else ``MLFLOW_TRACKING_USERNAME`` and ``_PASSWORD`` (both),
    else ``MLFLOW_TRACKING_TOKEN`` as a bearer token. Open it with :func:`_open`, which never forwards them to
    another host."""
    import base64
    import urllib.request

    parts = _split(uri, key, shown)
    netloc = parts.netloc.rpartition("@")[2]
    request = urllib.request.Request(f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}{path}")
    user, password = parts.username, parts.password
    if user is None and os.environ.get("MLFLOW_TRACKING_USERNAME") and os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        # as MLflow's client: basic auth only with both set, else the token
        user, password = os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
    if user is not None:
        credentials = f"{user}:{password or ''}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials).decode())
    elif token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        check_header_secrets()
        request.add_header("Authorization", f"Bearer {token}")
    return request


def _open(request, timeout: float):
    """``urlopen`` whose redirects to another host drop the ``Authorization`` header, as MLflow's client (requests)
    does: urllib forwards it, so a redirect had sent a token to whatever host it named."""
    import urllib.request

    class SameHostCredentials(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            new = super().redirect_request(req, fp, code, msg, headers, newurl)
            if new is not None and urlsplit(newurl).netloc.rpartition("@")[2] != urlsplit(
                    req.full_url).netloc.rpartition("@")[2]:
                new.remove_header("Authorization")
            return new

    return urllib.request.build_opener(SameHostCredentials).open(request, timeout=timeout)


# Credentials MLflow's client sends that this check cannot (an auth plugin, a client certificate): a refusal of the
# probe's own credentials then says nothing about the client's
UNPROBED_CREDENTIALS = ("MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_CLIENT_CERT_PATH")
MLFLOW_READ_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"  # the lightest read of MLflow's REST API
API_ANSWER_BYTES = 1 << 20  # an experiment search of one is a few hundred bytes


def _check_mlflow_api(uri: str, key: str) -> None:
    """One read of MLflow's REST API, as the campaign's client will make it, must answer a JSON object: a server
    whose /health and /version answer but whose API refuses the credentials (a proxy guarding /api only, a user
    without permission) or is not MLflow's had failed after the flow started, with two tracebacks."""
    import urllib.error

    uri = reveal(uri)
    shown = excerpt(redact(uri))[1:-1]
    path = MLFLOW_READ_PATH.split("?")[0]
    try:
        with _open(_get_request(uri, MLFLOW_READ_PATH, key, shown), CONNECT_TIMEOUT_S) as response:
            status, body = response.status, response.read(API_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as error:
        status, body = error.code, b""
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise InputError(f"{key} {shown}: no answer to GET {path} within {CONNECT_TIMEOUT_S:g} s "
                         f"({redact(str(reason))[:80]}); is an MLflow tracking server running there?") from None
    if status in (401, 403) and any(os.environ.get(name) for name in UNPROBED_CREDENTIALS):
        return  # the client's own credentials may be accepted: the health check has spoken for the server
    if status in (401, 403):
        raise InputError(f"{key} {shown}: the server refuses its API (GET {path} answered {status}): give "
                         f"credentials it accepts (user:password@ in the address, MLFLOW_TRACKING_USERNAME and "
                         f"MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN)")
    try:
        answer = json.loads(body.decode("utf-8")) if status == 200 and len(body) <= API_ANSWER_BYTES else None
    except (UnicodeDecodeError, ValueError):
        answer = None
    if not isinstance(answer, dict):
        raise InputError(f"{key} {shown}: not an MLflow tracking server (GET {path} answered "
                         f"{status if status != 200 else 'no JSON object'})")


def _read_only_sqlite(database: Path):
    """A read-only connection to a SQLite file (closed on leaving the ``with``): looking never writes."""
    import sqlite3

    return contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=CONNECT_TIMEOUT_S))


VERSION_ANSWER = re.compile(r'"?v?[0-9]+(\.[0-9]+)+[0-9A-Za-z.+-]*"?')  # '2.19.0', '"3.4.1"', '"3.0.0rc1"'
VERSION_ANSWER_BYTES = 200  # a version answer is a few bytes: more is another server's page


def _probe(uri: str, key: str, what: str, path: str, version: bool = False) -> None:
    """``GET path`` must answer 200, 401 or 403; with ``version``, a 200's body must be a version number."""
    import urllib.error

    uri = reveal(uri)
    shown = excerpt(redact(uri))[1:-1]
    request = _get_request(uri, path, key, shown)
    body = b""
    try:
        with _open(request, CONNECT_TIMEOUT_S) as response:
            status = response.status
            body = response.read(VERSION_ANSWER_BYTES + 1) if version else b""
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise InputError(f"{key} {shown}: no answer to GET {path} within {CONNECT_TIMEOUT_S:g} s "
                         f"({redact(str(reason))[:80]}); is {what} running there?") from None
    if status not in (200, 401, 403):
        raise InputError(f"{key} {shown}: not {what} (GET {path} answered {status})")
    text = body.decode("utf-8", "replace").strip()
    if version and status == 200 and (len(body) > VERSION_ANSWER_BYTES or not VERSION_ANSWER.fullmatch(text)):
        raise InputError(f"{key} {shown}: not {what} (GET {path} answered {excerpt(text, 40)}, not a version "
                         f"number)")


def _split(address: str, key: str, shown: str):
    """``urlsplit`` of a user's address; a malformed one (``http://[::1``) is one line, not a traceback."""
    try:
        parts = urlsplit(address)
        parts.port  # noqa: B018 - parsing the port raises on a bad one
    except ValueError as error:
        reason = str(error).replace("Port", "port")
        raise InputError(f"{key} {shown}: malformed address ({reason})") from None
    return parts


def check_server(address: str, key: str) -> None:
    """A server address (``http://host:port``, ``postgresql://...``, ``tcp://scheduler:8786``) must accept a TCP
    connection within :data:`CONNECT_TIMEOUT_S`."""
    address = reveal(address)
    shown = excerpt(redact(address))[1:-1]
    parts = _split(address if "://" in address else f"tcp://{address}", key, shown)
    try:
        host, port = parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        raise InputError(f"{key} {shown}: bad host or port") from None
    if not host or not port:
        raise InputError(f"{key} {shown}: no host or port given")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        reason = "timed out" if isinstance(error, socket.timeout) else (error.strerror or type(error).__name__)
        raise InputError(f"{key} {shown}: no server answers at {host}:{port} ({reason}); is it running?") from None


def check_dask_scheduler(address: str, key: str) -> None:
    """A Dask scheduler's address must accept a connection (:func:`check_server`) and answer Dask's handshake
    within :data:`CONNECT_TIMEOUT_S`: a port that accepted and never spoke Dask had hung a campaign for good, deaf
    to Ctrl-C, with its run left RUNNING."""
    check_server(address, key)
    shown = excerpt(redact(reveal(address)))[1:-1]
    try:
        from distributed.comm import connect
    except ImportError:
        raise InputError(f"{key} {shown}: a Dask runner needs the distributed package (pip install prefect-dask)") \
            from None
    import asyncio

    async def identity() -> dict:  # the scheduler's own answer to who it is, as a Dask client first asks
        comm = await connect(reveal(address), timeout=CONNECT_TIMEOUT_S)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:  # one bound on the whole exchange: Dask's own connect timeout does not cover a peer that never answers
        answer = asyncio.run(asyncio.wait_for(identity(), CONNECT_TIMEOUT_S))
        if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
            said = answer.get("type") if isinstance(answer, dict) else answer
            raise ValueError(f"it answered as {excerpt(str(said), 40)}, not a Dask scheduler")
    except (OSError, asyncio.TimeoutError, TimeoutError, ValueError) as error:
        reason = " ".join(str(error).split())[:120] or type(error).__name__
        raise InputError(f"{key} {shown}: no Dask scheduler answers there within {CONNECT_TIMEOUT_S:g} s "
                         f"({redact(reason)}); is it a Dask scheduler's address (tcp://host:8786)?") from None


# --- the environment ---------------------------------------------------------------------------------------------

HEADER_SECRETS = ("MLFLOW_TRACKING_TOKEN", "PREFECT_API_KEY")  # sent whole in an HTTP header by their clients


def check_header_secrets() -> None:
    """A token sent in an HTTP header (:data:`HEADER_SECRETS`) holds visible ASCII only: one read from a file saved
    on Windows (a trailing CR) had been quoted whole by the HTTP library's error, in a line blaming the server."""
    for name in HEADER_SECRETS:
        if not all(" " < character < "\x7f" for character in os.environ.get(name, "")):
            raise InputError(f"{name}: holds a blank, a control or a non-ASCII character (a line end left by the "
                             f"file it was read from?); a token is visible ASCII only: strip it (its value is not "
                             f"shown)")


def check_environment() -> None:
    """The folders the environment points the project at: ``SNHC_CONFIG_DIR`` must be a folder holding the model's
    files, ``SNHC_CACHE_DIR`` a folder or a path where one can be made. Checked before any command runs, so a wrong
    variable is one line naming it, not a traceback from the first file read."""
    from surrogate.paths import config_dir

    check_header_secrets()
    if os.environ.get("SNHC_CONFIG_DIR"):
        folder = name_length_checked(config_dir(), "SNHC_CONFIG_DIR")
        if not folder.is_dir():
            raise InputError(f"SNHC_CONFIG_DIR={_shown(folder)}: not a folder; it must hold the project's configs "
                             f"(model_parameters.yaml, materials.yaml, ...) or be unset")
        missing = [name for name in CONFIG_FILES if not (folder / name).is_file()]
        if missing:
            raise InputError(f"SNHC_CONFIG_DIR={_shown(folder)}: has no {missing[0]} (copy configs/ there, or unset "
                             f"it)")
    if os.environ.get("SNHC_CACHE_DIR"):
        if not os.environ["SNHC_CACHE_DIR"].strip():  # "   " had made a folder named by three spaces
            raise InputError("SNHC_CACHE_DIR: blank; point it at a folder for cached fits, or unset it")
        folder = Path(os.environ["SNHC_CACHE_DIR"])
        nearest = nearest_existing(folder)
        if not nearest.is_dir():
            raise InputError(f"SNHC_CACHE_DIR={_shown(folder)}: {_shown(nearest)} is {not_a_folder(nearest)}, "
                             f"expected a folder")
        try:  # made now, as the first cached fit would make it: a folder that cannot be made (/proc/x) says so here
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"SNHC_CACHE_DIR={_shown(folder)}: cannot make the folder "
                             f"({error.strerror or error}); point it at a writable folder or unset it") from None
    if os.environ.get("PREFECT_API_URL"):
        problem = http_url_problem(os.environ["PREFECT_API_URL"])
        if problem:
            raise InputError(f"PREFECT_API_URL {excerpt(redact(os.environ['PREFECT_API_URL']))}: {problem} "
                             f"(e.g. http://127.0.0.1:4200/api), or unset it for a temporary server")
    elif os.environ.get("PREFECT_HOME"):  # where a temporary server keeps its database: a file there had raised
        home = Path(os.environ["PREFECT_HOME"])  # from the server's start, as a traceback
        if (problem := folder_problem(home)) is not None:
            raise InputError(f"PREFECT_HOME={_shown(home)}: {problem}; give a folder that can be written, or unset it")


# The environment variables the project reads as text (a path, an address, a name): a control character or an
# end blank in one had named a database file "mlflow.db\n" or "ml\x1b[31mflow.db"
TEXT_ENVIRONMENT = ("MLFLOW_TRACKING_URI", "SNHC_CONFIG_DIR", "SNHC_CACHE_DIR", "SNHC_EXPERIMENT_NAME",
                    "SNHC_ARTIFACT_LOCATION", "SNHC_DASK_ADDRESS", "PREFECT_API_URL", "PREFECT_HOME")


# Characters no path, address or option value means, which a terminal shows as something else or acts on: control
# characters (a line end, an escape sequence), the line and paragraph separators, and the bidirectional overrides
# and isolates (a right-to-left override shows a name reversed). Other format characters are text: the zero-width
# non-joiner of Persian words, the joiner of emoji sequences.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def hidden_character(c: str) -> bool:
    """Whether ``c`` is one of the characters above."""
    import unicodedata

    return unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in BIDI_CONTROLS


def unprintable(text: str) -> bool:
    """Whether ``text`` holds a :func:`hidden_character` or starts or ends with a blank: never meant in a path, an
    address or a name, and shown by a terminal as something else (a file named ``mlflow.db `` looks like
    ``mlflow.db``)."""
    return text != text.strip() or any(hidden_character(c) for c in text)


def escaped(text: str) -> str:
    """``text`` with each :func:`hidden_character` written as its escape (``\\x1b``), for a line a terminal
    shows."""
    return "".join(repr(c)[1:-1] if hidden_character(c) else c for c in text)


def check_printable(arguments: dict[str, Any]) -> None:
    """Every text a command takes (``arguments``: option -> value or list of values, as argparse parsed them) and
    every text variable of :data:`TEXT_ENVIRONMENT` must be :func:`unprintable`-free; the value is not echoed
    (it would carry the escape sequence to the terminal). A blank value is left to its option's own check, which
    says more ("empty", "blank")."""
    for option, value in arguments.items():
        for text in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(text, str) and text.strip() and unprintable(text):  # a blank one: its option's own check
                raise InputError(f"{option}: use printable characters, without leading or trailing blanks")
    for name in TEXT_ENVIRONMENT:
        if os.environ.get(name, "").strip() and unprintable(os.environ[name]):
            raise InputError(f"{name}: use printable characters, without leading or trailing blanks (or unset it)")


# Settings of MLflow and Prefect read from the environment that this project sets or checks itself: any other one
# set is checked by the library's own rules before a command that uses the library starts (a bad one had failed
# after the flow started, in a traceback of 160 lines)
OWN_MLFLOW_ENVIRONMENT = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                          "MLFLOW_TRACKING_TOKEN", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
                          "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT")
OWN_PREFECT_ENVIRONMENT = ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_API_KEY",
                           "PREFECT_API_AUTH_STRING")
MLFLOW_COMMANDS = ("optimise", "suggest", "what-if", "calibrate", "ui", "serve")  # those that open a tracking store
PREFECT_COMMANDS = ("optimise", "what-if", "serve")  # those that run a Prefect flow


def check_tool_environment(command: str, opens_store: bool = True) -> None:
    """MLflow's and Prefect's settings in the environment (``MLFLOW_*``, ``PREFECT_*``), checked by the libraries'
    own parsers for a ``command`` that uses them, so a value they cannot read is one line naming it. Their modules
    are imported only when such a variable is set. A secret's value is never shown (only numbers, switches and
    choices fail to parse). ``opens_store``: False for a run of ``command`` that opens no tracking store
    (``snhc calibrate`` without ``--validate``), which then does not pay MLflow's import for the check."""
    import io

    if command in MLFLOW_COMMANDS and opens_store and any(
            name.startswith("MLFLOW_") and name not in OWN_MLFLOW_ENVIRONMENT for name in os.environ):
        for name, (allowed, read) in _mlflow_choices().items():  # text MLflow parses only when it uses it: a bad
            # logging level broke its import (a traceback), a bad pool class the flow's first store call (after Prefect)
            if os.environ.get(name) and read(os.environ[name]) not in allowed:
                raise InputError(f"{name}={excerpt(os.environ[name])}: allowed {', '.join(allowed)} (or unset)")
        import mlflow.environment_variables as settings

        for variable in vars(settings).values():
            if not (hasattr(variable, "name") and hasattr(variable, "get") and variable.name in os.environ):
                continue
            try:  # what it means is MLflow's (a pool's recycle time -1 is "never"): only what it cannot read
                variable.get()
            except ValueError:
                raise InputError(f"{variable.name}={excerpt(os.environ[variable.name])}: MLflow reads it as "
                                 f"{getattr(variable.type, '__name__', 'value')}; fix or unset it") from None
    if command in PREFECT_COMMANDS and any(name.startswith("PREFECT_") and name not in OWN_PREFECT_ENVIRONMENT
                                           for name in os.environ):
        from pydantic import ValidationError

        for name in sorted(os.environ):  # a negative timeout parses, then fails inside the HTTP client after the
            # flow started (PREFECT_API_REQUEST_TIMEOUT=-1: a 102-line traceback)
            if name.startswith("PREFECT_") and "TIMEOUT" in name:
                try:
                    negative = not float(os.environ[name]) >= 0  # NaN too
                except ValueError:  # not a number: Prefect's own parser says so below
                    negative = False
                if negative:
                    raise InputError(f"{name}={excerpt(os.environ[name])}: a timeout, allowed 0 or more (seconds)")

        printed = io.StringIO()  # Prefect prints a bad setting's whole validation report when its plugins load
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            import prefect.settings

            try:
                prefect.settings.Settings()
                prefect.settings.load_profiles()  # its profiles file's shape, which Settings() leaves unread
                return
            except ValidationError as error:
                problems = [(problem["loc"], problem["input"], problem["msg"]) for problem in error.errors()
                            if isinstance(problem.get("input"), str)]
            except (OSError, ValueError, TypeError, AttributeError) as error:  # its profiles file a folder, not
                # TOML, or TOML of another shape (profiles = 5): Prefect's reader raises as it goes
                raise InputError(f"Prefect cannot read its profiles file {prefect_profiles_path()} "
                                 f"({type(error).__name__}: {excerpt(str(error))}); fix it, or point "
                                 f"PREFECT_PROFILES_PATH at a profiles.toml") from None
        for loc, value, message in problems:
            # the variable that set it: its value, and among several with that value the one named by the setting
            named = [n for n, v in sorted(os.environ.items()) if n.startswith("PREFECT_") and v == value]
            suffix = "_" + "_".join(str(part) for part in loc).upper()
            name = next((n for n in named if n.endswith(suffix)), named[0] if named else None)
            if name is not None:
                shown = "(not shown)" if name in SECRET_ENVIRONMENT else excerpt(value)
                raise InputError(f"{name}={shown}: Prefect cannot use it ({message}); fix or unset it")
        where = ".".join(str(part) for part in problems[0][0]) if problems else "a setting"
        raise InputError(f"Prefect's {where} is not valid (a value in its profiles file {prefect_profiles_path()}? "
                         f"see `prefect config view`); fix it")


def _mlflow_choices() -> dict[str, tuple[tuple[str, ...], Any]]:
    """MLflow settings that take one of a few words: the words, and how MLflow reads a value before looking it up
    (its logging setup upper-cases the level; its SQLAlchemy store takes the pool class's name as written)."""
    import logging

    import sqlalchemy.pool

    pools = ("AssertionPool", "AsyncAdaptedQueuePool", "NullPool", "QueuePool", "SingletonThreadPool", "StaticPool",
             "FallbackAsyncAdaptedQueuePool")
    levels = tuple(logging.getLevelNamesMapping())  # WARN, FATAL and NOTSET too, as MLflow's logging setup takes
    return {"MLFLOW_LOGGING_LEVEL": (levels, str.upper),
            "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": (tuple(p for p in pools if hasattr(sqlalchemy.pool, p)), str)}


def prefect_profiles_path() -> Path:
    """Prefect's profiles file, as Prefect finds it: ``PREFECT_PROFILES_PATH``, else ``profiles.toml`` in
    ``PREFECT_HOME`` (``~/.prefect`` unless set)."""
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")
    return Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml")


def http_url_problem(url: str) -> str | None:
    """What is wrong with a server's http(s) address (None: nothing): a blank in it, its scheme, its host, its port
    (a blank had reached the HTTP client, which raised with the address, password and all, in a traceback)."""
    if any(character.isspace() for character in url):
        return "contains a blank (a space, tab or line end); a password with one is written %20"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - parsing the port raises for a bad one
    except ValueError as error:
        return f"not a URL ({error})"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    return None


# --- run ids -----------------------------------------------------------------------------------------------------

def check_run_id(run_id: str | None, option: str = "--resume") -> str | None:
    """A run id given as an option: None (not given) passes; empty or not 32 hex characters is an error."""
    if run_id is None:
        return None
    if not run_id.strip():
        raise InputError(f"{option} '': empty run id: give a campaign run id (32 hexadecimal characters)")
    if not RUN_ID_PATTERN.fullmatch(run_id.strip()):
        raise InputError(f"{option} {excerpt(run_id)}: not an MLflow run id (32 hexadecimal characters, as shown "
                         f"by `snhc optimise` and the MLflow UI)")
    return run_id.strip()


# --- CSV out -----------------------------------------------------------------------------------------------------

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def escape_csv_cells(frame):
    """A copy of a DataFrame in which every text cell (and column name) that a spreadsheet would run as a formula
    (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) gets a leading ``'``. Numbers are untouched.
    """

    def escape(value):
        return "'" + value if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) else value

    escaped = frame.copy()
    for column in escaped.columns:
        if escaped[column].dtype == object or str(escaped[column].dtype) in ("str", "string"):
            escaped[column] = escaped[column].map(escape)
    escaped.columns = [escape(column) for column in escaped.columns]
    return escaped


def write_csv(frame, path: str | Path) -> None:
    """The one way this project writes a CSV file: formula-like cells escaped, secrets redacted. A failed write (a
    full disk) is one line naming the file, not a traceback."""
    try:
        Path(path).write_text(redact(escape_csv_cells(frame).to_csv(index=False)), encoding="utf-8")
    except OSError as error:
        raise InputError(f"{_shown(Path(path))}: cannot write the CSV ({error.strerror or error})") from None


def json_text(document) -> str:
    """A ``--json`` document or a JSON artifact as strict JSON: a number that is not finite (NaN, inf: a value a
    campaign could not compute, the GP mean of a multi-objective campaign) becomes null, which every JSON parser
    reads; other objects (paths, numpy scalars) as their text or number."""
    def plain(value):
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        if type(value).__module__ == "numpy" and hasattr(value, "item"):  # a numpy scalar (numpy stays unimported)
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    return json.dumps(plain(document), indent=2, default=str, allow_nan=False)
