"""Engines: one per task category, turning flyteidl requests into work and back."""
