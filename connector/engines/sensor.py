"""The sensor engine: task category (sensor, 0), flytekit's template shape, one poke per Get."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, TypeVar

from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2, metrics_pb2, tasks_pb2
from google.protobuf import json_format

from sensors.base import ConfigError, PermanentError, PokeContext, Sensor, TransientError, short
from sensors.policy import EVERY_GET, Policy, awaited
from sensors.registry import SensorRegistry, UnavailableSensorError, UnknownSensorError
from sensors.store import Store

from .. import literals
from ..codec import (
    MAX_RESOURCE_META_BYTES,
    Codec,
    Execution,
    InvalidResourceMeta,
    SensorState,
    UnknownKey,
    task_id,
)
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..registry import TaskCategory
from . import sensor_report
from .base import Engine, TimeWindow

log = logging.getLogger(__name__)

Phase = execution_pb2.TaskExecution.Phase
T = TypeVar("T")
SENSOR_CATEGORY = TaskCategory("sensor", 0)
#: Outputs travel in the GetTask response; keep them well inside gRPC's default 4 MiB message.
MAX_OUTPUT_BYTES = 1024 * 1024
#: Modules whose classes may be named by their bare class name (our own authoring classes).
_OWN_MODULES = ("", "sensors", "sensors.flytekit", "flytekitplugins.sensor_connector.flytekit")
#: The boolean output any sensor may declare: True when met, False when a soft_fail deadline passed.
MET_OUTPUT = "met"
#: Policy memory slot of an answer given after the deadline: final, never poked again here.
_AFTER_DEADLINE = -2
# Plain ints, looked up once: reading Phase.X goes through the enum wrapper's __getattr__ each time.
_RUNNING = int(Phase.RUNNING)
#: The time now, timezone-aware UTC (a partial, not a lambda: one call less per Get).
_NOW_UTC = functools.partial(dt.datetime.now, dt.UTC)
#: The level an outcome is logged at. Propeller asks every 30 s or so: a healthy wait is DEBUG only.
_LOG_LEVEL = {"met": logging.INFO, "waiting": logging.DEBUG}
_PHASE_OF_KIND = {
    "met": int(Phase.SUCCEEDED),
    "soft_failed": int(Phase.SUCCEEDED),
    "failed": int(Phase.FAILED),
}


@dataclass(slots=True)
class PokeOutcome:
    """One poke, as the engine saw it; never changed once made (`replace` makes another)."""

    #: met | waiting | transient | timeout | failed | error | soft_failed (deadline passed, soft_fail)
    kind: str
    message: str
    started_at: dt.datetime
    seconds: float
    details: Mapping[str, Any]
    outputs: Mapping[str, Any]

    @property
    def phase(self) -> int:
        """The Flyte task phase this outcome means."""
        return _PHASE_OF_KIND.get(self.kind, _RUNNING)


@dataclass(eq=False)
class Task:
    """A verified resource_meta decoded once, with what every Get of it needs; cached per blob."""

    state: SensorState
    sensor: Sensor[Any]
    #: Fields every log line about this task carries.
    log_extra: dict[str, Any]
    #: The response parts that do not change between Gets (console info and links), serialized.
    base: bytes
    #: What every poke of this task is told (fixed: creation time and the poke budget).
    context: PokeContext
    #: The last answer this replica gave and the policy slot it belongs to (see sensors.policy).
    memo: tuple[int, bytes] | None = None
    #: The last poke's (kind, message, details) and its answer but for the poke time, serialized:
    #: a poke that finds what the last one found reuses it.
    last: tuple[tuple[str, str, Mapping[str, Any]], bytes] | None = None


@dataclass(frozen=True)
class Unservable:
    """resource_meta that cannot be served here, and the phase that says why."""

    phase: int
    message: str
    reason: str


class SensorEngine(Engine):
    """Runs catalog sensors for templates serialized by flytekit's BaseSensor subclasses."""

    agent_name = "Sensor"

    def __init__(
        self,
        sensors: SensorRegistry,
        codec: Codec,
        store: Store,
        *,
        poke_timeout: float = 5.0,
        category: TaskCategory = SENSOR_CATEGORY,
        on_poke: Callable[[str, str, float], None] | None = None,
        on_event: Callable[[str, str], None] | None = None,
        cache_entries: int = 4096,
        clock: Callable[[], dt.datetime] = _NOW_UTC,
    ) -> None:
        self.sensors = sensors
        self.codec = codec
        #: Files and object stores, handed to every poke in its PokeContext.
        self.store = store
        self.poke_timeout = poke_timeout
        self.category = category
        #: Called after every poke with the sensor name, outcome kind and seconds (the server counts them).
        self.on_poke = on_poke
        #: Called with (event, label) for what is not a poke: "rejected" (reason) or "remembered" (sensor).
        self.on_event = on_event
        #: Verified resource_meta -> Task: a blob is verified and decoded once, not on every Get.
        self._tasks: OrderedDict[bytes, Task] = OrderedDict()
        self.cache_entries = cache_entries
        self.clock = clock

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
        outputs = tuple(template.interface.outputs.variables)
        try:
            policy, own_config = Policy.split(custom.get("sensor_config"))
            config = cls.parse_config(own_config)
            values = dict(custom.get("inputs") or {})
            values.update(literals.to_dict(request.inputs))
            inputs = cls.check_inputs(values)
            self._check_outputs(cls, template)
            config = cls.prepare(config, inputs, tuple(o for o in outputs if o != MET_OUTPUT))
        except (ConfigError, literals.LiteralError) as exc:
            raise InvalidArgument(str(exc)) from None
        state = SensorState(
            category=self.category,
            sensor=cls.name,
            config=config,
            inputs=inputs,
            created_at=self.clock().replace(microsecond=0),
            outputs=outputs,
            policy=policy,
            execution=execution_of(request),
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
        extra = {"operation": "create", "category": str(self.category), "sensor": cls.name}
        extra |= {"task": task_id(blob), **state.execution.log_fields()}
        log.info("created %s task %s", cls.name, extra["task"], extra=extra)
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
        declared = {**cls.outputs, MET_OUTPUT: bool}
        for out_name, var in template.interface.outputs.variables.items():
            if out_name not in declared:
                offered = ", ".join(declared)
                raise InvalidArgument(
                    f"the template declares output {out_name[:64]!r}, but {cls.name} produces {offered}."
                )
            want = literals.literal_type(declared[out_name])
            if var.type != want:
                raise InvalidArgument(
                    f"the template declares output {out_name!r} as {json_format.MessageToDict(var.type)}, "
                    f"but {cls.name} produces {json_format.MessageToDict(want)}."
                )

    # -- Get / Delete -------------------------------------------------------------------------
    def load(self, resource_meta: bytes) -> Task:
        """The task of a resource_meta, or InvalidArgument when it cannot be served (logs, metrics)."""
        task = self.task(resource_meta)
        if isinstance(task, Unservable):
            raise InvalidArgument(task.message)
        return task

    def task(self, resource_meta: bytes) -> Task | Unservable:
        """The decoded task of a resource_meta: from the cache, or verified and decoded now."""
        task = self._tasks.get(resource_meta)
        if task is not None:
            self._tasks.move_to_end(resource_meta)
            return task
        try:
            state = self.codec.decode(resource_meta)
        except UnknownKey as exc:
            # Not cached: the key may arrive with the next rollout, and another replica may hold it.
            return Unservable(Phase.RUNNING, f"{exc} Waiting for a replica that holds it.", "unknown_key")
        except InvalidResourceMeta as exc:
            return Unservable(Phase.FAILED, f"this task cannot be resumed: {exc}", "invalid")
        if state.category != self.category:
            message = f"resource_meta belongs to task category {state.category}, not {self.category}."
            return Unservable(Phase.FAILED, message, "category")
        try:
            cls = self.sensors.resolve(state.sensor)
        except (UnknownSensorError, UnavailableSensorError) as exc:
            message = f"this connector cannot run {state.sensor} any more: {exc}"
            return Unservable(Phase.FAILED, message, "sensor_unavailable")
        try:
            task = self._build(resource_meta, state, cls(state.config))
        except Exception as exc:  # a sensor that cannot take its own kept config: a bug, but the task's
            log.exception("%s cannot be set up from its resource_meta", state.sensor)
            problem = short(f"{type(exc).__name__}: {exc}", 120)
            message = (
                f"this connector cannot run {state.sensor} any more: it could not be set up ({problem})."
            )
            return Unservable(Phase.FAILED, message, "sensor_unavailable")
        self._tasks[resource_meta] = task
        if len(self._tasks) > self.cache_entries:
            self._tasks.popitem(last=False)
        return task

    def _build(self, resource_meta: bytes, state: SensorState, sensor: Sensor[Any]) -> Task:
        facts = sensor.describe(state.inputs)
        info: dict[str, Any] = {
            "sensor": state.sensor,
            "awaiting": facts,
            "created_at": state.created_at.isoformat(),
        }
        policy = state.policy.describe(state.created_at)
        if policy:
            info["policy"] = policy
        base = agent_pb2.GetTaskResponse()
        base.resource.custom_info.update(_jsonable(info))
        for link in sensor.links(state.inputs):
            base.resource.log_links.add(name=link.name, uri=link.uri)
        ident = task_id(resource_meta)
        extra = {"operation": "get", "category": str(self.category), "sensor": state.sensor, "task": ident}
        extra |= state.execution.log_fields()
        context = PokeContext(created_at=state.created_at, timeout=self.poke_timeout, store=self.store)
        return Task(state, sensor, extra, base.SerializeToString(), context)

    async def poke(self, task: Task, started_at: dt.datetime | None = None) -> PokeOutcome:
        """Poke once within the poke timeout and sort the outcome."""
        if started_at is None:
            started_at = self.clock()
        t0 = time.perf_counter()
        state = task.state
        details: Mapping[str, Any] = _NOTHING
        outputs: Mapping[str, Any] = _NOTHING
        try:
            poking = task.sensor.poke(state.inputs, task.context)
            if type(poking) is not types.CoroutineType:  # another awaitable: awaited as it is
                async with asyncio.timeout(self.poke_timeout):
                    result = await poking
            else:
                try:
                    # Most pokes find their answer already shared and never wait: those need no timer.
                    waits_on = poking.send(None)
                except StopIteration as finished:
                    result = finished.value
                else:
                    async with asyncio.timeout(self.poke_timeout - (time.perf_counter() - t0)):
                        result = await _resume(poking, waits_on)
        except TimeoutError:
            kind, message = (
                "timeout",
                f"the poke ran out of its {self.poke_timeout:g}s budget; will poke again.",
            )
        except PermanentError as exc:
            kind, message = "failed", str(exc)
        except TransientError as exc:
            kind, message = "transient", str(exc)
        except Exception as exc:  # a sensor bug must not turn into a gRPC failure of the task
            log.exception("%s poke raised %s", state.sensor, type(exc).__name__)
            kind = "error"
            message = f"the poke failed unexpectedly ({type(exc).__name__}: {exc}); will poke again."
        else:
            kind, message = ("met" if result.met else "waiting"), result.message
            # Copies: the answer kept per task is compared with later pokes' details.
            details = dict(result.details) if result.details else _NOTHING
            outputs = dict(result.outputs) if result.outputs else _NOTHING
        outcome = PokeOutcome(kind, message, started_at, time.perf_counter() - t0, details, outputs)
        if self.on_poke is not None:
            self.on_poke(state.sensor, kind, outcome.seconds)
        return outcome

    async def get(self, resource_meta: bytes) -> bytes:
        """The task's phase: poke when the policy says a poke is due, else the last answer given here.

        The answer is a serialized GetTaskResponse (see `response`).

        Anything about the task (unverifiable resource_meta, a key this replica lacks, a sensor that
        is gone) is a phase with a message, never an RPC error: propeller never forgives Get errors.
        """
        task = self.task(resource_meta)
        if isinstance(task, Unservable):
            return self._unservable(resource_meta, task)
        state, policy = task.state, task.state.policy
        now = self.clock()
        if policy.every_get:  # no interval, no deadline: nothing to work out
            expired, slot = False, EVERY_GET
        else:
            expired = policy.expired(state.created_at, now)
            slot = _AFTER_DEADLINE if expired else policy.slot((now - state.created_at).total_seconds())
        if task.memo is not None and task.memo[0] == slot:
            if self.on_event is not None:
                self.on_event("remembered", state.sensor)
            return task.memo[1]
        outcome, outputs = self._settle(state, task.sensor, await self.poke(task, now))
        if expired and outcome.kind not in ("met", "failed"):  # a permanent failure stays one
            outcome, outputs = self._deadline(task, outcome)
        level = _LOG_LEVEL.get(outcome.kind, logging.WARNING)
        if log.isEnabledFor(level):
            self._log_outcome(task, outcome, level)
        response = self.response(task, outcome, outputs)
        if slot != EVERY_GET:
            task.memo = (slot, response)
        return response

    def _deadline(self, task: Task, last: PokeOutcome) -> tuple[PokeOutcome, literals_pb2.LiteralMap | None]:
        state = task.state
        facts = task.sensor.describe(state.inputs)
        message = state.policy.deadline_message(awaited(facts, state.sensor))
        if last.kind != "waiting":
            message = f"{message} The last poke said: {last.message}"
        if not state.policy.soft_fail:
            return replace(last, kind="failed", message=message), None
        # Propeller reads outputs.pb when declared outputs are absent: never succeed without them.
        missing = [name for name in state.outputs if name != MET_OUTPUT]
        if missing:
            message = f"{message} Output {', '.join(missing)} cannot be given: the sensor was not met."
            return replace(last, kind="failed", message=message), None
        outputs = None
        if MET_OUTPUT in state.outputs:
            outputs = literals.outputs_map({MET_OUTPUT: False}, {MET_OUTPUT: bool})
        return replace(last, kind="soft_failed", message=message), outputs

    def _unservable(self, resource_meta: bytes, task: Unservable) -> bytes:
        if self.on_event is not None:
            self.on_event("rejected", task.reason)
        extra = {"operation": "get", "category": str(self.category), "task": task_id(resource_meta)}
        extra["phase"] = Phase.Name(task.phase)
        log.warning("cannot serve this task here: %s", task.message, extra=extra)
        response = agent_pb2.GetTaskResponse()
        response.resource.phase = task.phase
        response.resource.message = task.message
        if task.phase == Phase.FAILED:
            response.resource.agent_error.CopyFrom(_SENSOR_FAILED)
        answer: bytes = response.SerializeToString()
        return answer

    def _log_outcome(self, task: Task, outcome: PokeOutcome, level: int) -> None:
        phase = Phase.Name(outcome.phase)
        extra = {**task.log_extra, "phase": phase}
        sensor = task.state.sensor
        log.log(level, "%s %s (%s): %s", sensor, phase, outcome.kind, outcome.message, extra=extra)

    def response(
        self, task: Task, outcome: PokeOutcome, outputs: literals_pb2.LiteralMap | None = None
    ) -> bytes:
        """The answer for an outcome, serialized: phase, message, console info, links, outputs.

        Propeller drops the RUNNING message and the console keeps what the first RUNNING answer
        carries, so `custom_info` says what is awaited, the policy and what the poke found.

        It is two serialized GetTaskResponses one after the other: all but the poke time (kept per
        task while pokes find the same), then the poke time alone (made once a second). Protobuf
        reads concatenated messages as one message with both merged, in every language.
        """
        found = (outcome.kind, outcome.message, outcome.details)
        last = task.last
        if last is not None and outputs is None and last[0] == found:
            body = last[1]
        else:
            body = self._body(task, outcome, outputs)
            task.last = (found, body) if outputs is None else None
        return body + _poke_time(outcome.started_at)

    def _body(self, task: Task, outcome: PokeOutcome, outputs: literals_pb2.LiteralMap | None) -> bytes:
        response = agent_pb2.GetTaskResponse.FromString(task.base)
        resource = response.resource
        resource.phase = outcome.phase
        resource.message = outcome.message
        fields = resource.custom_info.fields
        fields["status"].string_value = outcome.message
        fields["outcome"].string_value = outcome.kind
        if outcome.details:
            fields["details"].struct_value.update(_jsonable(outcome.details))
        if outputs is not None and outcome.phase == Phase.SUCCEEDED:
            resource.outputs.CopyFrom(outputs)
        if outcome.kind == "failed":
            resource.agent_error.CopyFrom(_SENSOR_FAILED)
        body: bytes = response.SerializeToString()
        return body

    def _settle(
        self, state: SensorState, sensor: Sensor[Any], outcome: PokeOutcome
    ) -> tuple[PokeOutcome, literals_pb2.LiteralMap | None]:
        """A met outcome with the declared outputs as literals, or failed when they cannot be returned."""
        if outcome.kind != "met" or not state.outputs:
            return outcome, None
        values = {**outcome.outputs, MET_OUTPUT: True}
        missing = [name for name in state.outputs if name not in values]
        if missing:
            problem = f"{state.sensor} was met but gave no value for output {', '.join(missing)}."
            return replace(outcome, kind="failed", message=problem), None
        declared = {name: {**type(sensor).outputs, MET_OUTPUT: bool}[name] for name in state.outputs}
        outputs = literals.outputs_map({name: values[name] for name in state.outputs}, declared)
        if outputs.ByteSize() > MAX_OUTPUT_BYTES:
            problem = (
                f"{state.sensor} was met, but its outputs take {outputs.ByteSize()} bytes, more than the "
                f"{MAX_OUTPUT_BYTES} a response may carry; narrow what it matches."
            )
            return replace(outcome, kind="failed", message=problem), None
        return outcome, outputs

    async def logs(self, resource_meta: bytes) -> list[agent_pb2.LogLine]:
        """The sensor's story: what it waits for, since when, and what a poke made now finds."""
        task = self.load(resource_meta)
        outcome = await self.poke(task)
        return sensor_report.story(task.state, task.sensor, outcome, self.clock())

    async def metrics(
        self, resource_meta: bytes, queries: Sequence[str], window: TimeWindow
    ) -> list[metrics_pb2.ExecutionMetricResult]:
        """elapsed_seconds over the window and poke_latency_seconds of a poke made now."""
        task = self.load(resource_meta)
        state = task.state
        known, unknown = sensor_report.wanted(queries)
        if unknown:
            log.info(
                "GetTaskMetrics: ignoring unknown queries %s; this engine answers %s",
                ", ".join(unknown),
                ", ".join(sensor_report.QUERIES),
                extra={"operation": "get_metrics", "category": str(self.category), "sensor": state.sensor},
            )
        outcome = await self.poke(task) if sensor_report.POKE_LATENCY in known else None
        return sensor_report.results(state, outcome, known, window, self.clock())

    async def delete(self, resource_meta: bytes) -> None:
        """Nothing runs between pokes, so there is nothing to stop: OK for any resource_meta.

        An abort must never fail or hang, even for resource_meta this replica cannot verify.
        """
        task = self._tasks.pop(resource_meta, None)
        extra: dict[str, Any] = {"operation": "delete", "category": str(self.category)}
        extra["task"] = task_id(resource_meta)
        if task is not None:
            extra |= {"sensor": task.state.sensor, **task.state.execution.log_fields()}
        log.info("deleted %s task %s", self.category, extra["task"], extra=extra)


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, T], waits_on: Any) -> Generator[Any, Any, T]:
    """Await the rest of `coroutine`, first sent to by hand, where it waits on `waits_on`.

    What `await` would do from there (PEP 380's `yield from`): the task waits on what the coroutine
    waits on, and what the task is sent or thrown (a result, a cancellation) goes on to the coroutine.
    """
    while True:
        try:
            sent = yield waits_on
        except GeneratorExit:
            coroutine.close()
            raise
        except BaseException as exc:  # thrown in by the task (a cancellation): the coroutine decides
            try:
                waits_on = coroutine.throw(exc)
            except StopIteration as finished:
                value: T = finished.value
                return value
        else:
            try:
                waits_on = coroutine.send(sent)
            except StopIteration as finished:
                result: T = finished.value
                return result


