"""Replicas sharing a key behind a client that routes as propeller does: a replica sent SIGTERM with calls in
flight, and one killed -9 mid-poll, cost no task a wrong phase, a FAILED or a lost call."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2
from flyteidl.service import agent_pb2_grpc

from ..conftest import S3, SENSOR, Process, file_sensor_request, spawn
from .harness import Replicas, SlowProxy, until

#: Starts processes: left out of the fast tier (`python3 dev.py check --fast`).
pytestmark = pytest.mark.slow

Phase = execution_pb2.TaskExecution.Phase


@pytest.fixture
def slow_store(s3: S3) -> Iterator[SlowProxy]:
    """The test's S3 bucket behind a proxy that holds each request 0.2 s."""
    parts = urlsplit(s3.endpoint)
    proxy = SlowProxy((parts.hostname or "127.0.0.1", parts.port or 80), delay=0.2)
    yield proxy
    proxy.close()


def replica(key_file: Path, state: Path, store: SlowProxy, *args: str) -> Process:
    """A connector process with the shared key, talking to the slow store."""
    return spawn(
        "--signing-key-file",
        str(key_file),
        "--state-dir",
        str(state),
        "--metrics-port",
        "0",
        "--poke-timeout",
        "10",
        *args,
        env={"AWS_ENDPOINT_URL": store.endpoint},
        timeout=90,  # several start at once on a shared CI machine
    )


async def test_sigterm_with_50_calls_in_flight_loses_none(
    key_file: Path, tmp_path: Path, s3: S3, slow_store: SlowProxy
) -> None:
    s3.put(f"k{i}" for i in range(50))
    a, b = await asyncio.gather(
        asyncio.to_thread(
            replica, key_file, tmp_path, slow_store, "--drain-period", "2", "--grace-period", "20"
        ),
        asyncio.to_thread(replica, key_file, tmp_path, slow_store),
    )
    replicas = Replicas()
    try:
        replicas.add(a.port)
        replicas.add(b.port)
        await until(lambda: all(replicas.serving.values()), 15, "both replicas serving")
        metas = [await replicas.create(file_sensor_request(f"s3://{s3.bucket}/k{i}")) for i in range(50)]

        async with grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as to_a:
            stub = agent_pb2_grpc.AsyncAgentServiceStub(to_a)
            in_flight = [
                asyncio.ensure_future(
                    stub.GetTask(agent_pb2.GetTaskRequest(task_category=SENSOR, resource_meta=m), timeout=60)
                )
                for m in metas
            ]
            await until(lambda: slow_store.requests > 0, 15, "pokes to reach the store")
            os.kill(a.proc.pid, signal.SIGTERM)
            # Meanwhile the client keeps polling every task through whichever replicas are serving.
            during = await asyncio.gather(*(replicas.get(m) for m in metas))
            answers = await asyncio.gather(*in_flight)
        assert a.proc.wait(timeout=30) == 0
        await until(lambda: not replicas.serving.get(a.port), 5, "the stopped replica to leave the rotation")
        after = await asyncio.gather(*(replicas.get(m) for m in metas))
    finally:
        await replicas.close()
        a.stop()
        b.stop()

    assert [r.resource.phase for r in answers] == [Phase.SUCCEEDED] * 50
    assert [r.phase for r in during + after] == [Phase.SUCCEEDED] * 100
    assert not replicas.errors, f"RPC errors seen by the client: {dict(replicas.errors)}"
    assert replicas.calls_to[b.port] >= 50


async def test_a_replica_killed_mid_poll_and_restarted_costs_no_task_its_phase(
    key_file: Path, tmp_path: Path, s3: S3, slow_store: SlowProxy
) -> None:
    s3.put(f"present{i}" for i in range(10))
    keys = [f"present{i}" for i in range(10)] + [f"absent{i}" for i in range(10)]
    expected = [Phase.SUCCEEDED] * 10 + [Phase.RUNNING] * 10
    # The replacement starts with the others, as a surge pod would, and joins once `a` is gone: it only
    # has the shared key in common with them, like a restarted pod.
    a, b, restarted = await asyncio.gather(
        *(asyncio.to_thread(replica, key_file, tmp_path, slow_store) for _ in range(3))
    )
    replicas = Replicas()
    try:
        replicas.add(a.port)
        replicas.add(b.port)
        await until(lambda: all(replicas.serving.values()), 15, "both replicas serving")
        metas = [await replicas.create(file_sensor_request(f"s3://{s3.bucket}/{k}")) for k in keys]

        polls = asyncio.ensure_future(asyncio.gather(*(replicas.get(m) for m in metas)))
        await until(lambda: slow_store.requests > 0, 15, "pokes to reach the store")
        a.proc.kill()  # SIGKILL mid-poll: no drain, no goodbye
        during = await polls
        await replicas.remove(a.port)  # its Endpoint goes; the replacement comes up elsewhere
        assert a.proc.wait(timeout=10) == -signal.SIGKILL

        replicas.add(restarted.port)
        await until(lambda: replicas.serving.get(restarted.port, False), 15, "the restarted replica serving")
        after = await asyncio.gather(*(replicas.get(m) for m in metas))
        again = await asyncio.gather(*(replicas.get(m) for m in metas))
    finally:
        await replicas.close()
        b.stop()
        restarted.stop()

    for round_ in (during, after, again):
        assert [r.phase for r in round_] == expected
    # Only the calls cut off by the kill failed, as UNAVAILABLE, and each was answered by another replica.
    assert set(replicas.errors) <= {grpc.StatusCode.UNAVAILABLE}, dict(replicas.errors)
    assert 0 < replicas.errors[grpc.StatusCode.UNAVAILABLE] <= len(metas), "no call was cut off by the kill"
    assert replicas.calls_to[restarted.port] > 0
