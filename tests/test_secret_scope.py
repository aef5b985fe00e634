"""Secrets with a scope, through the real server: the operator's --secret-policy decides which secret a
task may use and where it may go; redirects never carry credentials to another origin or to plain http;
a template's allow_private opens nothing."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2

from connector.config import Config
from connector.engine.secret_policy import PolicyError, SecretPolicy
from connector.server import Server
from sensors import http
from sensors.flytekit import HttpSensor, SqlSensor

from .catalog import expect_rejected, request_for
from .conftest import Connector
from .httpserver import Answer, HttpServer, serve
from .test_tls import self_signed

Phase = execution_pb2.TaskExecution.Phase
TOKEN = "Bearer scoped-t0ken-value"
Start = Callable[..., Awaitable[Server]]


@pytest.fixture
async def sessions() -> AsyncIterator[None]:
    """Close the sensor's shared aiohttp session of this test's event loop at the end."""
    yield
    await http.close_sessions()


@pytest.fixture
def web(monkeypatch: pytest.MonkeyPatch, sessions: None) -> Iterator[HttpServer]:
    """A loopback server the operator lets the connector reach, and a secret only the connector holds."""
    monkeypatch.setenv(http.ALLOW_HOSTS_ENV, "127.0.0.1,localhost")
    monkeypatch.setenv("SENSOR_CONNECTOR_SECRET_STATUS_TOKEN", TOKEN)
    with serve() as server:
        yield server


@pytest.fixture
def policy_file(tmp_path: Path) -> Callable[[Any], Path]:
    """Write a policy (as JSON, or as given when a string) and return its path."""
    count = iter(range(1000))

    def write(policy: Any) -> Path:
        path = tmp_path / f"policy-{next(count)}.yaml"
        path.write_text(policy if isinstance(policy, str) else json.dumps(policy))
        return path

    return write


@asynccontextmanager
async def connected(server: Server) -> AsyncIterator[Connector]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Connector(server, channel)


def in_execution(
    request: agent_pb2.CreateTaskRequest, project: str, domain: str
) -> agent_pb2.CreateTaskRequest:
    """`request` as propeller sends it for a task of `project`/`domain`."""
    run = request.task_execution_metadata.task_execution_id.node_execution_id.execution_id
    run.project, run.domain, run.name = project, domain, "run1"
    return request


def token_sensor(**config: Any) -> HttpSensor:
    return HttpSensor(name="scoped", auth_secret="status-token", outputs=("status",), **config)


# -- refused at CreateTask, before anything is read or sent ----------------------------------------------


async def test_without_a_policy_every_secret_is_refused_at_create_and_never_read(
    connector: Connector, web: HttpServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    web.routes["/status"] = Answer(200, b"ok")
    request = request_for(token_sensor(), url=web.url("/status"))
    message = await expect_rejected(connector, request, grpc.StatusCode.PERMISSION_DENIED)
    assert message == (
        "the connector has no secret policy, so no task may use secret 'status-token'; the operator would "
        "have to grant it with --secret-policy (e.g. `status-token: {hosts: [127.0.0.1]}`)."
    )
    assert web.seen == []  # nothing was sent

    # Nothing was read either: with the secret absent everywhere, the answer is still the policy's
    # sentence (a read would have said "the connector holds no secret").
    monkeypatch.delenv("SENSOR_CONNECTOR_SECRET_STATUS_TOKEN")
    monkeypatch.setenv("SENSOR_CONNECTOR_SECRETS_DIR", str(tmp_path / "no-such-dir"))
    again = await expect_rejected(connector, request, grpc.StatusCode.PERMISSION_DENIED)
    assert again == message

    sql = request_for(SqlSensor(name="rows", connection_secret="sales-db"), query="select 1")
    message = await expect_rejected(connector, sql, grpc.StatusCode.PERMISSION_DENIED)
    assert "no task may use secret 'sales-db'" in message and "`sales-db: {}`" in message


@pytest.mark.parametrize(
    ("policy", "project", "domain", "fragment"),
    [
        (
            {"other-token": {"hosts": ["127.0.0.1"]}},
            "analytics",
            "production",
            "does not grant secret 'status-token'; the operator would have to add "
            "`status-token: {hosts: [127.0.0.1]}` to --secret-policy.",
        ),
        (
            {"status-token": {"hosts": ["status.example.com", "*.example.org"]}},
            "analytics",
            "production",
            "lets secret 'status-token' go only to status.example.com, *.example.org, not 127.0.0.1; "
            "the operator would have to add that host to its hosts.",
        ),
        (
            {"status-token": {}},
            "analytics",
            "production",
            "grants secret 'status-token' to no host, and HttpSensor sends it to 127.0.0.1",
        ),
        (
            {"status-token": {"hosts": ["127.0.0.1"], "projects": ["billing"]}},
            "analytics",
            "production",
            "grants secret 'status-token' only to projects billing, not to project 'analytics'",
        ),
        (
            {"status-token": {"hosts": ["127.0.0.1"], "domains": ["production"]}},
            "analytics",
            "development",
            "grants secret 'status-token' only to domains production, not to domain 'development'",
        ),
        (
            {"status-token": {"hosts": ["127.0.0.1"], "projects": ["analytics"]}},
            "",
            "",
            "only to projects analytics, not to a task that names no project",
        ),
    ],
    ids=["not-granted", "wrong-host", "no-hosts", "wrong-project", "wrong-domain", "no-execution"],
)
async def test_a_secret_outside_its_scope_is_refused_at_create(
    make_connector: Start,
    web: HttpServer,
    policy_file: Callable[[Any], Path],
    policy: dict[str, Any],
    project: str,
    domain: str,
    fragment: str,
) -> None:
    web.routes["/status"] = Answer(200, b"ok")
    server = await make_connector(secret_policy=policy_file(policy))
    async with connected(server) as connector:
        request = request_for(token_sensor(), url=web.url("/status"))
        if project:
            request = in_execution(request, project, domain)
        message = await expect_rejected(connector, request, grpc.StatusCode.PERMISSION_DENIED)
    assert fragment in message, message
    assert len(message) < 300
    assert TOKEN not in message and web.seen == []


async def test_a_secret_inside_its_scope_is_sent_to_its_host(
    make_connector: Start, web: HttpServer, policy_file: Callable[[Any], Path]
) -> None:
    web.routes["/status"] = Answer(200, b"ok")
    yaml_policy = """
