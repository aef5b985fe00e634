"""Every setting of the connector, its default, its environment variable, loaded once."""

from __future__ import annotations

import dataclasses
import functools
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensors.values import from_text

ENV_PREFIX = "SENSOR_CONNECTOR_"


def default_state_dir() -> Path:
    """$XDG_STATE_HOME/sensor-connector, else ~/.local/state/sensor-connector."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "sensor-connector"


def _opt(
    default: Any, help: str, *, metavar: str | None = None, choices: tuple[str, ...] | None = None
) -> Any:
    meta = {"help": help, "metavar": metavar, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    if callable(default):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


#: The settings with a floor, and the floor: fewer entries, threads or slots than this cannot work.
_AT_LEAST = {
    "max_message_bytes": 1024,
    "state_cache_entries": 1,
    "fs_cache_entries": 1,
    "blocking_threads": 1,
    "sql_threads": 1,
    "secret_threads": 1,
    "sql_queries_per_database": 1,
    "max_pending_rpcs": 1,
    "user_pokes_per_sensor": 1,
    "user_poke_threads": 1,
}


@dataclass
class Config:
    """Settings of `sensor-connector serve`; each is also read from SENSOR_CONNECTOR_<NAME>."""

    host: str = _opt("[::]", "address to listen on for gRPC")
    port: int = _opt(8000, "gRPC port")
    metrics_port: int = _opt(9090, "Prometheus metrics port; 0 disables the metrics endpoint")
    signing_key_file: list[Path] = _opt(
        [],
        "file holding a resource_meta signing key (>= 32 bytes); repeat for rotation, the first signs. "
        "Env: comma-separated paths",
        metavar="PATH",
    )
    tls_cert_file: Path | None = _opt(
        None, "PEM certificate chain: serve gRPC over TLS (with --tls-key-file)"
    )
    tls_key_file: Path | None = _opt(None, "PEM private key of --tls-cert-file")
    secret_policy: Path | None = _opt(
        None,
        "YAML or JSON file saying which named secret may be used where (hosts, Flyte projects, domains); "
        "without it no task may use any secret",
        metavar="FILE",
    )
    state_dir: Path = _opt(
        default_state_dir, "where a generated signing key is kept when no key file is given"
    )
    poke_timeout: float = _opt(
        5.0, "seconds one poke may take before Get answers RUNNING with a timeout message"
    )
    max_message_bytes: int = _opt(
        4 * 1024 * 1024, "largest gRPC request accepted; larger gets RESOURCE_EXHAUSTED"
    )
    max_concurrent_rpcs: int = _opt(
        0,
        "agent calls served at once; beyond it a call gets RESOURCE_EXHAUSTED at once "
        "(health checks are not counted); 0 = no limit",
    )
    max_pending_rpcs: int = _opt(
        100_000,
        "calls grpc may hold, received but not yet handed to the server, before it cancels new ones; "
        "a safety cap on memory, far above any burst --max-concurrent-rpcs should answer",
    )
    state_cache_entries: int = _opt(
        4096, "verified resource_meta kept decoded in memory (LRU), so a Get does not verify it again"
    )
    blocking_threads: int = _opt(
        32, "threads for blocking local filesystem calls (a pool of their own), made off the event loop"
    )
    sql_threads: int = _opt(8, "threads for SqlSensor queries (a pool of their own)")
    secret_threads: int = _opt(4, "threads for reading secret files (a pool of their own)")
    sql_queries_per_database: int = _opt(
        4,
        "SqlSensor queries run at once on one database URL; a poke finding them all busy answers "
        "RUNNING and says so",
    )
    local_roots: list[Path] = _opt(
        [],
        "directories that local paths (plain or file://) must resolve into, symbolic links and .. "
        "resolved; empty = no local paths at all. The connector's own state, secrets, key and TLS files "
        "are never admitted, even inside a root. Env: comma-separated",
        metavar="DIR",
    )
    drain_period: float = _opt(
        15.0,
        "seconds to keep serving every call after SIGTERM, with health NOT_SERVING, so clients "
        "move away before the port closes (a Kubernetes Endpoint removal reaches propeller's k8s:// "
        "resolver within a few seconds; the chart's preStop sleep comes on top); a second "
        "SIGTERM/SIGINT ends it early",
    )
    grace_period: float = _opt(
        10.0,
        "seconds in-flight calls get to finish once the drain is over and the port stops accepting "
        "(also the grace of a connection closed by --max-connection-age)",
    )
    max_connection_age: float = _opt(
        300.0,
        "seconds after which a client connection is asked to reconnect (GOAWAY), so clients "
        "re-resolve and new replicas get traffic; 0 = never",
    )
    max_staleness: float = _opt(
        1.0,
        "seconds an object-store answer (or a user sensor's True/False for the same class, config and "
        "inputs) may serve other pokes asking the same, counted from when its request started; "
        "0 = every poke asks the store itself",
    )
    fs_cache_entries: int = _opt(
        50_000, "object-store answers and listed items kept for sharing at most (an LRU)"
    )
    # fsspec serves many more protocols (http, ftp, memory, chained `a::b` URLs); a path on one would let a
    # template make the connector reach any host, the cloud metadata address included, around HttpSensor's
    # address checks, or touch its own process state. So paths name local files and the object stores only,
    # unless the operator lists more. (Local runs, the author's own process, admit every protocol.)
    path_protocols: list[str] = _opt(
        ["file", "s3", "gs", "abfs"],
        "protocols FileSensor and GlobSensor paths may name (comma-separated; aliases such as s3a, gcs, az "
        "count as theirs); any other fsspec protocol (http, ftp, memory, ...) fails the task unread",
        metavar="PROTOCOL",
    )
    listing_protocols: list[str] = _opt(
        ["file", "s3", "gs", "abfs"],
        "protocols where one prefix listing may answer many sensors waiting under that prefix "
        "(comma-separated; empty = object by object)",
        metavar="PROTOCOL",
    )
    preload: list[str] = _opt(
        [],
        "protocols whose filesystem support is imported at start-up instead of on first use "
        "(comma-separated, e.g. s3,gs)",
        metavar="PROTOCOL",
    )
    sensor_modules: list[str] = _opt(
        [],
        "modules whose flytekit BaseSensor subclasses this connector serves, imported once at start-up "
        "(comma-separated); they run inside the connector with its credentials: list only code you trust",
        metavar="MODULE",
    )
    user_pokes_per_sensor: int = _opt(
        4, "pokes of one user sensor class (from --sensor-modules) that may run at once"
    )
    user_poke_threads: int = _opt(
        16, "worker threads for the pokes of user sensors, all classes together (kept off the event loop)"
    )
    flyte2_default_deadline: float = _opt(
        86400.0,
        "seconds a Flyte 2 sensor task that sets no `deadline` of its own may wait before it fails "
        "(Flyte 2's executor has no timeout of its own for connector tasks); 0 = wait for ever",
    )
    event_loop: str = _opt(
        "uvloop",
        "the serving event loop: uvloop (about a tenth less CPU per call) or Python's own asyncio",
        choices=("uvloop", "asyncio"),
    )
    log_level: str = _opt("INFO", "log level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    log_format: str = _opt("text", "log line format", choices=("text", "json"))

    @property
    def address(self) -> str:
        """host:port for grpc's add_insecure_port."""
        return f"{self.host}:{self.port}"

    def validate(self) -> None:
        """Reject settings that cannot work, with a sentence naming the option."""
        for name in ("port", "metrics_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ValueError(f"--{name.replace('_', '-')} must be a port number, not {value}")
        if self.poke_timeout <= 0:
            raise ValueError("--poke-timeout must be more than 0 seconds")
        for name, least in _AT_LEAST.items():
            if getattr(self, name) < least:
                raise ValueError(f"--{name.replace('_', '-')} must be at least {least}")
        if self.max_concurrent_rpcs < 0:
            raise ValueError("--max-concurrent-rpcs must be zero (no limit) or more")
        for name in ("drain_period", "grace_period", "max_connection_age"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be zero or more seconds")
        if self.max_staleness < 0:
            raise ValueError("--max-staleness must be zero (no sharing) or more seconds")
        for module in self.sensor_modules:
            if not all(part.isidentifier() for part in module.split(".")):
                raise ValueError(f"--sensor-modules: {module!r} is not a dotted module name")
        if self.flyte2_default_deadline < 0:
            raise ValueError("--flyte2-default-deadline must be zero (no default) or more seconds")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("--tls-cert-file and --tls-key-file go together: give both or neither")


def env_name(name: str) -> str:
    """The environment variable for config field `name`."""
    return ENV_PREFIX + name.upper()


def parse_value(f: dataclasses.Field[Any], raw: str) -> Any:
    """A field's value from its string form (env var or CLI): its choices, else `sensors.values.from_text`."""
    choices = f.metadata.get("choices")
    if choices:
        for choice in choices:
            if raw.lower() == choice.lower():
                return choice
        raise ValueError(f"{raw!r} is not one of {', '.join(choices)}")
    return from_text(raw, _field_types()[f.name], "--" + f.name.replace("_", "-"))


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(Config)


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Config values given as SENSOR_CONNECTOR_* variables."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        raw = environ.get(env_name(f.name))
        if raw is not None and raw != "":
            try:
                values[f.name] = parse_value(f, raw)
            except ValueError:
                raise ValueError(f"{env_name(f.name)}={raw!r} is not a valid {f.name}") from None
    return values
