"""Files and object stores for sensors, through one `Store` the server owns and passes in each PokeContext.

Store access, from a path to a client:
- `store.py`: `Store`, the public door (admit, resolve, info, exists, glob, modified_at, close) and its
  `StoreSettings`; `default_store()` for local runs only.
- `backends.py`: which fsspec implementation serves a protocol (imported on first use, off the loop),
  and the clients made from it (short timeouts, S3 model preload, closing).
- `errors.py`: a store failure sorted into PermanentError or TransientError, the path named.
- `links.py`: console links for a bucket path.

Answer sharing, from many pokes to one request:
- `sharing.py`: in-flight sharing, the staleness-bounded answers LRU and the request/answer counters.
- `listings.py`: one bounded listing of a parent prefix per protocol, and when a prefix is worth it.
"""

from .links import console_links
from .store import Store, StoreSettings, default_store, has_magic, modified_at

__all__ = ["Store", "StoreSettings", "console_links", "default_store", "has_magic", "modified_at"]