# YAML, as an operator writes it
status-token:
  hosts: [status.example.com, 127.0.0.1]
  projects: [analytics]
  domains: [production, staging]
"""
    server = await make_connector(secret_policy=policy_file(yaml_policy))
    async with connected(server) as connector:
        request = in_execution(request_for(token_sensor(), url=web.url("/status")), "analytics", "staging")
        done = await connector.get(await connector.create(request))
    assert done.phase == Phase.SUCCEEDED, done.message
    assert web.seen[-1]["authorization"] == TOKEN


async def test_a_database_secret_needs_no_hosts_and_an_empty_grant_covers_every_project(
    make_connector: Start, policy_file: Callable[[Any], Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sqlite3

    db = tmp_path / "sales.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table sales (day text)")
        conn.execute("insert into sales values ('2026-11-24')")
    monkeypatch.setenv("SENSOR_CONNECTOR_SECRET_SALES_DB", f"sqlite:///{db}")
    server = await make_connector(secret_policy=policy_file({"sales-db": {}}))
    sensor = SqlSensor(name="rows", connection_secret="sales-db")
    async with connected(server) as connector:
        for project in ("analytics", "billing", ""):
            request = request_for(sensor, query="select count(*) > 0 from sales")
            if project:
                request = in_execution(request, project, "production")
            done = await connector.get(await connector.create(request))
            assert done.phase == Phase.SUCCEEDED, done.message


async def test_a_grant_withdrawn_after_create_fails_the_task_at_get(
    make_connector: Start, web: HttpServer, policy_file: Callable[[Any], Path]
) -> None:
    web.routes["/status"] = Answer(404)
    granted = await make_connector(secret_policy=policy_file({"status-token": {"hosts": ["127.0.0.1"]}}))
    async with connected(granted) as connector:
        meta = await connector.create(request_for(token_sensor(), url=web.url("/status")))
        assert (await connector.get(meta)).phase == Phase.RUNNING
    sent = len(web.seen)
    # The operator narrows the policy and rolls out; the replica now answering holds the same key.
    narrowed = await make_connector(
        secret_policy=policy_file({"status-token": {"hosts": ["status.example.com"]}})
    )
    async with connected(narrowed) as connector:
        failed = await connector.get(meta)  # a phase, never an RPC error
    assert failed.phase == Phase.FAILED
    assert failed.message.startswith(
        "this task may no longer run: the secret policy lets secret 'status-token'"
    )
    assert len(web.seen) == sent  # not poked: the secret was neither read nor sent


def test_a_bad_policy_file_stops_the_server_with_a_sentence(
    config: Config, policy_file: Callable[[Any], Path], tmp_path: Path
) -> None:
    for policy, fragment in [
        ("status-token: [unclosed", "not valid YAML or JSON"),
        ({"status-token": {"host": ["x"]}}, "unknown field host; a grant takes hosts, projects and domains"),
        ({"../etc/passwd": {}}, "is not a secret name"),
        ({"t": {"hosts": ["https://x.example/"]}}, "is not a host name, an address or a '*.domain' pattern"),
        ({"t": {"hosts": ["*.*.example"]}}, "is not a host name"),
        (["t"], "must be a mapping of secret names to grants"),
    ]:
        path = policy_file(policy)
        with pytest.raises(PolicyError) as info:
            Server(replace(config, secret_policy=path))
        assert str(info.value).startswith(f"--secret-policy {path}: ") and fragment in str(info.value)
    with pytest.raises(PolicyError, match="cannot be read"):
        Server(replace(config, secret_policy=tmp_path / "absent.yaml"))


def test_host_patterns_match_subdomains_only() -> None:
    policy = SecretPolicy.parse({"t": {"hosts": ["*.example.org", "api.example.com", "::1"]}})
    grant = policy.grants["t"]
    assert grant.allows_host("a.example.org") and grant.allows_host("a.b.example.org")
    assert not grant.allows_host("example.org") and not grant.allows_host("evilexample.org")
    assert grant.allows_host("API.example.com.") and not grant.allows_host("api.example.com.evil.net")
    assert grant.allows_host("::1")


# -- redirects ---------------------------------------------------------------------------------------------


async def test_a_redirect_to_another_origin_carries_no_credential(
    make_connector: Start, web: HttpServer, policy_file: Callable[[Any], Path]
) -> None:
    policy = {"status-token": {"hosts": ["127.0.0.1"]}}
    server = await make_connector(secret_policy=policy_file(policy))
    with serve() as other:  # another origin: another loopback port
        other.routes["/landing"] = Answer(200, b"ok")
        web.routes["/same"] = Answer(302, headers={"Location": "/moved"})
        web.routes["/moved"] = Answer(200, b"ok")
        web.routes["/away"] = Answer(307, headers={"Location": other.url("/landing")})
        web.routes["/host"] = Answer(302, headers={"Location": web.url("/moved", host="localhost")})
        async with connected(server) as connector:
            same = await connector.get(
                await connector.create(request_for(token_sensor(), url=web.url("/same")))
            )
            assert same.phase == Phase.SUCCEEDED, same.message
            assert [seen.get("authorization") for seen in web.seen] == [TOKEN, TOKEN]  # one origin

            away = await connector.get(
                await connector.create(request_for(token_sensor(), url=web.url("/away")))
            )
            assert away.phase == Phase.SUCCEEDED, away.message
            assert web.seen[-1]["authorization"] == TOKEN
            assert len(other.seen) == 1 and "authorization" not in other.seen[0]

            # Same port, another host name: another origin too. A custom header name is dropped alike.
            custom = token_sensor(auth_header_name="X-Token")
            host = await connector.get(await connector.create(request_for(custom, url=web.url("/host"))))
            assert host.phase == Phase.SUCCEEDED, host.message
            assert web.seen[-2]["x-token"] == TOKEN and "x-token" not in web.seen[-1]
            assert web.seen[-1]["host"].startswith("localhost:")


async def test_a_redirect_from_https_to_http_is_refused(
    make_connector: Start,
    web: HttpServer,
    policy_file: Callable[[Any], Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the connector trusts the test's CA, as an operator would
    server = await make_connector(secret_policy=policy_file({"status-token": {"hosts": ["127.0.0.1"]}}))
    web.routes["/plain"] = Answer(200, b"ok")
    with serve(tls=(cert, key)) as secure:
        secure.routes["/ok"] = Answer(200, b"ok")
        secure.routes["/down"] = Answer(301, headers={"Location": web.url("/plain")})
        async with connected(server) as connector:
            fine = await connector.get(
                await connector.create(request_for(token_sensor(), url=secure.url("/ok")))
            )
            assert fine.phase == Phase.SUCCEEDED, fine.message  # https itself works and is trusted
            assert secure.seen[-1]["authorization"] == TOKEN

            down = await connector.get(
                await connector.create(request_for(HttpSensor(name="d"), url=secure.url("/down")))
            )
    assert down.phase == Phase.FAILED
    assert down.message == (
        f"{secure.url('/down')} redirects to the plain-http {web.url('/plain')}; a redirect from https to "
        "http is refused."
    )
    assert web.seen == []


# -- private reach is the operator's -----------------------------------------------------------------------


async def test_allow_private_in_a_template_opens_nothing_and_is_logged_once_at_create(
    connector: Connector, sessions: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(http.ALLOW_HOSTS_ENV, raising=False)
    with serve() as web:
        web.routes["/"] = Answer(200, b"ok")
        for url, reason in [
            (web.url("/"), "which is refused unless SENSOR_CONNECTOR_HTTP_ALLOW_HOSTS lists it"),
            ("http://10.255.255.1/", "the private address 10.255.255.1, which the connector reaches only if"),
            ("http://192.168.0.1/", "the private address 192.168.0.1"),
        ]:
            request = request_for(HttpSensor(name="p"), url=url)
            request.template.custom["sensor_config"] = {"allow_private": True}  # an old template
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="sensors.http"):
                meta = await connector.create(request)  # still accepted
            warnings = [r.getMessage() for r in caplog.records if r.name == "sensors.http"]
            assert warnings == [
                "HttpSensor config allow_private is ignored: the operator decides which private addresses "
                "the connector may reach (SENSOR_CONNECTOR_HTTP_ALLOW_HOSTS)"
            ]
            refused = await connector.get(meta)
            assert refused.phase == Phase.FAILED, url
            assert "refused" in refused.message and reason in refused.message, refused.message
        assert web.seen == []


def test_the_example_policies_load_and_only_the_local_one_grants_everything() -> None:
    from .conftest import ROOT

    example = SecretPolicy.load(ROOT / "examples" / "secret-policy.yaml")
    assert set(example.grants) == {"status-token", "sales-db-url"}
    assert example.grants["sales-db-url"].hosts == ()
    local = SecretPolicy.load(ROOT / "examples" / "secret-policy.local.yaml")  # what dev.py serve passes
    assert local.grants["*"].allows_host("anything.example")
