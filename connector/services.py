"""The wire: flyteidl's AsyncAgentService and AgentMetadataService over the engine registry."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

from .engines.base import Engine, TimeWindow
from .errors import InvalidArgument, NotFound, RequestError, capped
from .metrics import Metrics
from .registry import EngineRegistry, TaskCategory, category_of

log = logging.getLogger(__name__)

T = TypeVar("T")


async def guarded(
    context: grpc.aio.ServicerContext,
    operation: str,
    category: str,
    work: Callable[[], Awaitable[T]],
    metrics: Metrics | None = None,
) -> T:
    """Run `work`, turning a RequestError into its status and anything else into INTERNAL (a bug).

    With `metrics`, the call is counted as flytekit's connector counts it: task_type is the category name.
    """
    task_type = category.split(" ")[0]
    t0 = time.perf_counter()
    # Stays CANCELLED unless work ends otherwise: a caller that gives up (deadline, Ctrl-C) is no success.
    code: grpc.StatusCode | None = grpc.StatusCode.CANCELLED
    try:
        result = await work()
        code = None
        return result
    except RequestError as exc:
        code = exc.code
        message = capped(str(exc))
        log.info(
            "%s %s rejected: %s",
            operation,
            category,
            message,
            extra={"operation": operation, "category": category},
        )
    except Exception:
        code = grpc.StatusCode.INTERNAL
        log.exception("%s %s failed: a bug in the connector", operation, category)
        message = f"{operation} failed inside the connector; see its logs."
    finally:
        if metrics is not None:
            metrics.request_done(task_type, operation, time.perf_counter() - t0, code)
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover


class AsyncAgentService(agent_pb2_grpc.AsyncAgentServiceServicer):  # type: ignore[misc]
    """CreateTask, GetTask, DeleteTask, GetTaskLogs and GetTaskMetrics routed by task category."""

    def __init__(self, engines: EngineRegistry, metrics: Metrics | None = None) -> None:
        self.engines = engines
        self.metrics = metrics

    def _engine(self, route: TaskCategory | RequestError) -> Engine:
        """The engine for a routed request; the request's own error when it named no category."""
        if isinstance(route, RequestError):
            raise route
        return self.engines.engine_for(route)

    async def CreateTask(
        self, request: agent_pb2.CreateTaskRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.CreateTaskResponse:
        """Start watching: validate and return resource_meta."""
        tmpl = request.template
        category = TaskCategory(tmpl.type, tmpl.task_type_version) if tmpl.type else None

        async def work() -> agent_pb2.CreateTaskResponse:
            if category is None:
                raise InvalidArgument("the request has no task template, or the template has no type.")
            engine = self.engines.engine_for(category)
            if self.metrics is not None:
                self.metrics.input_bytes(category.name, request.inputs.ByteSize())
            return agent_pb2.CreateTaskResponse(resource_meta=await engine.create(request))

        return await guarded(context, "create", _served(self.engines, category), work, self.metrics)

    async def GetTask(
        self, request: agent_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.GetTaskResponse:
        """Poke once and answer the phase."""

        route = _route(request)

        async def work() -> agent_pb2.GetTaskResponse:
            engine = self._engine(route)
            return agent_pb2.GetTaskResponse(resource=await engine.get(request.resource_meta))

        return await guarded(context, "get", _served(self.engines, route), work, self.metrics)

    async def DeleteTask(
        self, request: agent_pb2.DeleteTaskRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.DeleteTaskResponse:
        """Stop watching; idempotent."""

        route = _route(request)

        async def work() -> agent_pb2.DeleteTaskResponse:
            await self._engine(route).delete(request.resource_meta)
            return agent_pb2.DeleteTaskResponse()

        return await guarded(context, "delete", _served(self.engines, route), work, self.metrics)

    async def GetTaskLogs(
        self, request: agent_pb2.GetTaskLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.GetTaskLogsResponse]:
        """The task's story in plain words: a header, then a body of at most `lines` lines (the last ones)."""

        route = _route(request)

        async def work() -> list[agent_pb2.LogLine]:
            lines = await self._engine(route).logs(request.resource_meta)
            return lines[-request.lines :] if request.lines > 0 else lines

        lines = await guarded(context, "get_logs", _served(self.engines, route), work, self.metrics)
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

        route = _route(request)

        async def work() -> agent_pb2.GetTaskMetricsResponse:
            engine = self._engine(route)
            results = await engine.metrics(request.resource_meta, list(request.queries), _window(request))
            return agent_pb2.GetTaskMetricsResponse(results=results)

        return await guarded(context, "get_metrics", _served(self.engines, route), work, self.metrics)


def _window(request: agent_pb2.GetTaskMetricsRequest) -> TimeWindow:
    start = request.start_time.ToDatetime(tzinfo=dt.UTC) if request.HasField("start_time") else None
    end = request.end_time.ToDatetime(tzinfo=dt.UTC) if request.HasField("end_time") else None
    step = request.step.ToTimedelta() if request.HasField("step") else None
    if start is not None and end is not None and end < start:
        raise InvalidArgument("end_time is before start_time.")
    if step is not None and step < dt.timedelta(0):
        raise InvalidArgument("step must not be negative.")
    return TimeWindow(start, end, step)


def _category(request: Any) -> TaskCategory:
    task_category = request.task_category if request.HasField("task_category") else None
    return category_of(task_category, request.task_type)


def _route(request: Any) -> TaskCategory | RequestError:
    """The category a request names, worked out once per call, or the error saying it names none."""
    try:
        return _category(request)
    except RequestError as exc:
        return exc


def _served(engines: EngineRegistry, category: TaskCategory | RequestError | None) -> str:
    """The category for logs and metric labels: a name the caller made up would grow both without bound."""
    return str(category) if isinstance(category, TaskCategory) and category in engines else "unknown"


class AgentMetadataService(agent_pb2_grpc.AgentMetadataServiceServicer):  # type: ignore[misc]
    """What propeller's discovery reads: the agents and the task categories they serve."""

    def __init__(self, engines: EngineRegistry) -> None:
        self.engines = engines

    def _agents(self) -> dict[str, agent_pb2.Agent]:
        agents = {}
        for name, engines in self.engines.agents().items():
            agent = agent_pb2.Agent(name=name, is_sync=False)
            for engine in engines:
                agent.supported_task_types.append(engine.category.name)
                agent.supported_task_categories.add(
                    name=engine.category.name, version=engine.category.version
                )
            agents[name] = agent
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
            agents = self._agents()
            if request.name not in agents:
                known = ", ".join(sorted(agents))
                raise NotFound(f"no agent is named {request.name!r}; this connector runs {known}.")
            return agent_pb2.GetAgentResponse(agent=agents[request.name])

        return await guarded(context, "get_agent", capped(request.name, 60), work)
