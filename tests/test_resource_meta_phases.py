"""resource_meta on Get and Delete: anything about the task is a phase, never an RPC error.

Propeller counts GetTask RPC errors per task and never forgives them (FIELD-NOTES), so resource_meta
that can never verify fails the task at once with a reason, a key this replica lacks keeps it
Running until a replica that holds the key answers, and DeleteTask is OK for anything.
"""

from __future__ import annotations

import logging
import pickle
import secrets
from pathlib import Path

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, identifier_pb2, literals_pb2, types_pb2

from connector.state._proto.flyte_sensor_connector.v1 import resource_meta_pb2 as pb
from connector.state.codec import Codec

from .conftest import SENSOR, Connector, file_sensor_request

Phase = execution_pb2.TaskExecution.Phase


async def _delete(connector: Connector, meta: bytes) -> None:
    await connector.agent.DeleteTask(agent_pb2.DeleteTaskRequest(task_category=SENSOR, resource_meta=meta))


def _assert_failed(resource: agent_pb2.Resource, needle: str) -> None:
    assert resource.phase == Phase.FAILED, resource
    assert needle in resource.message
    assert resource.message.endswith(".") and len(resource.message) < 300
    assert resource.agent_error.kind == agent_pb2.AgentError.NON_RECOVERABLE


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        (b"", "empty"),
        (b"\x8f\x01garbage", "not a signed sensor state"),
        (b"x" * 5000, "more than"),
        (
            pb.SignedResourceMeta(key_id="../../etc", payload=b"x", mac=b"y").SerializeToString(),
            "never writes",
        ),
    ],
)
async def test_unverifiable_resource_meta_fails_the_task_and_deletes_fine(
    connector: Connector, meta: bytes, needle: str
) -> None:
    _assert_failed(await connector.get(meta), needle)
    await _delete(connector, meta)
    await _delete(connector, meta)  # idempotent


async def test_tampered_resource_meta_fails_the_task(connector: Connector) -> None:
    meta = await connector.create(file_sensor_request("/tmp/a"))
    signed = pb.SignedResourceMeta.FromString(meta)
    inner = pb.SensorState.FromString(signed.payload)
    inner.inputs["path"].string_value = "/tmp/b"
    signed.payload = inner.SerializeToString()
    _assert_failed(await connector.get(signed.SerializeToString()), "altered or forged")
    await _delete(connector, signed.SerializeToString())


class _Payload:
    marker: Path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))


async def test_forged_pickle_payload_fails_the_task_and_never_runs(
    connector: Connector, tmp_path: Path
) -> None:
    meta = await connector.create(file_sensor_request("/tmp/a"))
    signed = pb.SignedResourceMeta.FromString(meta)
    inner = pb.SensorState.FromString(signed.payload)
    payload = _Payload()
    payload.marker = tmp_path / "pwned"
    inner.config_pickle = pickle.dumps(payload)
    signed.payload = inner.SerializeToString()
    forged = signed.SerializeToString()
    _assert_failed(await connector.get(forged), "altered or forged")
    await _delete(connector, forged)
    assert not payload.marker.exists()


