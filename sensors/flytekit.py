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

Policy: every class takes `poke_interval`, `backoff`, `max_poke_interval`, `deadline` (seconds or
timedelta) and `soft_fail`, checked at declaration by `sensors.policy.Policy.parse` and written into
`sensor_config` beside the sensor's own fields. With `soft_fail` the task declares a boolean output
`met` (False when the deadline passed) unless `met=False`; `met=True` declares it without soft_fail.
Local runs follow the same schedule and deadline through the same Policy functions. For stock
`flytekit.sensor.FileSensor`, `sensor_config=sensor_policy(...)` carries the policy to the connector.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import inspect
import logging
import time
from collections.abc import Mapping
from typing import Any

from flytekit import FlyteContextManager
from flytekit.core.interface import Interface, transform_interface_to_typed_interface
from flytekit.core.type_engine import TypeEngine
from flytekit.sensor.base_sensor import BaseSensor

from . import lazy
from .base import PermanentError, PokeContext, PokeResult, TransientError
from .declaration import MET_OUTPUT, CatalogTask, Declaration
from .file import FileSensor as CatalogFileSensor
from .glob import GlobSensor as CatalogGlobSensor
from .http import HttpSensor as CatalogHttpSensor
from .policy import Policy, awaited
from .sql import SqlSensor as CatalogSqlSensor
from .store import default_store
from .time import TimeSensor as CatalogTimeSensor
from .values import jsonable

log = logging.getLogger(__name__)

#: Seconds between local pokes without a `poke_interval` (flytekit's own local pace).
LOCAL_POLL_SECONDS = 1.0
#: The time budget of one local poke.
LOCAL_POKE_TIMEOUT = 30.0


class LocalClock:
    """Time for local runs; tests swap `sensors.flytekit.local_clock` for a fake one."""

    def now(self) -> dt.datetime:
        """The current time, timezone-aware."""
        return dt.datetime.now(dt.UTC)

    def sleep(self, seconds: float) -> None:
        """Wait between local pokes."""
        time.sleep(seconds)


local_clock = LocalClock()


@dataclasses.dataclass
class _LocalRun:
    """What one local sensor execution remembers between flytekit's pokes (see `poke_inputs`)."""

    created_at: dt.datetime
    slot: int | None = None


# flytekit's local engine builds a new task object for every poke, so each local execution's start
# and last due slot are remembered per class, config and inputs for this process.
_local_runs: dict[str, _LocalRun] = {}


class SensorDeadlineError(PermanentError):
    """A local run's deadline passed without the condition being met (and soft_fail was off)."""


def sensor_policy(
    *,
    poke_interval: float | dt.timedelta | None = None,
    backoff: float | None = None,
    max_poke_interval: float | dt.timedelta | None = None,
    deadline: float | dt.timedelta | None = None,
    soft_fail: bool | None = None,
) -> SensorConfigDict:
    """A `sensor_config` holding only the policy, for stock flytekit sensors:

        FileSensor(name="wait", sensor_config=sensor_policy(poke_interval=300, deadline=6 * 3600))

    The connector honours it; stock flytekit's local run ignores any sensor_config.
    """
    given = {
        "poke_interval": poke_interval,
        "backoff": backoff,
        "max_poke_interval": max_poke_interval,
        "deadline": deadline,
        "soft_fail": soft_fail,
    }
    return SensorConfigDict(Policy.parse({k: v for k, v in given.items() if v is not None}).to_dict())


class SensorConfigDict:
    """The `sensor_config` of a template: the config fields the author set, as plain JSON values."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = {k: jsonable(v) for k, v in values.items()}

    def to_dict(self) -> dict[str, Any]:
        """What flytekit puts in the template's custom `sensor_config`."""
        return dict(self.values)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SensorConfigDict:
        """The inverse of to_dict."""
        return cls(d)


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


