"""The sensor engine (task category sensor v0): create.py checks a CreateTask into a SensorState,
engine.py is the Get path, poke.py pokes once and sorts the outcome, answer.py builds the GetTaskResponse,
report.py answers GetTaskLogs and GetTaskMetrics."""

from .engine import SensorEngine

__all__ = ["SensorEngine"]
