"""Users' own flytekit sensors (`--sensor-modules`): the adapter (sensors.py), where pokes run (pokes.py)."""
