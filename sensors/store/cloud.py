"""Google Cloud Storage and Azure Blob Storage as sensors ask them: one object's metadata, one bounded
page of a prefix, and the connector's credentials, each request made once and bounded in time.

gcsfs and adlfs stay the clients (sessions, credentials, URLs, the shape of an object's info); what is
here is the shape of a sensor's question, as `listings.list_s3` is for S3 with one `list_objects_v2`.
`backends` makes the clients with these options, `listings` registers the listers, `store` asks here
for one object's info, `errors` sorts what is raised here:

- Listings: one delimited first page of a prefix (GCS `objects.list`, Azure `List Blobs` with a
  delimiter), never the libraries' loops over every page.
- One attempt per request, with the client's timeouts (set from the poke budget when it was made).
  gcsfs retries six times with back-off up to 32 s and the Azure SDK three times from 15 s: both
  outlast every poke, which then could only say it ran out of time instead of what the store
  answered (503, 429, a refused connection). Propeller asks again within seconds; that is the retry.
- A missing bucket or container is told apart from a missing object, so the task fails naming it
  rather than waiting forever for an object that cannot land.

gcsfs 2026.x replaces `gcsfs.GCSFileSystem` with an experimental subclass unless
GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT is false: its first use of every bucket probes the bucket's layout
(zonal, hierarchical namespace) over gRPC, which against an emulator or a private endpoint fails TLS
and falls back only after 60 s, twelve times the poke budget. A sensor only reads objects' metadata
and lists one prefix, which the JSON API answers for every bucket layout, so the connector uses
gcsfs's JSON API client (`gcsfs.core.GCSFileSystem`) and never imports the experimental one.
"""

from __future__ import annotations

import json
import os
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

GCS_CREDENTIALS = (
    "GOOGLE_APPLICATION_CREDENTIALS, gcloud's application default credentials and the metadata "
    "server (GKE Workload Identity)"
)
AZURE_CREDENTIALS = (
    "AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY, "
    "AZURE_STORAGE_SAS_TOKEN or a workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, "
    "AZURE_FEDERATED_TOKEN_FILE)"
)


class MissingBucket(Exception):
    """The bucket (GCS) or container (Azure) itself does not exist: no object can land in it."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"the {kind} {name} does not exist")
        self.kind = kind
        self.name = name


class StoreHTTPError(Exception):
    """A store's error answer: its HTTP status and the store's own error code."""

    def __init__(self, status: int, code: str, detail: str = "") -> None:
        super().__init__(f"{status} {code}{': ' + detail if detail else ''}")
        self.status = status
        self.error_code = code


class MissingCredentials(Exception):
    """No credentials the connector could use for a store; says where it looked."""


# -- GCS --------------------------------------------------------------------------------------------
def gcs_class() -> type[Any]:
    """gcsfs's JSON API filesystem, without the experimental bucket-layout probe (see the module doc)."""
    # Importing gcsfs imports its experimental module too unless this is false; the connector never
    # uses that class, so skip its import (grpc and google-cloud-storage) unless an operator set it.
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    from gcsfs.core import GCSFileSystem

    cls: type[Any] = GCSFileSystem
    return cls


def gcs_options(budget: float) -> dict[str, Any]:
    """gcsfs options: anonymous against an emulator, else Google's default credentials or a failure."""
    # An emulator checks no credentials (google-cloud-storage goes anonymous with one too); else
    # Google's default credentials or a failure, never gcsfs' silent fall-back to anonymous access.
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "") not in ("", "default")
    method = "anon" if emulator else "google_default"
    return {"token": method, "requests_timeout": max(0.3, budget * 0.4)}


def is_gcs_credentials_error(exc: BaseException) -> bool:
    """True when gcsfs could not find Google default credentials."""
    return (
        type(exc).__name__ in ("DefaultCredentialsError", "TransportError")
        and "credentials" in str(exc).lower()
    )


