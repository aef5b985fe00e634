"""The wire for Flyte 2: flyteidl2's AsyncConnectorService and ConnectorMetadataService.

A thin layer at the edge over the Flyte 1 servicer (`services.AsyncAgentService`), so both protocols
share one registry, one engine per category, one resource_meta format (a task created over one protocol
is answered over the other), the same verification, policy, answer sharing, metrics and logs (labelled
`protocol="flyte2"`).

It converts, rather than reimplements, because the messages are wire-compatible where it matters
(field numbers and types, checked by tests/test_flyte2.py against both packages' descriptors):

- flyteidl2.core.TaskTemplate, Literal and TaskLog carry flyteidl's fields under the same numbers
  (flyteidl2 adds some); flyteidl2.task.Inputs/Outputs are `repeated NamedLiteral{name = 1, value = 2}`
  in field 1, which is byte for byte how flyteidl's `LiteralMap{map<string, Literal> literals = 1}` is
  encoded. So a Flyte 2 request re-read as its Flyte 1 twin is the same request, and a Flyte 1 answer
  read as its Flyte 2 twin is the same answer.
- Resource: flyteidl's `agent_error` (field 7) does not exist in flyteidl2; it is dropped from the
  (terminal, rare) FAILED answers. The engine never answers UNDEFINED or RETRYABLE_FAILED (which Flyte
  2's plugin treats as a system error and as terminal), only RUNNING, SUCCEEDED and FAILED.

What Flyte 2 does differently and how it is honoured:

- `connection` rides on every Create/Get/Delete: it is ignored (credentials are the connector's own;
  Flyte 2's OSS executor refuses a template with `custom["secrets"]`) and never logged.
- Get/Delete/logs/metrics carry only `task_category`, never the deprecated `task_type`.
- Flyte 2's executor has no timeout of its own for connector tasks, so the sensor's own deadline is the
  only one: a task that sets none gets `--flyte2-default-deadline` (default one day; 0 = none) in its
  policy, never in its `sensor_config` (a user's own flytekit sensor receives that whole, and a config
  class that takes only its own fields would fail on a key its author never wrote).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from flyteidl.admin import agent_pb2
from flyteidl2.connector import connector_pb2, service_pb2, service_pb2_grpc

from ..engine.errors import InvalidArgument, capped
from ..engine.registry import EngineRegistry, TaskCategory
from ..observe.logs import PROTOCOL
from ..observe.metrics import Metrics
from .services import FLYTE2, UNKNOWN, AsyncAgentService, Route, discovered, guarded, named, refuse

#: The file that declares flyteidl2's connector services.
SERVICES = service_pb2.DESCRIPTOR
#: The services of this module, as health and reflection name them.
SERVICE_NAMES = tuple(
    service_pb2.DESCRIPTOR.services_by_name[name].full_name
    for name in ("AsyncConnectorService", "ConnectorMetadataService")
)
#: `phase: FAILED` as a Resource encodes it (field 5, varint 5). An answer that carries agent_error is a
#: FAILED one, so it holds these bytes; an answer without them never needs rewriting.
_FAILED_PHASE = b"\x28\x05"
_NO_CATEGORY = "the request names no task category (task_category is empty)."


def _route(v1: AsyncAgentService, category: connector_pb2.TaskCategory) -> Route:
    """Where a call goes, by its task_category: the Flyte 1 servicer's routes, shared."""
    name = category.name
    if not name:
        return Route(None, InvalidArgument(_NO_CATEGORY), UNKNOWN, UNKNOWN)
    return v1._route_for(TaskCategory(name, category.version))


def flyte2_answer(answer: bytes) -> bytes:
    """A GetTaskResponse the engine serialized for flyteidl, as flyteidl2's GetTaskResponse.

    The same bytes but for a FAILED answer's agent_error, which flyteidl2 does not have.
    """
    if _FAILED_PHASE not in answer:
        return answer
    response = connector_pb2.GetTaskResponse.FromString(answer)
    response.DiscardUnknownFields()
    converted: bytes = response.SerializeToString()
    return converted


