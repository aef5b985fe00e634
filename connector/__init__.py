"""flyte-sensor-connector: Flyte sensors served over flyteidl's AsyncAgentService."""

#: The one version number of the project: pyproject.toml (setuptools' dynamic version), the authoring
#: plugin (plugins/flytekit) and the container build read it from here; a test checks the chart's
#: appVersion against it.
__version__ = "0.1.0"
