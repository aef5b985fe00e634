"""Failure semantics on GCS (fake-gcs-server) and Azure Blob (Azurite), through the real connector.

A missing bucket or container, a permission error or absent credentials fail the task with a message
naming the path; throttling (429, 503), server errors, a store that never answers and a store killed
mid-run keep it RUNNING with a message saying so, never an RPC error. Faults the servers cannot make
themselves are answered by tests/storeproxy.py in front of them, spelled as each store spells them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2

from sensors.flytekit import GlobSensor

from ..catalog import request_for
from ..conftest import Connector, connected, file_sensor_request, spawn
from ..emulators import (
    AZURE_KEY,
    Azurite,
    Bucket,
    FakeGcs,
    azure_connection_string,
    loopback_port,
    point_connector_at,
)
from ..storeproxy import CountingProxy

Phase = execution_pb2.TaskExecution.Phase
#: Every test here starts (or shares) an emulator process.
pytestmark = pytest.mark.slow


@pytest.fixture(params=["gs", "abfs"])
def bucket(request: pytest.FixtureRequest) -> Bucket:
    """A new bucket on fake-gcs-server, then a new container on Azurite."""
    found: Bucket = request.getfixturevalue("gcs" if request.param == "gs" else "azure")
    return found


@pytest.fixture
def proxy(bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingProxy]:
    """The connector reaches the store through a proxy that can answer as the store does in trouble."""
    counting = CountingProxy(bucket.server.endpoint, store=bucket.store)
    point_connector_at(bucket.server, counting.endpoint, monkeypatch)
    yield counting
    with contextlib.suppress(OSError):
        counting.stop()


def assert_failed_for(resource: Any, url: str, *words: str) -> None:
    assert resource.phase == Phase.FAILED, resource.message
    assert url in resource.message, resource.message
    for word in words:
        assert word in resource.message, resource.message
    assert len(resource.message) < 300


def assert_waiting(resource: Any, url: str, *words: str) -> None:
    assert resource.phase == Phase.RUNNING, resource.message
    assert url in resource.message, resource.message
    for word in words:
        assert word in resource.message, resource.message
    assert not resource.HasField("agent_error")


async def test_a_missing_bucket_or_container_fails_naming_the_path(
    connector: Connector, bucket: Bucket
) -> None:
    gone = Bucket(bucket.protocol, bucket.server, f"{bucket.name}-gone")
    url = gone.url("day/part-0")
    kind = "bucket" if bucket.protocol == "gs" else "container"
    resource = await connector.get(await connector.create(file_sensor_request(url)))
    assert_failed_for(resource, url, f"the {kind} {gone.name} does not exist")


async def listed_glob(make_connector: Any, pattern: str) -> agent_pb2.Resource:
    """The first answer to a GlobSensor for `pattern` from a connector sharing answers, so that a prefix
    listing answers it."""
    server = await make_connector(max_staleness=1.0)
    async with connected(server) as c:
        return await c.get(await c.create(request_for(GlobSensor(name="g"), pattern=pattern)))


async def test_a_missing_bucket_fails_a_glob_sensor_answered_by_a_listing(
    make_connector: Any, bucket: Bucket
) -> None:
    gone = Bucket(bucket.protocol, bucket.server, f"{bucket.name}-gone")
    pattern = gone.url("day/*.csv")
    assert_failed_for(await listed_glob(make_connector, pattern), pattern, "does not exist")


async def test_permission_denied_fails_naming_the_path(
    connector: Connector, bucket: Bucket, proxy: CountingProxy
) -> None:
    proxy.mode = "deny"
    url = bucket.url("locked/key")
    resource = await connector.get(await connector.create(file_sensor_request(url)))
    assert_failed_for(resource, url, "permission denied", "403")


async def test_a_wrong_azure_account_key_fails_naming_the_path(
    connector: Connector, azure: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Azurite checks the shared-key signature itself: a real 403 from the real server.
    wrong = "A" * (len(AZURE_KEY) - 2) + "=="
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", azure_connection_string(azure.server.endpoint, wrong)
    )
    url = azure.url("key")
    resource = await connector.get(await connector.create(file_sensor_request(url)))
    assert_failed_for(resource, url)
    assert "credentials" in resource.message or "permission denied" in resource.message, resource.message


@pytest.mark.parametrize(("mode", "status"), [("slowdown", "503"), ("throttle", "429"), ("error", "500")])
async def test_throttling_and_server_errors_keep_the_sensor_waiting_and_say_so(
    connector: Connector, bucket: Bucket, proxy: CountingProxy, mode: str, status: str
) -> None:
    proxy.mode = mode
    url = bucket.url("busy/key")
    meta = await connector.create(file_sensor_request(url))
    for _ in range(2):
        assert_waiting(await connector.get(meta), url, f"the store answered {status}", "will poke again")


async def test_throttling_keeps_a_glob_sensor_answered_by_a_listing_waiting(
    make_connector: Any, bucket: Bucket, proxy: CountingProxy
) -> None:
    proxy.mode = "slowdown"
    pattern = bucket.url("busy/*.csv")
    assert_waiting(await listed_glob(make_connector, pattern), pattern, "the store answered 503")


async def test_a_store_that_never_answers_keeps_the_sensor_waiting(
    make_connector: Any, bucket: Bucket, proxy: CountingProxy
) -> None:
    server = await make_connector(poke_timeout=1.5)
    proxy.mode = "hang"
    url = bucket.url("slow/key")
    async with connected(server) as c:
        resource = await c.get(await c.create(file_sensor_request(url)))
    assert resource.phase == Phase.RUNNING, resource.message
    assert resource.message.startswith(url), resource.message
    # either the client's own timeout (within the poke) or the poke's budget ran out first
    assert "did not answer" in resource.message or "could not reach the store" in resource.message, (
        resource.message
    )


# -- an outage: the emulator killed mid-run, then restarted -----------------------------------------
@dataclass
class Own:
    """An emulator of the test's own (killed by it), and a bucket on it."""

    server: FakeGcs | Azurite
    bucket: Bucket


