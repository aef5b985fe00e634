"""What an engine is: the part of the connector that owns one task category."""

from __future__ import annotations

import abc

from flyteidl.admin import agent_pb2

from ..registry import TaskCategory


class Engine(abc.ABC):
    """Serves Create/Get/Delete for one task category; raises connector.errors.RequestError for bad input."""

    category: TaskCategory
    #: The name ListAgents reports this engine under.
    agent_name: str

    @abc.abstractmethod
    async def create(self, request: agent_pb2.CreateTaskRequest) -> bytes:
        """Validate the request and return the resource_meta that identifies the task from now on."""

    @abc.abstractmethod
    async def get(self, resource_meta: bytes) -> agent_pb2.Resource:
        """The task's current state."""

    @abc.abstractmethod
    async def delete(self, resource_meta: bytes) -> None:
        """Stop the task; calling it again, or for a finished task, is not an error."""
