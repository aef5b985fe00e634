"""The lifecycle options in the server itself: the drain after SIGTERM and connections aged out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
from flyteidl.core import execution_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from connector.server import SERVICE_NAMES

from .conftest import Connector, file_sensor_request

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_draining_reports_not_serving_for_every_service_yet_serves_calls(
    make_connector: Any, tmp_path: Path
) -> None:
    server = await make_connector(drain_period=60.0)
    (tmp_path / "ready").write_text("")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        c = Connector(server, channel)
        health = health_pb2_grpc.HealthStub(channel)
        server.request_exit()
        shutdown = asyncio.ensure_future(server.shutdown())
        for name in ("", *SERVICE_NAMES):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert reply.status == NOT_SERVING, name
        meta = await c.create(file_sensor_request(str(tmp_path / "ready")))
        assert (await c.get(meta)).phase == execution_pb2.TaskExecution.SUCCEEDED
        assert not shutdown.done(), "the drain should last until the period ends or a second signal"

        server.request_exit()  # a second signal: the drain ends now
        await asyncio.wait_for(shutdown, 30)


async def test_connections_older_than_max_connection_age_are_asked_to_reconnect(make_connector: Any) -> None:
    server = await make_connector(max_connection_age=1.0, grace_period=1.0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert channel.get_state() == grpc.ChannelConnectivity.READY
        # The server's GOAWAY moves the channel out of READY; the client then resolves and connects anew.
        await asyncio.wait_for(channel.wait_for_state_change(grpc.ChannelConnectivity.READY), 15)
        assert channel.get_state() != grpc.ChannelConnectivity.READY
        await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
