"""The catalog's sensors as Flyte 2 tasks (the `flyte` SDK 2.12), served by flyte-sensor-connector.

    import flyte
    from flyteplugins.sensor_connector import FileSensor

    wait_for_file = FileSensor(name="wait_for_file", poke_interval=30, deadline=6 * 3600)
    sensors = flyte.TaskEnvironment.from_task("sensors", wait_for_file)
    env = flyte.TaskEnvironment(name="etl", depends_on=[sensors])

    @env.task
    async def main(path: str) -> None:
        await wait_for_file(path=path)

Each class is a connector-backed task: `flyte.extend.TaskTemplate` with `AsyncConnectorExecutorMixin`,
task type `sensor` version 0, and a `custom` laid out as flytekit lays it out (`sensor_module`,
`sensor_name`, `sensor_config`), so on a cluster Flyte 2's executor hands it to the connector, which
serves it with the catalog sensor of that name. Run locally (`flyte.run` in local mode), the SDK calls
the `AsyncConnector` registered for `sensor`: `SensorConnector`, registered when this module is imported
(and under the `flyte.connectors` entry point), which pokes in-process with the very same catalog code,
following the same policy.

Every class takes the sensor's own config fields and the policy (`poke_interval`, `backoff`,
`max_poke_interval`, `deadline` in seconds or as a timedelta, `soft_fail`), checked at declaration with
the sentences the connector would give. `outputs=True` (or a tuple of names) declares the sensor's
outputs; with `soft_fail` (or `met=True`) the task declares the boolean output `met`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import inspect
import logging
from typing import Any

from flyte.connectors import (
    AsyncConnector,
    AsyncConnectorExecutorMixin,
    ConnectorRegistry,
    Resource,
    ResourceMeta,
)
from flyte.extend import TaskTemplate
from flyte.models import NativeInterface, SerializationContext
from flyteidl2.core.execution_pb2 import TaskExecution
from google.protobuf import json_format

from .base import PermanentError, PokeContext, Sensor, TransientError, _is_optional
from .declaration import MET_OUTPUT, CatalogTask, Declaration
from .file import FileSensor as CatalogFileSensor
from .glob import GlobSensor as CatalogGlobSensor
from .http import HttpSensor as CatalogHttpSensor
from .policy import Policy, awaited
from .sql import SqlSensor as CatalogSqlSensor
from .store import default_store
from .time import TimeSensor as CatalogTimeSensor

log = logging.getLogger(__name__)

TASK_TYPE = "sensor"
TASK_TYPE_VERSION = 0
#: The time budget of one local poke.
LOCAL_POKE_TIMEOUT = 30.0
#: The catalog sensors this package offers, by name: a template is only ever served by one of these.
CATALOG: dict[str, type[Sensor[Any]]] = {
    cls.name: cls
    for cls in (CatalogFileSensor, CatalogGlobSensor, CatalogTimeSensor, CatalogHttpSensor, CatalogSqlSensor)
}


class SensorTask(CatalogTask, AsyncConnectorExecutorMixin, TaskTemplate):  # type: ignore[misc]
    """A connector-backed Flyte 2 task whose poke is a catalog sensor's poke."""

    framework = "flyte"

    @classmethod
    def task_keywords(cls) -> frozenset[str]:
        """The keywords TaskTemplate takes (image, retries, ...): passed on to it, never taken as config."""
        return frozenset(f.name for f in dataclasses.fields(TaskTemplate) if f.init)

    def task_arguments(self, name: str, declaration: Declaration) -> dict[str, Any]:
        # Required inputs have no default; optional ones (e.g. TimeSensor's `at`) default to None.
        inputs = {
            n: (tp, None if _is_optional(tp) else inspect.Parameter.empty)
            for n, tp in self.catalog.inputs.items()
        }
        outputs = {n: declaration.offered[n] for n in declaration.outputs}
        return {
            "name": name,
            "interface": NativeInterface(inputs, outputs),
            "task_type": TASK_TYPE,
            "task_type_version": TASK_TYPE_VERSION,
            "image": None,  # nothing runs in a container: the connector pokes
            **declaration.task_options,
        }

    def custom_config(self, sctx: SerializationContext) -> dict[str, Any]:
        """The template's `custom`, as flytekit's sensors write it and the connector reads it."""
        return {
            "sensor_module": __name__,
            "sensor_name": self.catalog.name,
            "sensor_config": self.declaration.sensor_config,
        }


class FileSensor(SensorTask):
    """Waits until `path` exists (local or object store); config `min_size`, `min_age`."""

    catalog = CatalogFileSensor


class GlobSensor(SensorTask):
    """Waits until `pattern` matches `min_count` paths (and `marker` exists); outputs `paths`."""

    catalog = CatalogGlobSensor


class TimeSensor(SensorTask):
    """Waits until `at` (or `delay` seconds after the task started)."""

    catalog = CatalogTimeSensor


