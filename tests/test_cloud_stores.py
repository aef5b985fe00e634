"""FileSensor and GlobSensor on GCS (fake-gcs-server) and Azure Blob (Azurite), through the real connector,
on gs://, abfs:// and az://: the lifecycle RUNNING -> SUCCEEDED, each condition, and the outputs.

The connector finds each server only through the standard variables (STORAGE_EMULATOR_HOST,
AZURE_STORAGE_CONNECTION_STRING), with its own credentials, as it would in a pod.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2
from flyteidl.service import agent_pb2_grpc

from sensors.flytekit import GlobSensor

from .catalog import request_for
from .conftest import SENSOR, Connector, file_sensor_request, spawn
from .emulators import Bucket

Phase = execution_pb2.TaskExecution.Phase
#: Every test here starts (or shares) an emulator process.
pytestmark = pytest.mark.slow


async def file_sensor(c: Connector, url: str, **config: Any) -> bytes:
    request = file_sensor_request(url)
    if config:
        request.template.custom["sensor_config"] = config
    return await c.create(request)


def paths_of(resource: Any) -> list[str]:
    return [
        lit.scalar.primitive.string_value for lit in resource.outputs.literals["paths"].collection.literals
    ]


async def test_file_sensor_waits_for_an_object_then_succeeds(connector: Connector, cloud: Bucket) -> None:
    url = cloud.url("incoming/data.csv")
    meta = await file_sensor(connector, url)
    waiting = await connector.get(meta)
    assert waiting.phase == Phase.RUNNING, waiting.message
    assert waiting.message == f"{url} does not exist yet.", waiting.message
    cloud.put("incoming/data.csv", b"a,b\n")
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED, done.message
    assert done.message == f"{url} exists."


async def test_file_sensor_min_size_reads_the_object_size(connector: Connector, cloud: Bucket) -> None:
    cloud.put("sized/part", b"1234")
    small = await connector.get(await file_sensor(connector, cloud.url("sized/part"), min_size=5))
    assert small.phase == Phase.RUNNING
    assert "has 4 bytes, waiting for 5" in small.message, small.message
    enough = await connector.get(await file_sensor(connector, cloud.url("sized/part"), min_size=4))
    assert enough.phase == Phase.SUCCEEDED, enough.message


async def test_file_sensor_min_age_reads_the_modification_time(connector: Connector, cloud: Bucket) -> None:
    cloud.put("aged/part")
    young = await connector.get(await file_sensor(connector, cloud.url("aged/part"), min_age=3600))
    assert young.phase == Phase.RUNNING
    # the store's modification time was read: the object is seconds old, not an hour
    assert "was modified" in young.message and "waiting 3" in young.message, young.message
    old_enough = await connector.get(await file_sensor(connector, cloud.url("aged/part"), min_age=0))
    assert old_enough.phase == Phase.SUCCEEDED, old_enough.message


async def test_file_sensor_on_a_prefix_holding_objects_succeeds(connector: Connector, cloud: Bucket) -> None:
    cloud.put("tree/day=1/part-0")
    done = await connector.get(await file_sensor(connector, cloud.url("tree/day=1")))
    assert done.phase == Phase.SUCCEEDED, done.message


async def test_glob_sensor_waits_for_count_and_marker_and_outputs_paths(
    connector: Connector, cloud: Bucket
) -> None:
    sensor = GlobSensor(name="parts", min_count=2, marker="_SUCCESS", outputs=True)
    pattern = cloud.url("out/day=2/*.parquet")
    meta = await connector.create(request_for(sensor, pattern=pattern))
    cloud.put("out/day=2/part-0.parquet")
    cloud.put("out/day=2/notes.txt")
    one = await connector.get(meta)
    assert one.phase == Phase.RUNNING and "matches 1 path(s), waiting for 2" in one.message, one.message
    cloud.put("out/day=2/part-1.parquet")
    unmarked = await connector.get(meta)
    assert unmarked.phase == Phase.RUNNING
    assert f"waiting for {cloud.url('out/day=2/_SUCCESS')}" in unmarked.message, unmarked.message
    cloud.put("out/day=2/_SUCCESS", b"")
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED, done.message
    assert paths_of(done) == [cloud.url("out/day=2/part-0.parquet"), cloud.url("out/day=2/part-1.parquet")]


async def test_glob_sensor_with_wildcards_in_the_prefix(connector: Connector, cloud: Bucket) -> None:
    sensor = GlobSensor(name="days", min_count=2, outputs=True)
    for day in (1, 2):
        cloud.put(f"deep/day={day}/part.csv")
    done = await connector.get(
        await connector.create(request_for(sensor, pattern=cloud.url("deep/*/part.csv")))
    )
    assert done.phase == Phase.SUCCEEDED, done.message
    assert paths_of(done) == [cloud.url("deep/day=1/part.csv"), cloud.url("deep/day=2/part.csv")]


async def test_first_poke_answers_within_the_poke_budget(make_connector: Any, gcs: Bucket) -> None:
    # gcsfs 2026.x's experimental class would probe the bucket's layout over gRPC first (60 s against
    # an emulator, so this poke would answer "the store did not answer within 1.8s"); the connector
    # uses the JSON API client, so the very first poke of a fresh server is answered.
    server = await make_connector(poke_timeout=2.0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        c = Connector(server, channel)
        gcs.put("first/obj")
        resource = await c.get(await file_sensor(c, gcs.url("first/obj")))
    assert resource.phase == Phase.SUCCEEDED, resource.message


async def test_the_first_answer_links_to_the_store_console(
    connector: Connector, cloud: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = "/subscriptions/0000/resourceGroups/data/providers/Microsoft.Storage/storageAccounts/lake"
    monkeypatch.setenv("SENSOR_CONNECTOR_AZURE_STORAGE_ACCOUNT_ID", account)
    first = await connector.get(await file_sensor(connector, cloud.url("in/a b.csv")))
    links = [(link.name, link.uri) for link in first.log_links]
    if cloud.protocol == "gs":
        expected = (
            "GCS console",
            f"https://console.cloud.google.com/storage/browser/{cloud.name}/in/a%20b.csv",
        )
    else:
        expected = (
            "Azure portal",
            "https://portal.azure.com/#view/Microsoft_Azure_Storage/ContainerMenuBlade/~/overview/"
            "storageAccountId/%2Fsubscriptions%2F0000%2FresourceGroups%2Fdata%2Fproviders%2F"
            f"Microsoft.Storage%2FstorageAccounts%2Flake/path/{cloud.name}",
        )
    assert links == [expected]


async def test_without_the_account_id_an_azure_path_has_no_link(
    connector: Connector, azure: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENSOR_CONNECTOR_AZURE_STORAGE_ACCOUNT_ID", raising=False)
    first = await connector.get(await file_sensor(connector, azure.url("in/x")))
    assert first.phase == Phase.RUNNING and list(first.log_links) == []


def test_a_connector_that_polled_gcs_and_azure_stops_cleanly(
    gcs: Bucket, azure: Bucket, tmp_path: Any
) -> None:
    # An operator's view of a rollout: SIGTERM after pokes on both stores ends the process with 0 and
    # nothing on stderr but log lines (no client left to a closed loop, no traceback at exit).
    server = spawn("--state-dir", str(tmp_path / "state"), "--metrics-port", "0", "--log-format", "json")
    try:
        stub = agent_pb2_grpc.AsyncAgentServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
        for bucket in (gcs, azure):
            meta = stub.CreateTask(file_sensor_request(bucket.url("later")), timeout=10).resource_meta
            request = agent_pb2.GetTaskRequest(task_category=SENSOR, resource_meta=meta)
            resource = stub.GetTask(request, timeout=10).resource
            assert resource.phase == Phase.RUNNING and "does not exist yet" in resource.message
    finally:
        code = server.stop()
    assert code == 0
    strays = [line for line in server.log if not line.startswith("{")]
    assert not strays, "".join(strays)
