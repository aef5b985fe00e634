"""Log set-up: plain text for people, one JSON object per line for log pipelines."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys

#: The protocol of the call being served ("flyte1": flyteidl's AsyncAgentService, "flyte2": flyteidl2's
#: AsyncConnectorService), set by the servicers; every log line written while serving it carries it.
PROTOCOL: contextvars.ContextVar[str | None] = contextvars.ContextVar("protocol", default=None)

#: LogRecord attributes that a call may set with `extra=` and that JSON lines carry as fields.
CONTEXT_FIELDS = (
    "protocol",
    "operation",
    "category",
    "sensor",
    "phase",
    "task",
    "execution",
    "node",
    "retry",
    "task_name",
)


class ProtocolFilter(logging.Filter):
    """Labels a record with the protocol of the call it was written for, unless it names one itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "protocol", None) is None:
            record.protocol = PROTOCOL.get()
        return True


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


class TextFormatter(logging.Formatter):
    """One readable line, with the task context fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        known = ((n, getattr(record, n, None)) for n in CONTEXT_FIELDS)
        context = " ".join(f"{n}={v}" for n, v in known if v is not None)
        if not context:
            return line
        head, sep, tail = line.partition("\n")  # keep a traceback below the context
        return f"{head} [{context}]{sep}{tail}"


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    handler.addFilter(ProtocolFilter())
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
