"""Shared answers on GCS (fake-gcs-server) and Azure Blob (Azurite), through the real connector with its
default --listing-protocols, counted at a proxy in front of each server: one first-page listing answers
every sensor waiting under a prefix; a truncated or unreadable listing falls back to each object."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from flyteidl.core import execution_pb2

from sensors.flytekit import GlobSensor
from sensors.store import listings

from .catalog import request_for
from .conftest import Connector, StoreClock, file_sensor_request
from .emulators import Bucket, point_connector_at
from .storeproxy import CountingProxy

Phase = execution_pb2.TaskExecution.Phase
#: Every test here starts (or shares) an emulator process.
pytestmark = pytest.mark.slow
STALENESS = 1.0


@pytest.fixture
def clock() -> StoreClock:
    """The test's clock, given to the server's store before its first poke."""
    return StoreClock()


@pytest.fixture(params=["gs", "abfs"])
def bucket(request: pytest.FixtureRequest) -> Bucket:
    found: Bucket = request.getfixturevalue("gcs" if request.param == "gs" else "azure")
    return found


@dataclass
class Sharing:
    c: Connector
    bucket: Bucket
    proxy: CountingProxy
    clock: StoreClock

    async def sensor(self, key: str, **config: Any) -> bytes:
        request = file_sensor_request(self.bucket.url(key))
        if config:
            request.template.custom["sensor_config"] = config
        return await self.c.create(request)

    async def phases(self, metas: list[bytes]) -> list[int]:
        return [(await self.c.get(meta)).phase for meta in metas]


@pytest.fixture
async def sharing(
    make_connector: Any, bucket: Bucket, clock: StoreClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Sharing]:
    proxy = CountingProxy(bucket.server.endpoint, store=bucket.store)
    point_connector_at(bucket.server, proxy.endpoint, monkeypatch)
    # the default --listing-protocols: no override here
    server = await make_connector(max_staleness=STALENESS)
    server.store.clock = clock
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield Sharing(Connector(server, channel), bucket, proxy, clock)
    finally:
        with contextlib.suppress(OSError):
            proxy.stop()


async def test_a_hundred_sensors_under_one_prefix_cost_at_most_two_requests_a_round(sharing: Sharing) -> None:
    for i in range(0, 100, 2):
        sharing.bucket.put(f"day/part-{i:03d}", b"x" * (i % 7))
    metas = [await sharing.sensor(f"day/part-{i:03d}") for i in range(100)]
    sized = await sharing.sensor("day/part-004", min_size=5)
    expected = [Phase.SUCCEEDED if i % 2 == 0 else Phase.RUNNING for i in range(100)]

    sharing.proxy.reset()
    assert await sharing.phases(metas) == expected
    small = await sharing.c.get(sized)
    assert small.phase == Phase.RUNNING and "has 4 bytes, waiting for 5" in small.message, small.message
    # the first sensor asks alone (its object, and for an absent one whether it is a "directory");
    # the second makes the prefix worth one listing, which answers all the others
    assert sharing.proxy.total() <= 3, sharing.proxy.counts
    assert sharing.proxy.total("list") >= 1

    for _ in range(2):  # later rounds, once the answers have expired: one listing each
        sharing.clock.advance(STALENESS + 0.01)
        sharing.proxy.reset()
        assert await sharing.phases(metas) == expected
        assert sharing.proxy.total() <= 2, sharing.proxy.counts
        assert sharing.proxy.counts == {"list": 1}, sharing.proxy.counts


async def test_a_landed_object_is_seen_and_a_deleted_one_gone_once_the_window_passed(
    sharing: Sharing,
) -> None:
    sharing.bucket.put("land/b")
    a, b = await sharing.sensor("land/a"), await sharing.sensor("land/b")
    assert await sharing.phases([a, b]) == [Phase.RUNNING, Phase.SUCCEEDED]
    sharing.bucket.put("land/a")
    sharing.bucket.delete("land/b")
    sharing.clock.advance(STALENESS / 2)
    assert await sharing.phases([a, b]) == [Phase.RUNNING, Phase.SUCCEEDED]  # this old, no older
    sharing.clock.advance(STALENESS / 2 + 0.01)
    assert await sharing.phases([a, b]) == [Phase.SUCCEEDED, Phase.RUNNING]


async def test_a_prefix_larger_than_one_page_falls_back_to_each_object(
    sharing: Sharing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listings, "LISTING_PAGE", 3)
    for i in range(6):
        sharing.bucket.put(f"big/k{i}")
    metas = [await sharing.sensor(f"big/k{i}") for i in (0, 1, 5)] + [await sharing.sensor("big/k9")]
    expected = [Phase.SUCCEEDED, Phase.SUCCEEDED, Phase.SUCCEEDED, Phase.RUNNING]
    assert await sharing.phases(metas) == expected
    sharing.clock.advance(STALENESS + 0.01)
    sharing.proxy.reset()
    assert await sharing.phases(metas) == expected
    # the truncated prefix is now answered object by object, without listing it again, except for
    # the absent object's own "is it a directory?" question
    assert sharing.proxy.total("list") <= 1 and sharing.proxy.total() <= 5, sharing.proxy.counts


async def test_an_unreadable_listing_falls_back_to_each_object(sharing: Sharing) -> None:
    # An identity allowed to read objects but not to list them: the listing is refused (403), and
    # each sensor is answered by its own object's metadata, never failed.
    sharing.proxy.mode = "deny-list"
    for i in range(0, 6, 2):
        sharing.bucket.put(f"nolist/k{i}")
    metas = [await sharing.sensor(f"nolist/k{i}") for i in range(6)]
    resources = [await sharing.c.get(meta) for meta in metas]
    assert [r.phase for r in resources] == [Phase.SUCCEEDED, Phase.RUNNING] * 3, [
        r.message for r in resources
    ]


async def test_glob_sensors_share_the_listing_with_file_sensors(sharing: Sharing) -> None:
    for name in ("part-0.parquet", "part-1.parquet", "notes.txt"):
        sharing.bucket.put(f"day=1/{name}")
    present, marker = await sharing.sensor("day=1/part-0.parquet"), await sharing.sensor("day=1/_SUCCESS")
    parts = GlobSensor(name="parts", min_count=2, outputs=True)
    glob = await sharing.c.create(request_for(parts, pattern=sharing.bucket.url("day=1/*.parquet")))
    sharing.proxy.reset()
    assert (await sharing.c.get(present)).phase == Phase.SUCCEEDED  # alone so far: its own request
    assert (await sharing.c.get(marker)).phase == Phase.RUNNING  # a second key: the prefix is listed
    done = await sharing.c.get(glob)
    assert done.phase == Phase.SUCCEEDED, done.message
    paths = [lit.scalar.primitive.string_value for lit in done.outputs.literals["paths"].collection.literals]
    assert paths == [sharing.bucket.url("day=1/part-0.parquet"), sharing.bucket.url("day=1/part-1.parquet")]
    assert sharing.proxy.total("list") == 1 and sharing.proxy.total() == 2, sharing.proxy.counts


@pytest.mark.parametrize(("names", "listed"), [(["file", "s3"], False), (["gcs", "az"], True)])
async def test_listing_protocols_chooses_the_stores_that_list(
    make_connector: Any,
    bucket: Bucket,
    clock: StoreClock,
    monkeypatch: pytest.MonkeyPatch,
    names: list[str],
    listed: bool,
) -> None:
    # gcs and az are other names of gs and abfs; left out, a store is answered object by object.
    proxy = CountingProxy(bucket.server.endpoint, store=bucket.store)
    point_connector_at(bucket.server, proxy.endpoint, monkeypatch)
    server = await make_connector(max_staleness=STALENESS, listing_protocols=names)
    server.store.clock = clock
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            c = Connector(server, channel)
            metas = [await c.create(file_sensor_request(bucket.url(f"opt/k{i}"))) for i in range(10)]
            for _ in range(2):
                clock.advance(STALENESS + 0.01)
                proxy.reset()
                assert {(await c.get(meta)).phase for meta in metas} == {Phase.RUNNING}
    finally:
        proxy.stop()
    assert (proxy.counts == {"list": 1}) is listed, proxy.counts
    assert proxy.total() >= (1 if listed else 10), proxy.counts
