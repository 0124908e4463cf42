"""The storage interface every keystore backend implements.

A backend stores opaque *documents* (one per key) by name; the keystore above it encrypts
material and authenticates metadata, so a backend never sees a plaintext key and never needs
to know the format. Writes carry a token from the last read: the file backend serialises
writers with a lock, Vault's KV v2 turns the token into a check-and-set version.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol


class DocumentStore(Protocol):
    """Named documents with compare-and-set writes."""

    kind: str  # "file" | "vault"

    def describe(self) -> str:
        """Where the documents live, for messages (a path or a Vault URL + mount)."""

    def names(self) -> list[str]:
        """Names of every stored document, sorted."""

    def read(self, name: str) -> tuple[bytes, Any] | None:
        """The document and a version token, or None when it does not exist."""

    def write(self, name: str, data: bytes, token: Any) -> Any:
        """Store ``data`` if the document is still at ``token`` (None: must not exist yet)."""

    def delete(self, name: str, token: Any) -> None:
        """Remove a document."""

    def lock(self) -> AbstractContextManager[Any]:
        """Exclusive writer section (a file lock; a no-op where CAS is enough)."""