class AsyncConnectorService(service_pb2_grpc.AsyncConnectorServiceServicer):  # type: ignore[misc]
    """flyteidl2's CreateTask, GetTask, DeleteTask, GetTaskMetrics and GetTaskLogs, over the Flyte 1 servicer.

    Answers are returned serialized where the Flyte 1 servicer's bytes are already Flyte 2's (the rpc
    layer sends bytes as they are).
    """

    def __init__(
        self, engines: EngineRegistry, metrics: Metrics | None = None, *, default_deadline: float = 0.0
    ) -> None:
        #: The Flyte 1 servicer this delegates to, counting and logging as protocol flyte2, giving tasks
        #: that set no deadline `default_deadline` seconds.
        self.v1 = AsyncAgentService(engines, metrics, protocol=FLYTE2, default_deadline=default_deadline)
        self.metrics = metrics

    async def CreateTask(
        self, request: connector_pb2.CreateTaskRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """Start watching: the Flyte 1 CreateTask of the same template and inputs."""
        PROTOCOL.set(FLYTE2)
        names = [literal.name for literal in request.inputs.literals]
        if len(set(names)) != len(names):
            twice = sorted({name for name in names if names.count(name) > 1})
            message = f"the request's inputs name {capped(', '.join(twice), 120)} more than once."

            async def refused() -> bytes:
                raise InvalidArgument(message)

            return await guarded(context, "create", UNKNOWN, refused, self.metrics, FLYTE2)
        # Credentials are the connector's own: the connection (and any secret in it) goes no further.
        request.ClearField("connection")
        request.inputs.ClearField("context")
        v1 = agent_pb2.CreateTaskRequest.FromString(request.SerializeToString())
        response = await self.v1.CreateTask(v1, context)
        created: bytes = response.SerializeToString()  # CreateTaskResponse{resource_meta = 1} in both
        return created

    async def GetTask(
        self, request: connector_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """Poke once and answer the phase, as the Flyte 1 GetTask does (the hot path: no conversion)."""
        PROTOCOL.set(FLYTE2)
        route = _route(self.v1, request.task_category)
        metrics = self.metrics
        t0 = time.perf_counter()
        try:
            answer = await route.served().get(request.resource_meta)
        except BaseException as exc:
            await refuse(context, "get", route.label, exc, t0, metrics, FLYTE2)
        if metrics is not None:
            metrics.request_done(route.task_type, "get", time.perf_counter() - t0, None, FLYTE2)
        return flyte2_answer(answer)

    async def DeleteTask(
        self, request: connector_pb2.DeleteTaskRequest, context: grpc.aio.ServicerContext
    ) -> connector_pb2.DeleteTaskResponse:
        """Stop watching; idempotent."""
        PROTOCOL.set(FLYTE2)
        if not request.task_category.name:
            return await guarded(context, "delete", UNKNOWN, _no_category, self.metrics, FLYTE2)
        v1 = agent_pb2.DeleteTaskRequest(resource_meta=request.resource_meta)
        v1.task_category.name = request.task_category.name
        v1.task_category.version = request.task_category.version
        await self.v1.DeleteTask(v1, context)
        return connector_pb2.DeleteTaskResponse()

    async def GetTaskMetrics(
        self, request: connector_pb2.GetTaskMetricsRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """The Flyte 1 GetTaskMetrics; its answer's bytes are Flyte 2's."""
        PROTOCOL.set(FLYTE2)
        if not request.task_category.name:
            return await guarded(context, "get_metrics", UNKNOWN, _no_category, self.metrics, FLYTE2)
        v1 = agent_pb2.GetTaskMetricsRequest.FromString(request.SerializeToString())
        response = await self.v1.GetTaskMetrics(v1, context)
        answer: bytes = response.SerializeToString()
        return answer

    async def GetTaskLogs(
        self, request: connector_pb2.GetTaskLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """The Flyte 1 GetTaskLogs: a header, then a body whose `lines` are flyteidl's structured lines."""
        PROTOCOL.set(FLYTE2)
        if not request.task_category.name:
            await guarded(context, "get_logs", UNKNOWN, _no_category, self.metrics, FLYTE2)
        v1 = agent_pb2.GetTaskLogsRequest.FromString(request.SerializeToString())
        async for part in self.v1.GetTaskLogs(v1, context):
            yield part.SerializeToString()


async def _no_category() -> Any:
    raise InvalidArgument(_NO_CATEGORY)


def _connector(name: str) -> connector_pb2.Connector:
    return connector_pb2.Connector(name=name)


class ConnectorMetadataService(service_pb2_grpc.ConnectorMetadataServiceServicer):  # type: ignore[misc]
    """What Flyte 2's plugin discovers every 10 s: the connectors and the task categories they serve."""

    def __init__(self, engines: EngineRegistry) -> None:
        self.engines = engines

    async def ListConnectors(
        self, request: connector_pb2.ListConnectorsRequest, context: grpc.aio.ServicerContext
    ) -> connector_pb2.ListConnectorsResponse:
        """Every connector this deployment runs."""
        return connector_pb2.ListConnectorsResponse(
            connectors=list(discovered(self.engines, _connector).values())
        )

    async def GetConnector(
        self, request: connector_pb2.GetConnectorRequest, context: grpc.aio.ServicerContext
    ) -> connector_pb2.GetConnectorResponse:
        """One connector by name."""

        async def work() -> connector_pb2.GetConnectorResponse:
            found = discovered(self.engines, _connector)
            connector = named(found, request.name, "connector", "this deployment")
            return connector_pb2.GetConnectorResponse(connector=connector)

        return await guarded(context, "get_connector", capped(request.name, 60), work, protocol=FLYTE2)


__all__ = [
    "SERVICES",
    "SERVICE_NAMES",
    "AsyncConnectorService",
    "ConnectorMetadataService",
    "flyte2_answer",
]
