"""Which local paths sensors may read: the operator's `--local-roots`, and nothing of the connector's own.

A local path (plain, `file://` or `local://`) is admitted when its `os.path.realpath` (symbolic links
and `..` resolved) lies inside one of the roots and outside the connector's own files (state
directory, secrets directory, signing key and TLS files), which are carved out even when a root
holds them. A glob pattern is admitted by the fixed part before its first wildcard, and every
directory or link it then crosses is checked again as it is walked, so a symbolic link pointing out
of the roots is refused rather than followed.

`LocalRoots` is a plain value (`admit`, `glob` are blocking: run them in the filesystem pool). The
server puts it into its Store's settings, and the Store applies it before any access to a local path
(`Store.admit_at_create`, and at every poke in `Store.info` and `Store.glob`); a Store without roots (a
local `pyflyte run`) admits every path, as flytekit would.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsspec.core import split_protocol
from fsspec.implementations.local import make_path_posix

from .base import PermanentError, short

OPTION = "--local-roots"
#: Protocols that mean the connector's own filesystem (None: a plain path).
LOCAL_PROTOCOLS = frozenset({None, "file", "local"})


class Refused(PermanentError):
    """A local path outside the roots, or one of the connector's own files."""


def has_magic(text: str) -> bool:
    """True when `text` holds a glob wildcard."""
    return any(ch in text for ch in "*?[")


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base if base.endswith("/") else base + "/")


