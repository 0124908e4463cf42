"""Stream key slot kind 0x02: the file's data key sealed to one or more recipient public keys.

The stream container (``stream.py``) carries exactly one key slot. Kind 0x02 makes that slot
a *list* of recipient slots (``recipients.py``: X25519, ML-KEM-768/1024, X-Wing), so a file
can be given to several public keys, as age's stanzas do::

    body = count (1, 1..64) || ( len (2) || recipient_slot )*

Each recipient slot names its recipient (``rid``, e.g. ``"inbox:v2"``) so the reader picks the
private key it holds instead of trying all. The recipient slot's AEAD does not see the stream
``context``; the header MAC does (its key comes from the data key, so nobody who cannot open a
slot can make a valid header, and a slot moved into another file fails that file's MAC).

Opening: the resolver must offer ``recipient_key(rid) -> (KeyType, private material)``, raising
NotFoundError for a recipient this home does not hold. The first slot whose recipient is held
is opened; a failure there is the one IntegrityError (wrong key, altered), never "which check".
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from ekm.crypto import recipients
from ekm.crypto.keytypes import KeyType
from ekm.crypto.wrapping import NOT_AUTHENTIC
from ekm.errors import EkmError, IntegrityError, InvalidError, NotFoundError

SLOT_RECIPIENTS = 0x02
MAX_RECIPIENTS = 64


class RecipientResolver(Protocol):
    """What a decrypting caller provides for kind 0x02 (besides ``__call__`` for kind 0x01)."""

    def recipient_key(self, recipient_id: str) -> tuple[KeyType, bytes]: ...


class RecipientSlot:
    """Sealing side: ``recipients`` is a list of ``(key type, raw public key, recipient id)``."""

    kind = SLOT_RECIPIENTS

    def __init__(self, recipients_: list[tuple[KeyType | str, bytes, str]]) -> None:
        if not 1 <= len(recipients_) <= MAX_RECIPIENTS:
            raise InvalidError(f"a file needs 1 to {MAX_RECIPIENTS} recipients")
        self.recipients = [(KeyType(t), bytes(pk), rid) for t, pk, rid in recipients_]

    @property
    def recipient_ids(self) -> list[str]:
        return [rid for _t, _pk, rid in self.recipients]

    def seal(self, dek: bytes, context: bytes) -> bytes:  # context is bound by the header MAC
        parts = [struct.pack(">B", len(self.recipients))]
        for key_type, pk, rid in self.recipients:
            slot = recipients.seal_file_key(key_type, pk, dek, recipient_id=rid)
            parts.append(struct.pack(">H", len(slot)) + slot)
        return b"".join(parts)


class ParsedRecipientSlot:
    """Opening side of kind 0x02 (parsed from hostile bytes; nothing is authentic yet)."""

    kind = SLOT_RECIPIENTS

    def __init__(self, slots: list[recipients.SlotHeader], raw: list[bytes]) -> None:
        self.slots = slots
        self._raw = raw

    @property
    def recipient_ids(self) -> list[str]:
        return [s.recipient_id for s in self.slots]

    @classmethod
    def parse(cls, body: bytes) -> ParsedRecipientSlot:
        try:
            count = body[0]
            if not 1 <= count <= MAX_RECIPIENTS:
                raise ValueError
            pos = 1
            slots, raw = [], []
            for _ in range(count):
                (n,) = struct.unpack_from(">H", body, pos)
                chunk = body[pos + 2 : pos + 2 + n]
                if len(chunk) != n:
                    raise ValueError
                slots.append(recipients.parse_slot(chunk))
                raw.append(chunk)
                pos += 2 + n
            if pos != len(body):
                raise ValueError
        except (IndexError, ValueError, struct.error, IntegrityError):
            raise IntegrityError(NOT_AUTHENTIC) from None
        return cls(slots, raw)

    def open(self, context: bytes, resolver: Any) -> bytes:
        finder = getattr(resolver, "recipient_key", None)
        if finder is None:
            raise NotFoundError(
                "this file is sealed to a recipient public key; decrypt it with `ekm decrypt` "
                "in the home that holds the private key"
            )
        last_missing: EkmError | None = None
        for slot, raw in zip(self.slots, self._raw, strict=True):
            try:
                key_type, material = finder(slot.recipient_id)
            except NotFoundError as exc:
                last_missing = exc
                continue
            return recipients.open_file_key(key_type, material, raw)
        names = ", ".join(sorted({s.recipient_id for s in self.slots}))[:200]
        if len(self.slots) == 1 and last_missing is not None:
            raise last_missing
        raise NotFoundError(
            f"this file is sealed to {names}; none of these private keys is usable in this home"
        )


def register() -> None:
    """Teach the stream container slot kind 0x02 (idempotent)."""
    from ekm.crypto import stream

    stream.register_slot_kind(SLOT_RECIPIENTS, ParsedRecipientSlot.parse)
