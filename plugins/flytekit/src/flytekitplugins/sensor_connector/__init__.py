"""Flyte sensor tasks that flyte-sensor-connector runs on a cluster, and that run locally as they are.

    from flytekitplugins.sensor_connector import GlobSensor

    wait = GlobSensor(name="wait_parquet", min_count=3, marker="_SUCCESS")

The classes are those of the connector repository's `sensors.flytekit`, with the catalog's poke code
beside them (this package is built from the same files). Serialized, a task names
`flytekitplugins.sensor_connector.flytekit` and its class; the connector serves that name with the
catalog sensor of the same name.
"""

from .flytekit import FileSensor, GlobSensor, HttpSensor, SqlSensor, TimeSensor

__all__ = ["FileSensor", "GlobSensor", "HttpSensor", "SqlSensor", "TimeSensor"]
