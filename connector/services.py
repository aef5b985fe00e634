"""The wire: flyteidl's AsyncAgentService and AgentMetadataService over the engine registry."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

from .errors import InvalidArgument, NotFound, RequestError
from .registry import EngineRegistry, TaskCategory, category_of

log = logging.getLogger(__name__)

T = TypeVar("T")


async def guarded(
    context: grpc.aio.ServicerContext, operation: str, category: str, work: Callable[[], Awaitable[T]]
) -> T:
    """Run `work`, turning a RequestError into its status and anything else into INTERNAL (a bug)."""
    try:
        return await work()
    except RequestError as exc:
        log.info(
            "%s %s rejected: %s",
            operation,
            category,
            exc,
            extra={"operation": operation, "category": category},
        )
        await context.abort(exc.code, str(exc))
    except Exception:
        log.exception("%s %s failed: a bug in the connector", operation, category)
        await context.abort(
            grpc.StatusCode.INTERNAL, f"{operation} failed inside the connector; see its logs."
        )
    raise AssertionError("context.abort returned")  # pragma: no cover


class AsyncAgentService(agent_pb2_grpc.AsyncAgentServiceServicer):  # type: ignore[misc]
    """CreateTask, GetTask and DeleteTask routed by task category."""

    def __init__(self, engines: EngineRegistry) -> None:
        self.engines = engines

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
            meta = await engine.create(request)
            log.info("created %s task", category, extra={"operation": "create", "category": str(category)})
            return agent_pb2.CreateTaskResponse(resource_meta=meta)

        return await guarded(context, "create", str(category), work)

    async def GetTask(
        self, request: agent_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.GetTaskResponse:
        """Poke once and answer the phase."""

        async def work() -> agent_pb2.GetTaskResponse:
            engine = self.engines.engine_for(_category(request))
            return agent_pb2.GetTaskResponse(resource=await engine.get(request.resource_meta))

        return await guarded(context, "get", _label(request), work)

    async def DeleteTask(
        self, request: agent_pb2.DeleteTaskRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.DeleteTaskResponse:
        """Stop watching; idempotent."""

        async def work() -> agent_pb2.DeleteTaskResponse:
            category = _category(request)
            await self.engines.engine_for(category).delete(request.resource_meta)
            log.info("deleted %s task", category, extra={"operation": "delete", "category": str(category)})
            return agent_pb2.DeleteTaskResponse()

        return await guarded(context, "delete", _label(request), work)


def _category(request: Any) -> TaskCategory:
    task_category = request.task_category if request.HasField("task_category") else None
    return category_of(task_category, request.task_type)


def _label(request: Any) -> str:
    try:
        return str(_category(request))
    except RequestError:
        return "unknown"


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

        return await guarded(context, "get_agent", request.name, work)
