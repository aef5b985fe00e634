"""The contract every catalog sensor follows: plain async classes, no gRPC, no protobuf.

A sensor declares its inputs (values that arrive with each task execution), its config (fixed when
the task is declared, a frozen dataclass of plain fields) and its outputs. The connector builds one
instance per poke from the config and calls `poke` with the decoded inputs; the instance must be
cheap to build (no I/O in `__init__`): files and object stores are reached through the server's
`Store` in the PokeContext, which keeps their clients, and other blocking work (queries, secret files)
runs in the server's `Pools` there; anything else expensive is kept by the sensor's own helpers.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from .pools import Pools, default_pools

if TYPE_CHECKING:
    from .store import Store

#: Python types an input, config field or output may have. The connector converts Flyte literals
#: to and from exactly these.
SCALAR_TYPES: tuple[type, ...] = (str, int, float, bool, dt.datetime, dt.timedelta)


class SensorError(Exception):
    """Base of the errors a poke may raise; the message is shown to the user as is."""


class PermanentError(SensorError):
    """The condition can never be met as declared (bad path, no permission): the task fails."""


class TransientError(SensorError):
    """This poke could not decide (throttling, a 5xx, a network blip): the sensor keeps waiting."""


class ConfigError(ValueError):
    """A sensor's config or inputs are not what the sensor declares."""


@dataclass(frozen=True)
class Link:
    """A link the Flyte console shows beside the task, e.g. the object store's console page."""

    name: str
    uri: str


@dataclass(frozen=True)
class PokeResult:
    """The outcome of one poke."""

    met: bool
    message: str
    #: Extra facts for the console (`custom_info`), e.g. the size of the file found.
    details: Mapping[str, Any] = field(default_factory=dict)
    #: Values for the sensor's declared outputs; only read when `met` is true.
    outputs: Mapping[str, Any] = field(default_factory=dict)


def _default_store() -> Store:
    from .store import default_store  # the store package builds on this module

    return default_store()


@dataclass(frozen=True)
class PokeContext:
    """What the engine knows about this sensor execution besides its inputs."""

    #: When the sensor was created (CreateTask), timezone-aware UTC.
    created_at: dt.datetime
    #: The time budget of this poke in seconds; the engine enforces it, a sensor may plan with it.
    timeout: float
    #: Files and object stores: the server's own Store; where no server owns one (a local run, a
    #: sensor's own unit test), the process's `default_store()`, which never shares answers.
    store: Store = field(default_factory=_default_store)
    #: Thread pools for other blocking work (SqlSensor's queries, secret files): the server's own;
    #: where no server owns them, the process's `default_pools()` (the loop's default executor).
    pools: Pools = field(default_factory=default_pools)
    #: The fields every log line about this execution carries (project/domain/execution, node, sensor,
    #: task), for a sensor whose own log lines must say which execution they are about; empty locally.
    log_extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SecretUse:
    """A connector secret a task would use, and where it would go (checked against the operator's policy)."""

    #: The secret's name (sensors.secrets).
    name: str
    #: The host the sensor sends the secret to, when the template names the destination (an HTTP URL);
    #: None when the secret names its own destination (a database URL).
    host: str | None = None


@dataclass(frozen=True)
class EmptyConfig:
    """Config of a sensor that takes none."""


C = TypeVar("C")