class HttpSensor(SensorTask):
    """Waits until `url` answers as expected (status, body, JSON value); outputs `status`, `body`."""

    catalog = CatalogHttpSensor


class SqlSensor(SensorTask):
    """Waits until `query` returns a true first value, on the database `connection_secret` names."""

    catalog = CatalogSqlSensor


@dataclasses.dataclass
class SensorMeta(ResourceMeta):  # type: ignore[misc]
    """One local sensor execution: what to poke, and since when."""

    sensor: str
    sensor_config: dict[str, Any]
    inputs: dict[str, Any]
    outputs: list[str]
    created_at: float
    #: The policy slot of the last poke (see sensors.policy): a Get in the same slot does not poke.
    slot: int | None = None
    last: str = ""


class SensorConnector(AsyncConnector):  # type: ignore[misc]
    """Task type `sensor` in-process, for `flyte.run` in local mode: one poke per due Get, same policy.

    On a cluster this is never called: Flyte 2's executor sends the task to flyte-sensor-connector.
    """

    name = "Sensor"
    task_type_name = TASK_TYPE
    task_type_version = TASK_TYPE_VERSION
    metadata_type = SensorMeta

    async def create(
        self,
        task_template: Any,
        output_prefix: str,
        inputs: dict[str, Any] | None = None,
        task_execution_metadata: Any = None,
        **kwargs: Any,
    ) -> SensorMeta:
        custom = json_format.MessageToDict(task_template.custom)
        name = custom.get("sensor_name")
        cls = CATALOG.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ValueError(f"this package has no sensor named {name!r}; it has {', '.join(CATALOG)}.")
        raw = custom.get("sensor_config") or {}
        policy, own = Policy.split(raw)
        config = cls.parse_config(own)
        checked = cls.check_inputs({k: v for k, v in (inputs or {}).items() if v is not None})
        # flyteidl2: an interface's variables are a list of {key, value} entries.
        outputs = [entry.key for entry in task_template.interface.outputs.variables]
        cls.prepare(config, checked, tuple(o for o in outputs if o != MET_OUTPUT))
        del policy
        created = dt.datetime.now(dt.UTC).timestamp()
        return SensorMeta(cls.name, dict(raw), checked, outputs, created)

    async def get(self, resource_meta: SensorMeta, **kwargs: Any) -> Resource:
        cls = CATALOG[resource_meta.sensor]
        policy, own = Policy.split(resource_meta.sensor_config)
        config = cls.prepare(
            cls.parse_config(own),
            resource_meta.inputs,
            tuple(o for o in resource_meta.outputs if o != MET_OUTPUT),
        )
        sensor = cls(config)
        created_at = dt.datetime.fromtimestamp(resource_meta.created_at, dt.UTC)
        # The connector's decision: poke only in a new slot of the schedule; past the deadline, once more.
        decision = policy.decide(created_at, dt.datetime.now(dt.UTC), resource_meta.slot)
        if not decision.due:
            return Resource(phase=TaskExecution.RUNNING, message=resource_meta.last)
        resource_meta.slot = decision.slot
        expired = decision.expired
        context = PokeContext(created_at=created_at, timeout=LOCAL_POKE_TIMEOUT, store=default_store())
        try:
            async with asyncio.timeout(LOCAL_POKE_TIMEOUT):
                result = await sensor.poke(resource_meta.inputs, context)
        except PermanentError as exc:
            return Resource(phase=TaskExecution.FAILED, message=str(exc))
        except (TransientError, TimeoutError) as exc:
            message = str(exc) or f"the poke ran out of its {LOCAL_POKE_TIMEOUT:g}s budget"
            log.warning("%s: %s", cls.name, message)
            met, resource_meta.last = False, message
        else:
            log.info("%s: %s", cls.name, result.message)
            met, resource_meta.last = result.met, result.message
            if met:
                values = {**result.outputs, MET_OUTPUT: True}
                outputs = {n: values[n] for n in resource_meta.outputs}
                return Resource(
                    phase=TaskExecution.SUCCEEDED, message=result.message, outputs=outputs or None
                )
        if not expired:
            return Resource(phase=TaskExecution.RUNNING, message=resource_meta.last)
        message = policy.deadline_message(awaited(sensor.describe(resource_meta.inputs), cls.name))
        if not policy.soft_fail:
            return Resource(phase=TaskExecution.FAILED, message=message)
        log.warning("%s: %s", cls.name, message)
        return Resource(
            phase=TaskExecution.SUCCEEDED,
            message=message,
            outputs=dict.fromkeys(resource_meta.outputs, False) or None,
        )

    async def delete(self, resource_meta: SensorMeta, **kwargs: Any) -> None:
        """Nothing runs between pokes: nothing to stop."""


# What `flyte.run` in local mode calls for task type `sensor` (the SDK looks it up by type).
ConnectorRegistry.register(SensorConnector(), override=True)
