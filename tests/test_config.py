"""Settings: defaults, SENSOR_CONNECTOR_* variables, flags over variables, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli import build_parser, config_from_args
from connector.config import Config, from_env


def parse(argv: list[str], monkeypatch: pytest.MonkeyPatch, **env: str) -> Config:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return config_from_args(build_parser().parse_args(["serve", *argv]))


def test_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse([], monkeypatch)
    assert (config.host, config.port, config.metrics_port) == ("[::]", 8000, 9090)
    assert config.poke_timeout == 5.0 and config.signing_key_file == []
    assert config.log_format == "text" and config.log_level == "INFO"


def test_every_option_is_read_from_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse(
        [],
        monkeypatch,
        SENSOR_CONNECTOR_HOST="127.0.0.1",
        SENSOR_CONNECTOR_PORT="8001",
        SENSOR_CONNECTOR_METRICS_PORT="0",
        SENSOR_CONNECTOR_SIGNING_KEY_FILE="/keys/new, /keys/old",
        SENSOR_CONNECTOR_STATE_DIR="/var/lib/sc",
        SENSOR_CONNECTOR_POKE_TIMEOUT="2.5",
        SENSOR_CONNECTOR_MAX_MESSAGE_BYTES="2048",
        SENSOR_CONNECTOR_MAX_CONCURRENT_RPCS="100",
        SENSOR_CONNECTOR_BLOCKING_THREADS="4",
        SENSOR_CONNECTOR_GRACE_PERIOD="3",
        SENSOR_CONNECTOR_DRAIN_PERIOD="7.5",
        SENSOR_CONNECTOR_MAX_CONNECTION_AGE="0",
        SENSOR_CONNECTOR_MAX_PENDING_RPCS="5000",
        SENSOR_CONNECTOR_LOG_LEVEL="debug",
        SENSOR_CONNECTOR_LOG_FORMAT="JSON",
    )
    assert config == Config(
        host="127.0.0.1",
        port=8001,
        metrics_port=0,
        signing_key_file=[Path("/keys/new"), Path("/keys/old")],
        state_dir=Path("/var/lib/sc"),
        poke_timeout=2.5,
        max_message_bytes=2048,
        max_concurrent_rpcs=100,
        blocking_threads=4,
        grace_period=3.0,
        drain_period=7.5,
        max_connection_age=0.0,
        max_pending_rpcs=5000,
        log_level="DEBUG",
        log_format="json",
    )


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse(
        ["--port", "9000", "--signing-key-file", "/a", "--signing-key-file", "/b"],
        monkeypatch,
        SENSOR_CONNECTOR_PORT="8001",
        SENSOR_CONNECTOR_SIGNING_KEY_FILE="/env",
    )
    assert config.port == 9000
    assert config.signing_key_file == [Path("/a"), Path("/b")]


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("port", 70000, "--port must be a port number"),
        ("poke_timeout", 0, "--poke-timeout must be more than 0"),
        ("max_concurrent_rpcs", -1, "--max-concurrent-rpcs must be zero"),
        ("max_pending_rpcs", 0, "--max-pending-rpcs must be at least 1"),
        ("drain_period", -1, "--drain-period must be zero or more seconds"),
        ("max_connection_age", -0.5, "--max-connection-age must be zero or more seconds"),
    ],
)
def test_impossible_values_are_refused(field: str, value: object, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Config(**{field: value}).validate()  # type: ignore[arg-type]


def test_a_malformed_variable_names_itself() -> None:
    with pytest.raises(ValueError, match="SENSOR_CONNECTOR_PORT='eighty' is not a valid port"):
        from_env({"SENSOR_CONNECTOR_PORT": "eighty"})
