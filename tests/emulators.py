"""Real GCS and Azure Blob servers on loopback, started by the tests as moto's S3 is.

fake-gcs-server (the server gcsfs's own tests use) and Azurite are installed into ./.cache by
scripts/install-emulators.sh (`python3 dev.py install` runs it). A missing one fails the test that
needs it, saying how to install it: these suites are never skipped.

The test's own client of each store is plain: the GCS JSON API over urllib, the Azure SDK's blob
client. The connector finds each server only through the standard variables, as in a pod:
STORAGE_EMULATOR_HOST for GCS, AZURE_STORAGE_CONNECTION_STRING for Azure.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("SENSOR_CONNECTOR_EMULATORS", ROOT / ".cache"))
FAKE_GCS = CACHE / "bin" / "fake-gcs-server"
AZURITE = CACHE / "azurite" / "node_modules" / ".bin" / "azurite-blob"
HOW = "run `python3 dev.py install` (or scripts/install-emulators.sh; needs Go and Node >= 20)"

#: Azurite's well-known development account (public, documented by Microsoft; not a secret).
AZURE_ACCOUNT = "devstoreaccount1"
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def loopback_port() -> int:
    """A free loopback port, from bind(0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def azure_connection_string(endpoint: str, key: str = AZURE_KEY) -> str:
    """The connection string for the development account at `endpoint` (http://127.0.0.1:P)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={key};"
        f"BlobEndpoint={endpoint}/{AZURE_ACCOUNT};"
    )


class Emulator:
    """A store server in a child process on a loopback port that stays its own across restarts."""

    name = ""

    def __init__(self, binary: Path) -> None:
        if not binary.exists():
            pytest.fail(f"{self.name} is not installed at {binary}: {HOW}.", pytrace=False)
        self.binary = binary
        self.port = loopback_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 60) -> None:
        """Start the server (again, on the same port) and wait until it answers."""
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=CACHE
        )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} on port {self.port}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"{self.name} did not answer on port {self.port} within {timeout}s")
            time.sleep(0.05)  # waiting for a child process to listen, as for moto_server

    def kill(self) -> None:
        """Kill the server at once (an outage); its in-memory data is lost."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def _get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"{self.endpoint}{path}", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0


class FakeGcs(Emulator):
    """fake-gcs-server, in memory, speaking the GCS JSON API over plain HTTP."""

    name = "fake-gcs-server"

    def __init__(self) -> None:
        super().__init__(FAKE_GCS)

    def command(self) -> list[str]:
        return [
            str(self.binary),
            *("-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port), "-backend", "memory"),
            *("-public-host", f"127.0.0.1:{self.port}", "-log-level", "error"),
        ]

    def ready(self) -> bool:
        return self._get("/storage/v1/b") == 200

    def _call(
        self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json"
    ) -> Any:
        request = urllib.request.Request(f"{self.endpoint}{path}", data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", ctype)
        with urllib.request.urlopen(request, timeout=10) as response:
            data = response.read()
        return json.loads(data) if data else None

    def create_bucket(self, bucket: str) -> None:
        self._call("POST", "/storage/v1/b", json.dumps({"name": bucket}).encode())

    def put(self, bucket: str, key: str, body: bytes = b"x") -> None:
        self._call(
            "POST",
            f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(key, safe='')}",
            body,
            "application/octet-stream",
        )

    def delete(self, bucket: str, key: str) -> None:
        self._call("DELETE", f"/storage/v1/b/{bucket}/o/{quote(key, safe='')}")


class Azurite(Emulator):
    """Azurite's blob service, in memory, telemetry off (it would otherwise call the internet)."""

    name = "Azurite"

    def __init__(self) -> None:
        super().__init__(AZURITE)

    def command(self) -> list[str]:
        return [
            str(self.binary),
            *("--blobHost", "127.0.0.1", "--blobPort", str(self.port)),
            *("--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent"),
        ]

    def ready(self) -> bool:
        # Any HTTP answer (400 for a request without an account) means the blob service is listening.
        return self._get(f"/{AZURE_ACCOUNT}?comp=list") != 0

    @property
    def connection_string(self) -> str:
        return azure_connection_string(self.endpoint)

    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def create_container(self, container: str) -> None:
        self.service().create_container(container)

    def put(self, container: str, key: str, body: bytes = b"x") -> None:
        self.service().get_blob_client(container, key).upload_blob(body, overwrite=True)

    def delete(self, container: str, key: str) -> None:
        self.service().get_blob_client(container, key).delete_blob()


# -- fixtures (conftest.py imports them) ------------------------------------------------------------
@pytest.fixture(scope="session")
def gcs_server() -> Iterator[FakeGcs]:
    """fake-gcs-server on a free loopback port, for the whole session (gcsfs imported once, as
    `--preload gs` does, so no test's first poke waits for the import)."""
    from sensors.store import backends

    backends.preload(["gs"])
    server = FakeGcs()
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[Azurite]:
    """Azurite's blob service on a free loopback port, for the whole session (adlfs imported once)."""
    from sensors.store import backends

    backends.preload(["abfs", "az"])
    server = Azurite()
    server.start()
    yield server
    server.kill()


@dataclass
class Bucket:
    """A bucket (GCS) or container (Azure) on a real emulator, named in `protocol`'s URLs."""

    protocol: str
    server: FakeGcs | Azurite
    name: str

    @property
    def store(self) -> str:
        """gcs or azure, as tests/storeproxy.py spells a store."""
        return "gcs" if isinstance(self.server, FakeGcs) else "azure"

    def url(self, key: str = "") -> str:
        return f"{self.protocol}://{self.name}/{key}"

    def create(self) -> None:
        if isinstance(self.server, FakeGcs):
            self.server.create_bucket(self.name)
        else:
            self.server.create_container(self.name)

    def put(self, key: str, body: bytes = b"x") -> None:
        self.server.put(self.name, key, body)

    def delete(self, key: str) -> None:
        self.server.delete(self.name, key)


def point_connector_at(server: FakeGcs | Azurite, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set the standard variables that point the connector's client at `endpoint` (the server or a proxy)."""
    if isinstance(server, FakeGcs):
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    else:
        for name in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_connection_string(endpoint))


@pytest.fixture
def gcs(gcs_server: FakeGcs, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A new bucket on fake-gcs-server; the connector finds the server through STORAGE_EMULATOR_HOST."""
    point_connector_at(gcs_server, gcs_server.endpoint, monkeypatch)
    bucket = Bucket("gs", gcs_server, f"bucket-{secrets.token_hex(4)}")
    bucket.create()
    return bucket


@pytest.fixture
def azure(azurite_server: Azurite, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A new container on Azurite; the connector finds it through AZURE_STORAGE_CONNECTION_STRING."""
    point_connector_at(azurite_server, azurite_server.endpoint, monkeypatch)
    bucket = Bucket("abfs", azurite_server, f"container-{secrets.token_hex(4)}")
    bucket.create()
    return bucket


@pytest.fixture(params=["gs", "abfs", "az"])
def cloud(request: pytest.FixtureRequest) -> Bucket:
    """A new bucket on each GCS/Azure emulator, named with each protocol the connector accepts there."""
    protocol: str = request.param
    bucket: Bucket = request.getfixturevalue("gcs" if protocol == "gs" else "azure")
    return Bucket(protocol, bucket.server, bucket.name)
