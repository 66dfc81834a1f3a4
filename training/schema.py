"""Typed config schemas: frozen dataclasses that pydantic validates, errors of one line.

A config class stays a plain frozen dataclass for its users (fields, ``dataclasses.asdict``,
``dataclasses.replace``, equality, hashing); :func:`schema` makes it a pydantic dataclass, so
every construction, from a file or in Python, checks the types and ranges its annotations
give, refuses unknown keys, and raises a :class:`ConfigError` of one line naming where
(the file, or the class), the key, the bad value and what was expected::

    run.toml: threshold = 'high': expected a number in [0, 1] (a str is not a number)
    run.toml: unknown key 'treshold' (did you mean 'threshold'?)

Numbers are read as pydantic's lax mode reads them (``8`` is the float 8.0, ``8.0`` the
integer 8, ``8.5`` is no integer and refused, never truncated), except that text and
booleans are not numbers: ``threshold = "0.5"`` or ``= true`` is a mistake, not 0.5 or 1.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import re
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic.fields import FieldInfo
from pydantic_core import ArgsKwargs, PydanticCustomError

CONFIG = ConfigDict(extra="forbid")
MAX_VALUE_CHARS = 80
UNKNOWN_KEY = ("unexpected_keyword_argument", "extra_forbidden")  # pydantic's error types of an unknown key


class ConfigError(ValueError):
    """A config that does not fit its schema, or a config file that does not parse (one line)."""


def _number(value):
    if isinstance(value, (bool, str)):
        raise PydanticCustomError("number_type", "{kind} is not a number",
                                  {"kind": "text" if isinstance(value, str) else "true/false"})
    return value


def _boolean(value):
    if not isinstance(value, bool):
        kind = "text" if isinstance(value, str) else "a number" if isinstance(value, (int, float)) else "a list or table"
        raise PydanticCustomError("bool_type", "{kind} is not true/false", {"kind": kind})
    return value


# the field types of the configs; ``description`` is the "expected ..." of an error message
# (Bool: true or false only; pydantic's lax bool would read "yes", "off" or 1 as a switch)
Bool = Annotated[bool, BeforeValidator(_boolean), Field(description="true or false")]
Float = Annotated[float, BeforeValidator(_number), Field(description="a number")]
Int = Annotated[int, BeforeValidator(_number), Field(description="an integer")]
PositiveFloat = Annotated[Float, Field(gt=0, description="a number > 0")]
NonNegativeFloat = Annotated[Float, Field(ge=0, description="a number >= 0")]
PositiveInt = Annotated[Int, Field(gt=0, description="an integer > 0")]
NonNegativeInt = Annotated[Int, Field(ge=0, description="an integer >= 0")]
Fraction = Annotated[Float, Field(ge=0, le=1, description="a number in [0, 1]")]
Text = Annotated[str, Field(min_length=1, description="a non-empty string")]
# voxel sizes are floats (4.6 nm is a real voxel size); integer values still compare equal (8.0 == 8)
VoxelSize = Annotated[tuple[PositiveFloat, PositiveFloat, PositiveFloat],
                      Field(description="3 numbers > 0, nm (z, y, x)")]
Shape = Annotated[tuple[PositiveInt, PositiveInt, PositiveInt], Field(description="3 integers > 0, voxels (z, y, x)")]
Margin = Annotated[tuple[NonNegativeInt, NonNegativeInt, NonNegativeInt],
                   Field(description="3 integers >= 0, voxels (z, y, x)")]
ZRange = Annotated[tuple[NonNegativeInt, NonNegativeInt], Field(description="[begin, end) z indices, 0 <= begin < end")]


def schema(cls):
    """Make the class ``cls`` (fields annotated as for ``@dataclass``) a validated, frozen pydantic dataclass whose
    errors are :class:`ConfigError` naming ``cls``; :func:`build` makes one from a file's mapping, naming the file."""
    cls = pydantic_dataclass(frozen=True, config=CONFIG)(cls)
    validated_init = cls.__init__

    @functools.wraps(validated_init)
    def __init__(self, *args, **kwargs):
        try:
            validated_init(self, *args, **kwargs)
        except ValidationError as exc:
            names = [f.name for f in dataclasses.fields(cls) if f.init]
            raise ConfigError(describe(exc, cls, {**dict(zip(names, args)), **kwargs}, cls.__name__)) from None

    cls.__init__ = __init__
    return cls


