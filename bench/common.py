"""What the benchmark scripts share: free ports, /proc readings, readiness of a child server, and
FileSensor CreateTask requests. The scripts run as `python bench/NAME.py`, so bench/ is on sys.path."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2 as agent_service_pb2
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

TEMPLATE_FILE = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "file_sensor.json"
TICKS = os.sysconf("SC_CLK_TCK")
#: A service every server with health checks reports: flytekit's sets no overall ("") status.
HEALTH_SERVICE = agent_service_pb2.DESCRIPTOR.services_by_name["AsyncAgentService"].full_name


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid`."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_serving(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    """Until health says SERVING, or the server answers at all (UNIMPLEMENTED: no health service)."""
    request = health_pb2.HealthCheckRequest(service=HEALTH_SERVICE)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before serving")
        # A fresh channel per attempt: a channel that failed to connect backs off for a second.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return
        time.sleep(0.005)  # polling a child process's readiness, not synchronising a test
    raise RuntimeError(f"the server on port {port} did not serve in time")


def file_sensor_template() -> tasks_pb2.TaskTemplate:
    """The TaskTemplate of a stock flytekit FileSensor (tests/vectors/file_sensor.json)."""
    return template_from(str(TEMPLATE_FILE))


def template_from(path: str) -> tasks_pb2.TaskTemplate:
    """A TaskTemplate serialized by stock flytekit, from its JSON file (tests/vectors)."""
    return json_format.Parse(Path(path).read_text(), tasks_pb2.TaskTemplate())


def create_request(
    template: tasks_pb2.TaskTemplate, path: str, output_prefix: str
) -> agent_pb2.CreateTaskRequest:
    """What propeller sends to start the FileSensor `template` waiting for `path`."""
    prim = literals_pb2.Primitive(string_value=path)
    lits = literals_pb2.LiteralMap(
        literals={"path": literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=prim))}
    )
    return agent_pb2.CreateTaskRequest(template=template, inputs=lits, output_prefix=output_prefix)
