"""The authoring side: flytekit sensor tasks for the catalog sensors (extra `flytekit`).

    from sensors.flytekit import GlobSensor

    wait = GlobSensor(name="wait_parquet", min_count=3, marker="_SUCCESS")

    @workflow
    def wf(day: str) -> None:
        wait(pattern=f"s3://bucket/day={day}/*.parquet") >> load()

One declaration works in both places. Serialized, each task's template names `sensors.flytekit`
and the class name, with the config as a dict, and the connector serves it with the catalog sensor
of that name. Run locally (`pyflyte run` without a cluster), flytekit's own sensor engine builds
the class from the same dict and awaits `poke(**inputs)`, which runs the very same catalog code.

Outputs: flytekit's local sensor engine cannot return outputs, so tasks declare none by default.
`outputs=True` (or a tuple of output names) declares the catalog sensor's outputs in the task
interface; such a task then runs locally through its own poll loop (same poke code) that fills
them, and on a cluster the connector returns them when the sensor is met.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from flytekit import FlyteContextManager
from flytekit.core.interface import Interface, transform_interface_to_typed_interface
from flytekit.core.type_engine import TypeEngine
from flytekit.sensor.base_sensor import BaseSensor

from .base import ConfigError, PokeContext, PokeResult, Sensor, TransientError
from .file import FileSensor as CatalogFileSensor
from .glob import GlobSensor as CatalogGlobSensor
from .http import HttpSensor as CatalogHttpSensor
from .time import TimeSensor as CatalogTimeSensor

try:
    from .sql import SqlSensor as CatalogSqlSensor
except ImportError:  # the `sql` extra is not installed: SqlSensor says so when declared
    CatalogSqlSensor = None  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

#: Seconds between pokes when a task runs locally through its own loop (tasks with outputs).
LOCAL_POLL_SECONDS = 1.0
#: The time budget of one local poke.
LOCAL_POKE_TIMEOUT = 30.0

# When each local sensor execution was first poked. flytekit's local engine builds a new task object
# for every poke, so "created" is remembered per class, config and inputs for this process.
_first_poked: dict[str, dt.datetime] = {}


class SensorConfigDict:
    """The `sensor_config` of a template: the config fields the author set, as plain JSON values."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = {k: _jsonable(v) for k, v in values.items()}

    def to_dict(self) -> dict[str, Any]:
        """What flytekit puts in the template's custom `sensor_config`."""
        return dict(self.values)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SensorConfigDict:
        """The inverse of to_dict."""
        return cls(d)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


@functools.cache
def _task_keywords() -> frozenset[str]:
    """Keyword arguments flytekit's task classes under BaseSensor take (timeout, metadata, ...)."""
    names: set[str] = set()
    for klass in BaseSensor.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                names.add(param.name)
    return frozenset(names - {"self", "name", "sensor_config", "task_type", "task_config", "interface"})


