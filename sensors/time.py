"""TimeSensor: waits until a point in time; pokes nothing remote."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .base import ConfigError, PokeContext, PokeResult, Sensor, human_duration


@dataclass(frozen=True)
class TimeSensorConfig:
    """A fixed delay after the sensor starts, instead of an `at` input."""

    #: Seconds after the sensor was created (CreateTask) at which it is met.
    delay: float | None = None

    def __post_init__(self) -> None:
        if self.delay is not None and self.delay < 0:
            raise ValueError("delay must be zero or more seconds")


def now() -> dt.datetime:
    """The current time, timezone-aware UTC (one place to read the clock)."""
    return dt.datetime.now(dt.UTC)


class TimeSensor(Sensor[TimeSensorConfig]):
    """Waits until the time `at` (an input) or `delay` seconds (config) after the sensor started."""

    name = "TimeSensor"
    aliases = ("sensors.flytekit.TimeSensor",)
    config_type = TimeSensorConfig
    inputs: ClassVar[Mapping[str, Any]] = {"at": dt.datetime | None}

    @classmethod
    def prepare(cls, config: Any, inputs: Mapping[str, Any], outputs: Collection[str]) -> Any:
        has_at = inputs.get("at") is not None
        has_delay = config.delay is not None
        if has_at == has_delay:
            raise ConfigError(
                "TimeSensor needs exactly one of the input `at` and the config `delay`"
                f"{', not both' if has_at else ''}."
            )
        return config

    def target(self, inputs: Mapping[str, Any], created_at: dt.datetime) -> dt.datetime:
        """The moment the sensor is met."""
        at: dt.datetime | None = inputs.get("at")
        if at is not None:
            return at if at.tzinfo else at.replace(tzinfo=dt.UTC)
        return created_at + dt.timedelta(seconds=self.config.delay or 0.0)

    def describe(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if inputs.get("at") is not None:
            return {"at": inputs["at"]}
        return {"delay": self.config.delay}

    async def poke(self, inputs: Mapping[str, Any], ctx: PokeContext) -> PokeResult:
        target = self.target(inputs, ctx.created_at)
        current = now()
        details = {"target": target.isoformat(timespec="seconds")}
        if current >= target:
            return PokeResult(True, f"it is past {target.isoformat(timespec='seconds')}.", details)
        left = target - current
        when, remaining = target.isoformat(timespec="seconds"), human_duration(left, round_up=True)
        return PokeResult(False, f"waiting until {when}, {remaining} left.", details)
