"""Prefix listings: one bounded, first-page listing of a parent prefix answers every sensor waiting in it.

One lister per protocol (`LISTERS`): local directories are read with os.scandir, S3 with one delimited
list_objects_v2, GCS with one delimited objects.list and Azure Blob with one delimited List Blobs
(`cloud`). A lister returns the parent's children as `info` would describe each, and whether the
store had more than one page. `Demand` decides when a parent is worth listing (two different objects
asked about under it within `DEMAND_WINDOW`) and remembers prefixes too big for one page.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..local_roots import LocalRoots
from . import cloud

#: Items asked for in one listing; a prefix holding more is answered object by object.
LISTING_PAGE = 1000
#: Two different objects asked about under one parent within this many seconds make the parent
#: worth listing. Propeller polls each task every ~30 s, so sensors waiting side by side show up
#: within one resync.
DEMAND_WINDOW = 60.0
#: A prefix whose listing came back truncated is answered object by object for this long.
BIG_PREFIX_SECONDS = 300.0

#: Runs a blocking function in the store's thread pool.
Blocking = Callable[..., Awaitable[Any]]


@dataclass
class Listing:
    """A prefix's first page: child name -> info, and whether the store had more."""

    items: dict[str, dict[str, Any]]
    truncated: bool
    #: Children left out of `items` that may well exist (under --local-roots: symbolic links, never
    #: followed, and the connector's own files): a question about one is asked on its own.
    skipped: frozenset[str] = frozenset()

    def settles(self, name: str) -> bool:
        """True when this listing says whether child `name` exists: listed, or absent from a whole page."""
        return name in self.items or (not self.truncated and name not in self.skipped)


#: A protocol's lister: (filesystem, parent path, the store's blocking runner) -> the parent's first page.
#: FileNotFoundError (no such bucket or directory) means nothing is under it.
Lister = Callable[[Any, str, Blocking], Awaitable[Listing]]


async def list_local(fs: Any, parent: str, blocking: Blocking) -> Listing:
    """A local directory's first page, read with one os.scandir in the store's thread pool."""
    listing: Listing = await blocking(_scan_local, parent)
    return listing


def lister_within(roots: LocalRoots) -> Lister:
    """`list_local` for a Store confined to local `roots`: the directory is listed by its resolved path,
    and only when that lies inside a root; what the listing may not answer for is `skipped`."""

    async def list_within(fs: Any, parent: str, blocking: Blocking) -> Listing:
        listing: Listing = await blocking(_scan_within, roots, parent)
        return listing

    return list_within


def _scan_within(roots: LocalRoots, parent: str) -> Listing:
    """The first page of `parent` resolved, if that lies inside `roots` (blocking).

    This admits, in one thread hop per directory, every child the listing answers for: a child that
    is not a symbolic link resolves to the resolved directory plus its name, so a string check admits
    it. Links (never followed here) and the connector's own files are skipped, and a directory that
    resolves outside the roots is not read and answers nothing: those go to admission one by one
    (`Store._admit_local`), which follows the link or refuses the path.
    """
    real = os.path.realpath(parent or "/")
    if not roots.contains(real):
        return Listing({}, truncated=True)
    listing = _scan_local(real, follow_links=False)
    base = real.rstrip("/")
    refused = [name for name in listing.items if not roots.contains(f"{base}/{name}")]
    for name in refused:
        del listing.items[name]
    listing.skipped = listing.skipped.union(refused)
    return listing


def _scan_local(parent: str, follow_links: bool = True) -> Listing:
    """A local directory's first page, as LocalFileSystem.info describes each entry (blocking)."""
    items: dict[str, dict[str, Any]] = {}
    links: list[str] = []
    base = parent.rstrip("/")
    try:
        with os.scandir(parent or "/") as entries:
            for entry in entries:
                if len(items) + len(links) >= LISTING_PAGE:
                    return Listing(items, truncated=True, skipped=frozenset(links))
                if not follow_links and entry.is_symlink():
                    links.append(entry.name)
                    continue
                try:
                    st = entry.stat()  # follows links: a dangling one is absent, as info says
                except FileNotFoundError:
                    continue
                kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
                path = f"{base}/{entry.name}"
                items[entry.name] = {"name": path, "type": kind, "size": st.st_size, "mtime": st.st_mtime}
    except FileNotFoundError:
        raise
    except OSError:
        # An unreadable directory may still let its entries be looked up one by one (mode 0711):
        # a truncated listing sends every question under it back to per-object info.
        return Listing({}, truncated=True)
    # "." and ".." are never listed, yet exist: a path ending in one is asked about on its own.
    return Listing(items, truncated=False, skipped=frozenset([*links, ".", ".."]))


