"""The wire: flyteidl's AsyncAgentService and AgentMetadataService over the engine registry."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

from ..engine.base import Engine, TimeWindow
from ..engine.errors import InvalidArgument, NotFound, RequestError, capped
from ..engine.registry import EngineRegistry, TaskCategory, category_of
from ..observe.logs import PROTOCOL
from ..observe.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")
#: The label of a category this connector does not serve.
UNKNOWN = "unknown"
#: The protocols as metrics and logs name them: flyteidl's AsyncAgentService, flyteidl2's connector services.
FLYTE1, FLYTE2 = "flyte1", "flyte2"


async def guarded(
    context: grpc.aio.ServicerContext,
    operation: str,
    category: str,
    work: Callable[[], Awaitable[T]],
    metrics: Metrics | None = None,
    protocol: str = FLYTE1,
) -> T:
    """Run `work`, turning a RequestError into its status and anything else into INTERNAL (a bug).

    With `metrics`, the call is counted as flytekit's connector counts it: task_type is the category name.
    """
    t0 = time.perf_counter()
    try:
        result = await work()
    except BaseException as exc:
        await refuse(context, operation, category, exc, t0, metrics, protocol)
    if metrics is not None:
        metrics.request_done(category.split(" ")[0], operation, time.perf_counter() - t0, None, protocol)
    return result


async def refuse(
    context: grpc.aio.ServicerContext,
    operation: str,
    category: str,
    exc: BaseException,
    t0: float,
    metrics: Metrics | None,
    protocol: str = FLYTE1,
) -> NoReturn:
    """End a call whose work raised `exc`: its RequestError's status, INTERNAL for a bug, or re-raise.

    A caller that gave up (deadline, Ctrl-C) cancels the work: counted CANCELLED, never as a success.
    """
    if isinstance(exc, RequestError):
        code = exc.code
        message = capped(str(exc))
        extra = {"operation": operation, "category": category, "protocol": protocol}
        log.info("%s %s rejected: %s", operation, category, message, extra=extra)
    elif isinstance(exc, Exception):
        code = grpc.StatusCode.INTERNAL
        log.error("%s %s failed: a bug in the connector", operation, category, exc_info=exc)
        message = f"{operation} failed inside the connector; see its logs."
    else:
        code = grpc.StatusCode.CANCELLED
    if metrics is not None:
        metrics.request_done(category.split(" ")[0], operation, time.perf_counter() - t0, code, protocol)
    if code == grpc.StatusCode.CANCELLED:
        raise exc
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: its engine, or the error saying why none serves it; and its label."""

    engine: Engine | None
    error: RequestError | None
    #: The category for logs and metric labels: "unknown" for one not served (a name the caller made
    #: up would grow both without bound).
    label: str
    #: flytekit's task_type metric label: the category's name.
    task_type: str

    def served(self) -> Engine:
        """The engine; the request's own error when none serves it."""
        if self.engine is None:
            raise self.error or AssertionError("a route has an engine or an error")
        return self.engine


