"""Engines: the registry maps a task category to the engine that serves it (registry.py); engines raise
errors.py's RequestError for a bad request; sensor/ is the sensor engine."""
