"""One poke of a sensor under one time budget, and what its outcome means (`Outcome`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from flyteidl.core import execution_pb2

from sensors.base import PermanentError, PokeContext, Sensor, TransientError, short

log = logging.getLogger(__name__)

Phase = execution_pb2.TaskExecution.Phase


class Outcome(enum.Enum):
    """What a poke (or the deadline) found: its label, the task phase it means, its log level, in words.

    Propeller asks every 30 s or so: a healthy wait logs at DEBUG only, what needs a look at WARNING.
    """

    MET = ("met", Phase.SUCCEEDED, logging.INFO, "met")
    WAITING = ("waiting", Phase.RUNNING, logging.DEBUG, "not yet")
    TRANSIENT = ("transient", Phase.RUNNING, logging.WARNING, "could not tell (transient error)")
    TIMEOUT = ("timeout", Phase.RUNNING, logging.WARNING, "timed out")
    FAILED = ("failed", Phase.FAILED, logging.WARNING, "failed")
    ERROR = ("error", Phase.RUNNING, logging.WARNING, "error in the sensor")
    #: The deadline passed under soft_fail: the task succeeds with met=false.
    SOFT_FAILED = ("soft_failed", Phase.SUCCEEDED, logging.WARNING, "deadline passed (soft_fail)")

    def __init__(self, label: str, phase: int, level: int, verdict: str) -> None:
        #: The name metrics, logs and custom_info use.
        self.label = label
        self.phase = int(phase)
        self.level = level
        self.verdict = verdict


#: The empty details and outputs of an outcome that has none (shared: outcomes are never changed).
_NOTHING: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PokeOutcome:
    """One poke, as the engine saw it (`dataclasses.replace` makes another)."""

    kind: Outcome
    message: str
    started_at: dt.datetime
    seconds: float
    details: Mapping[str, Any]
    outputs: Mapping[str, Any]


async def poke(
    sensor: Sensor[Any],
    inputs: Mapping[str, Any],
    context: PokeContext,
    started_at: dt.datetime,
    log_extra: Mapping[str, Any] | None = None,
) -> PokeOutcome:
    """Poke `sensor` once within `context.timeout` seconds and sort what happened into an Outcome.

    A sensor's errors never escape: a bug in a sensor must not become a gRPC failure of the task.
    A cancellation (the caller gave up) does, unchanged.
    """
    t0 = time.perf_counter()
    details: Mapping[str, Any] = _NOTHING
    outputs: Mapping[str, Any] = _NOTHING
    try:
        async with asyncio.timeout(context.timeout):
            result = await sensor.poke(inputs, context)
    except TimeoutError:
        kind = Outcome.TIMEOUT
        message = f"the poke ran out of its {context.timeout:g}s budget; will poke again."
    except PermanentError as exc:
        kind, message = Outcome.FAILED, str(exc)
    except TransientError as exc:
        kind, message = Outcome.TRANSIENT, str(exc)
    except Exception as exc:  # the traceback to the log, with the execution; one sentence to the user
        log.exception("%s poke raised %s", sensor.name, type(exc).__name__, extra=log_extra)
        kind = Outcome.ERROR
        problem = short(f"{type(exc).__name__}: {exc}", 200)
        message = f"{short(sensor.name, 80)} poke raised {problem}; will poke again."
    else:
        kind = Outcome.MET if result.met else Outcome.WAITING
        message = result.message
        details = dict(result.details) if result.details else _NOTHING
        outputs = dict(result.outputs) if result.outputs else _NOTHING
    return PokeOutcome(kind, message, started_at, time.perf_counter() - t0, details, outputs)
