"""Wait until a service reports itself ready, then go on with the HTTP status it answered.

    pyflyte run examples/http_sensor.py wf --url https://status.example.com/api/health

The sensor refuses loopback, link-local, cloud-metadata and private addresses unless the connector's
operator lists them (a template cannot). To try it against a server on this machine, allow the host
explicitly:

    SENSOR_CONNECTOR_HTTP_ALLOW_HOSTS=127.0.0.1 pyflyte run examples/http_sensor.py wf --url http://127.0.0.1:8080/health

A token, when the service needs one, is named, never written here: `auth_secret="status-token"` reads
the Authorization header value from the connector secret of that name (the variable
SENSOR_CONNECTOR_SECRET_STATUS_TOKEN, or the file status-token in $SENSOR_CONNECTOR_SECRETS_DIR), and
only if the connector's secret policy grants that secret to the URL's host (and your project/domain).
"""

from __future__ import annotations

from flytekit import task, workflow

from sensors.flytekit import HttpSensor

#: Met once the URL answers 2xx with JSON whose /status is "ready"; returns the status code.
wait_ready = HttpSensor(
    name="wait_ready", json_pointer="/status", json_value="ready", request_timeout=5, outputs=("status",)
)


@task
def report(status: int) -> str:
    """Say what the service answered."""
    return f"service ready (HTTP {status})"


@workflow
def wf(url: str) -> str:
    """Wait until `url` reports ready, then report."""
    return report(status=wait_ready(url=url))
