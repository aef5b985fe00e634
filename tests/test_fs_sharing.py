"""Object-store sharing through the real server against moto's S3 on loopback, counted by a proxy:
few requests, never a wrong phase, staleness bounded by --max-staleness, faults still transient."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from flyteidl.core import execution_pb2

from connector.server import Server
from sensors.flytekit import GlobSensor
from sensors.store import listings

from .catalog import request_for
from .conftest import S3, Connector, StoreClock, file_sensor_request, free_port, scrape
from .storeproxy import CountingProxy

Phase = execution_pb2.TaskExecution.Phase
STALENESS = 1.0


@pytest.fixture
def clock() -> StoreClock:
    """The test's clock, given to the server's store before its first poke."""
    return StoreClock()


async def started(make_connector: Any, clock: StoreClock, **overrides: Any) -> Server:
    server: Server = await make_connector(**overrides)
    server.store.clock = clock
    return server


@pytest.fixture
def proxy(s3: S3, monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingProxy]:
    """The connector talks to moto through the counting proxy; the test's own client goes direct."""
    counting = CountingProxy(s3.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", counting.endpoint)
    yield counting
    with contextlib.suppress(OSError):  # some tests stop it themselves
        counting.stop()


@dataclass
class Sharing:
    """A connector with sharing on, the store behind a proxy, and the test's clock."""

    c: Connector
    s3: S3
    proxy: CountingProxy
    clock: StoreClock

    def put(self, key: str, body: bytes = b"x") -> None:
        self.s3.client().put_object(Bucket=self.s3.bucket, Key=key, Body=body)

    def url(self, key: str) -> str:
        return f"s3://{self.s3.bucket}/{key}"

    async def sensor(self, key: str, **config: Any) -> bytes:
        request = file_sensor_request(self.url(key))
        if config:
            request.template.custom["sensor_config"] = config
        return await self.c.create(request)


@pytest.fixture
async def sharing(
    make_connector: Any, s3: S3, proxy: CountingProxy, clock: StoreClock
) -> AsyncIterator[Sharing]:
    server = await started(
        make_connector, clock, max_staleness=STALENESS, preload=["s3"], metrics_port=free_port()
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Sharing(Connector(server, channel), s3, proxy, clock)


async def test_a_round_over_sensors_under_one_prefix_is_answered_by_one_listing(sharing: Sharing) -> None:
    for i in range(0, 20, 2):
        sharing.put(f"day/part-{i:02d}", b"x" * i)
    metas = [await sharing.sensor(f"day/part-{i:02d}") for i in range(20)]
    sized = await sharing.sensor("day/part-04", min_size=5)
    sharing.proxy.reset()
    phases = [(await sharing.c.get(meta)).phase for meta in metas]
    small = await sharing.c.get(sized)
    assert phases == [Phase.SUCCEEDED if i % 2 == 0 else Phase.RUNNING for i in range(20)]
    assert small.phase == Phase.RUNNING and "has 4 bytes, waiting for 5" in small.message
    # the first sensor asks alone (HEAD); the second makes the prefix worth one listing for all
    assert sharing.proxy.total() <= 3, sharing.proxy.counts
    assert sharing.proxy.total("list") == 1
    figures = scrape(sharing.c.server.metrics.port)
    answers = ("flyte_sensor_connector_store_answers_total", (("protocol", "s3"), ("source", "listing")))
    assert figures[answers] >= 20
    lists = ("flyte_sensor_connector_store_requests_total", (("operation", "list"), ("protocol", "s3")))
    assert figures[lists] >= 1


async def test_without_sharing_every_poke_asks_the_store(
    make_connector: Any, s3: S3, proxy: CountingProxy
) -> None:
    server = await make_connector(max_staleness=0.0, preload=["s3"])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        c = Connector(server, channel)
        metas = [await c.create(file_sensor_request(f"s3://{s3.bucket}/day/p{i}")) for i in range(10)]
        proxy.reset()
        for meta in metas:
            assert (await c.get(meta)).phase == Phase.RUNNING
    assert proxy.total("head") == 10


async def test_concurrent_pokes_for_one_object_share_one_request(sharing: Sharing) -> None:
    metas = [await sharing.sensor("alone/key") for _ in range(12)]
    sharing.proxy.reset()
    resources = await asyncio.gather(*(sharing.c.get(meta) for meta in metas))
    assert {r.phase for r in resources} == {Phase.RUNNING}
    # one info: HEAD, then s3fs' one-key listing to rule out a directory
    assert sharing.proxy.total() <= 2, sharing.proxy.counts


async def test_a_put_object_is_seen_once_the_window_has_passed(sharing: Sharing) -> None:
    a, b = await sharing.sensor("land/a"), await sharing.sensor("land/b")
    assert (await sharing.c.get(a)).phase == Phase.RUNNING
    assert (await sharing.c.get(b)).phase == Phase.RUNNING  # now listed: both answered by one listing
    sharing.put("land/a")
    sharing.clock.advance(STALENESS / 2)
    assert (await sharing.c.get(a)).phase == Phase.RUNNING  # the answer may be this old, no older
    sharing.clock.advance(STALENESS / 2 + 0.01)
    assert (await sharing.c.get(a)).phase == Phase.SUCCEEDED
    assert (await sharing.c.get(b)).phase == Phase.RUNNING


async def test_a_deleted_object_is_not_reported_once_the_window_has_passed(sharing: Sharing) -> None:
    for key in ("gone/a", "gone/b"):
        sharing.put(key)
    a, b = await sharing.sensor("gone/a"), await sharing.sensor("gone/b")
    assert (await sharing.c.get(a)).phase == Phase.SUCCEEDED
    assert (await sharing.c.get(b)).phase == Phase.SUCCEEDED
    sharing.s3.client().delete_object(Bucket=sharing.s3.bucket, Key="gone/a")
    sharing.clock.advance(STALENESS + 0.01)
    assert (await sharing.c.get(a)).phase == Phase.RUNNING
    assert (await sharing.c.get(b)).phase == Phase.SUCCEEDED


async def test_a_prefix_larger_than_one_listing_page_falls_back_to_each_object(
    sharing: Sharing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listings, "LISTING_PAGE", 3)
    for i in range(6):
        sharing.put(f"big/k{i}")
    metas = [await sharing.sensor(f"big/k{i}") for i in (0, 1, 5)] + [await sharing.sensor("big/k9")]
    phases = [(await sharing.c.get(meta)).phase for meta in metas]
    assert phases == [Phase.SUCCEEDED, Phase.SUCCEEDED, Phase.SUCCEEDED, Phase.RUNNING]
    sharing.proxy.reset()
    sharing.clock.advance(STALENESS + 0.01)
    phases = [(await sharing.c.get(meta)).phase for meta in metas]
    assert phases == [Phase.SUCCEEDED, Phase.SUCCEEDED, Phase.SUCCEEDED, Phase.RUNNING]
    # the truncated prefix is now answered object by object, without listing it again
    assert sharing.proxy.total("head") == 4 and sharing.proxy.total("list") == 1, sharing.proxy.counts


async def test_glob_sensors_share_the_parent_listing_with_file_sensors(sharing: Sharing) -> None:
    for name in ("part-0.parquet", "part-1.parquet", "notes.txt"):
        sharing.put(f"day=1/{name}")
    present, marker = await sharing.sensor("day=1/part-0.parquet"), await sharing.sensor("day=1/_SUCCESS")
    parts = GlobSensor(name="parts", min_count=2, outputs=True)
    glob = await sharing.c.create(request_for(parts, pattern=sharing.url("day=1/*.parquet")))
    sharing.proxy.reset()
    assert (await sharing.c.get(present)).phase == Phase.SUCCEEDED  # alone so far: one HEAD
    assert (await sharing.c.get(marker)).phase == Phase.RUNNING  # a second key: the prefix is listed
    done = await sharing.c.get(glob)
    assert done.phase == Phase.SUCCEEDED, done.message
    paths = [lit.scalar.primitive.string_value for lit in done.outputs.literals["paths"].collection.literals]
    assert paths == [sharing.url("day=1/part-0.parquet"), sharing.url("day=1/part-1.parquet")]
    assert sharing.proxy.counts == {"head": 1, "list": 1}


async def test_throttling_keeps_sensors_waiting_and_says_so(sharing: Sharing) -> None:
    metas = [await sharing.sensor(f"busy/k{i}") for i in range(4)]
    sharing.proxy.mode = "slowdown"
    for meta in metas:
        resource = await sharing.c.get(meta)
        assert resource.phase == Phase.RUNNING
        assert "503" in resource.message and "will poke again" in resource.message, resource.message
        assert not resource.HasField("agent_error")


async def test_an_outage_keeps_sensors_waiting_and_says_the_store_is_unreachable(sharing: Sharing) -> None:
    metas = [await sharing.sensor(f"down/k{i}") for i in range(3)]
    sharing.put("down/k0")
    assert (await sharing.c.get(metas[0])).phase == Phase.SUCCEEDED
    sharing.proxy.stop()
    sharing.clock.advance(STALENESS + 0.01)
    for meta in metas:
        resource = await sharing.c.get(meta)
        assert resource.phase == Phase.RUNNING, resource.message
        assert "could not reach the store" in resource.message, resource.message


# -- local directories: one os.scandir answers every sensor waiting in a directory -----------------
@pytest.fixture
async def local(make_connector: Any, clock: StoreClock) -> AsyncIterator[Connector]:
    server = await started(make_connector, clock, max_staleness=STALENESS)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Connector(server, channel)


def _file_counts(c: Connector) -> tuple[int, int]:
    """(info, list) requests the connector's store made to local directories so far."""
    requests = c.server.store.stats.requests
    return requests.get(("file", "info"), 0), requests.get(("file", "list"), 0)


async def test_sensors_in_one_local_directory_share_one_scan(
    local: Connector, clock: StoreClock, tmp_path: Any
) -> None:
    for i in range(0, 20, 2):
        (tmp_path / f"part-{i:02d}").write_bytes(b"x" * i)
    (tmp_path / "sub").mkdir()
    metas = [await local.create(file_sensor_request(str(tmp_path / f"part-{i:02d}"))) for i in range(20)]
    directory = await local.create(file_sensor_request(str(tmp_path / "sub")))
    sized = file_sensor_request(str(tmp_path / "part-04"))
    sized.template.custom["sensor_config"] = {"min_size": 5}
    small = await local.create(sized)
    info0, list0 = _file_counts(local)
    phases = [(await local.get(meta)).phase for meta in metas]
    assert phases == [Phase.SUCCEEDED if i % 2 == 0 else Phase.RUNNING for i in range(20)]
    assert (await local.get(directory)).phase == Phase.SUCCEEDED  # a directory counts as present
    waiting = await local.get(small)
    assert waiting.phase == Phase.RUNNING and "has 4 bytes, waiting for 5" in waiting.message
    info1, list1 = _file_counts(local)
    # the first sensor asks alone; the second makes the directory worth one scan for all
    assert (info1 - info0, list1 - list0) == (1, 1)

    # A file that lands is seen once the window has passed, and a removed one is gone.
    (tmp_path / "part-01").write_text("now")
    (tmp_path / "part-00").unlink()
    clock.advance(STALENESS + 0.01)
    assert (await local.get(metas[1])).phase == Phase.SUCCEEDED
    assert (await local.get(metas[0])).phase == Phase.RUNNING
    assert _file_counts(local)[1] == list1 + 1


async def test_a_directory_that_cannot_be_scanned_falls_back_to_each_path(
    local: Connector, tmp_path: Any
) -> None:
    # scandir of a file fails (ENOTDIR), as it does for an unreadable directory: each path is then
    # looked up on its own, and a path under a file can never exist, which is permanent.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    metas = [await local.create(file_sensor_request(str(blocker / f"x{i}"))) for i in range(3)]
    info0, _ = _file_counts(local)
    answers = [await local.get(meta) for meta in metas]
    assert [a.phase for a in answers] == [Phase.FAILED] * 3
    assert all("Not a directory" in a.message for a in answers)
    assert _file_counts(local)[0] - info0 == 3


async def test_a_missing_bucket_fails_sensors_answered_by_a_listing(sharing: Sharing) -> None:
    gone = f"{sharing.s3.bucket}-gone"
    metas = [await sharing.c.create(file_sensor_request(f"s3://{gone}/day/k{i}")) for i in range(3)]
    resources = [await sharing.c.get(meta) for meta in metas]
    assert [r.phase for r in resources] == [Phase.FAILED] * 3, [r.message for r in resources]
    for i, resource in enumerate(resources):
        assert resource.message.startswith(f"s3://{gone}/day/k{i}: the bucket {gone} does not exist")
    assert sharing.proxy.total("list") >= 1  # the later ones were answered by the (failed) listing
