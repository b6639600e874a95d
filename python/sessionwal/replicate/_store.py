"""The one door to object storage: obstore (Rust's ``object_store``), imported on use.

Errors come out as two kinds, because the replicator treats them differently:
:class:`StoreUnavailable` (network, timeouts, 5xx: retry with backoff, nothing
is lost) and :class:`StoreMisconfigured` (bad credentials, missing bucket,
permission denied: retrying will not help, so ``--once`` exits 2). Their
text is one line with credentials removed: obstore's messages carry request
URLs and server bodies, never knowingly a secret, but a user's URL or an
environment value might, so both are scrubbed.
"""

from __future__ import annotations

import builtins
import os
import re
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from sessionwal import files

__all__ = [
    "ObjectStoreClient",
    "StoreError",
    "StoreMisconfigured",
    "StoreUnavailable",
    "display_url",
    "redact",
]

#: Objects larger than this go up as a multipart upload, in parts of this size.
MULTIPART_THRESHOLD = 8 * 1024 * 1024

_SECRET_ENV = re.compile(r"(SECRET|TOKEN|PASSWORD|ACCESS_KEY|ACCOUNT_KEY|SAS|CREDENTIAL)", re.I)
_XML_CODE = re.compile(r"<Code>([^<]*)</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")
_PERMANENT_MARKERS = (
    "NoSuchBucket",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "ExpiredToken",
    "InvalidToken",
    "AuthorizationHeaderMalformed",
    "ContainerNotFound",
    "403 Forbidden",
    "401 Unauthorized",
)


class StoreError(Exception):
    """A store operation failed; ``str()`` is one line, free of credentials."""


class StoreUnavailable(StoreError):
    """The store could not be reached or failed transiently: retry later."""


class StoreMisconfigured(StoreError):
    """Credentials, bucket or permissions are wrong: retrying alone will not help."""


def display_url(url: str) -> str:
    """``url`` without user info, query or fragment: what logs may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact(text: str, url: str | None = None) -> str:
    """One line of ``text``: obstore's debug dump dropped, secrets from the environment masked."""
    text = text.split("\n\nDebug source:", 1)[0]
    # An S3-style XML error body: keep its code and message, not the markup.
    code, message = _XML_CODE.search(text), _XML_MESSAGE.search(text)
    body = re.search(r"<\?xml|<Error>", text)
    if code and body:
        text = text[: body.start()] + code[1] + (f": {message[1]}" if message else "")
    line = " ".join(text.split())
    secrets = [
        value for name, value in os.environ.items() if _SECRET_ENV.search(name) and len(value) >= 4
    ]
    if url is not None:
        parts = urlsplit(url)
        secrets += [s for s in (parts.password, parts.username, parts.query) if s]
    for secret in sorted(secrets, key=len, reverse=True):
        line = line.replace(secret, "***")
    if len(line) > 400:
        line = line[:400] + "..."
    return line


def _import_obstore() -> Any:
    try:
        import obstore
    except ImportError as exc:
        raise ImportError("replication needs obstore: pip install 'sessionwal[replicate]'") from exc
    return obstore


class ObjectStoreClient:
    """A store at ``url`` (``s3://bucket/prefix``, ``gs://``, ``az://``, ``file:///path``).

    Keys are relative to the URL's path. S3 settings come from the standard
    ``AWS_*`` environment variables (``AWS_ENDPOINT_URL``, ``AWS_ALLOW_HTTP``,
    ...), as obstore reads them. ``timeout`` bounds one request including
    obstore's own quick retries, so a stop request is served within it.
    """

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.display = display_url(url)
        obstore = _import_obstore()
        from obstore.store import from_url

        self._obstore = obstore
        try:
            if urlsplit(url).scheme == "file":
                files.make_private_dirs(Path(unquote(urlsplit(url).path)))
                self._store = from_url(url)
            else:
                client: dict[str, Any] = {
                    "connect_timeout": timedelta(seconds=min(timeout, 5.0)),
                    "timeout": timedelta(seconds=timeout),
                }
                # Passing client options replaces those obstore would read from
                # the environment, so the one that matters on loopback is carried over.
                if os.environ.get("AWS_ALLOW_HTTP", "").lower() == "true":
                    client["allow_http"] = True
                retry: Any = {
                    "max_retries": 2,
                    "retry_timeout": timedelta(seconds=timeout),
                    "backoff": {
                        "init_backoff": timedelta(milliseconds=100),
                        "max_backoff": timedelta(seconds=1),
                    },
                }
                # obstore types from_url per scheme; ours is only known at run time.
                self._store = from_url(url, client_options=client, retry_config=retry)  # type: ignore[call-overload]
        except (ValueError, OSError, obstore.exceptions.BaseError) as exc:
            raise StoreMisconfigured(
                f"cannot use store {self.display}: {redact(str(exc), url)}"
            ) from None

    # ------------------------------------------------------------ operations

    def list(self, prefix: str | None = None) -> builtins.list[dict[str, Any]]:
        """Every object under ``prefix``: dicts with ``path``, ``size``, ``last_modified``."""
        with self._errors("list", prefix or "/"):
            return [meta for batch in self._obstore.list(self._store, prefix) for meta in batch]

    def put(self, key: str, data: bytes | Iterable[bytes]) -> None:
        """Writes one object atomically; an iterable of parts goes up as a multipart upload."""
        with self._errors("put", key):
            if isinstance(data, bytes):
                self._obstore.put(self._store, key, data, use_multipart=False)
            else:
                self._obstore.put(
                    self._store, key, iter(data), chunk_size=MULTIPART_THRESHOLD, max_concurrency=4
                )

    def get(self, key: str) -> Iterator[bytes]:
        """The object's bytes in pieces."""
        with self._errors("get", key):
            result = self._obstore.get(self._store, key)
            stream = result.stream(min_chunk_size=1 << 20)
        while True:
            with self._errors("get", key):
                piece = next(stream, None)
            if piece is None:
                return
            yield bytes(piece)

    def delete(self, keys: builtins.list[str]) -> None:
        if keys:
            with self._errors("delete", keys[0]):
                self._obstore.delete(self._store, keys)

    # ------------------------------------------------------------ errors

    def _errors(self, operation: str, key: str) -> _Translate:
        return _Translate(self, operation, key)

    def classify(self, exc: BaseException, operation: str, key: str) -> StoreError:
        exceptions = self._obstore.exceptions
        text = redact(str(exc), self.url)
        message = f"{operation} {key} at {self.display}: {text}"
        permanent = isinstance(
            exc,
            (
                exceptions.PermissionDeniedError,
                exceptions.UnauthenticatedError,
                exceptions.UnknownConfigurationKeyError,
                exceptions.InvalidPathError,
                PermissionError,
            ),
        ) or any(marker in text for marker in _PERMANENT_MARKERS)
        # A put refused with "not found" means the bucket or container is missing.
        if operation in ("put", "list") and isinstance(exc, FileNotFoundError):
            permanent = True
        return StoreMisconfigured(message) if permanent else StoreUnavailable(message)


class _Translate:
    """Turns obstore's (and the OS's, for file://) exceptions into StoreError."""

    def __init__(self, client: ObjectStoreClient, operation: str, key: str) -> None:
        self.client, self.operation, self.key = client, operation, key

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or isinstance(exc, StoreError):
            return
        if self.operation == "get" and isinstance(exc, FileNotFoundError):
            return  # an object listed a moment ago is gone: the caller decides
        if isinstance(exc, (self.client._obstore.exceptions.BaseError, OSError)):
            raise self.client.classify(exc, self.operation, self.key) from None
