"""The Store a server owns: its own settings, counters and shared answers, its clients closed at shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.core import execution_pb2

from sensors.base import PermanentError
from sensors.store import Store, StoreSettings

from .conftest import S3, Connector, file_sensor_request, free_port, scrape
from .storeproxy import CountingProxy

Phase = execution_pb2.TaskExecution.Phase
REQUESTS = "flyte_sensor_connector_store_requests_total"


async def test_two_servers_in_one_process_keep_their_own_store(make_connector: Any, tmp_path: Path) -> None:
    for i in range(0, 6, 2):
        (tmp_path / f"part-{i}").write_text("x")
    sharing = await make_connector(max_staleness=60.0, metrics_port=free_port())
    exact = await make_connector(max_staleness=0.0, metrics_port=free_port())
    for server in (sharing, exact):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            c = Connector(server, channel)
            metas = [await c.create(file_sensor_request(str(tmp_path / f"part-{i}"))) for i in range(6)]
            phases = [(await c.get(meta)).phase for meta in metas]
            assert phases == [Phase.SUCCEEDED if i % 2 == 0 else Phase.RUNNING for i in range(6)]
    shared, own = scrape(sharing.metrics.port), scrape(exact.metrics.port)
    # one server's settings and counters are not the other's: the first lists the directory once
    # the second path is asked about, the second asks about every path on its own
    assert shared[(REQUESTS, (("operation", "info"), ("protocol", "file")))] == 1
    assert shared[(REQUESTS, (("operation", "list"), ("protocol", "file")))] == 1
    assert own[(REQUESTS, (("operation", "info"), ("protocol", "file")))] == 6
    assert (REQUESTS, (("operation", "list"), ("protocol", "file"))) not in own


async def test_shutdown_closes_the_connections_to_the_object_store(
    make_connector: Any, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = CountingProxy(s3.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    try:
        server = await make_connector(preload=["s3"])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            c = Connector(server, channel)
            meta = await c.create(file_sensor_request(f"s3://{s3.bucket}/later"))
            assert (await c.get(meta)).phase == Phase.RUNNING
        assert proxy.open >= 1  # the client keeps its connection for the next poke
        server.request_exit()
        await server.shutdown()
        assert await asyncio.to_thread(proxy.wait_all_closed, 10), f"{proxy.open} connection(s) left open"
    finally:
        proxy.stop()


async def test_a_path_is_admitted_before_any_access(tmp_path: Path) -> None:
    store = Store(StoreSettings(max_staleness=1.0))
    for path in ("", "   "):
        with pytest.raises(PermanentError, match="the path is empty"):
            await store.info(path)
    assert store.stats.requests == {}
    (tmp_path / "here").write_text("x")
    assert await store.exists(str(tmp_path / "here")) and not await store.exists(str(tmp_path / "not"))
    await store.close()


def test_settings_refuse_listing_protocols_without_a_lister() -> None:
    with pytest.raises(ValueError, match="--listing-protocols: no bounded listing for hdfs"):
        StoreSettings(listing_protocols=frozenset({"s3", "hdfs"}))
    assert StoreSettings(listing_protocols=frozenset({" s3", ""})).listing_protocols == {"s3"}
    # other names of a listing protocol name it
    assert StoreSettings(listing_protocols=frozenset({"gcs", "az", "s3a"})).listing_protocols == {
        "gs",
        "abfs",
        "s3",
    }
