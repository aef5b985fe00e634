"""Parts of the fault tests: a client that routes as propeller does, a store that answers slowly, and an
S3 server that can be killed. Everything runs on loopback."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ..conftest import SENSOR, Listener

T = TypeVar("T")
SERVING = health_pb2.HealthCheckResponse.SERVING


async def until(condition: Callable[[], bool], within: float, what: str) -> None:
    """Wait until `condition()` holds, polling; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


class Replicas:
    """A client of several replicas that routes as propeller's round_robin does behind Kubernetes endpoints.

    A replica takes calls while its health says SERVING (the readiness probe that keeps it in the
    Endpoints); a call that fails UNAVAILABLE (the connection to a killed replica) is sent to the next
    replica, as round_robin does once the subchannel drops. Every RPC error is counted by code.
    """

    def __init__(self) -> None:
        self.channels: dict[int, grpc.aio.Channel] = {}
        self.serving: dict[int, bool] = {}
        self.watchers: dict[int, asyncio.Task[None]] = {}
        self.errors: collections.Counter[grpc.StatusCode] = collections.Counter()
        self.calls_to: collections.Counter[int] = collections.Counter()
        self._next = itertools.count()

    def add(self, port: int) -> None:
        """Start routing to the replica on `port` once its health says SERVING."""
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.channels[port] = channel
        self.serving[port] = False
        self.watchers[port] = asyncio.ensure_future(self._watch(port, channel))

    async def _watch(self, port: int, channel: grpc.aio.Channel) -> None:
        request = health_pb2.HealthCheckRequest(service="")
        while port in self.channels:
            try:
                async for reply in health_pb2_grpc.HealthStub(channel).Watch(request):
                    self.serving[port] = reply.status == SERVING
            except grpc.aio.AioRpcError:
                self.serving[port] = False
            await asyncio.sleep(0.05)  # a readiness probe period, not synchronisation

    async def remove(self, port: int) -> None:
        """Stop routing to `port` (its Endpoint is gone) and close the connection."""
        channel = self.channels.pop(port)
        self.serving.pop(port, None)
        self.watchers.pop(port).cancel()
        await channel.close()

    async def close(self) -> None:
        for port in list(self.channels):
            await self.remove(port)

    def _pick(self) -> int:
        ready = sorted(p for p, ok in self.serving.items() if ok)
        if not ready:
            raise LookupError
        return ready[next(self._next) % len(ready)]

    async def call(self, method: Callable[[agent_pb2_grpc.AsyncAgentServiceStub], Awaitable[T]]) -> T:
        """Run `method(stub)` on a serving replica; UNAVAILABLE moves it to the next one."""
        deadline = time.monotonic() + 30
        while True:
            try:
                port = self._pick()
            except LookupError:
                await until(lambda: any(self.serving.values()), 15, "a serving replica")
                continue
            self.calls_to[port] += 1
            try:
                return await method(agent_pb2_grpc.AsyncAgentServiceStub(self.channels[port]))
            except grpc.aio.AioRpcError as exc:
                self.errors[exc.code()] += 1
                if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                self.serving[port] = False  # the subchannel is down until its health says otherwise

    async def create(self, request: agent_pb2.CreateTaskRequest) -> bytes:
        reply = await self.call(lambda stub: stub.CreateTask(request, timeout=10))
        return bytes(reply.resource_meta)

    async def get(self, meta: bytes) -> agent_pb2.Resource:
        request = agent_pb2.GetTaskRequest(task_category=SENSOR, resource_meta=meta)
        reply = await self.call(lambda stub: stub.GetTask(request, timeout=10))
        return reply.resource


class SlowProxy(Listener):
    """A TCP proxy to `target` that holds every chunk a client sends for `delay` seconds: a slow store."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target = target
        self.delay = delay
        self.requests = 0
        self._lock = threading.Lock()
        super().__init__()

    def take(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        threading.Thread(target=self._pump, args=(conn, upstream, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(upstream, conn, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, slow: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if slow:
                    with self._lock:
                        self.requests += 1
                    time.sleep(self.delay)  # the store's latency being simulated
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class MotoProcess:
    """moto's S3 server as a child process on a fixed loopback port, so it can be killed and restarted."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> None:
        """Start it and wait until it answers HTTP."""
        server = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.proc = subprocess.Popen(
            [server, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError("moto_server exited at start") from None
                time.sleep(0.05)  # polling for readiness
        raise AssertionError("moto_server did not start")

    def kill(self) -> None:
        """SIGKILL: the store vanishes mid-conversation."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")
