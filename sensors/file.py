"""FileSensor: waits until a path exists on any filesystem fsspec knows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .base import Link, PokeContext, PokeResult, Sensor, set_fields
from .store import console_links


@dataclass(frozen=True)
class FileSensorConfig:
    """Optional extra conditions on the file once it exists."""

    #: The file must hold at least this many bytes.
    min_size: int | None = None
    #: The file must not have been modified for this many seconds (it is no longer being written).
    min_age: float | None = None

    def __post_init__(self) -> None:
        if self.min_size is not None and self.min_size < 0:
            raise ValueError("min_size must be zero or more bytes")
        if self.min_age is not None and self.min_age < 0:
            raise ValueError("min_age must be zero or more seconds")


class FileSensor(Sensor[FileSensorConfig]):
    """Waits until a file (or object, or directory) exists at `path`: local, file://, s3://, gs://, abfs://."""

    name = "FileSensor"
    aliases = (
        "flytekit.sensor.file_sensor.FileSensor",
        "flytekit.sensor.FileSensor",
        "sensors.flytekit.FileSensor",
    )
    config_type = FileSensorConfig
    inputs = {"path": str}

    def describe(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"path": inputs["path"], **set_fields(self.config, "min_size", "min_age")}

    def links(self, inputs: Mapping[str, Any]) -> Sequence[Link]:
        return console_links(inputs["path"])

    @classmethod
    def local_paths(cls, config: Any, inputs: Mapping[str, Any]) -> Sequence[str]:
        return (inputs["path"],)

    async def poke(self, inputs: Mapping[str, Any], ctx: PokeContext) -> PokeResult:
        path: str = inputs["path"]
        meta = await ctx.store.info(path, ctx.timeout)
        if meta is None:
            return PokeResult(False, f"{path} does not exist yet.")
        size = meta.get("size")
        details: dict[str, Any] = {"size": size} if isinstance(size, int) else {}
        if self.config.min_size is not None and (size or 0) < self.config.min_size:
            return PokeResult(
                False, f"{path} has {size or 0} bytes, waiting for {self.config.min_size}.", details
            )
        if self.config.min_age is not None:
            modified = ctx.store.modified_at(meta)
            if modified is not None:
                age = (dt.datetime.now(dt.UTC) - modified).total_seconds()
                details["age_seconds"] = round(age, 3)
                if age < self.config.min_age:
                    left = self.config.min_age - age
                    return PokeResult(
                        False, f"{path} was modified {age:.0f}s ago; waiting {left:.0f}s more.", details
                    )
        return PokeResult(True, f"{path} exists.", details)
