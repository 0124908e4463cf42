"""An in-memory cache of data keys, so small-record encryption does not wrap/unwrap per call.

Two maps share one LRU bound (``max_size``):

* *encryption*: (key name, version) -> the current data key and its wrapped form. One data key
  seals many records; each use is counted and the entry retires after ``max_messages`` uses or
  ``ttl_seconds``, which bounds how much data one data key protects and keeps the random-nonce
  count far below the 2**32 limit of SP 800-38D (2**20 by default).
* *decryption*: (key name, version, wrapped bytes) -> data key, so reading many records that
  share a data key unwraps once.

Entries live only in this process's memory: nothing here is ever written to disk, logged or
repr'd. ``clock`` is injectable (time is a parameter) and defaults to ``time.monotonic``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ekm.errors import InvalidError

DEFAULT_MAX_MESSAGES = 2**20


@dataclass
class _Entry:
    dek: bytes = field(repr=False)  # a data key: never in a repr, traceback or log
    wrapped: bytes = field(repr=False)
    created: float
    uses: int = 0
    aead: Any = field(default=None, repr=False)


class DataKeyCache:
    """Thread-safe LRU of data keys bounded by size, age (``ttl_seconds``) and uses."""

    def __init__(
        self,
        max_size: int = 1024,
        ttl_seconds: float = 300.0,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_size < 1 or ttl_seconds <= 0 or max_messages < 1:
            raise InvalidError(
                "[cache] max_size, ttl_seconds and max_messages must all be positive"
            )
        self.max_size = max_size
        self.ttl_seconds = ttl_seconds
        self.max_messages = max_messages
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"DataKeyCache(max_size={self.max_size}, entries={len(self)})"

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def _get(self, k: tuple, now: float) -> _Entry | None:
        entry = self._entries.get(k)
        if entry is None:
            return None
        if now - entry.created >= self.ttl_seconds or now < entry.created:
            del self._entries[k]
            return None
        self._entries.move_to_end(k)
        return entry

    def _put(self, k: tuple, entry: _Entry) -> None:
        self._entries[k] = entry
        self._entries.move_to_end(k)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def take_encryption_key(
        self, key_name: str, version: int, *, now: float | None = None
    ) -> tuple[bytes, bytes, Any] | None:
        """Claim one use of the cached data key: ``(dek, wrapped, aead)`` or None on a miss.

        ``aead`` is the cipher object the caller stored with :meth:`put_encryption_key` (so the
        key schedule is not redone per record). An entry that reached ``max_messages`` uses is
        dropped, and the caller makes (and caches) a fresh data key.
        """
        k = ("e", key_name, version)
        t = self._clock() if now is None else now
        with self._lock:  # _get inlined: this runs once per record on the warm path
            entry = self._entries.get(k)
            if entry is None:
                return None
            if t - entry.created >= self.ttl_seconds or t < entry.created:
                del self._entries[k]
                return None
            self._entries.move_to_end(k)
            entry.uses += 1
            if entry.uses >= self.max_messages:
                del self._entries[k]
            return entry.dek, entry.wrapped, entry.aead

    def put_encryption_key(
        self,
        key_name: str,
        version: int,
        dek: bytes,
        wrapped: bytes,
        *,
        aead: Any = None,
        now: float | None = None,
    ) -> None:
        """Cache a fresh data key for encryption; counts as its first use."""
        with self._lock:
            entry = _Entry(dek, wrapped, self._now(now), uses=1, aead=aead)
            if self.max_messages > 1:
                self._put(("e", key_name, version), entry)
            self._put(("d", key_name, version, wrapped), _Entry(dek, wrapped, entry.created))

    def get_decryption_aead(
        self, key_name: str, version: int, wrapped: bytes, *, now: float | None = None
    ) -> Any:
        """The cipher object stored with this data key (None on a miss or when none was)."""
        with self._lock:
            entry = self._get(("d", key_name, version, wrapped), self._now(now))
            return None if entry is None else entry.aead

    def decryption_entry(
        self, key_name: str, version: int, wrapped: bytes, *, now: float | None = None
    ) -> tuple[Any, float] | None:
        """``(cipher object, creation time)`` of a live decryption entry, or None."""
        with self._lock:
            entry = self._get(("d", key_name, version, wrapped), self._now(now))
            return None if entry is None or entry.aead is None else (entry.aead, entry.created)

    def get_decryption_key(
        self, key_name: str, version: int, wrapped: bytes, *, now: float | None = None
    ) -> bytes | None:
        """The data key previously unwrapped from exactly these wrapped bytes, or None."""
        with self._lock:
            entry = self._get(("d", key_name, version, wrapped), self._now(now))
            return None if entry is None else entry.dek

    def put_decryption_key(
        self,
        key_name: str,
        version: int,
        wrapped: bytes,
        dek: bytes,
        *,
        aead: Any = None,
        now: float | None = None,
    ) -> None:
        """Remember an unwrapped data key (only after the wrap verified), and its cipher
        object so the AES key schedule is not redone per record."""
        with self._lock:
            entry = _Entry(dek, wrapped, self._now(now), aead=aead)
            self._put(("d", key_name, version, wrapped), entry)

    def forget(self, key_name: str, version: int | None = None) -> None:
        """Drop every entry of a key (or one version): call after disabling/destroying it."""
        with self._lock:
            for k in [
                k
                for k in self._entries
                if k[1] == key_name and (version is None or k[2] == version)
            ]:
                del self._entries[k]

    def clear(self) -> None:
        """Drop everything (e.g. on shutdown or after a rotation)."""
        with self._lock:
            self._entries.clear()
