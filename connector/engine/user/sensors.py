"""Users' own flytekit sensors: `BaseSensor` subclasses from the modules the operator allows, unchanged.

The operator lists modules with `--sensor-modules`; they are imported once, at start-up, and every
`flytekit.sensor.base_sensor.BaseSensor` subclass *defined* in them is served under the name a template
gives it (`sensor_module` + `.` + `sensor_name`). Nothing else is ever imported: a template naming any
other module is refused at CreateTask, naming the option. flytekit is imported only when a module is
listed, so a connector serving no user module never loads it.

flytekit's contract, as its own SensorEngine keeps it: the inputs are decoded by flytekit's TypeEngine
(here into the types `poke` declares, so a dataclass arrives as the author's class), the sensor is built
as `cls("sensor", config=<the template's sensor_config dict>)` and `poke(**inputs)` is called; an
`async def` poke is awaited, a plain `def` one called. What differs is what flytekit leaves to chance:
the poke runs in a worker thread under `--poke-timeout` (connector.engine.user.pokes), its inputs and
config travel as literals in the signed resource_meta, an exception or a non-bool answer is a RUNNING
phase with one sentence (FAILED once the policy's deadline passes), and an exception class named
`PermanentError` (the author's own; no import of this project) fails the task at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import json
import logging
import threading
import time
import typing
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flyteidl.core import literals_pb2

from sensors.base import ConfigError, PermanentError, PokeContext, PokeResult, Sensor, TransientError, short
from sensors.policy import Policy
from sensors.registry import SensorRegistry
from sensors.store.sharing import Sharing, Stats

from ...state import literals
from ..errors import FailedPrecondition, InvalidArgument, NotFound, RequestError, Unavailable
from .pokes import PokeRunner, SlotsHung

log = logging.getLogger(__name__)

#: The class name an author's exception has (itself or a base) to mean "this will never succeed".
PERMANENT_ERROR_NAME = "PermanentError"
#: User sensor objects kept per worker thread, keyed by (sensor, config): built once, not per Get.
INSTANCES_PER_THREAD = 256
OPTION = "--sensor-modules (SENSOR_CONNECTOR_SENSOR_MODULES, chart value sensorModules)"
#: Answers kept for sharing at most (True/False by question), as `--max-staleness` allows: the same
#: question is the same sensor class, sensor_config and inputs (two tasks waiting for one table
#: partition, or one task asked again sooner than the window), counted from when the answering poke
#: started. Exceptions and other answers are never shared: every Get pokes again.
SHARED_ANSWERS = 4096


@dataclass(frozen=True)
class FlytekitCall:
    """What resource_meta keeps of a user sensor task: its sensor_config and its inputs, as sent."""

    #: The template's `sensor_config` as JSON ("null" when it has none).
    sensor_config: str
    #: The CreateTask inputs: a serialized flyteidl LiteralMap.
    inputs: bytes


@dataclass
class UserModules:
    """The modules the operator allowed and what importing each gave: its sensors, or its error."""

    allowed: tuple[str, ...] = ()
    #: module -> names of the BaseSensor subclasses it defines
    sensors: dict[str, list[str]] = field(default_factory=dict)
    #: module -> why it could not be imported
    failed: dict[str, str] = field(default_factory=dict)

    def refusal(self, module: str, name: str) -> RequestError:
        """Why a template naming `module`.`name` (not in the registry) cannot be served here."""
        shown = short(module, 80)
        if module in self.failed:
            return FailedPrecondition(
                f"sensor module {shown!r} is allowed by --sensor-modules but failed to import at start-up "
                f"({self.failed[module]}); fix the connector's image and restart it."
            )
        if module in self.sensors:
            defined = ", ".join(self.sensors[module]) or "none"
            return NotFound(
                f"sensor module {shown!r} defines no BaseSensor subclass named {short(name, 60)!r}; "
                f"it defines {short(defined, 120)}."
            )
        return FailedPrecondition(
            f"sensor module {shown!r} is not allowed on this connector; the operator allows a module's "
            f"flytekit sensors with {OPTION}."
        )


class UserSensor(Sensor[FlytekitCall]):
    """Serves one author's BaseSensor subclass; a subclass of this is made per class at start-up."""

    config_type = FlytekitCall
    #: The author's BaseSensor subclass.
    user_class: ClassVar[type[Any]]
    #: The types `poke` declares for its parameters, and those it may be called without.
    declared: ClassVar[Mapping[str, Any]] = {}
    optional: ClassVar[frozenset[str]] = frozenset()
    runner: ClassVar[PokeRunner]
    #: True/False answers shared by pokes asking the same question (see SHARED_ANSWERS).
    answers: ClassVar[Sharing]

    def __init__(self, config: FlytekitCall) -> None:
        super().__init__(config)
        self._inputs = literals_pb2.LiteralMap.FromString(config.inputs)
        self._config: Any = json.loads(config.sensor_config)
        #: The decoded inputs, once a worker has decoded them (a task decodes them once).
        self._kwargs: dict[str, Any] | None = None
        #: The question this task asks, for answer sharing.
        digest = hashlib.blake2b(b"\0".join((config.sensor_config.encode(), config.inputs)), digest_size=16)
        self._question = ("poke", self.name, digest.hexdigest())

    # -- CreateTask ---------------------------------------------------------------------------
    @classmethod
    def keep(cls, sensor_config: Any, inputs: literals_pb2.LiteralMap) -> tuple[Policy, FlytekitCall]:
        """The policy and the kept call of a CreateTask; ConfigError says what is wrong with it.

        The policy fields (poke_interval, backoff, max_poke_interval, deadline, soft_fail) are read
        from sensor_config; the class still gets the whole sensor_config, as under flytekit.
        """
        policy, _ = Policy.split(sensor_config)
        given = set(inputs.literals)
        unknown = sorted(given - set(cls.declared))
        if unknown:
            raise ConfigError(
                f"{cls.name}.poke takes no input named {', '.join(unknown)[:120]}; "
                f"it takes {', '.join(cls.declared) or 'none'}."
            )
        missing = [n for n in cls.declared if n not in given and n not in cls.optional]
        if missing:
            raise ConfigError(
                f"{cls.name} needs input {', '.join(missing)} and the request does not give it."
            )
        for name, lit in inputs.literals.items():
            if lit.HasField("offloaded_metadata"):
                raise ConfigError(
                    f"input {name!r} of {cls.name} is an offloaded literal; this connector reads inputs "
                    "only from the request, never from the object store."
                )
        try:
            config_json = json.dumps(sensor_config, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{cls.name} sensor_config cannot be kept: {exc}.") from None
        return policy, FlytekitCall(config_json, inputs.SerializeToString(deterministic=True))

    @classmethod
    async def check_decodes(
        cls, call: FlytekitCall, budget: float, log_extra: Mapping[str, Any] | None = None
    ) -> None:
        """Decode the inputs once at CreateTask, in a worker (TypeEngine may run the author's types), so
        that an input that does not fit fails Create (INVALID_ARGUMENT) rather than every Get.
        `log_extra`: the execution's log fields, for the line saying a decode was abandoned."""
        try:
            async with asyncio.timeout(budget):
                await cls.runner.run(cls.name, cls(call)._decode, log_extra)
        except SlotsHung as exc:
            raise Unavailable(f"{cls.name} inputs could not be read now: {exc}") from None
        except TimeoutError:
            raise Unavailable(
                f"{cls.name} inputs could not be read within --poke-timeout ({budget:g}s); try again."
            ) from None
        except Exception as exc:
            raise InvalidArgument(
                f"{cls.name} inputs cannot be read as poke declares them: "
                f"{type(exc).__name__}: {short(str(exc), 160)}."
            ) from None

    # -- GetTask ------------------------------------------------------------------------------
    def describe(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The inputs, as plain values where they have a plain form."""
        facts: dict[str, Any] = {}
        for name, lit in self._inputs.literals.items():
            try:
                facts[name] = literals.to_python(lit, name)
            except literals.LiteralError:
                facts[name] = f"<{self.declared.get(name, Any)!s}>".replace("typing.", "")
        return facts

    async def poke(self, inputs: Mapping[str, Any], ctx: PokeContext) -> PokeResult:
        """Run the author's poke in a worker; its answer as a PokeResult, its exception as is."""
        answers = self.answers
        answer: Any = answers.arrived(self._question, answers.clock()) if answers.on else None
        if answer is None:
            started = answers.clock()
            answer = await self._poke_now(ctx)
            if type(answer) is bool:
                answers.keep(self._question, started, answer)
        if type(answer) is not bool:
            raise TransientError(
                f"{self.name}.poke answered {type(answer).__name__} {short(repr(answer), 60)}, "
                "not True or False; will poke again."
            )
        if answer:
            return PokeResult(True, f"{self.name}.poke answered True.")
        return PokeResult(False, f"{self.name}.poke answered False; will poke again.")

    async def _poke_now(self, ctx: PokeContext) -> Any:
        try:
            return await self.runner.run(self.name, self._poke, ctx.log_extra)
        except SlotsHung as exc:
            raise TransientError(str(exc)) from None
        except Exception as exc:
            if any(c.__name__ == PERMANENT_ERROR_NAME for c in type(exc).__mro__):
                raise PermanentError(f"{self.name}: {short(str(exc), 200)}") from exc
            raise

    # -- in a worker thread -------------------------------------------------------------------
    async def _decode(self) -> dict[str, Any]:
        from flytekit import FlyteContextManager
        from flytekit.core.type_engine import TypeEngine
        from flytekit.models.literals import Literal

        if self._kwargs is None:
            ctx = FlyteContextManager.current_context()
            kwargs = {}
            for name, lit in self._inputs.literals.items():
                value = Literal.from_flyte_idl(lit)
                kwargs[name] = await TypeEngine.async_to_python_value(ctx, value, self.declared[name])
            self._kwargs = kwargs
        return self._kwargs

    async def _poke(self) -> Any:
        kwargs = await self._decode()
        sensor = _instance(type(self), self.config.sensor_config, self._config)
        answer = sensor.poke(**kwargs)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer


_local = threading.local()


def _instance(cls: type[UserSensor], key: str, config: Any) -> Any:
    """The author's sensor object for (class, config) in this worker thread, built as flytekit builds it.

    Per thread: an object may hold clients bound to the thread's event loop. Bounded (LRU): flytekit
    keeps every task object it builds in a global list, so building one per Get grows without end.
    """
    cache: OrderedDict[tuple[str, str], Any] | None = getattr(_local, "instances", None)
    if cache is None:
        cache = _local.instances = OrderedDict()
    found = cache.get((cls.name, key))
    if found is not None:
        cache.move_to_end((cls.name, key))
        return found
    sensor = cls.user_class("sensor", config=config)
    cache[(cls.name, key)] = sensor
    if len(cache) > INSTANCES_PER_THREAD:
        cache.popitem(last=False)
    return sensor


def adapter(user_class: type[Any], runner: PokeRunner, answers: Sharing) -> type[UserSensor]:
    """The catalog class serving `user_class` under `module.ClassName`."""
    poke = user_class.poke
    hints = typing.get_type_hints(poke)
    params = [p for p in inspect.signature(poke).parameters.values() if p.name != "self"]
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{user_class.__qualname__}.poke takes *{p.name}; flytekit needs named inputs")
        if p.name not in hints:
            raise TypeError(f"{user_class.__qualname__}.poke input {p.name!r} has no type annotation")
    name = f"{user_class.__module__}.{user_class.__name__}"
    doc = (user_class.__doc__ or "").strip()
    attrs: dict[str, Any] = {
        "name": name,
        "user_class": user_class,
        "declared": {p.name: hints[p.name] for p in params},
        "optional": frozenset(p.name for p in params if p.default is not p.empty),
        "inputs": {p.name: hints[p.name] for p in params},
        "summary": doc.splitlines()[0] if doc else f"{user_class.__name__}, a flytekit BaseSensor",
        "runner": runner,
        "answers": answers,
        "__module__": __name__,
        "__qualname__": f"UserSensor[{name}]",
    }
    return type(f"UserSensor[{name}]", (UserSensor,), attrs)


def load(
    modules: Sequence[str], registry: SensorRegistry, runner: PokeRunner, *, max_staleness: float = 0.0
) -> UserModules:
    """Import the allowed modules (start-up only) and register a catalog class per BaseSensor subclass."""
    found = UserModules(allowed=tuple(modules))
    if not modules:
        return found
    from flytekit.sensor.base_sensor import BaseSensor

    answers = Sharing(max_staleness, SHARED_ANSWERS, time.monotonic, Stats())

    for module in modules:
        try:
            loaded = importlib.import_module(module)
        except Exception as exc:  # an author's module may raise anything while importing
            reason = short(f"{type(exc).__name__}: {exc}", 200)
            log.error(
                "sensor module %s (--sensor-modules) failed to import: %s", module, reason, exc_info=exc
            )
            found.failed[module] = reason
            continue
        names = []
        for value in _defined(loaded, module):
            if not (isinstance(value, type) and issubclass(value, BaseSensor) and value is not BaseSensor):
                continue
            if inspect.isabstract(value):  # poke not overridden
                continue
            try:
                registry.register(adapter(value, runner, answers))
            except (TypeError, ValueError) as exc:
                log.error("sensor %s.%s cannot be served: %s", module, value.__name__, exc)
                continue
            names.append(value.__name__)
        found.sensors[module] = sorted(names)
        log.info("sensor module %s: serving %s", module, ", ".join(sorted(names)) or "no BaseSensor subclass")
    return found


def _defined(module: Any, name: str) -> Iterable[Any]:
    """What module `name` itself defines (not what it imports)."""
    return [v for v in vars(module).values() if getattr(v, "__module__", None) == name]
