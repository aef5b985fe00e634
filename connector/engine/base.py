"""What an engine is: the part of the connector that owns one task category."""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from flyteidl.admin import agent_pb2
from flyteidl.core import metrics_pb2

from ..state.category import TaskCategory
from .errors import Unimplemented


class TimeWindow(NamedTuple):
    """The range a GetTaskMetrics request asks about; None where the request leaves it unset."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    step: dt.timedelta | None = None


class Engine(abc.ABC):
    """Serves Create/Get/Delete for one task category; raises errors.RequestError for a bad request."""

    category: TaskCategory
    #: The name ListAgents reports this engine under.
    agent_name: str

    @abc.abstractmethod
    async def create(
        self, request: agent_pb2.CreateTaskRequest, *, default_deadline: float | None = None
    ) -> bytes:
        """Validate the request and return the resource_meta that identifies the task from now on.

        `default_deadline`: seconds after which a task that sets no deadline of its own gives up, for a
        client with no timeout of its own (Flyte 2's executor); None: the task's own, or none.
        """

    @abc.abstractmethod
    async def get(self, resource_meta: bytes) -> bytes:
        """The task's current state: the GetTaskResponse carrying it, serialized."""

    @abc.abstractmethod
    async def delete(self, resource_meta: bytes) -> None:
        """Stop the task; calling it again, or for a finished task, is not an error."""

    async def logs(self, resource_meta: bytes) -> list[agent_pb2.LogLine]:
        """What the task is doing, in plain words, for the console's log view."""
        raise Unimplemented(f"task category {self.category} offers no logs.")

    async def metrics(
        self, resource_meta: bytes, queries: Sequence[str], window: TimeWindow
    ) -> list[metrics_pb2.ExecutionMetricResult]:
        """Figures for the named queries (all it has when none are named); unknown names are skipped."""
        raise Unimplemented(f"task category {self.category} offers no metrics.")
