"""Log set-up: plain text for people, one JSON object per line for log pipelines."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

#: LogRecord attributes that a call may set with `extra=` and that JSON lines carry as fields.
CONTEXT_FIELDS = ("operation", "category", "sensor", "phase", "task")


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, plus task context fields where known."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # grpc and botocore are chatty at INFO and below; their warnings still show.
    for noisy in (
        "botocore",
        "aiobotocore",
        "s3fs",
        "gcsfs",
        "adlfs",
        "azure",
        "fsspec",
        "urllib3",
        "asyncio",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
