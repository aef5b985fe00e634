"""GlobSensor `quiet_for`: met once at least `min_count` objects match and the newest of them was modified
at least `quiet_for` seconds ago (and the marker exists, if set). Stateless: read from one listing (or one
glob) per poke, on local directories (times set with os.utime) and on GCS and Azure emulators."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.core import execution_pb2

from sensors.flytekit import GlobSensor

from .catalog import request_for
from .conftest import Connector, StoreClock
from .emulators import Bucket

Phase = execution_pb2.TaskExecution.Phase


#: The store's clock, moved by the test past the staleness bound after it changes files.
CLOCK = StoreClock()


def changed() -> None:
    """Files changed: let shared answers expire (a no-op without sharing)."""
    CLOCK.now += 2.0


@pytest.fixture(params=[0.0, 1.0], ids=["own-glob", "shared-listing"])
async def c(request: pytest.FixtureRequest, make_connector: Any) -> AsyncIterator[Connector]:
    """A connector answering each glob itself, then one answering it from a shared listing."""
    server = await make_connector(max_staleness=request.param)
    server.store.clock = CLOCK
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Connector(server, channel)


def aged(path: Path, seconds_ago: float) -> None:
    path.write_bytes(b"x")
    when = time.time() - seconds_ago
    os.utime(path, (when, when))


async def poke(c: Connector, pattern: str, **config: Any) -> Any:
    sensor = GlobSensor(name="quiet", outputs=True, **config)
    return await c.get(await c.create(request_for(sensor, pattern=pattern)))


async def test_local_matches_are_quiet_once_the_newest_is_old_enough(c: Connector, tmp_path: Path) -> None:
    aged(tmp_path / "part-0.csv", 600)
    aged(tmp_path / "part-1.csv", 100)  # the newest
    pattern = str(tmp_path / "*.csv")
    busy = await poke(c, pattern, min_count=2, quiet_for=300)
    assert busy.phase == Phase.RUNNING, busy.message
    newest = str(tmp_path / "part-1.csv")
    assert f"the newest, {newest}, was modified 100s ago; waiting 200s more" in busy.message, busy.message
    quiet = await poke(c, pattern, min_count=2, quiet_for=60)
    assert quiet.phase == Phase.SUCCEEDED, quiet.message
    paths = [lit.scalar.primitive.string_value for lit in quiet.outputs.literals["paths"].collection.literals]
    assert paths == [str(tmp_path / "part-0.csv"), newest]


async def test_quiet_for_waits_for_min_count_first_and_then_the_marker(c: Connector, tmp_path: Path) -> None:
    aged(tmp_path / "part-0.csv", 600)
    pattern = str(tmp_path / "*.csv")
    few = await poke(c, pattern, min_count=2, quiet_for=60)
    assert few.phase == Phase.RUNNING and "matches 1 path(s), waiting for 2" in few.message, few.message
    aged(tmp_path / "part-1.csv", 600)
    changed()
    unmarked = await poke(c, pattern, min_count=2, quiet_for=60, marker="_SUCCESS")
    assert unmarked.phase == Phase.RUNNING and "_SUCCESS" in unmarked.message, unmarked.message
    aged(tmp_path / "_SUCCESS", 0)  # the marker's own time does not count
    changed()
    done = await poke(c, pattern, min_count=2, quiet_for=60, marker="_SUCCESS")
    assert done.phase == Phase.SUCCEEDED, done.message


async def test_a_new_object_makes_the_matches_busy_again(c: Connector, tmp_path: Path) -> None:
    aged(tmp_path / "part-0.csv", 600)
    pattern = str(tmp_path / "*.csv")
    assert (await poke(c, pattern, quiet_for=60)).phase == Phase.SUCCEEDED
    aged(tmp_path / "part-1.csv", 5)
    changed()
    again = await poke(c, pattern, quiet_for=60)
    assert again.phase == Phase.RUNNING and "was modified 5s ago" in again.message, again.message


@pytest.mark.slow  # starts the GCS and Azure emulators
async def test_quiet_for_on_object_stores(c: Connector, cloud: Bucket) -> None:
    cloud.put("upload/part-0")
    cloud.put("upload/part-1")
    pattern = cloud.url("upload/part-*")
    busy = await poke(c, pattern, min_count=2, quiet_for=3600)
    assert busy.phase == Phase.RUNNING, busy.message
    # the store's times were read: the newest object is seconds old, not an hour
    assert "was modified" in busy.message and "waiting 3" in busy.message, busy.message
    quiet = await poke(c, pattern, min_count=2, quiet_for=0)
    assert quiet.phase == Phase.SUCCEEDED, quiet.message


def test_quiet_for_is_checked_when_the_task_is_declared() -> None:
    with pytest.raises(ValueError, match="quiet_for must be zero or more seconds"):
        GlobSensor(name="bad", quiet_for=-1)
