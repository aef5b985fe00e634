"""The command line: a thin skin over Config and the server; nothing else happens here."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import Config, env_name, from_env, parse_value
from .observe import logs

if TYPE_CHECKING:
    from sensors.registry import SensorRegistry

    from .engine.user.sensors import UserModules


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(Config):
        factory: Any = f.default_factory
        default: Any = factory() if f.default is dataclasses.MISSING else f.default
        shown = ",".join(map(str, default)) or "none" if isinstance(default, list) else default
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            "help": f"{f.metadata['help']} (env {env_name(f.name)}; default: {shown})",
            "metavar": f.metadata.get("metavar"),
            "choices": f.metadata.get("choices"),
        }
        if isinstance(default, list):
            parser.add_argument(flag(f.name), action="extend", type=partial(parse_value, f), **kwargs)
        else:
            parser.add_argument(flag(f.name), type=partial(parse_value, f), **kwargs)


def flag(name: str) -> str:
    """The command-line flag of config field `name`."""
    return "--" + name.replace("_", "-")


def config_from_args(args: argparse.Namespace) -> Config:
    """Flags over SENSOR_CONNECTOR_* variables over defaults."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
    return Config(**{**from_env(), **given})


def build_parser() -> argparse.ArgumentParser:
    """The `sensor-connector` argument parser."""
    parser = argparse.ArgumentParser(prog="sensor-connector", description="Flyte sensors over gRPC.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the gRPC connector", description="Run the gRPC connector.")
    _add_serve_options(serve)
    sensors = sub.add_parser(
        "sensors", help="list the sensor catalog", description="List registered sensors."
    )
    sensors.add_argument("--json", action="store_true", help="print JSON for scripts instead of a table")
    _add_sensor_modules(sensors, "also list")
    trial = sub.add_parser(
        "try",
        help="run one sensor through a connector as flytepropeller does",
        description="Create a sensor task on ENDPOINT, poll it until it succeeds or fails, delete it on "
        "Ctrl-C or timeout. Exit 0 when met, 1 when failed, timed out or unreachable, 2 on usage errors, "
        "130 on Ctrl-C.",
    )
    trial.add_argument("endpoint", metavar="ENDPOINT", help="connector address, e.g. localhost:8000")
    trial.add_argument("sensor", metavar="SENSOR", help="e.g. FileSensor (see `sensor-connector sensors`)")
    trial.add_argument(
        "-i",
        "--input",
        dest="inputs",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a sensor input; repeat for several",
    )
    trial.add_argument(
        "-c",
        "--config",
        dest="config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a sensor config field; repeat for several",
    )
    trial.add_argument(
        "--interval", type=float, default=2.0, metavar="S", help="seconds between polls (default 2)"
    )
    trial.add_argument(
        "--timeout", type=float, default=0.0, metavar="S", help="give up after S seconds (default 0: never)"
    )
    trial.add_argument(
        "--tls", action="store_true", help="connect with TLS (system CAs) instead of plaintext"
    )
    _add_sensor_modules(trial, "type the inputs of")
    return parser


def _add_sensor_modules(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--sensor-modules",
        default=None,
        metavar="MODULE[,MODULE...]",
        help=f"{what} the flytekit sensors of these modules, as `serve --sensor-modules` serves them "
        "(env SENSOR_CONNECTOR_SENSOR_MODULES); they are imported here",
    )


def _registry(modules: str | None) -> tuple[SensorRegistry, UserModules]:
    """The catalog plus the user sensors of `modules` (else of SENSOR_CONNECTOR_SENSOR_MODULES)."""
    from sensors.registry import load_registry

    from .engine.user import sensors as user_sensors
    from .engine.user.pokes import PokeRunner

    listed: list[str] = (
        from_env().get("sensor_modules", [])
        if modules is None
        else [m.strip() for m in modules.split(",") if m.strip()]
    )
    registry = load_registry()
    return registry, user_sensors.load(listed, registry, PokeRunner(threads=1, per_sensor=1))


def serve(config: Config) -> int:
    """Run the server until SIGTERM/SIGINT."""
    from .server import Server

    logs.setup(config.log_level, config.log_format)

    async def run() -> None:
        await Server(config).serve()

    # uvloop serves the same grpc.aio calls for about a tenth less CPU (docs/performance.md); user
    # sensors' worker threads keep asyncio's own loops (connector/engine/user/pokes.py).
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if config.event_loop == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(run())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sensor-connector` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        try:
            config = config_from_args(args)
            config.validate()
            return serve(config)
        except (ValueError, OSError) as exc:
            print(f"sensor-connector: {exc}", file=sys.stderr)
            return 1
    if args.command == "sensors":
        return list_sensors(as_json=args.json, modules=args.sensor_modules)
    if args.command == "try":
        return try_sensor(args)
    parser.print_help()
    return 2


def list_sensors(*, as_json: bool, modules: str | None = None) -> int:
    """Print the catalog (with the user sensors of `modules`): a table, or JSON."""
    from .client.catalog import catalog, table

    registry, user = _registry(modules)
    data = catalog(registry, user)
    print(json.dumps(data, indent=2) if as_json else table(data))
    return 0


def try_sensor(args: argparse.Namespace) -> int:
    """Run `try`; usage errors exit 2 with one sentence."""
    from .client.trycmd import TryOptions, UsageError, run

    opts = TryOptions(
        args.endpoint, args.sensor, args.inputs, args.config, args.interval, args.timeout, tls=args.tls
    )
    try:
        return asyncio.run(run(_registry(args.sensor_modules)[0], opts))
    except UsageError as exc:
        print(f"sensor-connector try: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
