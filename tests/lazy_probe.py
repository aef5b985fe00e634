"""Run by tests/test_lazy_imports.py in a fresh interpreter: a real server on a loopback port, what it
has imported while idle, then the answers to the CreateTaskRequests named on the command line (created
and got once each through flyteidl stubs), then what it has imported after those first uses.

    python -m tests.lazy_probe KEY_FILE STATE_DIR REQUEST_FILE...   # prints one JSON object
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

from connector.config import Config
from connector.server import Server

#: Packages an idle server must not have imported: sensors import them on first use, and flytekit
#: (the authoring side) never belongs in the server.
WATCHED = ("sqlalchemy", "aiohttp", "sensors.http_client", "flytekit")


def imported() -> list[str]:
    return [name for name in WATCHED if name in sys.modules]


async def main(key_file: str, state_dir: str, requests: list[bytes]) -> dict[str, Any]:
    config = Config(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        signing_key_file=[Path(key_file)],
        state_dir=Path(state_dir),
        poke_timeout=30.0,  # a first use imports its package within the poke: allow a slow machine
        secret_policy=Path(os.environ["SENSOR_CONNECTOR_SECRET_POLICY"]),
    )
    server = Server(config)
    await server.startup()
    report: dict[str, Any] = {"idle": imported(), "answers": []}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
            category = agent_pb2.TaskCategory(name="sensor", version=0)
            for raw in requests:
                request = agent_pb2.CreateTaskRequest.FromString(raw)
                meta = (await stub.CreateTask(request, timeout=10)).resource_meta
                get = agent_pb2.GetTaskRequest(task_category=category, resource_meta=meta)
                resource = (await stub.GetTask(get, timeout=60)).resource
                report["answers"].append([resource.phase, resource.message])
        report["after"] = imported()
    finally:
        server.request_exit()
        await server.shutdown()
    return report


if __name__ == "__main__":
    raw = [Path(path).read_bytes() for path in sys.argv[3:]]
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], raw))))
