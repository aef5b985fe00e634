"""`sensor-connector try`: drive one sensor through a connector the way flytepropeller does.

It builds the TaskTemplate and inputs flytekit would write, calls CreateTask, then GetTask every
interval until the phase is final, showing phase and message as they change; on Ctrl-C or when the
time limit passes it sends DeleteTask, as propeller does on abort.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import shutil
import signal
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, identifier_pb2, interface_pb2, literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc

from sensors.base import ConfigError, Sensor
from sensors.registry import SensorRegistry, UnavailableSensorError, UnknownSensorError
from sensors.values import from_text, jsonable

from .. import __version__
from ..state import literals
from ..state.category import SENSOR_CATEGORY

Phase = execution_pb2.TaskExecution.Phase
FINAL_FAILURES = (Phase.FAILED, Phase.RETRYABLE_FAILED, Phase.ABORTED)
#: Exit codes: the condition was met; it failed or timed out (or the connector is unreachable);
#: the command line or the request was wrong; interrupted (128 + SIGINT, as shells report it).
EXIT_MET, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Deadline of each RPC, as propeller's default.
RPC_TIMEOUT = 10.0
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class UsageError(ValueError):
    """The command line cannot make a request; the message says what to change."""


@dataclass(frozen=True)
class TryOptions:
    """What `try` was asked to do."""

    endpoint: str
    sensor: str
    inputs: Sequence[str] = ()
    config: Sequence[str] = ()
    interval: float = 2.0
    timeout: float = 0.0
    tls: bool = False


def pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """`name=value` strings as a dict."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{what} {item!r} must look like name=value.")
        out[name.strip()] = value
    return out


def convert(raw: str, tp: Any, what: str) -> Any:
    """A command-line string as a value of declared type `tp` (`sensors.values.from_text`)."""
    try:
        return from_text(raw, tp, what)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _optional_inner(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def build_request(registry: SensorRegistry, opts: TryOptions) -> agent_pb2.CreateTaskRequest:
    """The CreateTaskRequest propeller would send for this sensor, inputs typed from the local catalog."""
    given_inputs, given_config = pairs(opts.inputs, "--input"), pairs(opts.config, "--config")
    try:
        cls: type[Sensor[Any]] | None = registry.resolve(opts.sensor)
    except UnknownSensorError:
        cls = None  # the server may know it: send inputs as strings and let it decide
    except UnavailableSensorError as exc:
        raise UsageError(str(exc)) from None
    declared: Mapping[str, Any] = cls.inputs if cls else {name: str for name in given_inputs}
    unknown = sorted(set(given_inputs) - set(declared))
    if unknown:
        raise UsageError(
            f"{opts.sensor} takes no input {', '.join(unknown)}; it takes {', '.join(declared) or 'none'}."
        )
    values = {n: convert(raw, declared[n], f"input {n!r}") for n, raw in given_inputs.items()}
    config: dict[str, Any] = dict(given_config)
    if cls is not None and getattr(cls, "user_class", None) is not None:
        # A user's flytekit sensor: its own sensor_config dict, values as JSON where they parse.
        config = {n: _json_or_text(raw) for n, raw in given_config.items()}
    elif cls is not None:
        hints = typing.get_type_hints(cls.config_type)
        fields = [f.name for f in dataclasses.fields(cls.config_type) if f.init]
        bad = sorted(set(given_config) - set(fields))
        if bad:
            raise UsageError(
                f"{cls.name} config has no field {', '.join(bad)}; it takes {', '.join(fields) or 'none'}."
            )
        config = {n: jsonable(convert(raw, hints[n], f"config {n!r}")) for n, raw in given_config.items()}
        try:
            cls.parse_config(config)
            cls.check_inputs(values)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    try:
        literal_inputs = {
            n: literals.from_python(v, _optional_inner(declared[n]), n)
            for n, v in values.items()
            if v is not None
        }
    except literals.LiteralError as exc:
        raise UsageError(f"{exc} `try` cannot send it; use a workflow.") from None
    try:
        template = _template(opts.sensor, cls, declared, config)
    except literals.LiteralError as exc:
        raise UsageError(f"{exc} `try` cannot send it; use a workflow.") from None
    return agent_pb2.CreateTaskRequest(
        template=template,
        inputs=literals_pb2.LiteralMap(literals=literal_inputs),
    )


def _template(
    name: str, cls: type[Sensor[Any]] | None, declared: Mapping[str, Any], config: Mapping[str, Any]
) -> tasks_pb2.TaskTemplate:
    # flytekit names the sensor's class; stock flytekit classes are our aliases, ours live in `sensors`.
    module, sensor_name = "", name
    if cls is not None:
        dotted = next((a for a in cls.aliases if "." in a), f"sensors.{cls.name}")
        if "." in cls.name:  # a user's flytekit sensor, named module.Class
            dotted = cls.name
        module, sensor_name = dotted.rsplit(".", 1)
    elif "." in name:  # module.Class, as flytekit would name it
        module, sensor_name = name.rsplit(".", 1)
    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(
            resource_type=identifier_pb2.TASK,
            project="sensor-connector",
            domain="try",
            name=f"try.{sensor_name}",
            version=__version__,
        ),
        type=SENSOR_CATEGORY.name,
        task_type_version=SENSOR_CATEGORY.version,
        metadata=tasks_pb2.TaskMetadata(
            runtime=tasks_pb2.RuntimeMetadata(type=tasks_pb2.RuntimeMetadata.FLYTE_SDK, flavor="python")
        ),
    )
    for n, tp in declared.items():
        template.interface.inputs.variables[n].CopyFrom(
            interface_pb2.Variable(type=literals.literal_type(_optional_inner(tp)), description=n)
        )
    template.interface.outputs.SetInParent()  # flytekit writes an empty output map, not none
    for n, tp in (cls.outputs if cls else {}).items():
        template.interface.outputs.variables[n].CopyFrom(
            interface_pb2.Variable(type=literals.literal_type(tp), description=n)
        )
    template.custom.update(
        {
            "sensor_module": module,
            "sensor_name": sensor_name,
            "sensor_config": dict(config) or None,
            "inputs": None,
        }
    )
    return template