def execution_of(request: agent_pb2.CreateTaskRequest) -> Execution:
    """The Flyte execution a CreateTask request names (empty when it names none)."""
    if not request.HasField("task_execution_metadata"):
        return Execution()
    ident = request.task_execution_metadata.task_execution_id
    node = ident.node_execution_id
    run = node.execution_id
    return Execution(run.project, run.domain, run.name, node.node_id, ident.retry_attempt, ident.task_id.name)


_SENSOR_FAILED = agent_pb2.AgentError(
    code="SENSOR_FAILED",
    kind=agent_pb2.AgentError.NON_RECOVERABLE,
    origin=execution_pb2.ExecutionError.USER,
)


#: The empty details and outputs of an outcome that has none (shared: outcomes are never changed).
_NOTHING: Mapping[str, Any] = MappingProxyType({})
#: The last second given as a poke time, and the answer part that says it.
_last_second: tuple[float, bytes] = (-1.0, b"")


def _poke_time(when: dt.datetime) -> bytes:
    """A serialized GetTaskResponse whose console info says only `last_poke`: `when`, to the second."""
    global _last_second
    second = when.timestamp() // 1
    if second != _last_second[0]:
        part = agent_pb2.GetTaskResponse()
        text = dt.datetime.fromtimestamp(second, dt.UTC).isoformat()
        part.resource.custom_info.fields["last_poke"].string_value = text
        _last_second = (second, part.SerializeToString())
    return _last_second[1]


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
