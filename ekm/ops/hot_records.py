"""The warm path of record encryption: a record whose key document did not change since the
full path last checked it skips the re-check, nothing else.

``KeyManager.encrypt``/``decrypt`` of small values run at a few microseconds, so each Python
call on the way counts. The full path (ekm/ops/data.py) resolves the key version and checks its
state on every record, charges the usage ledger and audits each data-key wrap or unwrap. This
module remembers, per key name (encryption) or per record prefix (decryption: format byte, key
name, version and wrapped data key), what that full path produced, *together with the key
document it read* (the keystore's cached ``(doc, token)`` tuple, a new object after any save,
refresh or :meth:`Keystore.forget`). A record takes the warm path only when:

* the keystore still holds that very document, so the version's state, the primary and the
  minimum decryption version are those already checked (a disable, destroy or rotation in this
  process replaces the document and sends the next record down the full path);
* the data key is inside the cache's ``ttl_seconds``;
* for encryption, the data-key cache grants one more use (``max_messages``), under its lock.

No data key is made, wrapped or unwrapped here, so the usage ledger and the audit policy
("one record per data-key wrap or unwrap", ekm/ops/data.py) are unchanged: the full path still
does all of that. ``benchmarks/bench_records.py`` prints what each of these checks costs.
"""

from __future__ import annotations

import os
import struct
import time
from typing import Any

from ekm.crypto.envelope import _DATA_AAD, MAX_WRAPPED_LEN, RECORD_V1
from ekm.crypto.wrapping import NONCE_LEN, TAG_LEN

_VW = struct.Struct(">IH")
_clock = time.monotonic
_MIN_BODY = NONCE_LEN + TAG_LEN


class HotRecords:
    """Warm entries of one manager's data-key cache (cleared with it)."""

    __slots__ = ("dec", "enc", "max_size", "ttl")

    def __init__(self, max_size: int, ttl: float) -> None:
        self.max_size = max_size
        self.ttl = ttl
        #: record prefix -> (AESGCM, keystore doc tuple, key name, expiry on the monotonic clock)
        self.dec: dict[bytes, tuple[Any, Any, str, float]] = {}
        #: key name -> (keystore doc tuple, primary version)
        self.enc: dict[str, tuple[Any, int]] = {}

    def clear(self) -> None:
        self.dec.clear()
        self.enc.clear()


def record_prefix(blob: bytes) -> bytes | None:
    """The bytes before nonce and ciphertext (format, name, version, wrapped key), or None."""
    try:
        pos = 2 + blob[1]
        _version, wlen = _VW.unpack_from(blob, pos)
    except (IndexError, struct.error):
        return None
    end = pos + 6 + wlen
    if blob[0] != RECORD_V1 or not 0 < wlen <= MAX_WRAPPED_LEN or len(blob) < end + _MIN_BODY:
        return None
    return blob[:end]


def hot_decrypt(hot: HotRecords, docs: dict[str, Any], blob: Any, aad: Any) -> bytes | None:
    """The plaintext via a warm entry, or None (take the full path: it decides and reports).

    No bounds checks are needed here: only a blob whose whole prefix equals a verified one
    finds an entry, and a short or forged body fails in AES-GCM (then the full path runs).
    """
    if type(blob) is not bytes or type(aad) is not bytes:
        return None
    try:
        pos = blob[1] + 6  # the wrapped-key length follows format, name and version
        end = pos + 2 + ((blob[pos] << 8) | blob[pos + 1])
        entry = hot.dec.get(blob[:end])
        if entry is None:
            return None
        aead, doc, name, expires = entry
        if docs.get(name) is not doc or _clock() >= expires:
            return None
        return aead.decrypt(blob[end : end + NONCE_LEN], blob[end + NONCE_LEN :], _DATA_AAD + aad)
    except Exception:  # a short blob, InvalidTag...: the full path reports it the audited way
        return None


def remember_decrypt(
    hot: HotRecords, blob: bytes, aead: Any, doc: Any, name: str, created: float
) -> None:
    """After the full path verified a record: warm its prefix (doc read *before* it ran)."""
    prefix = record_prefix(blob) if type(blob) is bytes else None
    if prefix is None or doc is None or aead is None:
        return
    if len(hot.dec) >= hot.max_size:
        hot.dec.clear()
    hot.dec[prefix] = (aead, doc, name, created + hot.ttl)


def hot_encrypt(
    hot: HotRecords, docs: dict[str, Any], cache: Any, name: Any, plaintext: Any, aad: Any
) -> bytes | None:
    """A record via the cached data key of ``name``'s primary, or None (full path)."""
    entry = hot.enc.get(name)
    if entry is None or type(plaintext) is not bytes or type(aad) is not bytes:
        return None
    doc, version = entry
    if docs.get(name) is not doc:
        return None
    taken = cache.take_encryption_key(name, version)  # TTL and max_messages, under its lock
    if taken is None:
        return None
    aead, prefix = taken[2]
    nonce = os.urandom(NONCE_LEN)
    return prefix + nonce + aead.encrypt(nonce, plaintext, _DATA_AAD + aad)


def remember_encrypt(hot: HotRecords, name: str, doc: Any, version: int) -> None:
    """After the full path sealed a record under ``name`` v``version`` with ``doc`` current."""
    if doc is None:
        return
    if len(hot.enc) >= hot.max_size:
        hot.enc.clear()
    hot.enc[name] = (doc, version)
