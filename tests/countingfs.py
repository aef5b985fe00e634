"""A local filesystem under the test protocol `countfs://` that counts every call the sensors make."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

PROTOCOL = "countfs"


class CountingFileSystem(LocalFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """The local filesystem, counting calls that reach the store (info, ls, glob, find, exists)."""

    protocol = (PROTOCOL,)
    calls: list[tuple[str, str]] = []

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        text = str(path)
        if text.startswith(f"{PROTOCOL}://"):
            text = text[len(PROTOCOL) + 3 :]
        return super()._strip_protocol(text)

    def _count(self, method: str, path: Any) -> None:
        CountingFileSystem.calls.append((method, str(path)))

    def info(self, path: Any, **kwargs: Any) -> Any:
        self._count("info", path)
        return super().info(path, **kwargs)

    def ls(self, path: Any, detail: bool = False, **kwargs: Any) -> Any:
        self._count("ls", path)
        return super().ls(path, detail=detail, **kwargs)

    def glob(self, path: Any, **kwargs: Any) -> Any:
        self._count("glob", path)
        return super().glob(path, **kwargs)

    def find(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        self._count("find", path)
        return super().find(path, *args, **kwargs)

    def exists(self, path: Any, **kwargs: Any) -> bool:
        self._count("exists", path)
        return bool(super().exists(path, **kwargs))


def counting_filesystem() -> Iterator[list[tuple[str, str]]]:
    """Register `countfs://` with fsspec for one test; yields the (emptied) list of calls."""
    fsspec.register_implementation(PROTOCOL, CountingFileSystem, clobber=True)
    CountingFileSystem.calls.clear()
    try:
        yield CountingFileSystem.calls
    finally:
        CountingFileSystem.calls.clear()
