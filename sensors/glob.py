"""GlobSensor: waits until a glob pattern matches enough files, optionally with a marker beside them, or
until an upload has gone quiet (`quiet_for`): stateless, from the one listing every poke reads."""

from __future__ import annotations

import datetime as dt
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from fsspec.core import split_protocol

from .base import Link, PokeContext, PokeResult, Sensor, set_fields
from .store import console_links, modified_at


@dataclass(frozen=True)
class GlobSensorConfig:
    """How many matches are enough, and which marker file must stand beside them."""

    #: At least this many paths must match.
    min_count: int = 1
    #: A file name (e.g. `_SUCCESS`) that must exist in every directory holding a match.
    marker: str | None = None
    #: Seconds the newest match must have gone unmodified: the upload has finished. Read from the
    #: store's modification times in one listing, so no state is kept between pokes; a deletion is
    #: not a modification, and an object copied with its old timestamp looks quiet at once.
    quiet_for: float | None = None

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ValueError("min_count must be 1 or more")
        if self.quiet_for is not None and self.quiet_for < 0:
            raise ValueError("quiet_for must be zero or more seconds")
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
        return {
            "pattern": inputs["pattern"],
            "min_count": self.config.min_count,
            **set_fields(self.config, "marker", "quiet_for"),
        }

    def links(self, inputs: Mapping[str, Any]) -> Sequence[Link]:
        return console_links(_static_prefix(inputs["pattern"]))

    @classmethod
    def local_paths(cls, config: Any, inputs: Mapping[str, Any]) -> Sequence[str]:
        return (inputs["pattern"],)

    async def poke(self, inputs: Mapping[str, Any], ctx: PokeContext) -> PokeResult:
        pattern: str = inputs["pattern"]
        found = await ctx.store.glob_info(pattern, ctx.timeout)
        marker = self.config.marker
        matched = {p: info for p, info in found.items() if marker is None or _basename(p) != marker}
        paths = sorted(_restore(pattern, p) for p in matched)
        details: dict[str, Any] = {"matches": len(paths)}
        want = self.config.min_count
        if len(paths) < want:
            return PokeResult(False, f"{pattern} matches {len(paths)} path(s), waiting for {want}.", details)
        if self.config.quiet_for is not None:
            waiting = _still_changing(pattern, matched, self.config.quiet_for, details)
            if waiting is not None:
                return PokeResult(False, waiting, details)
        if marker is not None:
            for directory in sorted({posixpath.dirname(p.rstrip("/")) for p in paths}):
                beside = f"{directory}/{marker}"
                if not await ctx.store.exists(beside, ctx.timeout):
                    return PokeResult(False, f"{len(paths)} path(s) match; waiting for {beside}.", details)
        return PokeResult(True, f"{pattern} matches {len(paths)} path(s).", details, {"paths": paths})


def _basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


def _still_changing(
    pattern: str, matched: Mapping[str, Mapping[str, Any]], quiet_for: float, details: dict[str, Any]
) -> str | None:
    """Why the matches are not quiet yet, or None when the newest was modified `quiet_for` s ago."""
    times = [(when, path) for path, info in matched.items() if (when := modified_at(dict(info)))]
    if not times:  # only "directories" matched: the store keeps no modification time for them
        return f"{pattern}: the store gives no modification time for its matches; waiting."
    newest, path = max(times)
    age = (dt.datetime.now(dt.UTC) - newest).total_seconds()
    details["quiet_seconds"] = round(age, 3)
    if age >= quiet_for:
        return None
    return (
        f"{len(matched)} path(s) match; the newest, {_restore(pattern, path)}, was modified {age:.0f}s ago; "
        f"waiting {quiet_for - age:.0f}s more."
    )


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