async def test_a_key_this_replica_lacks_keeps_the_task_running_without_poking(
    connector: Connector, make_connector, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ready = tmp_path / "ready"
    ready.write_text("here")
    other_key = tmp_path / "other.key"
    other_key.write_text(secrets.token_urlsafe(48))
    signer = await make_connector(signing_key_file=[other_key])
    async with _channel(signer.port) as channel:
        meta = await Connector(signer, channel).create(file_sensor_request(str(ready)))
    key_id = pb.SignedResourceMeta.FromString(meta).key_id

    pokes_before = _count(connector, "flyte_sensor_connector_pokes_total")
    with caplog.at_level(logging.WARNING, logger="connector.engine.sensor.engine"):
        waiting = await connector.get(meta)
    # The file exists: had it been poked, the answer would be SUCCEEDED.
    assert waiting.phase == Phase.RUNNING and key_id in waiting.message
    assert _count(connector, "flyte_sensor_connector_pokes_total") == pokes_before
    assert any(key_id in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    rejected = connector.server.metrics.registry.get_sample_value(
        "flyte_sensor_connector_resource_meta_rejected_total", {"reason": "unknown_key"}
    )
    assert rejected == 1.0
    await _delete(connector, meta)

    # A replica that holds the key as a verify-only second key (a rotation in progress) proceeds.
    both = await make_connector(signing_key_file=[connector.server.config.signing_key_file[0], other_key])
    async with _channel(both.port) as channel:
        assert (await Connector(both, channel).get(meta)).phase == Phase.SUCCEEDED


async def test_each_blob_is_verified_once(
    connector: Connector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = await connector.create(file_sensor_request(str(tmp_path / "later")))
    decoded: list[bytes] = []
    real = Codec.decode

    def counting(self: Codec, blob: bytes) -> object:
        decoded.append(blob)
        return real(self, blob)

    monkeypatch.setattr(Codec, "decode", counting)
    for _ in range(5):
        assert (await connector.get(meta)).phase == Phase.RUNNING
    (tmp_path / "later").write_text("")
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED
    assert decoded == [meta]


async def test_log_lines_name_the_flyte_execution_on_every_replica(
    connector: Connector, make_connector, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    request = file_sensor_request(str(tmp_path / "f"))
    ident = request.task_execution_metadata.task_execution_id
    ident.task_id.CopyFrom(identifier_pb2.Identifier(name="wf.wait_for_file"))
    ident.node_execution_id.node_id = "n0"
    ident.node_execution_id.execution_id.CopyFrom(
        identifier_pb2.WorkflowExecutionIdentifier(project="flytesnacks", domain="development", name="abc123")
    )
    ident.retry_attempt = 2
    with caplog.at_level(logging.INFO):
        meta = await connector.create(request)
        other = await make_connector()
        async with _channel(other.port) as channel:
            (tmp_path / "f").write_text("")
            assert (await Connector(other, channel).get(meta)).phase == Phase.SUCCEEDED
            await Connector(other, channel).agent.DeleteTask(
                agent_pb2.DeleteTaskRequest(task_category=SENSOR, resource_meta=meta)
            )
    records = [r for r in caplog.records if getattr(r, "operation", None) in ("create", "get", "delete")]
    assert {r.operation for r in records} == {"create", "get", "delete"}  # type: ignore[attr-defined]
    for record in records:
        assert record.execution == "flytesnacks/development/abc123"  # type: ignore[attr-defined]
        assert (record.node, record.retry, record.task_name) == ("n0", 2, "wf.wait_for_file")  # type: ignore[attr-defined]
    assert len(meta) < 512


async def test_a_declared_met_output_is_true_when_met(connector: Connector, tmp_path: Path) -> None:
    request = file_sensor_request(str(tmp_path / "m"))
    request.template.interface.outputs.variables["met"].type.CopyFrom(
        types_pb2.LiteralType(simple=types_pb2.BOOLEAN)
    )
    meta = await connector.create(request)
    (tmp_path / "m").write_text("")
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED
    assert done.outputs.literals["met"] == literals_pb2.Literal(
        scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(boolean=True))
    )


async def test_the_first_running_answer_carries_what_the_console_keeps(
    connector: Connector, tmp_path: Path
) -> None:
    meta = await connector.create(file_sensor_request(str(tmp_path / "x")))
    first = await connector.get(meta)
    info = first.custom_info.fields
    assert first.phase == Phase.RUNNING
    assert info["sensor"].string_value == "FileSensor"
    assert info["awaiting"].struct_value.fields["path"].string_value == str(tmp_path / "x")
    # Propeller drops the RUNNING message: what the poke found is in custom_info too.
    assert info["status"].string_value == first.message and "does not exist yet" in first.message


def _channel(port: int):  # type: ignore[no-untyped-def]
    import grpc

    return grpc.aio.insecure_channel(f"127.0.0.1:{port}")


def _count(connector: Connector, name: str) -> float:
    total = 0.0
    for metric in connector.server.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                total += sample.value
    return total


async def test_a_sensor_that_cannot_be_set_up_from_its_state_fails_the_task_not_the_call(
    connector: Connector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sensors.file import FileSensor

    meta = await connector.create(file_sensor_request(str(tmp_path / "x")))

    def broken(self: object, inputs: object) -> dict[str, object]:
        raise RuntimeError("describe broke")

    monkeypatch.setattr(FileSensor, "describe", broken)
    _assert_failed(await connector.get(meta), "could not be set up (RuntimeError: describe broke)")


async def test_verified_state_this_version_cannot_read_fails_the_task_not_the_call(
    connector: Connector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.state import codec

    meta = await connector.create(file_sensor_request(str(tmp_path / "x")))

    def unreadable(payload: bytes, allowed: object) -> None:
        raise TypeError("a config class changed shape")

    monkeypatch.setattr(codec, "_read_state", unreadable)
    resource = await connector.get(meta)
    assert resource.phase == Phase.FAILED
    assert "signed but unreadable by this version: a config class changed shape" in resource.message