async def _gcs_get(fs: Any, path: str, **params: Any) -> tuple[int, Any]:
    """One GET on the JSON API (`path` under storage/v1/): (status, decoded JSON or None)."""
    import aiohttp  # loaded with gcsfs, which depends on it

    await fs._set_session()
    async with fs.session.get(
        fs.base + path,
        params=fs._get_params(params),
        headers=fs._get_headers(None),
        timeout=aiohttp.ClientTimeout(total=fs.requests_timeout),
    ) as response:
        body = await response.read()
        status = int(response.status)
    if status == 404 or status < 300:
        return status, json.loads(body) if status < 300 and body else None
    detail = ""
    code = ""
    try:
        error = json.loads(body)["error"]
        detail = str(error.get("message", ""))[:120]
        reasons = error.get("errors") or [{}]
        code = str(reasons[0].get("reason", ""))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        detail = body[:120].decode(errors="replace")
    raise StoreHTTPError(status, code or _reason(status), detail)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.replace(" ", "")
    except ValueError:
        return "Error"


def _quote(text: str) -> str:
    return quote(text, safe="")


async def gcs_list(fs: Any, parent: str, page: int) -> tuple[dict[str, dict[str, Any]], bool]:
    """The first page of `parent` (bucket/prefix): child name -> info, and whether there is more."""
    bucket, key, _ = fs.split_path(parent)
    prefix = f"{key.rstrip('/')}/" if key else ""
    status, out = await _gcs_get(
        fs, f"b/{_quote(bucket)}/o", prefix=prefix or None, delimiter="/", maxResults=page
    )
    if status == 404:
        raise MissingBucket("bucket", bucket)
    items: dict[str, dict[str, Any]] = {}
    for common in out.get("prefixes", []):
        name = common[len(prefix) :].rstrip("/")
        if name:
            items[name] = {"name": f"{bucket}/{prefix}{name}", "type": "directory", "size": 0}
    for obj in out.get("items", []):
        name = obj["name"][len(prefix) :]
        if name and "/" not in name:  # files win over a same-named "directory", as info does
            items[name] = fs._process_object(bucket, obj)
    return items, bool(out.get("nextPageToken"))


async def gcs_info(fs: Any, path: str) -> dict[str, Any] | None:
    """An object's info (as gcsfs gives it), a directory's, or None; MissingBucket when the bucket is gone."""
    bucket, key, _ = fs.split_path(path)
    status, out = await _gcs_get(fs, f"b/{_quote(bucket)}/o/{_quote(key)}")
    if status < 300:
        info: dict[str, Any] = fs._process_object(bucket, out)
        return info
    # Not an object: a "directory" when something lies under key/, and a 404 here means no bucket.
    # An identity that may read objects but not list them cannot tell: not there (yet).
    try:
        status, out = await _gcs_get(
            fs,
            f"b/{_quote(bucket)}/o",
            prefix=f"{key.rstrip('/')}/",
            delimiter="/",
            maxResults=1,
        )
    except StoreHTTPError as exc:
        if exc.status in (401, 403):
            return None
        raise
    if status == 404:
        raise MissingBucket("bucket", bucket)
    if out.get("items") or out.get("prefixes"):
        return {"name": f"{bucket}/{key.rstrip('/')}", "type": "directory", "size": 0}
    return None


# -- Azure Blob -------------------------------------------------------------------------------------
def azure_options(budget: float) -> dict[str, Any]:
    """adlfs options; MissingCredentials when nothing in the environment names an account."""
    if not (
        os.environ.get("AZURE_STORAGE_CONNECTION_STRING") or os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
    ):
        raise MissingCredentials(f"it looked for {AZURE_CREDENTIALS}")
    return {
        "connection_timeout": max(0.2, budget * 0.2),
        "read_timeout": max(0.3, budget * 0.4),
    }


def _azure_call_options(fs: Any) -> dict[str, Any]:
    # Per request: one attempt (see the module doc), with the client's timeouts (azure_options).
    return {"retry_total": 0, **getattr(fs, "_timeout_kwargs", {})}