async def list_s3(fs: Any, parent: str, blocking: Blocking) -> Listing:
    """An S3 prefix's first page: one delimited list_objects_v2 request, however large the prefix."""
    # Through s3fs' async client wrapper, one page only (s3fs' _lsdir would page on).
    bucket, key, _ = fs.split_path(parent)
    prefix = f"{key.rstrip('/')}/" if key else ""
    out = await fs._call_s3(
        "list_objects_v2", Bucket=bucket, Prefix=prefix, Delimiter="/", MaxKeys=LISTING_PAGE, **fs.req_kw
    )
    items: dict[str, dict[str, Any]] = {}
    for common in out.get("CommonPrefixes", []):
        name = common["Prefix"][len(prefix) :].rstrip("/")
        if name:
            items[name] = {"name": f"{bucket}/{prefix}{name}", "type": "directory", "size": 0}
    for obj in out.get("Contents", []):
        name = obj["Key"][len(prefix) :]
        if name and "/" not in name:  # files win over a same-named "directory", as info does
            items[name] = {
                "name": f"{bucket}/{obj['Key']}",
                "type": "file",
                "size": obj.get("Size", 0),
                "LastModified": obj.get("LastModified"),
                "ETag": obj.get("ETag", ""),
            }
    return Listing(items, truncated=bool(out.get("IsTruncated")))


async def list_gcs(fs: Any, parent: str, blocking: Blocking) -> Listing:
    """A GCS prefix's first page: one delimited objects.list request; MissingBucket without a bucket."""
    return Listing(*await cloud.gcs_list(fs, parent, LISTING_PAGE))


async def list_azure(fs: Any, parent: str, blocking: Blocking) -> Listing:
    """An Azure Blob prefix's first page: one delimited List Blobs request."""
    return Listing(*await cloud.azure_list(fs, parent, LISTING_PAGE))


#: Canonical protocol -> its lister. Only protocols whose listings are strongly consistent and can be
#: bounded to one page belong here; `--listing-protocols` chooses among them. S3, GCS and Azure Blob
#: list strongly consistently (a written object is listed at once), so a listing is as true as each
#: object's own info.
LISTERS: dict[str, Lister] = {"file": list_local, "s3": list_s3, "gs": list_gcs, "abfs": list_azure}
#: Other names of those protocols, accepted by --listing-protocols.
ALIASES = {"s3a": "s3", "gcs": "gs", "az": "abfs", "abfss": "abfs"}


@dataclass
class _Prefix:
    """Recent questions under one parent prefix, kept in O(1) space."""

    last_name: str
    last_asked: float
    hot_until: float = float("-inf")
    big_until: float = float("-inf")


class Demand:
    """Which parent prefixes are worth listing now, and which are too big for one page (an LRU)."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._prefixes: OrderedDict[tuple[str, str], _Prefix] = OrderedDict()

    def wants_listing(self, protocol: str, parent: str, name: str, now: float) -> bool:
        """Note that `name` under `parent` was asked about; True when a shared listing should answer it."""
        key = (protocol, parent)
        prefix = self._prefixes.get(key)
        if prefix is None:
            self._prefixes[key] = _Prefix(name, now)
            while len(self._prefixes) > self.entries:
                self._prefixes.popitem(last=False)
            return False
        self._prefixes.move_to_end(key)
        if name != prefix.last_name and now - prefix.last_asked <= DEMAND_WINDOW:
            prefix.hot_until = now + DEMAND_WINDOW
        prefix.last_name, prefix.last_asked = name, now
        return now <= prefix.hot_until and now > prefix.big_until

    def too_big(self, protocol: str, parent: str, now: float) -> None:
        """Answer objects under `parent` one by one for a while: its listing does not fit one page."""
        prefix = self._prefixes.setdefault((protocol, parent), _Prefix("", now))
        prefix.big_until = now + BIG_PREFIX_SECONDS

    def is_big(self, protocol: str, parent: str, now: float) -> bool:
        """True while `parent` is answered object by object after a truncated listing."""
        prefix = self._prefixes.get((protocol, parent))
        return prefix is not None and now <= prefix.big_until
