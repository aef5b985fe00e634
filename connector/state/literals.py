"""Flyte literals to the plain Python values sensors take, and back for their outputs."""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Mapping
from typing import Any

from flyteidl.core import literals_pb2, types_pb2
from google.protobuf import json_format


class LiteralError(ValueError):
    """A literal of a shape sensors do not take."""


def to_python(literal: literals_pb2.Literal, name: str) -> Any:
    """One literal as a Python value: primitives, None, lists, maps and generic structs."""
    kind = literal.WhichOneof("value")
    if kind == "collection":
        return [to_python(item, f"{name}[{i}]") for i, item in enumerate(literal.collection.literals)]
    if kind == "map":
        return {key: to_python(item, f"{name}[{key!r}]") for key, item in literal.map.literals.items()}
    if kind == "scalar":
        return _scalar(literal.scalar, name)
    raise LiteralError(
        f"input {name!r} is {'empty' if kind is None else f'a {kind} literal'}, which sensors do not take."
    )


def _scalar(scalar: literals_pb2.Scalar, name: str) -> Any:
    kind = scalar.WhichOneof("value")
    if kind == "primitive":
        prim = scalar.primitive
        which = prim.WhichOneof("value")
        if which == "datetime":
            return prim.datetime.ToDatetime(tzinfo=dt.UTC)
        if which == "duration":
            return prim.duration.ToTimedelta()
        if which is None:
            raise LiteralError(f"input {name!r} is an empty primitive.")
        return getattr(prim, which)
    if kind == "none_type":
        return None
    if kind == "union":
        return to_python(scalar.union.value, name)
    if kind == "generic":
        return json_format.MessageToDict(scalar.generic)
    if kind == "blob":
        return scalar.blob.uri
    raise LiteralError(f"input {name!r} is a {kind or 'empty'} scalar, which sensors do not take.")


def to_dict(literal_map: literals_pb2.LiteralMap) -> dict[str, Any]:
    """A LiteralMap as a dict of Python values."""
    return {name: to_python(lit, name) for name, lit in literal_map.literals.items()}


def from_python(value: Any, tp: Any, name: str) -> literals_pb2.Literal:
    """A sensor output value as the literal of its declared type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple):
        item_tp = args[0] if args else str
        items = [from_python(v, item_tp, f"{name}[{i}]") for i, v in enumerate(value)]
        return literals_pb2.Literal(collection=literals_pb2.LiteralCollection(literals=items))
    if origin is dict:
        entries = {
            str(k): from_python(v, args[1] if args else str, f"{name}[{k!r}]") for k, v in value.items()
        }
        return literals_pb2.Literal(map=literals_pb2.LiteralMap(literals=entries))
    prim = literals_pb2.Primitive()
    if tp is bool:
        prim.boolean = bool(value)
    elif tp is int:
        prim.integer = int(value)
    elif tp is float:
        prim.float_value = float(value)
    elif tp is str:
        prim.string_value = str(value)
    elif tp is dt.datetime:
        prim.datetime.FromDatetime(value)
    elif tp is dt.timedelta:
        prim.duration.FromTimedelta(value)
    else:
        raise LiteralError(f"output {name!r} has type {tp!r}, which has no Flyte literal here.")
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=prim))


def literal_type(tp: Any) -> types_pb2.LiteralType:
    """The Flyte LiteralType of a declared Python type (for comparing against a template's interface)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple):
        return types_pb2.LiteralType(collection_type=literal_type(args[0] if args else str))
    if origin is dict:
        return types_pb2.LiteralType(map_value_type=literal_type(args[1] if args else str))
    simple = {
        bool: types_pb2.BOOLEAN,
        int: types_pb2.INTEGER,
        float: types_pb2.FLOAT,
        str: types_pb2.STRING,
        dt.datetime: types_pb2.DATETIME,
        dt.timedelta: types_pb2.DURATION,
    }
    if tp not in simple:
        raise LiteralError(f"type {tp!r} has no Flyte literal type here.")
    return types_pb2.LiteralType(simple=simple[tp])


def outputs_map(values: Mapping[str, Any], declared: Mapping[str, Any]) -> literals_pb2.LiteralMap:
    """Outputs as a LiteralMap, keeping only the names that are declared."""
    return literals_pb2.LiteralMap(
        literals={
            name: from_python(values[name], tp, name) for name, tp in declared.items() if name in values
        }
    )
