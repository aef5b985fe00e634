"""Links to an object store's web console for a bucket path, shown beside the task."""

from __future__ import annotations

from urllib.parse import quote

from fsspec.core import split_protocol

from ..base import Link
from .cloud import azure_portal_link


def console_links(url: str) -> list[Link]:
    """A link to the object store's web console for a bucket path, where the store has one."""
    protocol, rest = split_protocol(url)
    if not protocol or not rest:
        return []
    bucket, _, key = rest.partition("/")
    if protocol in ("s3", "s3a"):
        return [
            Link("S3 console", f"https://s3.console.aws.amazon.com/s3/buckets/{bucket}?prefix={quote(key)}")
        ]
    if protocol in ("gs", "gcs"):
        return [
            Link("GCS console", f"https://console.cloud.google.com/storage/browser/{bucket}/{quote(key)}")
        ]
    if protocol in ("abfs", "abfss", "az"):
        portal = azure_portal_link(bucket.partition("@")[0])
        return [Link("Azure portal", portal)] if portal else []
    return []
