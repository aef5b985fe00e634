"""The sensor engine: Create checks and signs; Get verifies, asks the policy, pokes once and answers.

The caches a GetTask passes, all of them (docs/architecture.md says the same):

- **verified tasks** (`SensorEngine._tasks`, an LRU of `--state-cache-entries`, default 4096): resource_meta
  -> its decoded `Task`, so a blob is verified, parsed and unpickled once per replica rather than on every
  Get. A blob never verifies differently later, and only blobs that verified are kept.
- **policy memo** (`Task.memo`, one answer per cached task, bounded by the LRU): the last answer and the
  schedule slot it belongs to. When the sensor's policy says no poke is due, the Get gets that answer
  again without touching the backend: that is what poke_interval means.
- Object-store answer sharing lives with the server's `Store` (`sensors/store/`), not here.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, metrics_pb2

from sensors.base import ConfigError, PokeContext, Sensor, short
from sensors.policy import EVERY_GET
from sensors.pools import Pools
from sensors.registry import SensorRegistry, UnavailableSensorError, UnknownSensorError
from sensors.store import Store

from ...state.category import SENSOR_CATEGORY, TaskCategory
from ...state.codec import (
    MAX_RESOURCE_META_BYTES,
    Codec,
    InvalidResourceMeta,
    SensorState,
    UnknownKey,
    task_id,
)
from ..base import Engine, TimeWindow
from ..errors import InvalidArgument
from ..secret_policy import SecretPolicy, task_refusal
from ..user.sensors import UserModules, UserSensor
from . import answer, create, report
from .poke import Outcome, PokeOutcome, poke

log = logging.getLogger(__name__)

Phase = execution_pb2.TaskExecution.Phase
_NOW_UTC = functools.partial(dt.datetime.now, dt.UTC)


@dataclass(eq=False)
class Task:
    """A verified resource_meta decoded once, with what every Get of it needs; cached per blob."""

    state: SensorState
    sensor: Sensor[Any]
    #: Fields every log line about this task carries.
    log_extra: dict[str, Any]
    #: The part of every answer that does not change between Gets (console info, links).
    fixed: agent_pb2.GetTaskResponse
    #: What every poke of this task is told (creation time and the poke budget).
    context: PokeContext
    #: The policy memo: the last answer this replica gave and the policy slot it belongs to.
    memo: tuple[int, bytes] | None = None


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
        pools: Pools,
        *,
        poke_timeout: float = 5.0,
        category: TaskCategory = SENSOR_CATEGORY,
        on_poke: Callable[[str, str, float], None] | None = None,
        on_event: Callable[[str, str], None] | None = None,
        cache_entries: int = 4096,
        clock: Callable[[], dt.datetime] = _NOW_UTC,
        secrets: SecretPolicy | None = None,
        user: UserModules | None = None,
    ) -> None:
        self.sensors = sensors
        #: The modules the operator allowed with --sensor-modules (users' own flytekit sensors).
        self.user = user if user is not None else UserModules()
        self.codec = codec
        #: Files and object stores, and the thread pools of other blocking work: handed to every poke in
        #: its PokeContext.
        self.store = store
        self.pools = pools
        self.poke_timeout = poke_timeout
        self.category = category
        #: Called after every poke with the sensor name, outcome label and seconds (the server counts them).
        self.on_poke = on_poke
        #: Called with (event, label) for what is not a poke: "rejected" (reason) or "remembered" (sensor).
        self.on_event = on_event
        self._tasks: OrderedDict[bytes, Task] = OrderedDict()
        self.cache_entries = cache_entries
        self.clock = clock
        #: Which secret may be used where (--secret-policy); None grants no secret at all.
        self.secrets = secrets

    # -- Create -------------------------------------------------------------------------------
    async def create(
        self, request: agent_pb2.CreateTaskRequest, *, default_deadline: float | None = None
    ) -> bytes:
        """Check the template and inputs against the sensor and pack them into signed resource_meta."""
        state = create.check(
            request,
            self.sensors,
            self.category,
            self.clock(),
            self.secrets,
            user=self.user,
            default_deadline=default_deadline,
        )
        cls = self.sensors.resolve(state.sensor)
        extra = {"operation": "create", "category": str(self.category), "sensor": state.sensor}
        extra |= state.execution.log_fields()
        if issubclass(cls, UserSensor):  # an author's flytekit sensor: its inputs must decode, off the loop
            await cls.check_decodes(state.config, self.poke_timeout, extra)
        # Local paths the task will read must lie inside the Store's roots: refused now, not at a poke.
        try:
            paths = cls.local_paths(state.config, state.inputs)
            await self.store.admit_at_create(state.sensor, paths, self.poke_timeout)
        except ConfigError as exc:
            raise InvalidArgument(str(exc)) from None
        try:
            blob = self.codec.encode(state)
        except TypeError as exc:
            raise InvalidArgument(f"{state.sensor} inputs cannot be kept: {exc}.") from None
        if len(blob) > MAX_RESOURCE_META_BYTES:  # refuse now rather than fail every Get
            raise InvalidArgument(
                f"{state.sensor} config and inputs take {len(blob)} bytes in resource_meta, "
                f"more than the {MAX_RESOURCE_META_BYTES} allowed; shorten them."
            )
        extra["task"] = task_id(blob)
        log.info("created %s task %s", state.sensor, extra["task"], extra=extra)
        return blob

    # -- Get ----------------------------------------------------------------------------------
    async def get(self, resource_meta: bytes) -> bytes:
        """The task's phase, as a serialized GetTaskResponse: poke when the policy says a poke is due,
        else the last answer given here.

        Anything about the task (unverifiable resource_meta, a key this replica lacks, a sensor that
        is gone) is a phase with a message, never an RPC error: propeller never forgives Get errors.
        """
        task = self.task(resource_meta)
        if isinstance(task, Unservable):
            return self._refuse(resource_meta, task)
        state = task.state
        now = self.clock()
        memo = task.memo
        decision = state.policy.decide(state.created_at, now, memo[0] if memo is not None else None)
        if not decision.due and memo is not None:
            if self.on_event is not None:
                self.on_event("remembered", state.sensor)
            return memo[1]
        outcome, outputs = answer.settle(state, task.sensor, await self.poke(task, now))
        if decision.expired and outcome.kind not in (Outcome.MET, Outcome.FAILED):  # a failure stays one
            outcome, outputs = answer.past_deadline(state, task.sensor, outcome)
        if log.isEnabledFor(outcome.kind.level):
            phase = Phase.Name(outcome.kind.phase)
            log.log(
                outcome.kind.level,
                "%s %s (%s): %s",
                state.sensor,
                phase,
                outcome.kind.label,
                outcome.message,
                extra={**task.log_extra, "phase": phase},
            )
        response = answer.answer(task.fixed, outcome, outputs)
        if decision.slot != EVERY_GET:
            task.memo = (decision.slot, response)
        return response

    def task(self, resource_meta: bytes) -> Task | Unservable:
        """The decoded task of a resource_meta: from the verified-task LRU, or verified and decoded now."""
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
        # resource_meta outlives policy changes: a grant withdrawn since Create fails the task.
        refused = task_refusal(self.secrets, cls, state.config, state.inputs, state.execution)
        if refused is not None:
            return Unservable(Phase.FAILED, f"this task may no longer run: {refused}", "secret_policy")
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
        extra = {"operation": "get", "category": str(self.category), "sensor": state.sensor}
        extra |= {"task": task_id(resource_meta), **state.execution.log_fields()}
        context = PokeContext(state.created_at, self.poke_timeout, self.store, self.pools, extra)
        return Task(state, sensor, extra, answer.fixed_part(state, sensor), context)

    async def poke(self, task: Task, started_at: dt.datetime | None = None) -> PokeOutcome:
        """Poke the task's sensor once within the poke timeout; the outcome is counted."""
        outcome = await poke(
            task.sensor, task.state.inputs, task.context, started_at or self.clock(), task.log_extra
        )
        if self.on_poke is not None:
            self.on_poke(task.state.sensor, outcome.kind.label, outcome.seconds)
        return outcome

    def _refuse(self, resource_meta: bytes, task: Unservable) -> bytes:
        if self.on_event is not None:
            self.on_event("rejected", task.reason)
        extra = {"operation": "get", "category": str(self.category), "task": task_id(resource_meta)}
        extra["phase"] = Phase.Name(task.phase)
        log.warning("cannot serve this task here: %s", task.message, extra=extra)
        return answer.refusal(task.phase, task.message)

    # -- Logs, metrics, Delete ------------------------------------------------------------------
    def load(self, resource_meta: bytes) -> Task:
        """The task of a resource_meta, or InvalidArgument when it cannot be served (logs, metrics)."""
        task = self.task(resource_meta)
        if isinstance(task, Unservable):
            raise InvalidArgument(task.message)
        return task

    async def logs(self, resource_meta: bytes) -> list[agent_pb2.LogLine]:
        """The sensor's story: what it waits for, since when, and what a poke made now finds."""
        task = self.load(resource_meta)
        outcome = await self.poke(task)
        return report.story(task.state, task.sensor, outcome, self.clock())

    async def metrics(
        self, resource_meta: bytes, queries: Sequence[str], window: TimeWindow
    ) -> list[metrics_pb2.ExecutionMetricResult]:
        """elapsed_seconds over the window and poke_latency_seconds of a poke made now."""
        task = self.load(resource_meta)
        state = task.state
        known, unknown = report.wanted(queries)
        if unknown:
            log.info(
                "GetTaskMetrics: ignoring unknown queries %s; this engine answers %s",
                ", ".join(unknown),
                ", ".join(report.QUERIES),
                extra={"operation": "get_metrics", "category": str(self.category), "sensor": state.sensor},
            )
        outcome = await self.poke(task) if report.POKE_LATENCY in known else None
        return report.results(state, outcome, known, window, self.clock())

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
