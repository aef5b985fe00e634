"""The load client of bench/compare.py, in a process of its own so that it never shares the servers'.

    python bench/load.py --target NAME=PORT:PID[:flyte2] [--target ...] --dir /tmp/x [--sensors 500] ...

Like propeller: CreateTask once per FileSensor (local paths that do not exist yet), then GetTask over
and over from `--concurrency` loops. Phases: create and warm up on every server; then the measured
Gets in `--rounds` rounds, each round giving every server its share in turn (the order rotates), so
that whatever else the machine does at a moment weighs on all servers alike; then the soak of each
(its RSS before and after). Per server: latencies over all rounds, and the server's CPU time per Get
(from /proc/PID/stat around each of its turns) as the median of its rounds. Prints one JSON object,
keyed by server name. A target whose spec ends in `:flyte2` is loaded over flyteidl2's
AsyncConnectorService (Flyte 2's executor) with the same templates and inputs; the others over flyteidl's
AsyncAgentService (propeller).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

import grpc
from common import cpu_seconds, create_request, file_sensor_template, rss_mib, template_from
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc
from flyteidl2.connector import connector_pb2, service_pb2_grpc


class Target:
    """One server under load: its stub, its GetTask requests and what was measured of it."""

    def __init__(self, spec: str) -> None:
        self.name, _, where = spec.rpartition("=")
        port, _, rest = where.partition(":")
        pid, _, protocol = rest.partition(":")
        self.pid = int(pid)
        self.flyte2 = protocol == "flyte2"
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.stub: Any = (
            service_pb2_grpc.AsyncConnectorServiceStub(self.channel)
            if self.flyte2
            else agent_pb2_grpc.AsyncAgentServiceStub(self.channel)
        )
        self.gets: list[Any] = []
        self.latencies: list[float] = []
        self.cpu_per_get: list[float] = []
        self.elapsed = 0.0
        self.errors = 0


async def create(target: Target, creates: list[agent_pb2.CreateTaskRequest], concurrency: int) -> None:
    messages: Any = connector_pb2 if target.flyte2 else agent_pb2
    category = messages.TaskCategory(name="sensor", version=0)
    if target.flyte2:  # the same request as Flyte 2 sends it: field for field the same bytes
        creates = [connector_pb2.CreateTaskRequest.FromString(r.SerializeToString()) for r in creates]
    for i in range(0, len(creates), concurrency):
        replies = await asyncio.gather(
            *(target.stub.CreateTask(r, timeout=10) for r in creates[i : i + concurrency])
        )
        target.gets += [
            messages.GetTaskRequest(task_category=category, resource_meta=r.resource_meta) for r in replies
        ]


async def drive(target: Target, count: int, concurrency: int, measured: bool) -> float:
    """`count` GetTask calls from `concurrency` loops; the seconds they took."""
    counter = iter(range(count))
    gets = target.gets

    async def loop() -> None:
        for i in counter:
            t0 = time.perf_counter()
            try:
                await target.stub.GetTask(gets[i % len(gets)], timeout=10)
            except grpc.aio.AioRpcError:
                target.errors += 1
            if measured:
                target.latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return time.perf_counter() - t0


async def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    template = template_from(args.template) if args.template else file_sensor_template()
    creates = [create_request(template, f"{args.dir}/missing-{i}", "/tmp/out") for i in range(args.sensors)]
    targets = [Target(spec) for spec in args.target]
    try:
        for target in targets:
            await create(target, creates, args.concurrency)
            await drive(target, args.warmup, args.concurrency, measured=False)
        share = max(1, args.gets // args.rounds)
        for r in range(args.rounds):
            for target in targets[r % len(targets) :] + targets[: r % len(targets)]:
                cpu0 = cpu_seconds(target.pid)
                target.elapsed += await drive(target, share, args.concurrency, measured=True)
                target.cpu_per_get.append((cpu_seconds(target.pid) - cpu0) / share)
        results = {}
        for target in targets:
            rss_loaded = rss_mib(target.pid)
            if args.soak:
                await drive(target, args.soak, args.concurrency, measured=False)
            q = statistics.quantiles(target.latencies, n=100)
            results[target.name] = {
                "gets": share * args.rounds,
                "rounds": args.rounds,
                "rps": share * args.rounds / target.elapsed,
                "p50_ms": q[49] * 1e3,
                "p99_ms": q[98] * 1e3,
                "cpu_ms_per_get": statistics.median(target.cpu_per_get) * 1e3,
                "cpu_ms_per_get_rounds": [round(c * 1e3, 4) for c in target.cpu_per_get],
                "rss_loaded_mib": rss_loaded,
                "soak": args.soak,
                "rss_soak_mib": rss_mib(target.pid),
                "errors": target.errors,
            }
        return results
    finally:
        for target in targets:
            await target.channel.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target", action="append", required=True, help="NAME=PORT:PID of a server to load (repeatable)"
    )
    parser.add_argument("--dir", required=True, help="where the awaited paths would be")
    parser.add_argument(
        "--template", help="a TaskTemplate JSON whose one input is `path` (default: stock FileSensor)"
    )
    parser.add_argument("--sensors", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--gets", type=int, default=20000, help="measured Gets per server, over all rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--soak", type=int, default=0)
    print(json.dumps(asyncio.run(run(parser.parse_args()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
