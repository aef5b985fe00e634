"""GlobSensor: waits until a glob pattern matches enough files, optionally with a marker beside them."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from fsspec.core import split_protocol

from .base import Link, PokeContext, PokeResult, Sensor
from .store import console_links


@dataclass(frozen=True)
class GlobSensorConfig:
    """How many matches are enough, and which marker file must stand beside them."""

    #: At least this many paths must match.
    min_count: int = 1
    #: A file name (e.g. `_SUCCESS`) that must exist in every directory holding a match.
    marker: str | None = None

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ValueError("min_count must be 1 or more")
        if self.marker is not None and (not self.marker or "/" in self.marker or self.marker in (".", "..")):
            raise ValueError("marker must be a plain file name such as _SUCCESS, without slashes")


class GlobSensor(Sensor[GlobSensorConfig]):
    """Waits until a glob `pattern` matches at least `min_count` paths on any fsspec filesystem."""

    name = "GlobSensor"
    aliases = ("sensors.flytekit.GlobSensor",)
    config_type = GlobSensorConfig
    inputs: ClassVar[Mapping[str, Any]] = {"pattern": str}
    outputs: ClassVar[Mapping[str, Any]] = {"paths": list[str]}

    def describe(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        facts: dict[str, Any] = {"pattern": inputs["pattern"], "min_count": self.config.min_count}
        if self.config.marker is not None:
            facts["marker"] = self.config.marker
        return facts

    def links(self, inputs: Mapping[str, Any]) -> Sequence[Link]:
        return console_links(_static_prefix(inputs["pattern"]))

    async def poke(self, inputs: Mapping[str, Any], ctx: PokeContext) -> PokeResult:
        pattern: str = inputs["pattern"]
        found = await ctx.store.glob(pattern, ctx.timeout)
        marker = self.config.marker
        if marker is not None:
            found = [p for p in found if posixpath.basename(p.rstrip("/")) != marker]
        paths = sorted(_restore(pattern, p) for p in found)
        details: dict[str, Any] = {"matches": len(paths)}
        want = self.config.min_count
        if len(paths) < want:
            return PokeResult(False, f"{pattern} matches {len(paths)} path(s), waiting for {want}.", details)
        if marker is not None:
            for directory in sorted({posixpath.dirname(p.rstrip("/")) for p in paths}):
                beside = f"{directory}/{marker}"
                if not await ctx.store.exists(beside, ctx.timeout):
                    return PokeResult(False, f"{len(paths)} path(s) match; waiting for {beside}.", details)
        return PokeResult(True, f"{pattern} matches {len(paths)} path(s).", details, {"paths": paths})


def _restore(pattern: str, path: str) -> str:
    """`path` as the user would write it: with the pattern's protocol, or plain when the pattern had none."""
    protocol, _ = split_protocol(pattern)
    if not protocol:
        return path
    return f"{protocol}://{path.removeprefix('/') if protocol != 'file' else path}"


def _static_prefix(pattern: str) -> str:
    """The part of `pattern` before its first wildcard, for console links."""
    cut = min((i for i, ch in enumerate(pattern) if ch in "*?["), default=len(pattern))
    return pattern[:cut]
