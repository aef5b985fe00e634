"""Events shared by tests/slowfs.py (a backend whose import blocks) and the test that drives it."""

from __future__ import annotations

import threading

#: Set by tests/slowfs.py while it is being imported.
importing = threading.Event()
#: Set by the test to let that import finish.
release = threading.Event()
#: Names of the threads that ran tests/slowfs.py's body (one, however many pokes asked at once).
importers: list[str] = []
