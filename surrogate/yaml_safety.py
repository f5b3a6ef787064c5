"""Reading YAML a user hands us, safely: bounded size and depth, no aliases, no duplicate keys, finite numbers.

``yaml.safe_load`` refuses arbitrary Python objects but still expands aliases (a few hundred bytes can expand into
gigabytes: the "billion laughs" bomb), lets a repeated key silently replace the first, and accepts ``.nan`` and
``.inf`` where a number is expected. Every YAML file the project reads from a user (campaign configs, what-if
scenarios, calibration data) goes through :func:`read_yaml_file`; the flows wrap it in ``flows.inputs``. This module
lives in ``surrogate/`` because the models' readers need it too and must not import ``flows/``.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any

import yaml

# The largest shipped YAML (the calibration data) is about 10 kB; 1 MiB leaves room for any hand-written campaign
# while bounding the time and memory a hostile or mistaken file (a log, a data dump) can cost before it is refused.
MAX_YAML_BYTES = 1 << 20
# Deeper nesting than this is no config anyone writes; it bounds the composer's recursion ([[[[...]]]] bombs).
MAX_YAML_DEPTH = 50
# Error messages quote at most this many characters of the input, so a huge or hostile value never floods the console.
EXCERPT_CHARS = 60


class YamlInputError(ValueError):
    """A YAML file that cannot be used; the message is one line naming the file (and line where known)."""


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """``repr`` of a value cut to ``limit`` characters (with an ellipsis), on one line."""
    text = repr(value).replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases, bounds nesting, and treats a repeated key as an error."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            kind = "alias" if isinstance(event, yaml.AliasEvent) else "anchor"
            raise yaml.composer.ComposerError(
                None, None, f"YAML {kind} {excerpt(event.anchor, 30)} is not allowed (anchors and aliases are "
                            f"refused: write the values out)", event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels",
                                                  event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: the base constructor reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {excerpt(key, 40)}", key_node.start_mark)
        return super().construct_mapping(node, deep)


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _StrictLoader.construct_yaml_map)
# Plain scalars are read by YAML 1.2's core schema, not PyYAML's YAML 1.1: 1e9 and 2E-3 are numbers (1.1 wanted a dot
# and read them as text, so a capacity written 1e3 was "not a number" in one file and a number in another), while
# 1:40 is text, not the base-60 number 100, 1_000 is text, not 1000, and yes/no/on/off are text, not booleans.
_CORE_SCHEMA = {
    "tag:yaml.org,2002:bool": r"^(?:true|True|TRUE|false|False|FALSE)$",
    "tag:yaml.org,2002:int": r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
    "tag:yaml.org,2002:float": r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
                               r"|\.(?:nan|NaN|NAN))$",
}
# and 2024-01-01 is text, as in YAML 1.2: a campaign named by its date had been refused as "not a valid string"
_NOT_CORE = {"tag:yaml.org,2002:timestamp"}
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in _CORE_SCHEMA and tag not in _NOT_CORE]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _tag, _pattern in _CORE_SCHEMA.items():
    _StrictLoader.add_implicit_resolver(_tag, re.compile(_pattern), list("-+0123456789.tTfF"))


def _construct_core_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """An integer as YAML 1.2's core schema reads it: 0400 is four hundred (YAML 1.1, and PyYAML, read a leading zero
    as octal: 256 cycles, and 0800 was an error); 0o17 and 0x1F are octal and hexadecimal."""
    text = loader.construct_scalar(node)
    if text[:2] in ("0o", "0x"):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_core_int)


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node):
    """Explicit tags for types no config holds (!!binary bytes, !!set, !!omap, !!pairs) are refused, as every other
    tag is: ``name: !!binary aGVsbG8=`` had run a campaign named 'hello'."""
    raise yaml.constructor.ConstructorError(None, None, f"YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')} "
                                            f"is not allowed (write the value out)", node.start_mark)


for _tag in ("binary", "set", "omap", "pairs"):
    _StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text with :class:`_StrictLoader`; any problem raises :class:`YamlInputError` naming ``source``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = str(getattr(error, "problem", None) or error).splitlines()[0]
        if len(problem) > 2 * EXCERPT_CHARS:
            problem = problem[: 2 * EXCERPT_CHARS - 3] + "..."
        raise YamlInputError(f"{source}: malformed YAML{where}: {problem}") from None
    except RecursionError:
        raise YamlInputError(f"{source}: malformed YAML: nested too deeply") from None
    except ValueError as error:  # an integer of more than 4300 digits (Python's int-from-text limit), or a tag
        # that makes a number of words (!!int "abc"): no value either way; the second had been called "too long"
        if "Exceeds the limit" not in str(error):  # Python's own words for the int-from-text limit
            raise YamlInputError(f"{source}: malformed YAML: a value its tag cannot make ({excerpt(str(error))})") \
                from None
        raise YamlInputError(f"{source}: malformed YAML: a number too long to be a value (more than "
                             f"{sys.get_int_max_str_digits()} digits)") from None


def read_yaml_file(path: str | Path, what: str = "YAML file") -> Any:
    """Read and parse one YAML file a user gave us; every way it can be unusable is one :class:`YamlInputError`.

    Parameters
    ----------
    path : the file.
    what : what the file is for, used in messages ("config", "scenario file", "calibration data file").
    """
    return load_yaml_text(read_text_file(path, what, MAX_YAML_BYTES), str(Path(path)))


def read_text_file(path: str | Path, what: str, max_bytes: int) -> str:
    """The UTF-8 text of a file a user gave us, at most ``max_bytes``; a folder, a missing or unreadable file, an
    oversized one or one that is not UTF-8 is one :class:`YamlInputError` naming the file (YAML and CSV alike)."""
    path = Path(path)
    if path.is_dir():
        raise YamlInputError(f"{path}: is a folder, expected a {what}")
    if path.exists() and not path.is_file():  # reading a pipe or a device would wait for a writer, or never end
        raise YamlInputError(f"{path}: not a regular file (a pipe, socket or device), expected a {what}")
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise YamlInputError(f"{path}: {what} not found") from None
    except OSError as error:
        raise YamlInputError(f"{path}: cannot read the {what} ({error.strerror or type(error).__name__})") from None
    if len(raw) > max_bytes:
        raise YamlInputError(f"{path}: {what} larger than {max_bytes // 1024} KiB: refused")
    try:
        return raw.decode("utf-8-sig")  # a leading byte-order mark (Excel's "CSV UTF-8" writes one) is not text
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise YamlInputError(f"{path}: not UTF-8 text (line {line}): save the {what} as UTF-8") from None


def finite_as_float(value: int | float) -> bool:
    """Whether a parsed number is finite as the float the models compute with: NaN, infinity and an integer too
    large for a float (400 digits: ``float()`` overflows) are not.

    Examples
    --------
    >>> finite_as_float(3), finite_as_float(float("nan")), finite_as_float(10**400)
    (True, False, False)
    """
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def non_finite_number(document: Any, prefix: str = "") -> tuple[str, float] | None:
    """The first (key path, value) whose value is a NaN or infinite number in a parsed document, else None."""
    if isinstance(document, float) and not math.isfinite(document):
        return prefix or "(top level)", document
    if isinstance(document, dict):
        items = ((f"{prefix}.{key}" if prefix else str(key), value) for key, value in document.items())
    elif isinstance(document, (list, tuple)):
        items = ((f"{prefix}[{i}]", value) for i, value in enumerate(document))
    else:
        return None
    for path, value in items:
        found = non_finite_number(value, path)
        if found is not None:
            return found
    return None


def plain_number(text: str, convert=float):
    """``convert`` of a number as written; a digit separator is refused (Python reads "1_7" as 17: in a lab cell or
    an option that is a typing error, not a number), and so are digits other than ASCII ones (Python reads "٨" as 8).
    The one rule of lab files and command-line options."""
    if "_" in text or not text.isascii():  # Python also reads Arabic-Indic and full-width digits ('٨', '８')
        raise ValueError(text)
    return convert(text)
