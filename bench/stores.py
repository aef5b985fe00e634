"""Benchmark: FileSensors on S3, GCS and Azure Blob, this connector against flytekit's own, counting the
requests each makes to the store.

    .venv/bin/pip install -e '.[bench]'             # and scripts/install-emulators.sh for gcs/azure
    .venv/bin/python bench/stores.py [--store s3|gcs|azure|all] [--gets 4000] [--pollers 16]

One command starts each store's server on loopback (moto's S3 server, fake-gcs-server, Azurite, as the
tests do), a counting HTTP proxy in front of it (tests/storeproxy.py), and each connector in turn
(`sensor-connector serve`, `pyflyte serve connector`) pointed at the proxy through the standard variables
(AWS_ENDPOINT_URL, STORAGE_EMULATOR_HOST, AZURE_STORAGE_CONNECTION_STRING). flytekit's connector gets
GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false, or its first use of the bucket would wait 60 s for gcsfs's
gRPC probe. Half of the awaited objects exist, so every answer's phase is checked: SUCCEEDED for those,
RUNNING for the rest. Two phases per store:

- round: one sequential GetTask round over 100 FileSensors under one prefix (after a warm-up round and a
  pause longer than --max-staleness), counting S3 requests;
- load: `--pollers` concurrent GetTask loops over 200 sensors in 4 prefixes: GetTask/s, p50/p99, server
  CPU per GetTask (utime+stime from /proc/PID/stat) and S3 requests per 1,000 GetTask.

Timing numbers vary by machine; compare them only within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from common import cpu_seconds, create_request, file_sensor_template, free_port, wait_serving
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.emulators import Azurite, FakeGcs, azure_connection_string  # noqa: E402
from tests.storeproxy import CountingProxy  # noqa: E402

BIN = Path(sys.executable).parent
TEMPLATE = file_sensor_template()
BUCKET = "bench"
#: The URL scheme of each store.
SCHEME = {"s3": "s3", "gcs": "gs", "azure": "abfs"}
CATEGORY = agent_pb2.TaskCategory(name="sensor")
SUCCEEDED, RUNNING = 3, 2


@dataclass
class Sensors:
    """Created sensors and the phase each must answer."""

    metas: list[bytes]
    expected: list[int]


async def create(
    stub: agent_pb2_grpc.AsyncAgentServiceStub, scheme: str, keys: list[str], present: set[str]
) -> Sensors:
    requests = [
        create_request(TEMPLATE, f"{scheme}://{BUCKET}/{k}", f"{scheme}://{BUCKET}/out") for k in keys
    ]
    metas = [(await stub.CreateTask(r, timeout=10)).resource_meta for r in requests]
    return Sensors(metas, [SUCCEEDED if k in present else RUNNING for k in keys])


WRONG: list[str] = []


async def get(stub: agent_pb2_grpc.AsyncAgentServiceStub, meta: bytes, want: int | None = None) -> int:
    reply = await stub.GetTask(
        agent_pb2.GetTaskRequest(task_category=CATEGORY, resource_meta=meta), timeout=10
    )
    if want is not None and reply.resource.phase != want and len(WRONG) < 5:
        WRONG.append(reply.resource.message)
    return int(reply.resource.phase)


async def measure(
    port: int, pid: int, proxy: CountingProxy, scheme: str, args: argparse.Namespace
) -> dict[str, float]:
    round_keys = [f"round/part-{i:03d}" for i in range(100)]
    load_keys = [f"load/p{p}/part-{i:03d}" for p in range(4) for i in range(50)]
    present = set(round_keys[::2] + load_keys[::2])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
        rnd = await create(stub, scheme, round_keys, present)
        load = await create(stub, scheme, load_keys, present)
        wrong = 0
        for meta in rnd.metas:  # warm-up: first use of the store on the server
            await get(stub, meta)
        await asyncio.sleep(args.pause)  # let shared answers expire: the round starts cold
        proxy.reset()
        for meta, want in zip(rnd.metas, rnd.expected, strict=True):
            wrong += await get(stub, meta, want) != want
        round_requests = proxy.total()

        latencies: list[float] = []
        counter = iter(range(args.gets))

        async def poller() -> None:
            nonlocal wrong
            for i in counter:
                j = (i * 7919) % len(load.metas)  # spread pollers over the sensors
                t0 = time.perf_counter()
                phase = await get(stub, load.metas[j], load.expected[j])
                latencies.append(time.perf_counter() - t0)
                wrong += phase != load.expected[j]

        await asyncio.gather(*(get(stub, m) for m in load.metas[:32]))  # warm-up
        proxy.reset()
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(poller() for _ in range(args.pollers)))
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
        q = statistics.quantiles(latencies, n=100)
        return {
            "rps": len(latencies) / elapsed,
            "p50_ms": q[49] * 1e3,
            "p99_ms": q[98] * 1e3,
            "cpu_ms": cpu / len(latencies) * 1e3,
            "per_1000": proxy.total() * 1000 / len(latencies),
            "round": round_requests,
            "wrong": wrong,
        }


def run(
    cmd: list[str],
    port: int,
    env: dict[str, str],
    proxy: CountingProxy,
    scheme: str,
    args: argparse.Namespace,
) -> dict[str, float]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_serving(port, proc, time.monotonic() + 60)
        return asyncio.run(measure(port, proc.pid, proxy, scheme, args))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


KEYS = [f"round/part-{i:03d}" for i in range(0, 100, 2)] + [
    f"load/p{p}/part-{i:03d}" for p in range(4) for i in range(0, 50, 2)
]


class Moto:
    """moto's S3 server in a child process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.endpoint = f"http://127.0.0.1:{self.port}"
        creds = {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        os.environ.update(creds)
        import boto3

        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # moto starting

    def put(self, key: str) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=b"x")

    def env(self, endpoint: str) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": endpoint}

    def kill(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Gcs:
    """fake-gcs-server."""

    def __init__(self) -> None:
        self.server = FakeGcs()
        self.server.start()
        self.endpoint = self.server.endpoint
        self.server.create_bucket(BUCKET)

    def put(self, key: str) -> None:
        self.server.put(BUCKET, key)

    def env(self, endpoint: str) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": endpoint, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}

    def kill(self) -> None:
        self.server.kill()


class Azure:
    """Azurite's blob service."""

    def __init__(self) -> None:
        self.server = Azurite()
        self.server.start()
        self.endpoint = self.server.endpoint
        self.server.create_container(BUCKET)

    def put(self, key: str) -> None:
        self.server.put(BUCKET, key)

    def env(self, endpoint: str) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": azure_connection_string(endpoint)}

    def kill(self) -> None:
        self.server.kill()


def bench_store(store: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Both connectors on one store: {server name: figures}."""
    server: Moto | Gcs | Azure = {"s3": Moto, "gcs": Gcs, "azure": Azure}[store]()
    results: dict[str, dict[str, float]] = {}
    try:
        for key in KEYS:
            server.put(key)
        proxy = CountingProxy(server.endpoint, store=store)
        env = {**os.environ, **server.env(proxy.endpoint), "PYTHONUNBUFFERED": "1"}
        scheme = SCHEME[store]
        with tempfile.TemporaryDirectory() as tmp:
            if args.only in (None, "ours"):
                port = free_port()
                cmd = [str(BIN / "sensor-connector"), "serve", "--host", "127.0.0.1", "--port", str(port)]
                cmd += ["--metrics-port", "0", "--state-dir", f"{tmp}/state", "--log-level", "WARNING"]
                results["flyte-sensor-connector"] = run(cmd, port, env, proxy, scheme, args)
            if args.only in (None, "flytekit"):
                port = free_port()
                cmd = [str(BIN / "pyflyte"), "serve", "connector", "--port", str(port)]
                cmd += ["--prometheus_port", str(free_port())]
                results["flytekit connector"] = run(cmd, port, env, proxy, scheme, args)
        proxy.stop()
    finally:
        server.kill()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("s3", "gcs", "azure", "all"), default="all")
    parser.add_argument("--gets", type=int, default=4000, help="GetTask calls in the load phase")
    parser.add_argument("--pollers", type=int, default=16)
    parser.add_argument("--pause", type=float, default=1.5, help="seconds between warm-up and measured round")
    parser.add_argument("--only", choices=("ours", "flytekit"))
    args = parser.parse_args()
    stores = ["s3", "gcs", "azure"] if args.store == "all" else [args.store]
    results = {store: bench_store(store, args) for store in stores}
    header = f"{'store':<7}{'server':<24}{'GetTask/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'CPU ms/Get':>11}"
    print(header + f"{'req/1k Get':>11}{'req/round':>10}{'wrong':>7}")
    for store, by_server in results.items():
        for name, r in by_server.items():
            print(
                f"{store:<7}{name:<24}{r['rps']:>10.0f}{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}{r['cpu_ms']:>11.3f}"
                f"{r['per_1000']:>11.1f}{r['round']:>10.0f}{r['wrong']:>7.0f}"
            )
        if len(by_server) == 2:
            ours, theirs = by_server["flyte-sensor-connector"], by_server["flytekit connector"]
            print(f"{store:<7}CPU per GetTask: {ours['cpu_ms'] / theirs['cpu_ms']:.2f}x flytekit's")
    for message in WRONG:
        print("wrong phase:", message)
    return 1 if any(r["wrong"] for by in results.values() for r in by.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
