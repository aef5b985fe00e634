"""The floor: an empty grpc.aio AsyncAgentService whose GetTask answers one fixed response.

    python bench/floor.py --port 8000

What any Python grpc.aio connector pays per GetTask before doing anything of its own (HTTP/2,
request parsing, the handler call, response serialization); bench/compare.py measures the connectors
against it. It has no health service: the benchmark takes its first answer as its start.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2
from flyteidl.service import agent_pb2_grpc

CREATED = agent_pb2.CreateTaskResponse(resource_meta=b"floor")
RUNNING = agent_pb2.GetTaskResponse(
    resource=agent_pb2.Resource(phase=execution_pb2.TaskExecution.RUNNING, message="waiting")
)


class Floor(agent_pb2_grpc.AsyncAgentServiceServicer):  # type: ignore[misc]
    """Answers without looking at the request."""

    async def CreateTask(
        self, request: agent_pb2.CreateTaskRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.CreateTaskResponse:
        return CREATED

    async def GetTask(
        self, request: agent_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.GetTaskResponse:
        return RUNNING


async def serve(port: int) -> None:
    server = grpc.aio.server()
    agent_pb2_grpc.add_AsyncAgentServiceServicer_to_server(Floor(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
