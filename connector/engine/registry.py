"""Task categories to engines: the one place that decides who serves a request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..state.category import TaskCategory
from .errors import InvalidArgument, NotFound, capped

__all__ = ["EngineRegistry", "TaskCategory", "category_of"]

if TYPE_CHECKING:
    from flyteidl.admin import agent_pb2

    from .base import Engine


def category_of(task_category: agent_pb2.TaskCategory | None, task_type: str) -> TaskCategory:
    """The category a request names; old clients send only the deprecated task_type, meaning version 0."""
    if task_category is not None and task_category.name:
        return TaskCategory(task_category.name, task_category.version)
    if task_type:
        return TaskCategory(task_type, 0)
    raise InvalidArgument("the request names no task category (task_category and task_type are both empty).")


class EngineRegistry:
    """Maps each served task category to its engine."""

    def __init__(self) -> None:
        self._engines: dict[TaskCategory, Engine] = {}

    def register(self, engine: Engine) -> None:
        """Serve `engine.category` with `engine`; a category is served by one engine only."""
        if engine.category in self._engines:
            raise ValueError(f"task category {engine.category} is already served")
        self._engines[engine.category] = engine

    def engine_for(self, category: TaskCategory) -> Engine:
        """The engine for `category`, or NotFound naming what is served."""
        try:
            return self._engines[category]
        except KeyError:
            served = ", ".join(str(c) for c in self._engines) or "none"
            named = capped(str(category), 80)
            raise NotFound(
                f"this connector does not serve task category {named}; it serves {served}."
            ) from None

    def __iter__(self) -> Iterator[Engine]:
        return iter(self._engines.values())

    def agents(self) -> dict[str, list[Engine]]:
        """Engines grouped by the agent name ListAgents reports them under."""
        grouped: dict[str, list[Engine]] = {}
        for engine in self._engines.values():
            grouped.setdefault(engine.agent_name, []).append(engine)
        return grouped
