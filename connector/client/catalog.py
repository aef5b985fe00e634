"""`sensor-connector sensors`: the sensor catalog as people and scripts read it."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sensors.base import Sensor, type_name
from sensors.registry import SensorRegistry

from ..state.category import SENSOR_CATEGORY

if TYPE_CHECKING:
    from ..engine.user.sensors import UserModules


def field_default(f: dataclasses.Field[Any]) -> Any:
    """A config field's default, or dataclasses.MISSING when the field is required."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def describe(cls: type[Sensor[Any]]) -> dict[str, Any]:
    """One sensor's entry: name, summary, aliases, inputs, config fields, outputs, task categories."""
    hints = typing.get_type_hints(cls.config_type)
    config = []
    # A user's flytekit sensor takes its own sensor_config dict, which the connector does not know.
    user_class = getattr(cls, "user_class", None)
    for f in () if user_class is not None else dataclasses.fields(cls.config_type):
        if not f.init:
            continue
        default = field_default(f)
        entry: dict[str, Any] = {
            "name": f.name,
            "type": type_name(hints[f.name]),
            "required": default is dataclasses.MISSING,
        }
        if default is not dataclasses.MISSING:
            entry["default"] = _plain(default)
        config.append(entry)
    return {
        "name": cls.name,
        "summary": cls.one_line(),
        "aliases": list(cls.aliases),
        "inputs": [{"name": n, "type": type_name(tp)} for n, tp in cls.inputs.items()],
        "config": config,
        "outputs": [{"name": n, "type": type_name(tp)} for n, tp in cls.outputs.items()],
        # Every catalog sensor is served by the sensor engine, under flytekit's task type.
        "task_categories": [{"name": SENSOR_CATEGORY.name, "version": SENSOR_CATEGORY.version}],
    }


def catalog(registry: SensorRegistry, user: UserModules | None = None) -> dict[str, Any]:
    """The whole catalog, plus the sensors that are known but cannot run here and why."""
    unavailable = [{"name": n, "reason": r} for n, r in sorted(registry.unavailable.items())]
    if user is not None:
        unavailable += [
            {"name": module, "reason": f"sensor module failed to import: {reason}"}
            for module, reason in sorted(user.failed.items())
        ]
    return {"sensors": [describe(cls) for cls in registry], "unavailable": unavailable}


def table(data: dict[str, Any]) -> str:
    """The catalog as an aligned text table: one block of rows per sensor, one item per row."""
    headers = ("SENSOR", "INPUTS", "CONFIG (type = default)", "OUTPUTS", "SERVES")
    rows: list[tuple[str, ...]] = []
    for s in data["sensors"]:
        columns = [
            [s["name"]],
            [f"{i['name']}: {i['type']}" for i in s["inputs"]] or ["-"],
            [_config_cell(c) for c in s["config"]] or ["-"],
            [f"{o['name']}: {o['type']}" for o in s["outputs"]] or ["-"],
            [f"{c['name']} v{c['version']}" for c in s["task_categories"]],
        ]
        height = max(len(c) for c in columns)
        rows += [tuple(c[i] if i < len(c) else "" for c in columns) for i in range(height)]
    widths = [max(len(r[i]) for r in (headers, *rows)) for i in range(len(headers))]
    lines = [_row(headers, widths), *(_row(r, widths) for r in rows)]
    if data["sensors"]:
        lines.append("")
        lines += [f"{s['name']}: {s['summary']}" for s in data["sensors"]]
        aliased = [s for s in data["sensors"] if s["aliases"]]
        lines += [f"{s['name']} also answers to {', '.join(s['aliases'])}" for s in aliased]
    else:
        lines.append("(no sensors are registered)")
    lines += [f"{u['name']}: unavailable here: {u['reason']}" for u in data["unavailable"]]
    return "\n".join(lines)


def _config_cell(c: dict[str, Any]) -> str:
    return f"{c['name']}: {c['type']}" + ("" if c["required"] else f" = {c['default']!r}")


def _row(cells: Iterable[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()


def _plain(value: Any) -> Any:
    """A default as JSON can carry it."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "total_seconds"):
        return value.total_seconds()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return repr(value)
