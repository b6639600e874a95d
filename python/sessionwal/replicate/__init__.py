"""Continuous replication of session files to object storage, and restore.

``sessionwal replicate URL`` ships every session under a sessions directory
to an object store (``s3://``, ``gs://``, ``az://``, ``file://``) through
obstore (``pip install 'sessionwal[replicate]'``); ``sessionwal restore URL``
and ``sessionwal ls URL`` read it back. The object layout and what a reader
of the bucket may rely on are in docs/replication.md.

In a runtime process::

    replicator = Replicator("s3://bucket/sessions")
    replicator.start()          # a daemon thread
    ...
    replicator.stop(timeout=5)  # finishes the object in flight
"""

from __future__ import annotations

from sessionwal.replicate._replicator import PassResult, Replicator, Shipped, Stats, Unshipped
from sessionwal.replicate._restore import (
    RemoteSessionInfo,
    Restored,
    RestoreError,
    list_remote,
    restore,
)
from sessionwal.replicate._store import (
    ObjectStoreClient,
    StoreError,
    StoreMisconfigured,
    StoreUnavailable,
)

__all__ = [
    "ObjectStoreClient",
    "PassResult",
    "RemoteSessionInfo",
    "Replicator",
    "RestoreError",
    "Restored",
    "Shipped",
    "Stats",
    "StoreError",
    "StoreMisconfigured",
    "StoreUnavailable",
    "Unshipped",
    "list_remote",
    "restore",
]
