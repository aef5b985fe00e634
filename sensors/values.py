"""Plain values in and out: `jsonable` (for console info, templates and printing) and `from_text`
(a string from a command line or the environment as a value of a declared type)."""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import ConfigError, check_value, type_name

_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


def jsonable(value: Any) -> Any:
    """`value` with only JSON types: datetimes as ISO 8601, timedeltas as seconds, anything else as str."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def from_text(raw: str, tp: Any, what: str) -> Any:
    """`raw` as a value of declared type `tp` (lists comma-separated, timedeltas in seconds, datetimes
    ISO 8601, `none` for an optional), checked as `check_value` checks it; ConfigError says what is wrong."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if raw.strip().lower() in ("", "none", "null") and type(None) in args:
            return None
        return from_text(raw, next(a for a in args if a is not type(None)), what)
    if origin in (list, tuple, Sequence):
        item = args[0] if args else str
        items = [from_text(part.strip(), item, f"{what} item") for part in raw.split(",") if part.strip()]
        return tuple(items) if origin is tuple else items
    try:
        value: Any = raw
        if tp is bool:
            if raw.lower() not in (*_TRUE, *_FALSE):
                raise ValueError(raw)
            value = raw.lower() in _TRUE
        elif tp in (int, float):
            value = tp(raw)
        elif tp is dt.timedelta:
            value = dt.timedelta(seconds=float(raw))
        elif tp is Path:
            return Path(raw).expanduser()
    except ValueError:
        hint = " (seconds)" if tp is dt.timedelta else ""
        raise ConfigError(f"{what} must be {type_name(tp)}{hint}, not {raw!r}.") from None
    return check_value(value, tp, what)