class AsyncAgentService(agent_pb2_grpc.AsyncAgentServiceServicer):  # type: ignore[misc]
    """CreateTask, GetTask, DeleteTask, GetTaskLogs and GetTaskMetrics routed by task category."""

    def __init__(
        self,
        engines: EngineRegistry,
        metrics: Metrics | None = None,
        protocol: str = FLYTE1,
        *,
        default_deadline: float = 0.0,
    ) -> None:
        self.engines = engines
        self.metrics = metrics
        #: The protocol metrics and logs name for these calls (the Flyte 2 servicer delegates here).
        self.protocol = protocol
        #: Seconds a task created here that sets no deadline may wait (0: none); see Engine.create.
        self.default_deadline = default_deadline

    def _route(self, request: Any) -> Route:
        """Where a call goes, by the category it names."""
        try:
            return self._route_for(category_of(request.task_category, request.task_type))
        except RequestError as exc:
            return Route(None, exc, UNKNOWN, UNKNOWN)

    def _route_for(self, category: TaskCategory) -> Route:
        try:
            engine = self.engines.engine_for(category)
        except RequestError as exc:
            return Route(None, exc, UNKNOWN, UNKNOWN)
        return Route(engine, None, str(category), category.name)

    async def CreateTask(
        self, request: agent_pb2.CreateTaskRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.CreateTaskResponse:
        """Start watching: validate and return resource_meta."""
        PROTOCOL.set(self.protocol)
        tmpl = request.template
        route = self._route_for(TaskCategory(tmpl.type, tmpl.task_type_version)) if tmpl.type else None

        async def work() -> agent_pb2.CreateTaskResponse:
            if route is None:
                raise InvalidArgument("the request has no task template, or the template has no type.")
            engine = route.served()
            if self.metrics is not None:
                self.metrics.input_bytes(route.task_type, request.inputs.ByteSize())
            deadline = self.default_deadline or None
            meta = await engine.create(request, default_deadline=deadline)
            return agent_pb2.CreateTaskResponse(resource_meta=meta)

        label = route.label if route is not None else UNKNOWN
        return await guarded(context, "create", label, work, self.metrics, self.protocol)

    async def GetTask(self, request: agent_pb2.GetTaskRequest, context: grpc.aio.ServicerContext) -> bytes:
        """Poke once and answer the phase: a GetTaskResponse, serialized by the engine."""
        # `guarded` spelled out: the hot path, with no closure and no coroutine of its own.
        PROTOCOL.set(self.protocol)
        route = self._route(request)
        t0 = time.perf_counter()
        try:
            response = await route.served().get(request.resource_meta)
        except BaseException as exc:
            await refuse(context, "get", route.label, exc, t0, self.metrics, self.protocol)
        if self.metrics is not None:
            self.metrics.request_done(route.task_type, "get", time.perf_counter() - t0, None, self.protocol)
        return response

    async def _routed(
        self,
        context: grpc.aio.ServicerContext,
        operation: str,
        request: Any,
        work: Callable[[Engine], Awaitable[T]],
    ) -> T:
        """`work(engine)` with the engine of the request's category, guarded (Delete, logs, metrics)."""
        PROTOCOL.set(self.protocol)
        route = self._route(request)

        async def served() -> T:
            return await work(route.served())

        return await guarded(context, operation, route.label, served, self.metrics, self.protocol)

    async def DeleteTask(
        self, request: agent_pb2.DeleteTaskRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.DeleteTaskResponse:
        """Stop watching; idempotent."""

        async def work(engine: Engine) -> agent_pb2.DeleteTaskResponse:
            await engine.delete(request.resource_meta)
            return agent_pb2.DeleteTaskResponse()

        return await self._routed(context, "delete", request, work)

    async def GetTaskLogs(
        self, request: agent_pb2.GetTaskLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.GetTaskLogsResponse]:
        """The task's story in plain words: a header, then a body of at most `lines` lines (the last ones)."""

        async def work(engine: Engine) -> list[agent_pb2.LogLine]:
            lines = await engine.logs(request.resource_meta)
            return lines[-request.lines :] if request.lines > 0 else lines

        lines = await self._routed(context, "get_logs", request, work)
        # Everything fits one page, so the continuation token is empty.
        yield agent_pb2.GetTaskLogsResponse(header=agent_pb2.GetTaskLogsResponseHeader(token=""))
        body = agent_pb2.GetTaskLogsResponseBody(
            results=[line.message for line in lines], structured_lines=lines
        )
        yield agent_pb2.GetTaskLogsResponse(body=body)

    async def GetTaskMetrics(
        self, request: agent_pb2.GetTaskMetricsRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.GetTaskMetricsResponse:
        """Figures for the queries named (all known when none are); unknown names are logged, skipped."""

        async def work(engine: Engine) -> agent_pb2.GetTaskMetricsResponse:
            results = await engine.metrics(request.resource_meta, list(request.queries), _window(request))
            return agent_pb2.GetTaskMetricsResponse(results=results)

        return await self._routed(context, "get_metrics", request, work)


def _window(request: agent_pb2.GetTaskMetricsRequest) -> TimeWindow:
    start = request.start_time.ToDatetime(tzinfo=dt.UTC) if request.HasField("start_time") else None
    end = request.end_time.ToDatetime(tzinfo=dt.UTC) if request.HasField("end_time") else None
    step = request.step.ToTimedelta() if request.HasField("step") else None
    if start is not None and end is not None and end < start:
        raise InvalidArgument("end_time is before start_time.")
    if step is not None and step < dt.timedelta(0):
        raise InvalidArgument("step must not be negative.")
    return TimeWindow(start, end, step)


def discovered(engines: EngineRegistry, entry: Callable[[str], Any]) -> dict[str, Any]:
    """By name, what discovery lists of each agent (flyteidl's `Agent`, flyteidl2's `Connector`, made by
    `entry(name)`): the task categories its engines serve."""
    found = {}
    for name, served in engines.agents().items():
        message = entry(name)
        for engine in served:
            message.supported_task_categories.add(name=engine.category.name, version=engine.category.version)
        found[name] = message
    return found


def named(found: dict[str, Any], name: str, noun: str, runs: str) -> Any:
    """The entry of `found` called `name`, or NotFound listing those `runs` runs ("this connector")."""
    if name not in found:
        raise NotFound(f"no {noun} is named {name!r}; {runs} runs {', '.join(sorted(found))}.")
    return found[name]


class AgentMetadataService(agent_pb2_grpc.AgentMetadataServiceServicer):  # type: ignore[misc]
    """What propeller's discovery reads: the agents and the task categories they serve."""

    def __init__(self, engines: EngineRegistry) -> None:
        self.engines = engines

    def _agents(self) -> dict[str, agent_pb2.Agent]:
        agents = discovered(self.engines, lambda name: agent_pb2.Agent(name=name, is_sync=False))
        for agent in agents.values():  # the field older propellers read
            agent.supported_task_types.extend(c.name for c in agent.supported_task_categories)
        return agents

    async def ListAgents(
        self, request: agent_pb2.ListAgentsRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.ListAgentsResponse:
        """Every agent this connector runs."""
        return agent_pb2.ListAgentsResponse(agents=list(self._agents().values()))

    async def GetAgent(
        self, request: agent_pb2.GetAgentRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.GetAgentResponse:
        """One agent by name."""

        async def work() -> agent_pb2.GetAgentResponse:
            agent = named(self._agents(), request.name, "agent", "this connector")
            return agent_pb2.GetAgentResponse(agent=agent)

        return await guarded(context, "get_agent", capped(request.name, 60), work)