@pytest.fixture(params=["gs", "abfs"])
async def own(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Own]:
    server: FakeGcs | Azurite = FakeGcs() if request.param == "gs" else Azurite()
    server.start()
    point_connector_at(server, server.endpoint, monkeypatch)
    bucket = Bucket(request.param, server, "outage")
    bucket.create()
    try:
        yield Own(server, bucket)
    finally:
        server.kill()


async def test_a_store_killed_mid_run_and_restarted_fails_no_sensor(own: Own, make_connector: Any) -> None:
    server = await make_connector(poke_timeout=1.5)
    errors: list[grpc.StatusCode] = []
    async with connected(server) as c:
        urls = [own.bucket.url(f"k{i}") for i in range(4)]
        metas = [await c.create(file_sensor_request(url)) for url in urls]
        assert {(await c.get(m)).phase for m in metas} == {Phase.RUNNING}

        async def get(meta: bytes) -> Any:
            try:
                return await c.get(meta)
            except grpc.aio.AioRpcError as exc:
                errors.append(exc.code())
                return None

        polls = asyncio.ensure_future(asyncio.gather(*(get(m) for m in metas)))
        own.server.kill()  # mid-run: while those Gets are poking
        during = [*await polls, *await asyncio.gather(*(get(m) for m in metas))]

        own.server.start()  # the same port, empty again (in-memory)
        own.bucket.create()
        for i in range(4):
            own.bucket.put(f"k{i}")
        after = await asyncio.gather(*(get(m) for m in metas))

    assert not errors, f"RPC errors: {errors}"
    assert all(r is not None and r.phase == Phase.RUNNING for r in during), [r and r.message for r in during]
    outage = [r.message for r in during[len(metas) :] if r is not None]
    assert all("could not reach the store" in m or "did not answer" in m for m in outage), outage
    assert [r.phase for r in after] == [Phase.SUCCEEDED] * 4, [r.message for r in after]


