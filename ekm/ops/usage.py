"""Counting wraps per key version, persisted in blocks reserved *before* use.

AES-GCM with random 96-bit nonces is safe for at most 2**32 encryptions under one key
(NIST SP 800-38D 8.3). Every data-key wrap is one such encryption, so each one is counted into
``KeyVersion.usage_count``. Writing the keystore per wrap would cost an fsync per record, so the
ledger *reserves* counts: it adds a block (1, 2, 4 ... 1024) to the persisted count first, then
hands out wraps from the block in memory. The persisted count is therefore never below the true
count, even after a crash (a crash loses at most one unused block: an over-count, the safe
side). :meth:`UsageLedger.release` gives the unused rest of each block back on close.
Reservations and releases are deltas applied under the keystore lock, so several processes
sharing one home add up correctly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ekm.crypto.wrapping import GCM_RANDOM_NONCE_LIMIT
from ekm.errors import StateError

MAX_BLOCK = 1024

#: persist(name, version, delta) -> the persisted count after adding ``delta``.
Persist = Callable[[str, int, int], int]
#: on_warn(name, version, count, limit): called once per version and process.
OnWarn = Callable[[str, int, int, int], None]


@dataclass
class _Lease:
    next: int = 0  # the count the last handed-out wrap reached
    high: int = 0  # the persisted count (top of the reserved block)
    block: int = 1
    warned: bool = False


class UsageLedger:
    """Hands out wrap permits per (key, version) and enforces the warn/refuse thresholds."""

    def __init__(
        self,
        persist: Persist,
        *,
        warn_fraction: float = 0.5,
        limit: int = GCM_RANDOM_NONCE_LIMIT,
        on_warn: OnWarn | None = None,
    ) -> None:
        self._persist = persist
        self.limit = limit
        self.warn_at = max(1, int(limit * warn_fraction))
        self._on_warn = on_warn
        self._leases: dict[tuple[str, int], _Lease] = {}
        self._lock = threading.Lock()

    def charge(self, name: str, version: int) -> int:
        """Permit one wrap under ``name`` v``version``; returns its count.

        StateError once the version has reached its limit: the operator must rotate.
        """
        warn = None
        with self._lock:
            lease = self._leases.setdefault((name, version), _Lease())
            if lease.next >= lease.high:
                top = self._persist(name, version, lease.block)
                lease.next, lease.high = top - lease.block, top
                lease.block = min(lease.block * 2, MAX_BLOCK)
            if lease.next >= self.limit:
                raise StateError(
                    f"key {name} version {version} has made {lease.next} encryptions, the "
                    f"AES-GCM limit of {self.limit}; rotate it (ekm rotate {name} --force)"
                )
            lease.next += 1
            count = lease.next
            if count >= self.warn_at and not lease.warned:
                lease.warned = True
                warn = count
        if warn is not None and self._on_warn is not None:
            self._on_warn(name, version, warn, self.limit)
        return count

    def pending(self) -> dict[tuple[str, int], int]:
        """Reserved but unused counts per version (what :meth:`release` would give back)."""
        with self._lock:
            return {k: v.high - v.next for k, v in self._leases.items() if v.high > v.next}

    def release(self) -> None:
        """Give unused reservations back (on close); later charges reserve again."""
        with self._lock:
            for (name, version), lease in self._leases.items():
                unused = lease.high - lease.next
                if unused > 0:
                    self._persist(name, version, -unused)
                    lease.high = lease.next
