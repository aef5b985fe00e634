"""The load client of bench/compare.py, in a process of its own so that it never shares the server's.

    python bench/load.py --port 8000 --server-pid 1234 --dir /tmp/x [--sensors 500] [--gets 20000] ...

Like propeller: CreateTask once per FileSensor (local paths that do not exist yet), then GetTask over
and over from `--concurrency` loops. Phases: create, warm-up, measured Gets (latencies, and the
server's CPU time from /proc/PID/stat around them), soak (the server's RSS before and after).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc
from google.protobuf import json_format

TEMPLATE_FILE = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "file_sensor.json"
TICKS = os.sysconf("SC_CLK_TCK")


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


def create_request(template: tasks_pb2.TaskTemplate, path: str) -> agent_pb2.CreateTaskRequest:
    prim = literals_pb2.Primitive(string_value=path)
    lits = literals_pb2.LiteralMap(
        literals={"path": literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=prim))}
    )
    return agent_pb2.CreateTaskRequest(template=template, inputs=lits, output_prefix="/tmp/out")


async def run(args: argparse.Namespace) -> dict[str, float]:
    template = json_format.Parse(TEMPLATE_FILE.read_text(), tasks_pb2.TaskTemplate())
    category = agent_pb2.TaskCategory(name="sensor", version=0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{args.port}") as channel:
        stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
        creates = [create_request(template, f"{args.dir}/missing-{i}") for i in range(args.sensors)]
        gets: list[agent_pb2.GetTaskRequest] = []
        for i in range(0, len(creates), args.concurrency):
            replies = await asyncio.gather(
                *(stub.CreateTask(r, timeout=10) for r in creates[i : i + args.concurrency])
            )
            gets += [
                agent_pb2.GetTaskRequest(task_category=category, resource_meta=r.resource_meta)
                for r in replies
            ]
        errors = 0

        async def drive(count: int, latencies: list[float] | None) -> float:
            nonlocal errors
            counter = iter(range(count))

            async def loop() -> None:
                nonlocal errors
                for i in counter:
                    t0 = time.perf_counter()
                    try:
                        await stub.GetTask(gets[i % len(gets)], timeout=10)
                    except grpc.aio.AioRpcError:
                        errors += 1
                    if latencies is not None:
                        latencies.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            await asyncio.gather(*(loop() for _ in range(args.concurrency)))
            return time.perf_counter() - t0

        await drive(args.warmup, None)
        latencies: list[float] = []
        cpu0 = cpu_seconds(args.server_pid)
        elapsed = await drive(args.gets, latencies)
        cpu = cpu_seconds(args.server_pid) - cpu0
        rss_loaded = rss_mib(args.server_pid)
        if args.soak:
            await drive(args.soak, None)
        q = statistics.quantiles(latencies, n=100)
        return {
            "gets": args.gets,
            "rps": args.gets / elapsed,
            "p50_ms": q[49] * 1e3,
            "p99_ms": q[98] * 1e3,
            "cpu_ms_per_get": cpu * 1e3 / args.gets,
            "rss_loaded_mib": rss_loaded,
            "soak": args.soak,
            "rss_soak_mib": rss_mib(args.server_pid),
            "errors": errors,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--dir", required=True, help="where the awaited paths would be")
    parser.add_argument("--sensors", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--gets", type=int, default=20000)
    parser.add_argument("--soak", type=int, default=0)
    print(json.dumps(asyncio.run(run(parser.parse_args()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
