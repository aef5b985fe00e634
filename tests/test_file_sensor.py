"""FileSensor outcomes the user sees: permanent problems fail the task, transient ones keep it waiting."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2

from sensors.flytekit import GlobSensor

from .catalog import request_for
from .conftest import S3, Connector, file_sensor_request
from .httpserver import Answer, serve

Phase = execution_pb2.TaskExecution.Phase


def assert_failed_for(resource: agent_pb2.Resource, path: str, needle: str) -> None:
    assert resource.phase == Phase.FAILED, resource.message
    assert path in resource.message and needle in resource.message
    assert resource.agent_error.kind == agent_pb2.AgentError.NON_RECOVERABLE
    assert resource.agent_error.code


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("nosuchproto://bucket/key", "unknown protocol 'nosuchproto'"),
        ("s3://", "names no file or object"),
        ("hdfs://namenode/data/x", "the connector does not read hdfs:// paths"),
        ("/proc/1/root/secret" if os.geteuid() == 0 else "/root/secret", "permission denied"),
    ],
)
async def test_permanent_problems_fail_the_task_naming_the_path(
    make_connector: Any, path: str, needle: str
) -> None:
    # The unreadable local path lies inside a root (--local-roots): the filesystem is what refuses it.
    server = await make_connector(local_roots=[Path("/proc/1" if os.geteuid() == 0 else "/root")])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        connector = Connector(server, channel)
        meta = await connector.create(file_sensor_request(path))
        assert_failed_for(await connector.get(meta), path, needle)


@pytest.mark.parametrize("protocol", ["http", "https", "memory", "ftp", "simplecache::http", "dir::http"])
async def test_a_path_on_a_protocol_the_connector_does_not_serve_fails_without_a_request(
    connector: Connector, protocol: str
) -> None:
    # fsspec would fetch http(s):// and the like itself: a template could point the connector at any
    # host (the cloud metadata address included) around HttpSensor's address checks.
    with serve() as http:
        http.routes["/x"] = Answer(200, b"present")
        path = http.url("/x").replace("http", protocol, 1)
        glob = request_for(GlobSensor(name="wait_any"), pattern=path + "*")
        for request in (file_sensor_request(path), glob):
            resource = await connector.get(await connector.create(request))
            assert resource.phase == Phase.FAILED, resource.message
            assert protocol.split("::")[0] in resource.message
            assert resource.agent_error.kind == agent_pb2.AgentError.NON_RECOVERABLE
        assert http.seen == []


async def test_missing_credentials_fail_the_task(
    connector: Connector, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask a metadata endpoint from a test
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never reached: signing fails first
    meta = await connector.create(file_sensor_request("s3://bucket/key"))
    assert_failed_for(await connector.get(meta), "s3://bucket/key", "no usable credentials")


class _Store(BaseHTTPRequestHandler):
    """An S3 endpoint that answers every request with one fixed error, as a real store does under load."""

    status = 503
    code = "SlowDown"

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        xml = f"<Error><Code>{self.code}</Code><Message>{self.code}</Message></Error>".encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(xml)))
        self.end_headers()
        if body:
            self.wfile.write(xml)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def failing_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Store]]:
    handler = type("Handler", (_Store,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    yield handler
    server.shutdown()


async def test_access_denied_by_the_store_fails_the_task(
    connector: Connector, failing_store: type[_Store]
) -> None:
    failing_store.status, failing_store.code = 403, "AccessDenied"
    meta = await connector.create(file_sensor_request("s3://locked/key"))
    assert_failed_for(await connector.get(meta), "s3://locked/key", "permission denied")


async def test_a_store_under_load_keeps_the_sensor_waiting(
    connector: Connector, failing_store: type[_Store]
) -> None:
    failing_store.status, failing_store.code = 503, "SlowDown"
    meta = await connector.create(file_sensor_request("s3://busy/key"))
    resource = await connector.get(meta)
    assert resource.phase == Phase.RUNNING
    assert "s3://busy/key" in resource.message and "will poke again" in resource.message
    assert not resource.HasField("agent_error")


async def test_a_store_that_never_answers_keeps_the_sensor_waiting_and_says_so(
    make_connector, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import socket

    import grpc

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        server = await make_connector(poke_timeout=1.5, preload=["s3"])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            c = Connector(server, channel)
            resource = await c.get(await c.create(file_sensor_request("s3://slow/key")))
    finally:
        silent.close()
    assert resource.phase == Phase.RUNNING
    assert resource.message.startswith("s3://slow/key: the store did not answer within 1.")
    assert resource.message.endswith("; will poke again.")


async def test_min_age_waits_until_the_file_stops_changing(connector: Connector, tmp_path: Path) -> None:
    target = tmp_path / "growing.csv"
    target.write_text("rows")
    request = file_sensor_request(str(target))
    request.template.custom["sensor_config"] = {"min_age": 600}
    meta = await connector.create(request)
    waiting = await connector.get(meta)
    assert waiting.phase == Phase.RUNNING and "waiting" in waiting.message
    old = target.stat().st_mtime - 3600
    os.utime(target, (old, old))
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED


async def test_filesystem_instances_are_reused_across_pokes(connector: Connector, s3: S3) -> None:
    store = connector.server.store
    metas = [await connector.create(file_sensor_request(f"s3://{s3.bucket}/k{i}")) for i in range(3)]
    for meta in metas:
        await connector.get(meta)
    first = (await store.resolve(f"s3://{s3.bucket}/k0")).fs
    for meta in metas:
        await connector.get(meta)
    assert (await store.resolve(f"s3://{s3.bucket}/k1")).fs is first
