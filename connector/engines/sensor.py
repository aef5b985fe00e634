"""The sensor engine: task category (sensor, 0), flytekit's template shape, one poke per Get."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2, metrics_pb2, tasks_pb2
from google.protobuf import json_format, struct_pb2

from sensors.base import ConfigError, PermanentError, PokeContext, Sensor, TransientError
from sensors.registry import SensorRegistry, UnavailableSensorError, UnknownSensorError

from .. import literals
from ..codec import MAX_RESOURCE_META_BYTES, Codec, InvalidResourceMeta, SensorState, task_id
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..registry import TaskCategory
from . import sensor_report
from .base import Engine, TimeWindow

log = logging.getLogger(__name__)

Phase = execution_pb2.TaskExecution.Phase
SENSOR_CATEGORY = TaskCategory("sensor", 0)
#: Outputs travel in the GetTask response; keep them well inside gRPC's default 4 MiB message.
MAX_OUTPUT_BYTES = 1024 * 1024
#: Modules whose classes may be named by their bare class name (our own authoring classes).
_OWN_MODULES = ("", "sensors", "sensors.flytekit", "flytekitplugins.sensor_connector.flytekit")


@dataclass(frozen=True)
class PokeOutcome:
    """One poke, as the engine saw it."""

    #: met | waiting | transient | timeout | failed | error
    kind: str
    message: str
    started_at: dt.datetime
    seconds: float
    details: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def phase(self) -> int:
        """The Flyte task phase this outcome means."""
        phase: int = {"met": Phase.SUCCEEDED, "failed": Phase.FAILED}.get(self.kind, Phase.RUNNING)
        return phase


class SensorEngine(Engine):
    """Runs catalog sensors for templates serialized by flytekit's BaseSensor subclasses."""

    agent_name = "Sensor"

    def __init__(
        self,
        sensors: SensorRegistry,
        codec: Codec,
        *,
        poke_timeout: float = 5.0,
        category: TaskCategory = SENSOR_CATEGORY,
        on_poke: Callable[[str, PokeOutcome], None] | None = None,
    ) -> None:
        self.sensors = sensors
        self.codec = codec
        self.poke_timeout = poke_timeout
        self.category = category
        #: Called after every poke with the sensor name and outcome (the server counts them).
        self.on_poke = on_poke

    # -- Create -------------------------------------------------------------------------------
    async def create(self, request: agent_pb2.CreateTaskRequest) -> bytes:
        """Check the template and inputs against the sensor and pack them into signed resource_meta."""
        template = request.template
        if not template.HasField("custom") or not template.custom.fields:
            raise InvalidArgument(
                "the task template has no `custom` field; a sensor task names its sensor there."
            )
        custom = json_format.MessageToDict(template.custom)
        module, name = custom.get("sensor_module"), custom.get("sensor_name")
        if not isinstance(name, str) or not name or not isinstance(module, str | None):
            raise InvalidArgument("the task template's custom field has no sensor_name string.")
        cls = self.resolve(module or "", name)
        try:
            config = cls.parse_config(custom.get("sensor_config"))
            values = dict(custom.get("inputs") or {})
            values.update(literals.to_dict(request.inputs))
            inputs = cls.check_inputs(values)
            self._check_outputs(cls, template)
            config = cls.prepare(config, inputs, tuple(template.interface.outputs.variables))
        except (ConfigError, literals.LiteralError) as exc:
            raise InvalidArgument(str(exc)) from None
        state = SensorState(
            category=self.category,
            sensor=cls.name,
            config=config,
            inputs=inputs,
            created_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
            outputs=tuple(template.interface.outputs.variables),
        )
        try:
            blob = self.codec.encode(state)
        except TypeError as exc:
            raise InvalidArgument(f"{cls.name} inputs cannot be kept: {exc}.") from None
        if len(blob) > MAX_RESOURCE_META_BYTES:  # refuse now rather than fail every Get
            raise InvalidArgument(
                f"{cls.name} config and inputs take {len(blob)} bytes in resource_meta, "
                f"more than the {MAX_RESOURCE_META_BYTES} allowed; shorten them."
            )
        return blob

    def resolve(self, module: str, name: str) -> type[Sensor[Any]]:
        """The catalog sensor a template names, by its flytekit class path or, for our own, its name."""
        try:
            return self.sensors.resolve(f"{module}.{name}" if module else name)
        except UnknownSensorError as exc:
            if module in _OWN_MODULES:
                try:
                    return self.sensors.resolve(name)
                except UnknownSensorError:
                    pass
            # A plugin that failed to import registered no aliases; its entry-point name is all we know.
            reason = self.sensors.unavailable.get(name)
            if reason is not None:
                raise FailedPrecondition(reason) from None
            raise NotFound(str(exc)) from None
        except UnavailableSensorError as exc:
            raise FailedPrecondition(str(exc)) from None

    def _check_outputs(self, cls: type[Sensor[Any]], template: tasks_pb2.TaskTemplate) -> None:
        for out_name, var in template.interface.outputs.variables.items():
            if out_name not in cls.outputs:
                offered = ", ".join(cls.outputs) or "none"
                raise InvalidArgument(
                    f"the template declares output {out_name!r}, but {cls.name} produces {offered}."
                )
            want = literals.literal_type(cls.outputs[out_name])
            if var.type != want:
                raise InvalidArgument(
                    f"the template declares output {out_name!r} as {json_format.MessageToDict(var.type)}, "
                    f"but {cls.name} produces {json_format.MessageToDict(want)}."
                )

    # -- Get / Delete -------------------------------------------------------------------------
    def verify(self, resource_meta: bytes) -> SensorState:
        """The state in resource_meta, once its signature and category check out."""
        try:
            state = self.codec.decode(resource_meta)
        except InvalidResourceMeta as exc:
            raise InvalidArgument(str(exc)) from None
        if state.category != self.category:
            raise InvalidArgument(
                f"resource_meta belongs to task category {state.category}, not {self.category}."
            )
        return state

    def load(self, resource_meta: bytes) -> tuple[SensorState, Sensor[Any]]:
        """Verify resource_meta and build the sensor it names."""
        state = self.verify(resource_meta)
        try:
            cls = self.sensors.resolve(state.sensor)
        except (UnknownSensorError, UnavailableSensorError) as exc:
            raise FailedPrecondition(f"this connector cannot run {state.sensor} any more: {exc}") from None
        return state, cls(state.config)

    async def poke(self, state: SensorState, sensor: Sensor[Any]) -> PokeOutcome:
        """Poke once within the poke timeout and sort the outcome."""
        outcome = await self._poke(state, sensor)
        if self.on_poke is not None:
            self.on_poke(state.sensor, outcome)
        return outcome

    async def _poke(self, state: SensorState, sensor: Sensor[Any]) -> PokeOutcome:
        started_at = dt.datetime.now(dt.UTC)
        t0 = time.perf_counter()
        ctx = PokeContext(created_at=state.created_at, timeout=self.poke_timeout)

        def done(kind: str, message: str, **extra: Any) -> PokeOutcome:
            return PokeOutcome(kind, message, started_at, time.perf_counter() - t0, **extra)

        try:
            async with asyncio.timeout(self.poke_timeout):
                result = await sensor.poke(state.inputs, ctx)
        except TimeoutError:
            return done("timeout", f"the poke ran out of its {self.poke_timeout:g}s budget; will poke again.")
        except PermanentError as exc:
            return done("failed", str(exc))
        except TransientError as exc:
            return done("transient", str(exc))
        except Exception as exc:  # a sensor bug must not turn into a gRPC failure of the task
            log.exception("%s poke raised %s", state.sensor, type(exc).__name__)
            return done(
                "error", f"the poke failed unexpectedly ({type(exc).__name__}: {exc}); will poke again."
            )
        kind = "met" if result.met else "waiting"
        return done(kind, result.message, details=dict(result.details), outputs=dict(result.outputs))

    async def get(self, resource_meta: bytes) -> agent_pb2.Resource:
        """Poke once and report the phase."""
        state, sensor = self.load(resource_meta)
        outcome, outputs = self._settle(state, sensor, await self.poke(state, sensor))
        self._log_outcome(resource_meta, state, outcome)
        return self.resource(state, sensor, outcome, outputs)

    def _log_outcome(self, resource_meta: bytes, state: SensorState, outcome: PokeOutcome) -> None:
        # Propeller asks every 30 s or so: a healthy wait is logged at DEBUG only.
        level = {"met": logging.INFO, "waiting": logging.DEBUG}.get(outcome.kind, logging.WARNING)
        if not log.isEnabledFor(level):
            return
        phase = Phase.Name(outcome.phase)
        extra = {
            "operation": "get",
            "category": str(self.category),
            "sensor": state.sensor,
            "phase": phase,
            "task": task_id(resource_meta),
        }
        log.log(level, "%s %s (%s): %s", state.sensor, phase, outcome.kind, outcome.message, extra=extra)

    def resource(
        self,
        state: SensorState,
        sensor: Sensor[Any],
        outcome: PokeOutcome,
        outputs: literals_pb2.LiteralMap | None = None,
    ) -> agent_pb2.Resource:
        """The flyteidl Resource for an outcome: phase, message, console info, links, outputs."""
        info = {
            "sensor": state.sensor,
            "awaiting": sensor.describe(state.inputs),
            "created_at": state.created_at.isoformat(),
            "last_poke": outcome.started_at.isoformat(timespec="seconds"),
            "last_poke_seconds": round(outcome.seconds, 4),
            "outcome": outcome.kind,
        }
        if outcome.details:
            info["details"] = dict(outcome.details)
        custom_info = struct_pb2.Struct()
        custom_info.update(_jsonable(info))
        resource = agent_pb2.Resource(phase=outcome.phase, message=outcome.message, custom_info=custom_info)
        for link in sensor.links(state.inputs):
            resource.log_links.add(name=link.name, uri=link.uri)
        if outputs is not None and outcome.kind == "met":
            resource.outputs.CopyFrom(outputs)
        if outcome.kind == "failed":
            resource.agent_error.CopyFrom(
                agent_pb2.AgentError(
                    code="SENSOR_FAILED",
                    kind=agent_pb2.AgentError.NON_RECOVERABLE,
                    origin=execution_pb2.ExecutionError.USER,
                )
            )
        return resource

    def _settle(
        self, state: SensorState, sensor: Sensor[Any], outcome: PokeOutcome
    ) -> tuple[PokeOutcome, literals_pb2.LiteralMap | None]:
        """A met outcome with the declared outputs as literals, or failed when they cannot be returned."""
        if outcome.kind != "met" or not state.outputs:
            return outcome, None
        missing = [name for name in state.outputs if name not in outcome.outputs]
        if missing:
            problem = f"{state.sensor} was met but gave no value for output {', '.join(missing)}."
            return replace(outcome, kind="failed", message=problem), None
        declared = {name: type(sensor).outputs[name] for name in state.outputs}
        outputs = literals.outputs_map(outcome.outputs, declared)
        if outputs.ByteSize() > MAX_OUTPUT_BYTES:
            problem = (
                f"{state.sensor} was met, but its outputs take {outputs.ByteSize()} bytes, more than the "
                f"{MAX_OUTPUT_BYTES} a response may carry; narrow what it matches."
            )
            return replace(outcome, kind="failed", message=problem), None
        return outcome, outputs

    async def logs(self, resource_meta: bytes) -> list[agent_pb2.LogLine]:
        """The sensor's story: what it waits for, since when, and what a poke made now finds."""
        state, sensor = self.load(resource_meta)
        outcome = await self.poke(state, sensor)
        return sensor_report.story(state, sensor, outcome, dt.datetime.now(dt.UTC))

    async def metrics(
        self, resource_meta: bytes, queries: Sequence[str], window: TimeWindow
    ) -> list[metrics_pb2.ExecutionMetricResult]:
        """elapsed_seconds over the window and poke_latency_seconds of a poke made now."""
        state, sensor = self.load(resource_meta)
        known, unknown = sensor_report.wanted(queries)
        if unknown:
            log.info(
                "GetTaskMetrics: ignoring unknown queries %s; this engine answers %s",
                ", ".join(unknown),
                ", ".join(sensor_report.QUERIES),
                extra={"operation": "get_metrics", "category": str(self.category), "sensor": state.sensor},
            )
        outcome = await self.poke(state, sensor) if sensor_report.POKE_LATENCY in known else None
        return sensor_report.results(state, outcome, known, window, dt.datetime.now(dt.UTC))

    async def delete(self, resource_meta: bytes) -> None:
        """Nothing runs between pokes, so there is nothing to stop; only the signature is checked."""
        self.verify(resource_meta)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