class Sensor(abc.ABC, Generic[C]):
    """Base of every catalog sensor."""

    #: Catalog name, as users and the `sensor_name` field of a template say it.
    name: ClassVar[str]
    #: Other names that mean this sensor: dotted `module.Class` paths of flytekit classes whose
    #: templates it serves (e.g. stock `flytekit.sensor.file_sensor.FileSensor`).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: A frozen dataclass of plain fields (see SCALAR_TYPES, optional and tuple forms allowed).
    config_type: ClassVar[type[Any]] = EmptyConfig
    #: Declared inputs: name -> python type (one of SCALAR_TYPES or list[str]).
    inputs: ClassVar[Mapping[str, Any]] = {}
    #: Declared outputs: name -> python type.
    outputs: ClassVar[Mapping[str, Any]] = {}
    #: One line for the catalog; defaults to the first line of the class docstring.
    summary: ClassVar[str] = ""

    def __init__(self, config: C) -> None:
        self.config = config

    @abc.abstractmethod
    def describe(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """What this sensor waits for, as a few key facts (e.g. {"path": ...}); no I/O."""

    @abc.abstractmethod
    async def poke(self, inputs: Mapping[str, Any], ctx: PokeContext) -> PokeResult:
        """Check the condition once; raise PermanentError or TransientError when it cannot tell."""

    @classmethod
    def warm_up(cls) -> None:
        """Called once at server start-up: import what pokes will need, so no request pays for it."""

    @classmethod
    async def close(cls) -> None:
        """Called once at server shutdown, on the serving event loop: release shared clients."""

    def links(self, inputs: Mapping[str, Any]) -> Sequence[Link]:
        """Console links for what is awaited; none by default."""
        return ()

    @classmethod
    def local_paths(cls, config: Any, inputs: Mapping[str, Any]) -> Sequence[str]:
        """Paths or glob patterns this task will read (any protocol), checked at CreateTask.

        The connector refuses the task at once when a local one lies outside its --local-roots (every
        local read is checked again at poke time, declared here or not). None by default.
        """
        return ()

    @classmethod
    def one_line(cls) -> str:
        """The catalog summary."""
        if cls.summary:
            return cls.summary
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else cls.name

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any] | None) -> Any:
        """Build the config from a template's `sensor_config` dict, checking names and types."""
        return build_dataclass(cls.config_type, raw or {}, what=f"{cls.name} config")

    @classmethod
    def check_inputs(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """Check decoded inputs against the declared ones: none missing, none unknown, right types."""
        unknown = sorted(set(values) - set(cls.inputs))
        if unknown:
            raise ConfigError(
                f"{cls.name} takes no input named {short_list(unknown)}; it takes {_names(cls.inputs)}."
            )
        missing = [name for name in cls.inputs if name not in values and not _is_optional(cls.inputs[name])]
        if missing:
            raise ConfigError(
                f"{cls.name} needs input {short_list(missing)} and the request does not give it."
            )
        return {
            name: check_value(value, cls.inputs[name], f"input {name!r}") for name, value in values.items()
        }

    @classmethod
    def secret_uses(cls, config: Any, inputs: Mapping[str, Any]) -> Sequence[SecretUse]:
        """The connector secrets a task with this config and these inputs would use; none by default.

        The connector checks them against the operator's secret policy at CreateTask, before anything
        is read, and again before every poke.
        """
        return ()

    @classmethod
    def prepare(cls, config: Any, inputs: Mapping[str, Any], outputs: Collection[str]) -> Any:
        """The config to keep for this task, given its inputs and the output names its template declares.

        Checks what needs these together (raise ConfigError with one sentence when they do not fit,
        e.g. two settings that exclude each other) and may adjust the config to what the declared
        outputs need. By default the config is kept as it is.
        """
        return config


def human_duration(delta: dt.timedelta, *, round_up: bool = False) -> str:
    """A duration for messages: `2h05m`, `3m07s`, `42s` (negative counts as zero)."""
    total = delta.total_seconds()
    seconds = max(0, int(total + 0.999) if round_up else int(total))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def set_fields(config: Any, *names: str) -> dict[str, Any]:
    """The named fields of `config` that are set (not None), in that order: optional facts for `describe`."""
    values = {name: getattr(config, name) for name in names}
    return {name: value for name, value in values.items() if value is not None}


def _names(declared: Mapping[str, Any]) -> str:
    return short_list(declared) if declared else "none"


def short_list(names: Collection[Any], shown: int = 5) -> str:
    """Names for a message, at most `shown` of them (each cut short): `a, b, c and 9997 more`."""
    items = [short(str(name), 40) for name in list(names)[:shown]]
    rest = len(names) - len(items)
    return ", ".join(items) + (f" and {rest} more" if rest > 0 else "")


def short(text: str, limit: int = 60) -> str:
    """`text` cut to about `limit` characters for a message, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short_repr(value: Any) -> str:
    return short(repr(value), 80)


#: Control characters a string may not hold: C0 (but tab and line breaks, which free text such as a
#: query needs), DEL and C1. A NUL cuts a path short in C code; others hide what a path or URL says.
_CONTROL = frozenset(chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))) - {"\t", "\n", "\r"}


def _check_text(value: str, what: str) -> str:
    if _CONTROL.isdisjoint(value):
        return value
    bad = next(c for c in value if c in _CONTROL)
    raise ConfigError(f"{what} holds the control character U+{ord(bad):04X}, which no path, URL or name may.")


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def type_name(tp: Any) -> str:
    """A short readable name of a declared type, e.g. `str`, `list[str]`, `int | None`."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("datetime.", "")


def check_value(value: Any, tp: Any, what: str) -> Any:
    """Return `value` converted to the declared type `tp`, or raise ConfigError saying what is wrong."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return check_value(value, arg, what)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{what} must be {type_name(tp)}, not {_short_repr(value)}."
        )
    if origin in (list, tuple, Sequence):
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise ConfigError(f"{what} must be a list, not {type(value).__name__}.")
        item = args[0] if args else Any
        items = [check_value(v, item, f"{what} item") for v in value]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{what} must be a mapping, not {type(value).__name__}.")
        kt, vt = args if args else (Any, Any)
        return {
            check_value(k, kt, f"{what} key"): check_value(v, vt, f"{what}[{_short_repr(k)}]")
            for k, v in value.items()
        }
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if tp is dt.timedelta and isinstance(value, int | float) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    if tp is dt.datetime and isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{what} must be an ISO 8601 datetime, not {_short_repr(value)}.") from None
    if tp is dt.datetime and isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    if isinstance(tp, type) and (not isinstance(value, tp) or (tp is int and isinstance(value, bool))):
        raise ConfigError(f"{what} must be {type_name(tp)}, not {type(value).__name__} {_short_repr(value)}.")
    if isinstance(value, str):
        return _check_text(value, what)
    return value


def build_dataclass(cls: type[Any], raw: Mapping[str, Any], *, what: str) -> Any:
    """Build dataclass `cls` from `raw`, rejecting unknown fields and wrong types with ConfigError."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{what} must be a mapping of field names to values, not {type(raw).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        known = short_list(fields, 12) or "no fields"
        raise ConfigError(f"{what} has no field {short_list(unknown)}; it takes {known}.")
    hints = typing.get_type_hints(cls)
    kwargs = {name: check_value(value, hints[name], f"{what} field {name!r}") for name, value in raw.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} is invalid: {str(exc).rstrip('.')}.") from None
