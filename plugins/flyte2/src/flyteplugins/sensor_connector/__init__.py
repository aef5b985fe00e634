"""Flyte 2 sensor tasks that flyte-sensor-connector runs on a cluster, and that run locally as they are.

    from flyteplugins.sensor_connector import GlobSensor

    wait = GlobSensor(name="wait_parquet", min_count=3, marker="_SUCCESS", outputs=True)

The `flyte` SDK's flavour of the connector repository's authoring classes, with the catalog's poke code
beside them (this package is built from the same files). Serialized, a task is of type `sensor` and
names `flyteplugins.sensor_connector.flyte2` and its class; the connector serves it with the catalog
sensor of the same name. Importing this package registers the in-process connector for `sensor` that
`flyte.run` in local mode calls.
"""

from .flyte2 import FileSensor, GlobSensor, HttpSensor, SensorConnector, SqlSensor, TimeSensor

__all__ = ["FileSensor", "GlobSensor", "HttpSensor", "SensorConnector", "SqlSensor", "TimeSensor"]
