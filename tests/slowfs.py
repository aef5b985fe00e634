"""An fsspec filesystem whose module import blocks until a test lets it go (see test_backends.py).

Stands in for a heavy backend (s3fs + botocore, gcsfs + google-auth) whose first import takes long.
"""

from __future__ import annotations

import threading
from typing import Any

from fsspec.implementations.local import LocalFileSystem

from . import slowfs_gate

slowfs_gate.importers.append(threading.current_thread().name)
slowfs_gate.importing.set()
slowfs_gate.release.wait(timeout=30)


class SlowFileSystem(LocalFileSystem):
    """The local filesystem under the `slowfs://` protocol."""

    protocol = ("slowfs",)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        return super()._strip_protocol(str(path).removeprefix("slowfs://"))
