"""HttpSensor through the real server against an HTTP server on 127.0.0.1 whose answers the test sets."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from flyteidl.core import execution_pb2
from google.protobuf import json_format

from connector.config import Config
from sensors import http, http_client
from sensors.flytekit import HttpSensor

from .catalog import expect_rejected, request_for
from .conftest import Connector, with_secret_policy
from .httpserver import Answer, HttpServer, serve

Phase = execution_pb2.TaskExecution.Phase


@pytest.fixture
async def sessions() -> AsyncIterator[None]:
    """Close the sensor's shared aiohttp sessions of this test's event loop at the end."""
    yield
    await http.close_sessions()


@pytest.fixture
def config(config: Config) -> Config:
    """The operator grants the tokens these tests name to the loopback test server."""
    grant = {"hosts": ["127.0.0.1"]}
    return with_secret_policy(
        config, {"status-token": grant, "file-token": grant, "AWS_SECRET_ACCESS_KEY": grant}
    )


@pytest.fixture
def web(monkeypatch: pytest.MonkeyPatch, sessions: None) -> Iterator[HttpServer]:
    """The test server, and the connector-side allow-list an operator would set to reach it."""
    monkeypatch.setenv(http.ALLOW_HOSTS_ENV, "127.0.0.1")
    with serve() as server:
        yield server


def output(resource, name: str):
    primitive = resource.outputs.literals[name].scalar.primitive
    return getattr(primitive, primitive.WhichOneof("value"))


async def test_http_waits_through_404_and_503_then_succeeds_with_status_and_body(
    connector: Connector, web: HttpServer
) -> None:
    sensor = HttpSensor(name="wait_report", outputs=True)
    meta = await connector.create(request_for(sensor, url=web.url("/report.json")))

    not_yet = await connector.get(meta)
    assert not_yet.phase == Phase.RUNNING
    assert not_yet.message == f"{web.url('/report.json')} answered 404; waiting."

    web.routes["/report.json"] = Answer(503)
    busy = await connector.get(meta)
    assert busy.phase == Phase.RUNNING
    assert "answered 503; will poke again" in busy.message
    assert json_format.MessageToDict(busy.custom_info)["outcome"] == "transient"

    web.routes["/report.json"] = Answer(200, b'{"rows": 3}')
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED, done.message
    assert output(done, "status") == 200
    assert output(done, "body") == '{"rows": 3}'


async def test_http_body_is_returned_only_when_the_template_declares_it(
    connector: Connector, web: HttpServer
) -> None:
    web.routes["/report.json"] = Answer(200, b'{"rows": 3}')
    # A template written by hand (no return_body in its config) that declares `body`.
    declared = request_for(HttpSensor(name="with_body", outputs=True), url=web.url("/report.json"))
    assert "sensor_config" not in declared.template.custom or not declared.template.custom["sensor_config"]
    done = await connector.get(await connector.create(declared))
    assert output(done, "body") == '{"rows": 3}'

    status_only = request_for(
        HttpSensor(name="status_only", outputs=("status",)), url=web.url("/report.json")
    )
    done = await connector.get(await connector.create(status_only))
    assert done.phase == Phase.SUCCEEDED and list(done.outputs.literals) == ["status"]


async def test_http_throttling_and_connection_errors_are_transient(
    connector: Connector, web: HttpServer
) -> None:
    web.routes["/busy"] = Answer(429)
    meta = await connector.create(request_for(HttpSensor(name="t"), url=web.url("/busy")))
    throttled = await connector.get(meta)
    assert throttled.phase == Phase.RUNNING and "answered 429; will poke again" in throttled.message

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    meta = await connector.create(request_for(HttpSensor(name="t"), url=f"http://127.0.0.1:{closed_port}/"))
    refused = await connector.get(meta)
    assert refused.phase == Phase.RUNNING
    assert "could not connect" in refused.message and "will poke again" in refused.message
    assert json_format.MessageToDict(refused.custom_info)["outcome"] == "transient"


async def test_http_json_pointer_waits_for_the_value(connector: Connector, web: HttpServer) -> None:
    sensor = HttpSensor(
        name="wait_ready", json_pointer="/state/phase", json_value="ready", outputs=("status",)
    )
    assert list(request_for(sensor, url="http://x").template.interface.outputs.variables) == ["status"]
    web.routes["/health"] = Answer(200, json.dumps({"state": {"phase": "starting"}}).encode())
    meta = await connector.create(request_for(sensor, url=web.url("/health")))
    waiting = await connector.get(meta)
    assert waiting.phase == Phase.RUNNING
    assert '/state/phase is "starting"; waiting' in waiting.message

    web.routes["/health"] = Answer(200, json.dumps({"state": {"phase": "ready"}}).encode())
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED, done.message
    assert list(done.outputs.literals) == ["status"] and output(done, "status") == 200


async def test_http_head_with_expected_status_ranges_and_body_regex(
    connector: Connector, web: HttpServer
) -> None:
    head = HttpSensor(name="head", method="HEAD", expected_status=(204, "300-302"))
    web.routes["/ping"] = Answer(200)
    meta = await connector.create(request_for(head, url=web.url("/ping")))
    assert "answered 200; waiting" in (await connector.get(meta)).message
    web.routes["/ping"] = Answer(204)
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED

    regex = HttpSensor(name="regex", body_regex=r"build \d+ passed")
    web.routes["/ci"] = Answer(200, b"build 41 running")
    meta = await connector.create(request_for(regex, url=web.url("/ci")))
    assert "the body does not match yet" in (await connector.get(meta)).message
    web.routes["/ci"] = Answer(200, b"build 41 passed")
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED


async def test_http_follows_redirects_but_checks_every_hop(connector: Connector, web: HttpServer) -> None:
    web.routes["/old"] = Answer(302, headers={"Location": "/new"})
    web.routes["/new"] = Answer(200, b"here")
    meta = await connector.create(request_for(HttpSensor(name="r"), url=web.url("/old")))
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED

    web.routes["/sneaky"] = Answer(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    meta = await connector.create(request_for(HttpSensor(name="r"), url=web.url("/sneaky")))
    refused = await connector.get(meta)
    assert refused.phase == Phase.FAILED
    assert "refused, 169.254.169.254 resolves to 169.254.169.254, a link-local or cloud metadata address" in (
        refused.message
    )


async def test_http_credentials_come_only_from_a_named_secret_and_never_show(
    connector: Connector, web: HttpServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = "Bearer s3cr3t-token-value"
    monkeypatch.setenv("SENSOR_CONNECTOR_SECRETS_DIR", str(tmp_path / "secrets"))
    web.routes["/private"] = Answer(200, b"ok")
    sensor = HttpSensor(name="auth", auth_secret="status-token", outputs=("status",))
    request = request_for(sensor, url=web.url("/private"))
    assert secret not in str(request)
    meta = await connector.create(request)

    missing = await connector.get(meta)
    assert missing.phase == Phase.FAILED
    assert missing.message.startswith("the connector holds no secret 'status-token' (looked for ")
    assert "$SENSOR_CONNECTOR_SECRET_STATUS_TOKEN" in missing.message

    monkeypatch.setenv("SENSOR_CONNECTOR_SECRET_STATUS_TOKEN", secret)
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED
    assert web.seen[-1]["authorization"] == secret
    assert secret not in str(done) and secret.encode() not in meta

    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "file-token").write_text("Token from-a-file\n")
    by_file = HttpSensor(name="auth_file", auth_secret="file-token", auth_header_name="X-Token")
    meta = await connector.create(request_for(by_file, url=web.url("/private")))
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED
    assert web.seen[-1]["x-token"] == "Token from-a-file"


async def test_a_template_cannot_name_the_connectors_own_environment_or_files(
    connector: Connector, web: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "connector-own-credential")
    web.routes["/collect"] = Answer(200, b"ok")
    for name in ("../../etc/passwd", "/etc/passwd", "AWS SECRET"):
        request = request_for(HttpSensor(name="h"), url=web.url("/collect"))
        request.template.custom["sensor_config"] = {"auth_secret": name}
        message = await expect_rejected(connector, request, grpc.StatusCode.INVALID_ARGUMENT)
        assert "is not a secret name" in message
    # A plain name only ever means SENSOR_CONNECTOR_SECRET_<NAME> or a file in the secrets directory.
    sensor = HttpSensor(name="h", auth_secret="AWS_SECRET_ACCESS_KEY")
    meta = await connector.create(request_for(sensor, url=web.url("/collect")))
    assert (await connector.get(meta)).phase == Phase.FAILED
    assert all("connector-own-credential" not in str(seen) for seen in web.seen)


async def test_http_refuses_loopback_link_local_and_metadata_without_the_operator_allow_list(
    connector: Connector, sessions: None
) -> None:
    for url, reason in [
        (
            "http://127.0.0.1:9/",
            "127.0.0.1 resolves to 127.0.0.1, which is refused unless "
            "SENSOR_CONNECTOR_HTTP_ALLOW_HOSTS lists it",
        ),
        ("http://169.254.169.254/latest/meta-data/", "a link-local or cloud metadata address"),
        ("http://[fd00:ec2::254]/latest/", "a link-local or cloud metadata address"),
        (
            "http://metadata.google.internal/computeMetadata/v1/",
            "metadata.google.internal is a cloud metadata",
        ),
        ("http://10.1.2.3/", "private address 10.1.2.3, which the connector reaches only if the operator"),
    ]:
        meta = await connector.create(request_for(HttpSensor(name="h"), url=url))
        resource = await connector.get(meta)
        assert resource.phase == Phase.FAILED, url
        assert "refused" in resource.message and reason in resource.message, resource.message


async def test_http_host_that_does_not_resolve_fails(connector: Connector, sessions: None) -> None:
    meta = await connector.create(request_for(HttpSensor(name="h"), url="http://nothing-here.invalid/x"))
    resource = await connector.get(meta)
    assert resource.phase == Phase.FAILED
    assert "the host nothing-here.invalid does not resolve" in resource.message


async def test_http_bad_config_and_inputs_are_invalid_arguments(connector: Connector) -> None:
    good = request_for(HttpSensor(name="h"), url="https://example.com/")
    for config, fragment in [
        ({"headers": {"Authorization": "Bearer x"}}, "headers must not carry credentials (Authorization)"),
        ({"expected_status": ["abc"]}, "expected_status item 'abc' is not a status"),
        ({"method": "POST"}, "method must be GET or HEAD"),
        ({"body_regex": "("}, "body_regex is not a regular expression"),
        ({"json_value": 1}, "json_value needs a json_pointer"),
        ({"request_timeout": 0}, "request_timeout must be more than zero"),
        ({"auth_secret": "/run/secrets/token"}, "is not a secret name"),
    ]:
        request = request_for(good.template, url="https://example.com/")
        request.template.custom["sensor_config"] = config
        message = await expect_rejected(connector, request, grpc.StatusCode.INVALID_ARGUMENT)
        assert fragment in message, message

    for url, fragment in [
        ("ftp://example.com/x", "must be an http:// or https:// URL with a host"),
        ("http:///nohost", "must be an http:// or https:// URL with a host"),
        ("http://user:hunter2@example.com/", "must not carry credentials"),
    ]:
        message = await expect_rejected(
            connector, request_for(good.template, url=url), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert fragment in message and "hunter2" not in message, message

    head_body = request_for(HttpSensor(name="b", outputs=True), url="https://example.com/")
    head_body.template.custom["sensor_config"] = {"method": "HEAD"}
    message = await expect_rejected(connector, head_body, grpc.StatusCode.INVALID_ARGUMENT)
    assert "declares output 'body', but a HEAD answer has no body" in message


@pytest.mark.parametrize(
    ("host", "addresses", "refused"),
    [
        ("example.com", ["93.184.215.14"], None),
        ("svc", ["10.0.0.7"], "private address"),
        ("svc", ["192.168.1.1", "93.184.215.14"], "private address"),
        ("svc", ["100.64.0.9"], "private address"),
        ("x", ["::1"], "which is refused unless"),
        ("x", ["fe80::1%eth0"], "link-local or cloud metadata"),
        ("x", ["::ffff:169.254.169.254"], "link-local or cloud metadata"),
        ("x", ["fd00:ec2::254"], "link-local or cloud metadata"),
        ("x", ["0.0.0.0"], "which is refused unless"),
        ("METADATA.GOOGLE.INTERNAL.", ["8.8.8.8"], "cloud metadata service"),
    ],
)
def test_address_policy(host: str, addresses: list[str], refused: str | None) -> None:
    reason = http.refusal(host, addresses)
    assert (reason is None) if refused is None else (reason is not None and refused in reason)


def test_the_operator_allow_list_takes_names_addresses_and_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(http.ALLOW_HOSTS_ENV, "status.internal, 127.0.0.0/8 ,169.254.10.1, 10.20.0.0/16")
    assert http.refusal("status.internal", ["10.0.0.1"]) is None
    assert http.refusal("localhost", ["127.0.0.1"]) is None
    assert http.refusal("localhost", ["127.0.0.1", "::1"]) is not None
    assert http.refusal("x", ["169.254.10.1"]) is None
    assert http.refusal("x", ["169.254.169.254"]) is not None
    assert http.refusal("svc", ["10.20.3.4"]) is None
    assert http.refusal("svc", ["10.21.3.4"]) is not None


async def test_the_resolver_aiohttp_connects_with_refuses_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # A name whose answer changed after the pre-check is caught where aiohttp connects.
    monkeypatch.delenv(http.ALLOW_HOSTS_ENV, raising=False)
    resolver = http_client.CheckingResolver()
    try:
        with pytest.raises(http.RefusedAddress, match="localhost resolves to"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


async def test_shutdown_closes_the_shared_http_session(config, web: HttpServer) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from connector.server import Server

    server = Server(config)
    await server.startup()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            c = Connector(server, channel)
            web.routes["/up"] = Answer(200, b"ok")
            await c.get(await c.create(request_for(HttpSensor(name="h"), url=web.url("/up"))))
        session = http_client._sessions[asyncio.get_running_loop()]
        assert not session.closed
    finally:
        server.request_exit()
        await server.shutdown()
    assert session.closed