# -- absent credentials -----------------------------------------------------------------------------
async def test_absent_azure_credentials_fail_saying_what_was_looked_for(
    connector: Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_ACCOUNT_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    for url in ("abfs://data/in/part-0", "az://data/in/part-0"):
        resource = await connector.get(await connector.create(file_sensor_request(url)))
        assert_failed_for(resource, url, "no usable credentials", "AZURE_STORAGE_CONNECTION_STRING")


def test_absent_gcs_credentials_fail_saying_what_was_looked_for(
    key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A child connector without STORAGE_EMULATOR_HOST or any Google credentials. google-auth's
    # metadata-server check is pointed at a closed loopback port (GCE_METADATA_HOST/IP, read when
    # google-auth is imported, hence a child process), so nothing leaves the machine.
    for name in list(os.environ):
        if name.startswith(("GOOGLE_", "STORAGE_EMULATOR", "CLOUDSDK", "GCE_")):
            monkeypatch.delenv(name)
    closed = f"127.0.0.1:{loopback_port()}"
    env = {
        "HOME": str(tmp_path),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "GCE_METADATA_HOST": closed,
        "GCE_METADATA_IP": closed,
    }
    proc = spawn("--signing-key-file", str(key_file), "--metrics-port", "0", "--poke-timeout", "4", env=env)
    try:
        resource = asyncio.run(_poke_once(proc.port, "gs://private-bucket/in/part-0"))
    finally:
        proc.stop()
    assert_failed_for(
        resource, "gs://private-bucket/in/part-0", "no usable credentials", "GOOGLE_APPLICATION_CREDENTIALS"
    )


async def _poke_once(port: int, url: str) -> Any:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        c = Connector(None, channel)  # type: ignore[arg-type]  # only the stubs are used
        return await c.get(await c.create(file_sensor_request(url)))


def test_a_slow_credentials_lookup_stalls_no_other_call(
    key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent_store: Any
) -> None:
    # No Google credentials anywhere, and a metadata server that accepts and never answers: looking
    # for credentials takes google-auth's timeouts and retries. The connector makes its gs:// client
    # off the event loop, so the gs:// poke says it is still setting up, other sensors are answered
    # meanwhile, and once the lookup gives up the gs:// sensor fails saying what was looked for.
    for name in list(os.environ):
        if name.startswith(("GOOGLE_", "STORAGE_EMULATOR", "CLOUDSDK", "GCE_")):
            monkeypatch.delenv(name)
    silent = silent_store.endpoint.removeprefix("http://")
    env = {
        "HOME": str(tmp_path),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "GCE_METADATA_HOST": silent,
        "GCE_METADATA_IP": silent,
        "GCE_METADATA_TIMEOUT": "1",
    }
    local = tmp_path / "here"
    local.write_text("x")
    # gcsfs imported at start (--preload): the first poke's budget goes to the credentials lookup alone
    args = (
        "--signing-key-file",
        str(key_file),
        "--metrics-port",
        "0",
        "--poke-timeout",
        "2",
        "--preload",
        "gs",
    )
    proc = spawn(*args, env=env)
    try:
        first, other, last = asyncio.run(_while_looking(proc.port, silent_store, str(local)))
    finally:
        proc.stop()
    assert first.phase == Phase.RUNNING, first.message
    assert "still setting up its gs:// client" in first.message, first.message
    assert other.phase == Phase.SUCCEEDED, other.message
    assert_failed_for(last, "gs://private-bucket/in/part-0", "no usable credentials")


async def _while_looking(port: int, silent_store: Any, local: str) -> tuple[Any, Any, Any]:
    url = "gs://private-bucket/in/part-0"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        c = Connector(None, channel)  # type: ignore[arg-type]  # only the stubs are used
        meta = await c.create(file_sensor_request(url))
        first = await c.get(meta)
        assert await asyncio.to_thread(silent_store.wait_for, 1), "the metadata server was never asked"
        other = await c.get(await c.create(file_sensor_request(local)))  # while the lookup is under way
        last = first
        deadline = asyncio.get_running_loop().time() + 60
        while last.phase == Phase.RUNNING and asyncio.get_running_loop().time() < deadline:
            last = await c.get(meta)  # each Get waits up to the poke budget: no sleep needed
        return first, other, last
