"""Benchmark: this connector against flytekit's own (`pyflyte serve connector`) on the same FileSensor load.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/compare.py [--requests 2000] [--concurrency 32]

Both servers run as child processes on loopback; the client drives them with flyteidl's stubs exactly as
propeller does (CreateTask once per sensor, then GetTask again and again). Reports start-up time to first
answer, GetTask throughput and latency percentiles, and each server's resident memory afterwards.
Timing numbers vary by machine; compare them only within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc
from google.protobuf import json_format

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TEMPLATE = json_format.Parse(
    (ROOT / "tests" / "vectors" / "file_sensor.json").read_text(), tasks_pb2.TaskTemplate()
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else float("nan")


def request(path: str) -> agent_pb2.CreateTaskRequest:
    prim = literals_pb2.Primitive(string_value=path)
    lits = literals_pb2.LiteralMap(
        literals={"path": literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=prim))}
    )
    return agent_pb2.CreateTaskRequest(template=TEMPLATE, inputs=lits, output_prefix="/tmp/out")


async def wait_ready(port: int, deadline: float) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = agent_pb2_grpc.AgentMetadataServiceStub(channel)
        while time.monotonic() < deadline:
            try:
                await stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=1)
                return
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.05)  # polling a child process's readiness, not synchronising a test
    raise RuntimeError(f"server on {port} did not answer")


async def load(port: int, paths: list[str], total: int, concurrency: int) -> tuple[list[float], float, int]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
        metas = [(await stub.CreateTask(request(p), timeout=10)).resource_meta for p in paths]
        latencies: list[float] = []
        succeeded = 0
        counter = iter(range(total))

        async def worker() -> None:
            nonlocal succeeded
            for i in counter:
                meta = metas[i % len(metas)]
                t0 = time.perf_counter()
                reply = await stub.GetTask(
                    agent_pb2.GetTaskRequest(
                        task_category=agent_pb2.TaskCategory(name="sensor"), resource_meta=meta
                    ),
                    timeout=10,
                )
                latencies.append(time.perf_counter() - t0)
                succeeded += reply.resource.phase == 3  # SUCCEEDED: half the files exist

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - t0, succeeded


def run(name: str, cmd: list[str], port: int, args: argparse.Namespace, paths: list[str]) -> dict[str, float]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        asyncio.run(wait_ready(port, t0 + 60))
        startup = time.monotonic() - t0
        asyncio.run(load(port, paths, min(200, args.requests), args.concurrency))  # warm-up
        latencies, elapsed, _ = asyncio.run(load(port, paths, args.requests, args.concurrency))
        q = statistics.quantiles(latencies, n=100)
        return {
            "startup_s": startup,
            "rps": len(latencies) / elapsed,
            "p50_ms": q[49] * 1e3,
            "p99_ms": q[98] * 1e3,
            "rss_mib": rss_mib(proc.pid),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--only", choices=("ours", "flytekit"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = [f"{tmp}/file-{i}" for i in range(16)]
        for p in paths[::2]:
            Path(p).write_text("x")
        results = {}
        if args.only in (None, "ours"):
            port = free_port()
            results["flyte-sensor-connector"] = run(
                "ours",
                [
                    str(BIN / "sensor-connector"),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--metrics-port",
                    "0",
                    "--state-dir",
                    f"{tmp}/state",
                    "--log-level",
                    "WARNING",
                ],
                port,
                args,
                paths,
            )
        if args.only in (None, "flytekit"):
            port = free_port()
            results["flytekit connector"] = run(
                "flytekit",
                [
                    str(BIN / "pyflyte"),
                    "serve",
                    "connector",
                    "--port",
                    str(port),
                    "--prometheus_port",
                    str(free_port()),
                ],
                port,
                args,
                paths,
            )
    print(f"{'server':<24}{'start-up s':>11}{'GetTask/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'RSS MiB':>9}")
    for name, r in results.items():
        print(
            f"{name:<24}{r['startup_s']:>11.2f}{r['rps']:>11.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['rss_mib']:>9.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
