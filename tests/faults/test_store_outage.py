"""The object store (moto's S3 server, a child process) killed mid-run and restarted: while it is gone every
Get answers RUNNING (never FAILED, never an RPC error), and once it is back the sensors are met."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from flyteidl.core import execution_pb2

from ..conftest import Connector, file_sensor_request, free_port
from .harness import MotoProcess

#: Starts processes: left out of the fast tier (`python3 dev.py check --fast`).
pytestmark = pytest.mark.slow

Phase = execution_pb2.TaskExecution.Phase
BUCKET = "outage"


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoProcess]:
    """moto_server on a loopback port of its own, with credentials in the environment as in a pod."""
    store = MotoProcess(free_port())
    store.start()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": store.endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    yield store
    if store.proc is not None and store.proc.poll() is None:
        store.kill()


async def test_a_store_killed_mid_run_and_restarted_fails_no_sensor(
    moto: MotoProcess, make_connector: object, tmp_path: Path
) -> None:
    moto.client().create_bucket(Bucket=BUCKET)
    server = await make_connector(poke_timeout=1.5)  # type: ignore[operator]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        c = Connector(server, channel)
        metas = [await c.create(file_sensor_request(f"s3://{BUCKET}/k{i}")) for i in range(5)]
        assert {(await c.get(m)).phase for m in metas} == {Phase.RUNNING}

        errors: list[grpc.StatusCode] = []

        async def get(meta: bytes) -> int:
            try:
                return int((await c.get(meta)).phase)
            except grpc.aio.AioRpcError as exc:
                errors.append(exc.code())
                return -1

        polls = asyncio.ensure_future(asyncio.gather(*(get(m) for m in metas)))
        moto.kill()  # mid-run: while those Gets are poking
        outage = [await polls, await asyncio.gather(*(get(m) for m in metas))]

        moto.start()  # an empty store again, as after a restart without persistence
        client = moto.client()
        client.create_bucket(Bucket=BUCKET)
        for i in range(5):
            client.put_object(Bucket=BUCKET, Key=f"k{i}", Body=b"x")
        phases: dict[int, int] = {}

        async def poll_all() -> None:
            for i, meta in enumerate(metas):
                if phases.get(i) != Phase.SUCCEEDED:
                    phases[i] = await get(meta)

        async def all_met() -> bool:
            await poll_all()
            return all(p == Phase.SUCCEEDED for p in phases.values())

        deadline = asyncio.get_running_loop().time() + 30
        while not await all_met():
            assert asyncio.get_running_loop().time() < deadline, (
                f"not met after the store came back: {phases}"
            )

    assert not errors, f"RPC errors: {errors}"
    for round_ in outage:
        assert set(round_) == {Phase.RUNNING}, f"during the outage: {round_}"