def build(cls, values: Mapping, where: str | None = None, prefix: str = ""):
    """``cls`` from the key/value mapping ``values`` (a config file's content, or one of its tables at the
    key ``prefix``); a :class:`ConfigError` naming ``where`` (the file) when it does not fit."""
    if not isinstance(values, Mapping):
        key = prefix.rstrip(".") or "the config"
        raise ConfigError(_located(where, f"{key} = {_show(values)}: expected a table of keys and values"))
    try:
        return _adapter(cls).validate_python(ArgsKwargs((), dict(values)))
    except ValidationError as exc:
        raise ConfigError(describe(exc, cls, values, where, prefix)) from None


@functools.cache
def _adapter(cls) -> TypeAdapter:
    return TypeAdapter(cls)


def describe(exc: ValidationError, cls, values: Mapping, where: str | None = None, prefix: str = "") -> str:
    """One line for the errors of validating ``values`` as ``cls``: the first problem, and the keys of the others."""
    problems: dict[str, str] = {}
    # a misspelt key is also a missing one: name it first, with its suggestion
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] not in UNKNOWN_KEY)
    inside = [e["loc"] for e in errors]
    for error in errors:
        loc = error["loc"]
        if error["type"] in ("too_short", "too_long") and any(o[:len(loc)] == loc and o != loc for o in inside):
            continue  # a list's items failed: pydantic counts what is left, a consequence and no news
        key, message = _problem(error, cls, values, prefix)
        problems.setdefault(key, message)  # a union reports each member; the first says enough
    key, first = next(iter(problems.items()))
    others = [k or "(the whole config)" for k in problems if k != key]
    more = f" (and {len(others)} more: {', '.join(others)})" if others else ""
    return _located(where, first + more)


def _located(where: str | None, message: str) -> str:
    return f"{where}: {message}" if where else message


def _problem(error: dict, cls, values: Mapping, prefix: str) -> tuple[str, str]:
    loc = error["loc"]
    names, field_type, owner, used = _walk(cls, loc)
    key = prefix + _key(names) if names else prefix.rstrip(".")
    message = error["msg"]
    kind = error["type"]
    if kind in UNKNOWN_KEY and used == len(loc) - 1:
        return key, _unknown(key, loc[-1], owner)
    if kind in ("value_error", "assertion_error"):
        message = re.sub(r"^(Value|Assertion) error, ", "", message)
        # a check of several fields (a __post_init__) names them itself; a field's own check needs its name
        if field_type is None or _dataclass_in(field_type) is not None:
            return key, f"{key}: {message}" if key else message
        return key, f"{key} = {_show(_value(values, loc[:used], error))}: {message}"
    if kind in ("missing", "missing_argument") and used == len(loc):
        return key, f"missing key {key!r}: expected {_expected(field_type) or 'a value'}"
    value = _show(_value(values, loc[:used], error))
    expected = _expected(field_type)
    detail = message[:1].lower() + message[1:]
    if kind == "missing":  # inside a value, such as the third of 3 numbers
        detail = f"item {loc[used]} is missing" if used < len(loc) else detail
    return key, f"{key} = {value}: expected {expected} ({detail})" if expected else f"{key} = {value}: {detail}"


def _unknown(key: str, name, owner) -> str:
    known = [f.name for f in dataclasses.fields(owner) if f.init] if dataclasses.is_dataclass(owner) else []
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
    return f"unknown key {key!r} ({hint})"


