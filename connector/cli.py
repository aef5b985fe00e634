"""The command line: a thin skin over Config and the server; nothing else happens here."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any

from . import __version__, logs
from .config import Config, env_name, from_env, parse_value


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
    return parser


def serve(config: Config) -> int:
    """Run the server until SIGTERM/SIGINT."""
    from .server import Server

    logs.setup(config.log_level, config.log_format)

    async def run() -> None:
        await Server(config).serve()

    asyncio.run(run())
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
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
