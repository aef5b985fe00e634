"""Wait until a day's rows are in a table, then go on.

The connection URL is a secret: the sensor names a connector secret that holds it, never the URL
itself. The secret `sales-db-url` is the variable SENSOR_CONNECTOR_SECRET_SALES_DB_URL (or the file
sales-db-url in $SENSOR_CONNECTOR_SECRETS_DIR), on the connector in a cluster (whose secret policy
must grant `sales-db-url` to your project), in your shell locally:

    export SENSOR_CONNECTOR_SECRET_SALES_DB_URL=sqlite:////tmp/sales.db
    pyflyte run examples/sql_sensor.py wf --day 2026-11-24
"""

from __future__ import annotations

from flytekit import task, workflow

from sensors.flytekit import SqlSensor

#: Met once the query's first cell is truthy.
wait_for_rows = SqlSensor(name="wait_for_rows", connection_secret="sales-db-url")


@task
def query_for(day: str) -> str:
    """The query that is truthy once `day` has rows (day is checked to be a date, so it is safe to embed)."""
    import datetime as dt

    dt.date.fromisoformat(day)
    return f"select count(*) > 0 from sales where day = '{day}'"  # noqa: S608 - day is a checked date


@task
def report(day: str) -> str:
    """Say that the rows are in."""
    return f"sales for {day} are in"


@workflow
def wf(day: str) -> str:
    """Wait until sales for `day` are in, then report."""
    query = query_for(day=day)
    waited = wait_for_rows(query=query)
    done = report(day=day)
    waited >> done
    return done