class CatalogSensorTask(BaseSensor):  # type: ignore[misc]  # flytekit is untyped
    """A flytekit sensor task whose poke is a catalog sensor's poke."""

    catalog: ClassVar[type[Sensor[Any]]]

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any] | None = None,
        *,
        outputs: bool | Sequence[str] = False,
        **kwargs: Any,
    ) -> None:
        fields = {f.name for f in dataclasses.fields(self.catalog.config_type)}
        values = dict(config or {})
        values.update({k: kwargs.pop(k) for k in list(kwargs) if k in fields})
        # flytekit's task classes swallow unknown keywords, so a misspelt config field would vanish.
        unknown = sorted(set(kwargs) - _task_keywords())
        if unknown:
            raise ConfigError(
                f"{self.catalog.name} has no config field {', '.join(unknown)}; "
                f"it takes {', '.join(sorted(fields)) or 'none'} (and flytekit task options)."
            )
        if outputs is True:
            names = tuple(self.catalog.outputs)
        elif outputs is False:
            names = ()
        else:
            names = tuple(outputs)
        unknown = [n for n in names if n not in self.catalog.outputs]
        if unknown:
            offered = ", ".join(self.catalog.outputs) or "none"
            raise ValueError(f"{self.catalog.name} has no output {', '.join(unknown)}; it offers {offered}.")
        # Fails here, at declaration, with the same sentence the connector would give at Create.
        self.catalog_config = self.catalog.parse_config(values)
        self.output_names = names
        super().__init__(name=name, sensor_config=SensorConfigDict(values) if values else None, **kwargs)
        if names:
            interface = Interface(
                inputs=self.python_interface.inputs_with_defaults,
                outputs={n: self.catalog.outputs[n] for n in names},
            )
            self._python_interface = interface
            self._interface = transform_interface_to_typed_interface(
                interface, allow_partial_artifact_id_binding=True
            )

    async def poke_once(self, inputs: Mapping[str, Any]) -> PokeResult:
        """One poke of the catalog sensor, exactly as the connector would do it."""
        checked = self.catalog.check_inputs(dict(inputs))
        config = self.catalog.prepare(self.catalog_config, checked, self.output_names)
        key = f"{self.catalog.name}|{config!r}|{sorted(checked.items())!r}"
        created_at = _first_poked.setdefault(key, dt.datetime.now(dt.UTC))
        ctx = PokeContext(created_at=created_at, timeout=LOCAL_POKE_TIMEOUT)
        async with asyncio.timeout(LOCAL_POKE_TIMEOUT):
            return await self.catalog(config).poke(checked, ctx)

    async def poke_inputs(self, **inputs: Any) -> bool:
        """flytekit's `poke` contract: True once met; a transient failure means not yet."""
        try:
            result = await self.poke_once(inputs)
        except TransientError as exc:
            log.warning("%s: %s", self.catalog.name, exc)
            return False
        log.info("%s: %s", self.catalog.name, result.message)
        return result.met

    def execute(self, **kwargs: Any) -> Any:
        """Local run. Without outputs, flytekit's sensor engine; with outputs, a poll loop that fills them."""
        if not self.output_names:
            return super().execute(**kwargs)
        from flytekit.extend.backend.base_connector import local_connector_loop

        while True:
            try:
                result = local_connector_loop.run_until_complete(self.poke_once(kwargs))
            except TransientError as exc:
                log.warning("%s: %s", self.catalog.name, exc)
            else:
                if result.met:
                    break
                log.info("%s: %s", self.catalog.name, result.message)
            time.sleep(LOCAL_POLL_SECONDS)
        values = {n: result.outputs[n] for n in self.output_names}
        ctx = FlyteContextManager.current_context()
        return TypeEngine.dict_to_literal_map(ctx, values, self.python_interface.outputs)


class FileSensor(CatalogSensorTask):
    """Waits until `path` exists (local or object store); config `min_size`, `min_age`."""

    catalog = CatalogFileSensor

    async def poke(self, path: str) -> bool:
        return await self.poke_inputs(path=path)


class GlobSensor(CatalogSensorTask):
    """Waits until `pattern` matches `min_count` paths, with an optional `marker` file beside them."""

    catalog = CatalogGlobSensor

    async def poke(self, pattern: str) -> bool:
        return await self.poke_inputs(pattern=pattern)


class TimeSensor(CatalogSensorTask):
    """Waits until the input `at`, or `delay` seconds (config) after it started."""

    catalog = CatalogTimeSensor

    async def poke(self, at: dt.datetime | None = None) -> bool:
        return await self.poke_inputs(at=at)


class HttpSensor(CatalogSensorTask):
    """Waits until `url` answers an expected status (and body); credentials only by secret name."""

    catalog = CatalogHttpSensor

    async def poke(self, url: str) -> bool:
        return await self.poke_inputs(url=url)


class SqlSensor(CatalogSensorTask):
    """Waits until the first cell of `query` is truthy; the connection URL comes from a named secret."""

    catalog = CatalogSqlSensor

    def __init__(self, name: str, config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if self.catalog is None:
            raise ImportError("SqlSensor needs SQLAlchemy; install flyte-sensor-connector[sql].")
        super().__init__(name, config, **kwargs)

    async def poke(self, query: str) -> bool:
        return await self.poke_inputs(query=query)