@dataclass(frozen=True)
class LocalRoots:
    """The directories sensors may read (resolved) and the connector's own paths carved out of them."""

    roots: tuple[str, ...]
    own: tuple[str, ...] = ()

    @classmethod
    def build(cls, roots: Iterable[str | Path], own: Iterable[str | Path] = ()) -> LocalRoots:
        """Resolve the roots (each must be an existing directory) and the connector's own paths."""
        resolved = []
        for root in roots:
            real = os.path.realpath(os.path.expanduser(str(root)))
            if not os.path.isdir(real):
                raise ValueError(f"{OPTION}: {root} is not a directory")
            resolved.append(real)
        mine = tuple(dict.fromkeys(os.path.realpath(str(p)) for p in own if str(p)))
        return cls(tuple(dict.fromkeys(resolved)), mine)

    def holds_own(self) -> list[str]:
        """The connector's own paths that lie inside a root (carved out; worth a warning)."""
        return [p for p in self.own if any(_inside(p, r) for r in self.roots)]

    def contains(self, real: str) -> bool:
        """True when resolved path `real` may be read: inside a root, outside the connector's own."""
        return any(_inside(real, r) for r in self.roots) and not any(_inside(real, p) for p in self.own)

    def admit(self, path: str) -> str:
        """`path` resolved, or Refused with one sentence naming it and the option (blocking)."""
        real = os.path.realpath(path)
        if self.contains(real):
            return real
        raise Refused(self.refusal(path, real))

    def refusal(self, path: str, real: str, fixed: str | None = None) -> str:
        """Why `path` (whose fixed part `fixed` resolves to `real`) is not admitted, in one sentence."""
        shown = short(path, 120)
        if any(_inside(real, p) for p in self.own):
            return f"{shown} is one of the connector's own files, which no sensor may read ({OPTION})."
        if not self.roots:
            return f"{shown} is a local path, and this connector admits none (its {OPTION} is empty)."
        resolved = real != os.path.abspath(fixed if fixed is not None else path)
        via = f" (it resolves to {short(real, 80)})" if resolved else ""
        allowed = ", ".join(short(r, 60) for r in self.roots[:4]) + (" …" if len(self.roots) > 4 else "")
        return f"{shown} is outside the connector's {OPTION} ({allowed}){via}."

    def glob(self, pattern: str) -> list[str]:
        """Paths matching absolute posix `pattern`, never reading outside the roots (blocking).

        Returned as the pattern spells them (its fixed prefix kept, not resolved); Refused when the
        prefix, or a symbolic link the walk would follow, leads outside.
        """
        return sorted(self._matches(pattern))

    def glob_info(self, pattern: str) -> dict[str, dict[str, Any]]:
        """`glob`, with each match described as fsspec's local `info` does (name, type, size, mtime)."""
        described: dict[str, dict[str, Any]] = {}
        for shown, real in sorted(self._matches(pattern).items()):
            try:
                st = os.stat(real)
            except FileNotFoundError:  # gone since the walk, or a dangling link: absent
                continue
            kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
            described[shown] = {"name": shown, "type": kind, "size": st.st_size, "mtime": st.st_mtime}
        return described

    def _matches(self, pattern: str) -> dict[str, str]:
        """Each match, as the pattern spells it, -> its resolved (admitted) path."""
        parts = pattern.rstrip("/").split("/") if pattern != "/" else [""]
        first = next((i for i, part in enumerate(parts) if has_magic(part)), len(parts))
        prefix = "/".join(parts[:first]) or "/"
        real = self.admit(prefix)
        if first == len(parts):
            return {prefix: real} if os.path.lexists(real) else {}
        found: dict[str, str] = {}
        self._walk(real, prefix.rstrip("/"), parts[first:], found)
        return found

    def _walk(self, real_dir: str, shown_dir: str, rest: Sequence[str], found: dict[str, str]) -> None:
        part, more = rest[0], rest[1:]
        if part == "**":
            if more:
                self._walk(real_dir, shown_dir, more, found)
            else:  # a trailing ** matches the directory itself too, as fsspec's glob does
                found[shown_dir or "/"] = real_dir
            for name, real, is_dir in self._children(real_dir, shown_dir):
                if not more:
                    found[f"{shown_dir}/{name}"] = real
                if is_dir:
                    self._walk(real, f"{shown_dir}/{name}", rest, found)
            return
        if has_magic(part):
            matches = [c for c in self._children(real_dir, shown_dir) if fnmatch.fnmatchcase(c[0], part)]
        else:
            matches = [c for c in self._children(real_dir, shown_dir, only=part)]
        for name, real, is_dir in matches:
            if not more:
                found[f"{shown_dir}/{name}"] = real
            elif is_dir:
                self._walk(real, f"{shown_dir}/{name}", more, found)

    def _children(
        self, real_dir: str, shown_dir: str, only: str | None = None
    ) -> list[tuple[str, str, bool]]:
        """(name, resolved path, is a directory) of each admitted entry; Refused for a link leading out."""
        if only is not None:
            names = [only] if only not in ("", ".", "..") and os.path.lexists(f"{real_dir}/{only}") else []
        else:
            try:
                with os.scandir(real_dir) as entries:
                    names = [entry.name for entry in entries]
            except (FileNotFoundError, NotADirectoryError):
                return []
        children = []
        for name in names:
            path = f"{real_dir.rstrip('/')}/{name}"
            if os.path.islink(path):
                real = os.path.realpath(path)
                if not self.contains(real):
                    raise Refused(self.refusal(f"{shown_dir}/{name}", real))
                children.append((name, real, os.path.isdir(real)))
            elif self.contains(path):  # the connector's own directory inside a root is passed over
                children.append((name, path, os.path.isdir(path)))
        return children


def local_path(url: str) -> str | None:
    """The local path `url` names, as fsspec's local filesystem will read it; None for other protocols."""
    protocol, path = split_protocol(url)
    if protocol not in LOCAL_PROTOCOLS or "::" in url:
        return None
    return str(make_path_posix(path))


def fixed_part(path: str) -> str:
    """The part of `path` before its first wildcard component (the whole path when it has none)."""
    parts = path.split("/")
    first = next((i for i, part in enumerate(parts) if has_magic(part)), len(parts))
    return "/".join(parts[:first]) or "/"