class CatalogSensorTask(CatalogTask, BaseSensor):  # type: ignore[misc]  # flytekit is untyped
    """A flytekit sensor task whose poke is a catalog sensor's poke."""

    framework = "flytekit"

    @classmethod
    def task_keywords(cls) -> frozenset[str]:
        return _task_keywords()

    def task_arguments(self, name: str, declaration: Declaration) -> dict[str, Any]:
        serialized = declaration.sensor_config
        sensor_config = SensorConfigDict(serialized) if serialized else None
        return {"name": name, "sensor_config": sensor_config, **declaration.task_options}

    def built(self) -> None:
        self.policy = self.declaration.policy
        self.catalog_config = self.declaration.config
        self.output_names = self.declaration.outputs
        if self.output_names:  # declared outputs replace the interface BaseSensor made (none)
            interface = Interface(
                inputs=self.python_interface.inputs_with_defaults,
                outputs={n: self.declaration.offered[n] for n in self.output_names},
            )
            self._python_interface = interface
            self._interface = transform_interface_to_typed_interface(
                interface, allow_partial_artifact_id_binding=True
            )

    def _prepared(self, inputs: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        checked = self.catalog.check_inputs(dict(inputs))
        sensor_outputs = tuple(n for n in self.output_names if n != MET_OUTPUT)
        return self.catalog.prepare(self.catalog_config, checked, sensor_outputs), checked

    async def poke_once(self, inputs: Mapping[str, Any], created_at: dt.datetime | None = None) -> PokeResult:
        """One poke of the catalog sensor, exactly as the connector would do it."""
        config, checked = self._prepared(inputs)
        if created_at is None:
            created_at = self._local_run(config, checked).created_at
        return await self._poke(config, checked, created_at)

    async def _poke(self, config: Any, checked: Mapping[str, Any], created_at: dt.datetime) -> PokeResult:
        ctx = PokeContext(created_at=created_at, timeout=LOCAL_POKE_TIMEOUT, store=default_store())
        async with asyncio.timeout(LOCAL_POKE_TIMEOUT):
            return await self.catalog(config).poke(checked, ctx)

    def _local_run(self, config: Any, checked: Mapping[str, Any]) -> _LocalRun:
        key = f"{self.catalog.name}|{config!r}|{self.policy!r}|{sorted(checked.items())!r}"
        return _local_runs.setdefault(key, _LocalRun(local_clock.now()))

    async def poke_inputs(self, **inputs: Any) -> bool:
        """flytekit's `poke` contract: True once met; a transient failure means not yet.

        flytekit's local engine calls this about once a second; the policy decides which calls poke,
        and past the deadline the run fails (or, with soft_fail, succeeds).
        """
        config, checked = self._prepared(inputs)
        run = self._local_run(config, checked)
        decision = self.policy.decide(run.created_at, local_clock.now(), run.slot)
        if not decision.due:
            return False  # not due: the connector would answer its last outcome without poking
        run.slot = decision.slot
        expired = decision.expired
        try:
            result = await self._poke(config, checked, run.created_at)
        except TransientError as exc:
            log.warning("%s: %s", self.catalog.name, exc)
            met = False
        else:
            log.info("%s: %s", self.catalog.name, result.message)
            met = result.met
        if met or not expired:
            return met
        return self._at_deadline(inputs)

    def _at_deadline(self, inputs: Mapping[str, Any]) -> bool:
        """Past the deadline and not met: raise SensorDeadlineError, or True (succeed) with soft_fail."""
        config, checked = self._prepared(inputs)
        facts = self.catalog(config).describe(checked)
        message = self.policy.deadline_message(awaited(facts, self.catalog.name))
        if not self.policy.soft_fail:
            raise SensorDeadlineError(message)
        log.warning("%s: %s", self.catalog.name, message)
        return True

    def execute(self, **kwargs: Any) -> Any:
        """Local run: flytekit's sensor engine for a plain sensor, else a poll loop following the policy."""
        if not self.output_names and self.policy.is_default:
            return super().execute(**kwargs)
        values = self.run_locally(kwargs)
        ctx = FlyteContextManager.current_context()
        return TypeEngine.dict_to_literal_map(ctx, values, self.python_interface.outputs)

    def run_locally(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Poke until met, waiting as the policy says between pokes; the declared outputs' values.

        The same decision as on a cluster (`Policy.decide`; it wakes at `Policy.next_due` from the
        start of this run), with one last poke at the deadline; then SensorDeadlineError, or with
        soft_fail `met=False`.
        """
        from flytekit.extend.backend.base_connector import local_connector_loop

        policy = self.policy
        created_at = local_clock.now()
        last_slot: int | None = None
        while True:
            now = local_clock.now()
            decision = policy.decide(created_at, now, last_slot)
            if decision.due:
                last_slot = decision.slot
                try:
                    result = local_connector_loop.run_until_complete(self.poke_once(inputs, created_at))
                except TransientError as exc:
                    log.warning("%s: %s", self.catalog.name, exc)
                else:
                    if result.met:
                        return {n: True if n == MET_OUTPUT else result.outputs[n] for n in self.output_names}
                    log.info("%s: %s", self.catalog.name, result.message)
            if decision.expired:
                self._at_deadline(inputs)  # raises unless soft_fail
                return dict.fromkeys(self.output_names, False)
            elapsed = (now - created_at).total_seconds()
            due = policy.next_due(elapsed)
            wake = elapsed + LOCAL_POLL_SECONDS if due is None else due
            if policy.deadline is not None:
                wake = min(wake, policy.deadline)
            # Measured after the poke, so a slow poke does not push the schedule back.
            local_clock.sleep(max(0.0, wake - (local_clock.now() - created_at).total_seconds()))


class FileSensor(CatalogSensorTask):
    """Waits until `path` exists (local or object store); config `min_size`, `min_age`."""

    catalog = CatalogFileSensor

    async def poke(self, path: str) -> bool:
        return await self.poke_inputs(path=path)


class GlobSensor(CatalogSensorTask):
    """Waits until `pattern` matches `min_count` paths, with an optional `marker` file beside them and,
    with `quiet_for` (seconds), until the newest match has not been modified for that long."""

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
        if not lazy.installed("sqlalchemy"):  # sensors.sql imports it on the first poke only
            raise ImportError(
                "SqlSensor needs SQLAlchemy; install flytekitplugins-sensor-connector[sql] "
                "(or flyte-sensor-connector[sql] in a checkout)."
            )
        super().__init__(name, config, **kwargs)

    async def poke(self, query: str) -> bool:
        return await self.poke_inputs(query=query)