class Progress:
    """Phase and message as they change: one updating line with a spinner on a terminal, else plain lines."""

    def __init__(self, out: TextIO, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.started = asyncio.get_running_loop().time()
        self._spin = itertools.cycle(_SPINNER)
        self._last: tuple[str, str] | None = None
        self._status = ("", "")

    def _elapsed(self) -> str:
        return f"{asyncio.get_running_loop().time() - self.started:.0f}s"

    def show(self, phase: str, message: str) -> None:
        """Report a GetTask answer."""
        self._status = (phase, message)
        if self.tty:
            self.tick()
        elif (phase, message) != self._last:
            print(f"[{self._elapsed():>5}] {phase:<9} {message}", file=self.out, flush=True)
        self._last = (phase, message)

    def tick(self) -> None:
        """Advance the spinner (terminal only)."""
        if not self.tty:
            return
        width = shutil.get_terminal_size((100, 20)).columns
        phase, message = self._status
        line = f"{next(self._spin)} [{self._elapsed():>5}] {phase:<9} {message}"
        self.out.write("\r\x1b[K" + line[: width - 1])
        self.out.flush()

    def done(self, text: str) -> None:
        """End with a final line."""
        if self.tty:
            self.out.write("\r\x1b[K")
        print(text, file=self.out, flush=True)


def _phase(resource: agent_pb2.Resource) -> str:
    return str(Phase.Name(resource.phase))


def _rpc_failure(exc: grpc.aio.AioRpcError, opts: TryOptions, what: str) -> tuple[int, str]:
    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return EXIT_FAILED, f"cannot reach a connector at {opts.endpoint}: {exc.details()}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return (
            EXIT_FAILED,
            f"{what}: the connector at {opts.endpoint} did not answer within {RPC_TIMEOUT:g}s.",
        )
    if what == "CreateTask" and code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
        return EXIT_USAGE, f"the connector refused the task ({code.name}): {exc.details()}"
    return EXIT_FAILED, f"{what} failed ({code.name}): {exc.details()}"


