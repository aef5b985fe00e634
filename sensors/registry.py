"""The sensor catalog: names (and aliases) to sensor classes.

Modelled on fsspec's registry: built-in sensors are named with the dotted path of their class and
the sentence to show when an optional dependency is missing; third-party sensors plug in through
the entry-point group `flyte_sensor_connector.sensors`. Sensor modules are imported once, when the
registry is loaded at start-up, never on the request path, and never by a name taken from a request.
The heavy packages a built-in sensor needs (SQLAlchemy, aiohttp) are only looked up at start-up, so
a missing one still gives its sentence; the sensor imports them on first use (sensors.lazy).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from . import lazy
from .base import Sensor, short, short_list

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "flyte_sensor_connector.sensors"


@dataclass(frozen=True)
class Builtin:
    """A catalog sensor named by where it lives, and what to say if it cannot be imported."""

    target: str
    missing: str = ""
    #: Top-level packages the sensor imports on first use; checked (not imported) at start-up.
    requires: tuple[str, ...] = ()


#: The built-in catalog. `missing` is shown when an optional extra is not installed.
BUILTINS: tuple[Builtin, ...] = (
    Builtin("sensors.file:FileSensor"),
    Builtin("sensors.glob:GlobSensor"),
    Builtin("sensors.time:TimeSensor"),
    Builtin(
        "sensors.http:HttpSensor",
        "HttpSensor needs aiohttp, which is not installed on the connector; "
        "reinstall flyte-sensor-connector.",
        ("aiohttp",),
    ),
    Builtin(
        "sensors.sql:SqlSensor",
        "SqlSensor needs SQLAlchemy, which is not installed on the connector; "
        "install flyte-sensor-connector[sql].",
        ("sqlalchemy",),
    ),
)


class UnknownSensorError(KeyError):
    """No sensor is registered under that name."""

    def __str__(self) -> str:
        return str(self.args[0])


class UnavailableSensorError(LookupError):
    """The sensor is known but cannot run here (an optional dependency is missing)."""


class SensorRegistry:
    """Maps sensor names and aliases to sensor classes."""

    def __init__(self) -> None:
        self._sensors: dict[str, type[Sensor[Any]]] = {}
        self._aliases: dict[str, str] = {}
        self._unavailable: dict[str, str] = {}

    def register(self, cls: type[Sensor[Any]], *, clobber: bool = False) -> None:
        """Add a sensor class; refuses to replace a different class of the same name unless clobber."""
        if not (isinstance(cls, type) and issubclass(cls, Sensor)):
            raise TypeError(f"{cls!r} is not a Sensor subclass")
        for key in (cls.name, *cls.aliases):
            owner = self._sensors.get(self._aliases.get(key, key))
            if owner is not None and owner is not cls and not clobber:
                raise ValueError(
                    f"sensor name {key!r} is already taken by {owner.__module__}.{owner.__qualname__}"
                )
        self._sensors[cls.name] = cls
        self._unavailable.pop(cls.name, None)
        for alias in cls.aliases:
            self._aliases[alias] = cls.name

    def mark_unavailable(self, name: str, reason: str) -> None:
        """Remember that `name` exists but cannot be loaded, so requests for it get `reason`."""
        self._unavailable[name] = reason

    def resolve(self, name: str) -> type[Sensor[Any]]:
        """The sensor registered under `name` or one of its aliases."""
        key = self._aliases.get(name, name)
        if key in self._sensors:
            return self._sensors[key]
        if key in self._unavailable:
            raise UnavailableSensorError(self._unavailable[key])
        known = short_list(sorted(self._sensors)) or "none"
        raise UnknownSensorError(f"no sensor is registered as {short(name)!r}; registered sensors: {known}.")

    def __iter__(self) -> Iterator[type[Sensor[Any]]]:
        return iter(sorted(self._sensors.values(), key=lambda c: c.name))

    def __len__(self) -> int:
        return len(self._sensors)

    @property
    def unavailable(self) -> dict[str, str]:
        """Sensors that are known but could not be loaded, with the reason."""
        return dict(self._unavailable)

    def config_classes(self) -> set[type[Any]]:
        """The config classes registered sensors declare: all a resource_meta may unpickle."""
        return {cls.config_type for cls in self._sensors.values()}


def _load_target(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load_registry(builtins: Iterable[Builtin] = BUILTINS, *, plugins: bool = True) -> SensorRegistry:
    """Build the registry from the built-in catalog and installed entry points (start-up only)."""
    registry = SensorRegistry()
    for item in builtins:
        name = item.target.rpartition(":")[2]
        absent = [package for package in item.requires if not lazy.installed(package)]
        if absent:
            reason = item.missing or f"{name} needs {', '.join(absent)}, which is not installed."
            log.info("sensor %s unavailable: %s", name, reason)
            registry.mark_unavailable(name, reason)
            continue
        try:
            registry.register(_load_target(item.target))
        except ImportError as exc:
            reason = item.missing or f"{name} cannot be loaded: {exc}."
            log.info("sensor %s unavailable: %s", name, reason)
            registry.mark_unavailable(name, reason)
    if plugins:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                registry.register(ep.load())
            except ImportError as exc:
                reason = (
                    f"{ep.name} (from {ep.value}) needs a package that is not installed: {exc.name or exc}."
                )
                log.warning("sensor plugin %s unavailable: %s", ep.name, reason)
                registry.mark_unavailable(ep.name, reason)
            except (TypeError, ValueError, AttributeError) as exc:
                log.error("sensor plugin %s rejected: %s", ep.name, exc)
    return registry
