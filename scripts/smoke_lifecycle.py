#!/usr/bin/env python3
"""Drive a running sensor-connector from outside, using only flyteidl's and grpc's own stubs.

    smoke_lifecycle.py health ENDPOINT [--wait SECONDS]
        Wait until grpc.health.v1 answers SERVING for "" and for both flyteidl services.

    smoke_lifecycle.py filesensor ENDPOINT --path PATH --create HOST_PATH
        ListAgents must name the `sensor` category; CreateTask a FileSensor on PATH (the path as the
        server sees it); GetTask must answer RUNNING; then HOST_PATH (the same file as this process
        sees it) is written and GetTask must answer SUCCEEDED; DeleteTask twice (idempotent).

Exit status 0 when every check held, 1 otherwise, with one line per step on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICES = ("", "flyteidl.service.AsyncAgentService", "flyteidl.service.AgentMetadataService")
SENSOR = agent_pb2.TaskCategory(name="sensor", version=0)
RPC_TIMEOUT = 10.0


class CheckFailed(Exception):
    """One step of the smoke test did not hold."""


def step(message: str) -> None:
    print(f"smoke: {message}", flush=True)


def check_health(channel: grpc.Channel, wait: float) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + wait
    for service in SERVICES:
        while True:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status
            except grpc.RpcError as exc:
                status, detail = None, f"{exc.code().name}: {exc.details()}"
            else:
                detail = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            if status == health_pb2.HealthCheckResponse.SERVING:
                step(f"health {service or '(server)'!s}: SERVING")
                break
            if time.monotonic() > deadline:
                name = service or "(server)"
                raise CheckFailed(f"health {name} is not SERVING after {wait:.0f}s ({detail})")
            time.sleep(0.5)


def file_sensor_template() -> tasks_pb2.TaskTemplate:
    """What flytekit's FileSensor serializes to (the parts the connector reads)."""
    custom = struct_pb2.Struct()
    custom.update(
        {
            "sensor_module": "flytekit.sensor.file_sensor",
            "sensor_name": "FileSensor",
            "sensor_config": None,
            "inputs": None,
        }
    )
    template = tasks_pb2.TaskTemplate(type="sensor", task_type_version=0, custom=custom)
    template.id.name = "smoke.file_sensor"
    return template


def string_inputs(**values: str) -> literals_pb2.LiteralMap:
    inputs = literals_pb2.LiteralMap()
    for key, value in values.items():
        inputs.literals[key].scalar.primitive.string_value = value
    return inputs


def phase_name(resource: agent_pb2.Resource) -> str:
    return execution_pb2.TaskExecution.Phase.Name(resource.phase)


def get(stub: agent_pb2_grpc.AsyncAgentServiceStub, meta: bytes) -> agent_pb2.Resource:
    request = agent_pb2.GetTaskRequest(task_type="sensor", task_category=SENSOR, resource_meta=meta)
    return stub.GetTask(request, timeout=RPC_TIMEOUT).resource


def check_file_sensor(channel: grpc.Channel, server_path: str, local_path: Path, wait: float) -> None:
    metadata = agent_pb2_grpc.AgentMetadataServiceStub(channel)
    agents = metadata.ListAgents(agent_pb2.ListAgentsRequest(), timeout=RPC_TIMEOUT).agents
    categories = {(c.name, c.version) for a in agents for c in a.supported_task_categories}
    if ("sensor", 0) not in categories:
        raise CheckFailed(f"ListAgents does not name category sensor v0: {sorted(categories)}")
    step(f"ListAgents: {', '.join(a.name for a in agents)} serve {sorted(categories)}")

    if local_path.exists():
        local_path.unlink()
    stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
    created = stub.CreateTask(
        agent_pb2.CreateTaskRequest(
            template=file_sensor_template(),
            inputs=string_inputs(path=server_path),
            output_prefix="file:///tmp/smoke-outputs",
        ),
        timeout=RPC_TIMEOUT,
    )
    meta = created.resource_meta
    if not meta:
        raise CheckFailed("CreateTask returned empty resource_meta")
    step(f"CreateTask: resource_meta of {len(meta)} bytes")

    resource = get(stub, meta)
    if phase_name(resource) != "RUNNING":
        raise CheckFailed(f"GetTask before the file exists: {phase_name(resource)} ({resource.message})")
    step(f"GetTask before the file exists: RUNNING ({resource.message})")

    local_path.parent.mkdir(parents=True, exist_ok=True)
    local_path.write_text("ready\n")
    deadline = time.monotonic() + wait
    while True:
        resource = get(stub, meta)
        if phase_name(resource) == "SUCCEEDED":
            break
        if time.monotonic() > deadline:
            raise CheckFailed(f"GetTask after the file exists: {phase_name(resource)} ({resource.message})")
        time.sleep(0.5)
    step(f"GetTask after the file exists: SUCCEEDED ({resource.message})")

    for attempt in ("", " again (idempotent)"):
        request = agent_pb2.DeleteTaskRequest(task_type="sensor", task_category=SENSOR, resource_meta=meta)
        stub.DeleteTask(request, timeout=RPC_TIMEOUT)
        step(f"DeleteTask{attempt}: OK")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    health = sub.add_parser("health")
    health.add_argument("endpoint")
    health.add_argument("--wait", type=float, default=60.0)
    sensor = sub.add_parser("filesensor")
    sensor.add_argument("endpoint")
    sensor.add_argument("--path", required=True, help="the file's path as the server sees it")
    sensor.add_argument("--create", required=True, type=Path, help="the same file as this process sees it")
    sensor.add_argument("--wait", type=float, default=20.0)
    args = parser.parse_args(argv)

    with grpc.insecure_channel(args.endpoint) as channel:
        try:
            if args.what == "health":
                check_health(channel, args.wait)
            else:
                check_file_sensor(channel, args.path, args.create, args.wait)
        except CheckFailed as exc:
            print(f"smoke: FAILED: {exc}", file=sys.stderr)
            return 1
        except grpc.RpcError as exc:
            print(f"smoke: FAILED: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    step("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