async def run(
    registry: SensorRegistry, opts: TryOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    """Create, poll until final, Delete when interrupted or out of time; returns the exit code."""
    if opts.interval <= 0:
        raise UsageError("--interval must be more than 0 seconds.")
    if opts.timeout < 0:
        raise UsageError("--timeout must be zero (no limit) or more seconds.")
    request = build_request(registry, opts)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        creds = grpc.ssl_channel_credentials() if opts.tls else None
        channel = (
            grpc.aio.secure_channel(opts.endpoint, creds)
            if creds
            else grpc.aio.insecure_channel(opts.endpoint)
        )
        async with channel:
            return await _drive(agent_pb2_grpc.AsyncAgentServiceStub(channel), request, opts, stop, out, err)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _drive(
    stub: agent_pb2_grpc.AsyncAgentServiceStub,
    request: agent_pb2.CreateTaskRequest,
    opts: TryOptions,
    stop: asyncio.Event,
    out: TextIO,
    err: TextIO,
) -> int:
    category = agent_pb2.TaskCategory(name=SENSOR_CATEGORY.name, version=SENSOR_CATEGORY.version)
    try:
        created = await stub.CreateTask(request, timeout=RPC_TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        code, text = _rpc_failure(exc, opts, "CreateTask")
        print(f"sensor-connector try: {text}", file=err, flush=True)
        return code
    meta = created.resource_meta
    progress = Progress(out)
    print(
        f"created {opts.sensor} task on {opts.endpoint}; polling every {opts.interval:g}s",
        file=out,
        flush=True,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + opts.timeout if opts.timeout else None

    async def delete(why: str) -> None:
        try:
            await stub.DeleteTask(
                agent_pb2.DeleteTaskRequest(task_category=category, resource_meta=meta), timeout=RPC_TIMEOUT
            )
            progress.done(f"{why}; sent DeleteTask.")
        except grpc.aio.AioRpcError as exc:
            progress.done(f"{why}; DeleteTask failed ({exc.code().name}): {exc.details()}")

    while True:
        get = asyncio.ensure_future(
            stub.GetTask(
                agent_pb2.GetTaskRequest(task_category=category, resource_meta=meta), timeout=RPC_TIMEOUT
            )
        )
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({get, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if stop.is_set():
            get.cancel()
            await delete("interrupted")
            return EXIT_INTERRUPTED
        try:
            resource = get.result().resource
        except grpc.aio.AioRpcError as exc:
            code, text = _rpc_failure(exc, opts, "GetTask")
            progress.done(f"sensor-connector try: {text}")
            return code
        phase = _phase(resource)
        progress.show(phase, resource.message)
        if resource.phase == Phase.SUCCEEDED:
            outputs = literals.to_dict(resource.outputs)
            progress.done(f"SUCCEEDED: {resource.message}" + (f" outputs: {outputs}" if outputs else ""))
            return EXIT_MET
        if resource.phase in FINAL_FAILURES:
            progress.done(f"{phase}: {resource.message}")
            return EXIT_FAILED
        if await _wait(opts.interval, deadline, stop, progress):
            if stop.is_set():
                await delete("interrupted")
                return EXIT_INTERRUPTED
            await delete(f"still {phase} after the {opts.timeout:g}s timeout")
            return EXIT_FAILED


async def _wait(interval: float, deadline: float | None, stop: asyncio.Event, progress: Progress) -> bool:
    """Wait one interval, spinning on a terminal; True when interrupted or past the deadline."""
    loop = asyncio.get_running_loop()
    until = loop.time() + interval
    if deadline is not None:
        until = min(until, deadline)
    while (left := until - loop.time()) > 0:
        try:
            await asyncio.wait_for(stop.wait(), min(left, 0.1) if progress.tty else left)
            return True
        except TimeoutError:
            progress.tick()
    return deadline is not None and loop.time() >= deadline
