"""Benchmark: this connector against flytekit's own and against the floor, under one load, in one run.

    .venv/bin/pip install -e '.[bench]'              # every extra: idle RSS counts what they cost
    .venv/bin/python bench/compare.py                # the full run (about 10 minutes on 2 busy cores)
    .venv/bin/python bench/compare.py --quick        # a short run to try a change (about 2 minutes)

Three servers, each a child process on loopback:
- the floor (bench/floor.py): an empty grpc.aio AsyncAgentService answering one fixed GetTaskResponse,
  i.e. what any Python grpc.aio connector pays before doing anything of its own;
- flytekit's connector (`pyflyte serve connector`);
- this project (`sensor-connector serve`);
- this project again, loaded over flyteidl2's AsyncConnectorService as Flyte 2's executor calls it (the
  "Flyte 2" column), so that both protocols' cost is measured on the same load in the same run;
- this project once more on Python's own asyncio loop (`--event-loop asyncio`; the floor and flytekit's
  run on it, this project on uvloop by default), printed in a table of its own: what uvloop saves.

Each is started `--starts` times, one server after the other, for start-up time (spawn to health
SERVING, or to the first answer for the floor, which has no health service) and idle RSS (medians); the
last start of each keeps running. Then bench/load.py, a client in a process of its own, loads all three
alike: CreateTask for `--sensors` FileSensors on local paths that do not exist yet, then GetTask from
`--concurrency` loops, the `--gets` measured Gets of each server split into `--rounds` rounds in which
the servers take turns (so a busy moment of the machine weighs on all three, not on one). Measured: the
server's CPU time per GetTask (utime + stime of all its threads, from /proc/PID/stat, around each turn;
the median of its rounds), GetTask/s, p50 and p99 latency, and the RSS after a soak of `--soak` more
Gets. The table gives this project's ratios to the floor and to flytekit's connector, and whether each
goal of docs/performance.md is met.

Timings depend on the machine and on whatever else runs on it: compare them within one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import free_port, rss_mib, wait_serving

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
#: A user's own flytekit sensor (a BaseSensor subclass as flytekit's docs show it, input `path`), its
#: stock-flytekit template, and the environment that puts its package on both connectors' path.
USER_TEMPLATE = HERE.parent / "tests" / "vectors" / "user_marker.json"
USER_ENV = {
    "PYTHONPATH": str(HERE.parent / "tests" / "fixtures" / "user_pkg"),
    "SENSOR_CONNECTOR_SENSOR_MODULES": "mysensors.markers",
}

FLOOR, FLYTEKIT, OURS = "floor (empty grpc.aio)", "flytekit connector", "flyte-sensor-connector"
#: The same server loaded over flyteidl2 (Flyte 2's executor) instead of flyteidl (propeller).
OURS2 = "flyte-sensor-connector, Flyte 2"
#: The same server on Python's own asyncio loop (`--event-loop asyncio`), as the floor and flytekit's run:
#: what uvloop (the default) saves, in the same run.
OURS_ASYNCIO = "flyte-sensor-connector, asyncio loop"


@dataclass
class Server:
    name: str
    command: Callable[[int], list[str]]
    #: The protocol bench/load.py speaks to it: "" (flyteidl) or "flyte2" (flyteidl2).
    protocol: str = ""


def ours(state_dir: str, event_loop: str = "uvloop") -> Callable[[int], list[str]]:
    return lambda port: [
        str(BIN / "sensor-connector"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--metrics-port",
        str(free_port()),
        "--state-dir",
        state_dir,
        # The load's files live beside the state directory (which the connector carves out).
        "--local-roots",
        os.path.dirname(state_dir),
        "--log-level",
        "WARNING",
        "--event-loop",
        event_loop,
    ]


def servers(state_dir: str) -> list[Server]:
    return [
        Server(FLOOR, lambda port: [sys.executable, str(HERE / "floor.py"), "--port", str(port)]),
        Server(
            FLYTEKIT,
            lambda port: [
                str(BIN / "pyflyte"),
                "serve",
                "connector",
                "--port",
                str(port),
                "--prometheus_port",
                str(free_port()),
            ],
        ),
        Server(OURS, ours(state_dir)),
        Server(OURS2, ours(state_dir), protocol="flyte2"),
        Server(OURS_ASYNCIO, ours(state_dir, "asyncio")),
    ]


@dataclass
class Running:
    """A server kept running for the load, and what its starts measured."""

    proc: subprocess.Popen[bytes]
    port: int
    startup_s: float
    rss_idle_mib: float
    protocol: str = ""


def start(server: Server, args: argparse.Namespace, extra_env: dict[str, str] | None = None) -> Running:
    """Start `server` `--starts` times (start-up time, idle RSS: medians); the last start keeps running."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    starts, idle = [], []
    count = 1 if extra_env else args.starts
    for attempt in range(count):
        port = free_port()
        t0 = time.monotonic()
        proc = subprocess.Popen(
            server.command(port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            wait_serving(port, proc, t0 + 60)
        except BaseException:
            stop(proc)
            raise
        starts.append(time.monotonic() - t0)
        idle.append(rss_mib(proc.pid))
        if attempt == count - 1:
            return Running(proc, port, statistics.median(starts), statistics.median(idle), server.protocol)
        stop(proc)
    raise ValueError("--starts must be at least 1")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=60)


def load(
    running: dict[str, Running], args: argparse.Namespace, tmp: str, user: bool = False
) -> dict[str, dict[str, Any]]:
    """The same load on every running server, from one client process, in interleaved rounds."""
    client = [sys.executable, str(HERE / "load.py"), "--dir", tmp]
    for name, server in running.items():
        protocol = f":{server.protocol}" if server.protocol else ""
        client += ["--target", f"{name}={server.port}:{server.proc.pid}{protocol}"]
    client += ["--sensors", str(args.sensors), "--concurrency", str(args.concurrency)]
    if user:
        # Warmed up as the main rows are (load.py's default: every sensor decoded, then polled alike):
        # the one-time decode of a task is spread over the Gets of its whole life.
        client += ["--template", str(USER_TEMPLATE)]
        client += ["--gets", str(args.user_gets), "--rounds", str(args.rounds), "--soak", "0"]
    else:
        client += ["--gets", str(args.gets), "--rounds", str(args.rounds), "--soak", str(args.soak)]
    measured: dict[str, dict[str, Any]] = json.loads(
        subprocess.run(client, check=True, capture_output=True).stdout
    )
    return {
        name: {**measured[name], "startup_s": server.startup_s, "rss_idle_mib": server.rss_idle_mib}
        for name, server in running.items()
    }


def table(results: dict[str, dict[str, Any]], soak: int) -> list[str]:
    floor, flytekit, ours, ours2 = (results.get(n) for n in (FLOOR, FLYTEKIT, OURS, OURS2))
    rows = [
        ("server CPU per GetTask, ms", "cpu_ms_per_get", "{:.3f}"),
        ("GetTask/s", "rps", "{:,.0f}"),
        ("p50 latency, ms", "p50_ms", "{:.2f}"),
        ("p99 latency, ms", "p99_ms", "{:.2f}"),
        ("start → SERVING, s", "startup_s", "{:.2f}"),
        ("idle RSS, MiB", "rss_idle_mib", "{:.0f}"),
        ("RSS after the measured Gets, MiB", "rss_loaded_mib", "{:.0f}"),
        (f"RSS after {soak:,} more GetTask, MiB", "rss_soak_mib", "{:.0f}"),
        ("GetTask errors", "errors", "{:.0f}"),
    ]

    def ratio(key: str, base: dict[str, Any] | None) -> str:
        if ours is None or base is None or not base.get(key):
            return "—"
        return f"{ours[key] / base[key]:.2f}x"

    def flyte2_ratio(key: str) -> str:
        if ours is None or ours2 is None or not ours.get(key):
            return "—"
        return f"{ours2[key] / ours[key]:.2f}x"

    head = ["figure", FLOOR, FLYTEKIT, OURS, OURS2, "ours / floor", "ours / flytekit", "Flyte 2 / Flyte 1"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, key, fmt in rows:
        cells = [fmt.format(r[key]) if r is not None else "—" for r in (floor, flytekit, ours, ours2)]
        ratios = f" | {ratio(key, floor)} | {ratio(key, flytekit)} | {flyte2_ratio(key)} |"
        lines.append(f"| {label} | " + " | ".join(cells) + ratios)
    return lines


def goals(results: dict[str, dict[str, Any]]) -> list[tuple[str, bool | None]]:
    floor, flytekit, ours = results.get(FLOOR), results.get(FLYTEKIT), results.get(OURS)
    ours2 = results.get(OURS2)
    if ours is None:
        return []

    def check(base: dict[str, Any] | None, test: Callable[[dict[str, Any]], bool]) -> bool | None:
        return None if base is None else test(base)

    growth = ours["rss_soak_mib"] - ours["rss_loaded_mib"]
    return [
        (
            "server CPU per GetTask ≤ 1.5x the floor",
            check(floor, lambda f: ours["cpu_ms_per_get"] <= 1.5 * f["cpu_ms_per_get"]),
        ),
        (
            "server CPU per GetTask ≤ 0.65x flytekit's",
            check(flytekit, lambda f: ours["cpu_ms_per_get"] <= 0.65 * f["cpu_ms_per_get"]),
        ),
        ("p99 latency ≤ flytekit's", check(flytekit, lambda f: ours["p99_ms"] <= f["p99_ms"])),
        (
            "start → SERVING ≤ 0.7x flytekit's",
            check(flytekit, lambda f: ours["startup_s"] <= 0.7 * f["startup_s"]),
        ),
        ("idle RSS ≤ 60 MiB (every extra installed)", ours["rss_idle_mib"] <= 60),
        (
            f"RSS flat under the soak (grew {growth:+.1f} MiB; ≤ 5 allowed)",
            growth <= 5 if ours["soak"] else None,
        ),
        ("no GetTask errors", ours["errors"] == 0),
        (
            "server CPU per GetTask over flyteidl2 (Flyte 2) ≤ 1.1x over flyteidl (Flyte 1)",
            check(ours2, lambda o: o["cpu_ms_per_get"] <= 1.1 * ours["cpu_ms_per_get"]),
        ),
        ("no GetTask errors over flyteidl2", check(ours2, lambda o: bool(o["errors"] == 0))),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="short run: 6,000 Gets in 3 rounds, soak 20,000, 2 starts"
    )
    parser.add_argument("--gets", type=int, default=20_000, help="measured GetTask calls per server")
    parser.add_argument("--rounds", type=int, default=5, help="turns each server takes at the measured Gets")
    parser.add_argument("--soak", type=int, default=200_000, help="GetTask calls before the last RSS reading")
    parser.add_argument("--starts", type=int, default=5, help="starts per server for start-up and idle RSS")
    parser.add_argument("--sensors", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--only",
        action="append",
        choices=("floor", "flytekit", "ours", "flyte2", "asyncio"),
        help="repeatable",
    )
    parser.add_argument(
        "--user-gets", type=int, default=5_000, help="measured GetTask of the user-sensor row (0: no row)"
    )
    parser.add_argument(
        "--user-max-staleness",
        type=float,
        default=None,
        help="--max-staleness of this connector in the user-sensor row (default: its own, 1 s; 0: every "
        "Get pokes, as flytekit's does)",
    )
    args = parser.parse_args()
    if args.quick:
        args.gets, args.soak, args.starts = min(args.gets, 6_000), min(args.soak, 20_000), 2
        args.rounds = min(args.rounds, 3)
        args.user_gets = min(args.user_gets, 1_500)
    picked = {"floor": FLOOR, "flytekit": FLYTEKIT, "ours": OURS, "flyte2": OURS2, "asyncio": OURS_ASYNCIO}
    wanted = {picked[o] for o in args.only} if args.only else set(picked.values())
    running: dict[str, Running] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for server in servers(f"{tmp}/state"):
                if server.name in wanted:
                    print(f"starting {server.name} …", file=sys.stderr, flush=True)
                    running[server.name] = start(server, args)
            print(f"loading {len(running)} servers in {args.rounds} rounds …", file=sys.stderr, flush=True)
            results = load(running, args, tmp)
        finally:
            for up in running.values():
                stop(up.proc)
        user = user_sensor_row(args, tmp, wanted) if args.user_gets else {}
    print(
        f"{args.sensors} FileSensors on missing local paths, {args.concurrency} concurrent GetTask loops, "
        f"{args.gets:,} measured Gets per server in {args.rounds} interleaved rounds, {os.cpu_count()} CPUs\n"
    )
    print("\n".join(table(results, args.soak)))
    print("\nserver CPU per GetTask by round, ms (the table gives each server's median):")
    for name, r in results.items():
        print(f"- {name}: " + ", ".join(f"{c:.3f}" for c in r["cpu_ms_per_get_rounds"]))
    if OURS_ASYNCIO in results:
        print()
        print("\n".join(loop_table(results)))
    if user:
        print()
        print("\n".join(user_table(user, args)))
    print()
    for text, met in goals(results) + user_goals(user):
        print(f"- {'met' if met else 'NOT met' if met is not None else 'not measured'}: {text}")
    return 0


def loop_table(results: dict[str, dict[str, Any]]) -> list[str]:
    """This connector on uvloop (the default) and on asyncio's own loop, against the floor and flytekit's."""
    floor, flytekit = results.get(FLOOR), results.get(FLYTEKIT)
    lines = [
        "this connector by event loop (the floor and flytekit's run on asyncio's):",
        "| event loop | server CPU per GetTask, ms | p99 latency, ms | / floor | / flytekit |",
        "|---|---|---|---|---|",
    ]
    for label, name in (("uvloop (default)", OURS), ("asyncio (--event-loop asyncio)", OURS_ASYNCIO)):
        r = results.get(name)
        if r is None:
            continue
        cpu = r["cpu_ms_per_get"]
        ratios = [f"{cpu / b['cpu_ms_per_get']:.2f}x" if b else "—" for b in (floor, flytekit)]
        lines.append(f"| {label} | {cpu:.3f} | {r['p99_ms']:.2f} | {ratios[0]} | {ratios[1]} |")
    return lines


def user_sensor_row(args: argparse.Namespace, tmp: str, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """A user's own BaseSensor (mysensors.markers.MarkerSensor) through flytekit's connector and ours."""
    running: dict[str, Running] = {}
    try:
        for server in servers(f"{tmp}/state-user"):
            if server.name in (FLYTEKIT, OURS) and server.name in wanted:
                print(f"starting {server.name} with a user sensor module …", file=sys.stderr, flush=True)
                env = dict(USER_ENV)
                if args.user_max_staleness is not None:
                    env["SENSOR_CONNECTOR_MAX_STALENESS"] = str(args.user_max_staleness)
                running[server.name] = start(server, args, env)
        print("loading them with the user sensor …", file=sys.stderr, flush=True)
        return load(running, args, tmp, user=True)
    finally:
        for up in running.values():
            stop(up.proc)


def user_table(user: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    flytekit, ours = user.get(FLYTEKIT), user.get(OURS)
    cells = [f"{r['cpu_ms_per_get']:.3f}" if r else "—" for r in (flytekit, ours)]
    ratio = f"{ours['cpu_ms_per_get'] / flytekit['cpu_ms_per_get']:.2f}x" if flytekit and ours else "—"
    p99 = [f"{r['p99_ms']:.2f}" if r else "—" for r in (flytekit, ours)]
    errors = [f"{r['errors']}" if r else "—" for r in (flytekit, ours)]
    return [
        f"user sensor (a BaseSensor subclass, {args.user_gets:,} measured Gets in {args.rounds} rounds, "
        f"--max-staleness {'default' if args.user_max_staleness is None else args.user_max_staleness}):",
        f"| figure | {FLYTEKIT} | {OURS} | ours / flytekit |",
        "|---|---|---|---|",
        f"| server CPU per GetTask, ms | {cells[0]} | {cells[1]} | {ratio} |",
        f"| p99 latency, ms | {p99[0]} | {p99[1]} | — |",
        f"| GetTask errors | {errors[0]} | {errors[1]} | — |",
    ]


def user_goals(user: dict[str, dict[str, Any]]) -> list[tuple[str, bool | None]]:
    flytekit, ours = user.get(FLYTEKIT), user.get(OURS)
    if not ours:
        return []
    met = None if not flytekit else ours["cpu_ms_per_get"] <= 0.5 * flytekit["cpu_ms_per_get"]
    return [("user sensor: server CPU per GetTask ≤ 0.5x flytekit's", met)]


if __name__ == "__main__":
    sys.exit(main())