def _walk(cls, loc):
    """Along ``loc``: the key names of the field in error, its type, the dataclass that holds it, and how many
    items of ``loc`` lead to the field (the rest point inside its value, such as one of 3 numbers)."""
    names: list = []
    owner, field_type, used = cls, None, 0
    while used < len(loc) and isinstance(loc[used], str) and dataclasses.is_dataclass(owner):
        hints = _hints(owner)
        if loc[used] not in hints:  # an unknown key
            names.append(loc[used])
            return names, None, owner, used
        field_type = hints[loc[used]]
        names.append(loc[used])
        used += 1
        inner = _dataclass_in(field_type)
        element = _tuple_element(field_type)
        if inner is None and element is not None and used < len(loc) and isinstance(loc[used], int):
            names.append(loc[used])  # one of a list of tables, such as train.volumes[0]
            used += 1
            inner, field_type = element, element
        if inner is None:
            break
        owner = inner
    return names, field_type, owner, used


def _key(names) -> str:
    key = ""
    for name in names:
        key += f"[{name}]" if isinstance(name, int) else (f".{name}" if key else str(name))
    return key


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls, include_extras=True)


def _strip(tp):
    """``tp`` without Annotated and Optional."""
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = tp.__origin__
        elif typing.get_origin(tp) in (Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _dataclass_in(tp):
    tp = _strip(tp)
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def _tuple_element(tp):
    """The dataclass of a ``tuple[SomeDataclass, ...]``, else None."""
    tp = _strip(tp)
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _dataclass_in(args[0])
    return None


def _expected(tp) -> str | None:
    """What a value of type ``tp`` looks like, for an error message."""
    if tp is None:
        return None
    if typing.get_origin(tp) is Annotated:
        for meta in reversed(tp.__metadata__):
            if isinstance(meta, FieldInfo) and meta.description:
                return meta.description
        return _expected(tp.__origin__)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        members = [_expected(a) for a in args if a is not type(None)]
        return " or ".join(m for m in members if m) or None
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"a list, each item {_expected(args[0]) or 'a value'}"
    if origin is dict or tp is dict:
        return "a table of keys and values"
    return {str: "a string", bool: "true or false", int: "an integer", float: "a number"}.get(tp)


def _value(values: Mapping, path, error: dict):
    """The value the user gave at ``path`` (names and list indices), else the one pydantic reports."""
    value: Any = values
    for item in path:
        try:
            value = value[item]
        except (KeyError, IndexError, TypeError):
            return error.get("input")
    return value


def _show(value) -> str:
    text = repr(tuple(value) if isinstance(value, ArgsKwargs) else value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 3] + "..."


def load_mapping(path: str) -> dict:
    """The key/value content of a YAML (.yaml/.yml) or TOML (.toml) file; a :class:`ConfigError` naming the file
    and the line when it does not parse."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file {path!r} does not exist")
    if not path.endswith((".toml", ".yaml", ".yml")):
        raise ConfigError(f"config {path!r} must end in .toml, .yaml or .yml")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the config as UTF-8") from None
    if path.endswith(".toml"):
        import tomllib

        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # Python 3.11's message ends in "(at line L, column C)"; 3.14 adds exc.lineno
            message = str(exc)
            at = re.search(r"\s*\(at (?:line (\d+), column (\d+)|(end of document))\)$", message)
            where = "somewhere" if not at else "at the end" if at.group(3) else \
                f"line {at.group(1)}, column {at.group(2)}"
            reason = message[: at.start()] if at else message
            raise ConfigError(f"{path}, {where}: not valid TOML: {reason}") from None
    else:
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
            reason = " ".join(str(exc.problem or exc.context or "").split())
            raise ConfigError(f"{path}, {where}: not valid YAML: {reason}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
        values = {} if values is None else values
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: holds {type(values).__name__} {_show(values)}; expected keys and values "
                          "(key: value lines)")
    return values