def _azure_error(exc: Exception) -> Exception:
    """An Azure SDK error as the connector sorts it: MissingBucket, StoreHTTPError, or itself."""
    status = getattr(exc, "status_code", None)
    code = str(getattr(exc, "error_code", "") or "")
    if not isinstance(status, int):
        return exc  # no answer from the store (network, credentials): sorted by its type
    return StoreHTTPError(status, code or _reason(status))


async def azure_list(fs: Any, parent: str, page: int) -> tuple[dict[str, dict[str, Any]], bool]:
    """The first page of `parent` (container/prefix): child name -> info, and whether there is more."""
    from azure.core.exceptions import HttpResponseError

    container, key, _ = fs.split_path(parent)
    prefix = f"{key.rstrip('/')}/" if key else ""
    items: dict[str, dict[str, Any]] = {}
    try:
        client = fs.service_client.get_container_client(container)
        pages = client.walk_blobs(
            name_starts_with=prefix or None,
            delimiter="/",
            results_per_page=page,
            **_azure_call_options(fs),
        ).by_page()
        try:
            first = [entry async for entry in await pages.__anext__()]
        except StopAsyncIteration:
            first = []
        more = bool(getattr(pages, "continuation_token", None))
    except HttpResponseError as exc:
        if getattr(exc, "error_code", None) == "ContainerNotFound":
            raise MissingBucket("container", container) from exc
        raise _azure_error(exc) from exc
    for entry in first:
        name = entry.name[len(prefix) :]
        if entry.name.endswith("/"):  # a BlobPrefix: a "directory"
            name = name.rstrip("/")
            if name:
                items[name] = {"name": f"{container}/{prefix}{name}", "type": "directory", "size": 0}
        elif name and "/" not in name:
            items[name] = _azure_blob_info(container, entry)
    return items, more


def _azure_blob_info(container: str, props: Any) -> dict[str, Any]:
    return {
        "name": f"{container}/{props.name}",
        "type": "file",
        "size": props.size,
        "last_modified": props.last_modified,
        "creation_time": getattr(props, "creation_time", None),
        "etag": props.etag,
    }


async def azure_info(fs: Any, path: str) -> dict[str, Any] | None:
    """A blob's info, a directory's, or None; MissingBucket when the container is gone."""
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    container, key, _ = fs.split_path(path)
    options = _azure_call_options(fs)
    try:
        blob = fs.service_client.get_blob_client(container, key)
        props = await blob.get_blob_properties(**options)
        return _azure_blob_info(container, props)
    except ResourceNotFoundError as exc:
        if getattr(exc, "error_code", None) == "ContainerNotFound":
            raise MissingBucket("container", container) from exc
    except HttpResponseError as exc:
        raise _azure_error(exc) from exc
    try:
        items, _ = await azure_list(fs, f"{container}/{key.rstrip('/')}", 1)
    except StoreHTTPError as exc:  # may read blobs but not list them: not there (yet)
        if exc.status in (401, 403):
            return None
        raise
    if items:
        return {"name": f"{container}/{key.rstrip('/')}", "type": "directory", "size": 0}
    return None


# -- console links ----------------------------------------------------------------------------------
#: The storage account's Azure resource ID (/subscriptions/…/resourceGroups/…/providers/
#: Microsoft.Storage/storageAccounts/NAME): the portal addresses a container by it, and nothing in an
#: abfs:// URL or the SDK's credentials names the subscription and resource group.
AZURE_ACCOUNT_ID_VARIABLE = "SENSOR_CONNECTOR_AZURE_STORAGE_ACCOUNT_ID"


def azure_portal_link(container: str) -> str | None:
    """The Azure portal's page of `container`, when the operator named the account's resource ID."""
    account_id = os.environ.get(AZURE_ACCOUNT_ID_VARIABLE, "").strip()
    if not account_id.lower().startswith("/subscriptions/") or not container:
        return None
    return (
        "https://portal.azure.com/#view/Microsoft_Azure_Storage/ContainerMenuBlade/~/overview/"
        f"storageAccountId/{quote(account_id, safe='')}/path/{quote(container, safe='')}"
    )
