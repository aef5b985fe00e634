"""flyte-sensor-connector: Flyte sensors served over flyteidl's AsyncAgentService."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("flyte-sensor-connector")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
