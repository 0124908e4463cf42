"""The rotation state machine, as pure transitions on a Key's metadata.

Zero-downtime rotation is add-key, roll out, promote-key (Tink):

    prepare   new version ``pending``: published for decrypt/verify, not used to encrypt/sign
    activate  pending -> ``primary``; the old primary -> ``active`` (still decrypts/verifies)
    complete  versions beyond the retention window -> ``disabled``; the rotation is final
    rollback  (before complete) the previous primary is primary again; the new one ``disabled``

A one-step ``rotate`` is prepare + activate. Every invalid transition is a StateError (exit 3)
whose message states the key's current state. Material is created by the caller; these
functions only decide states and return the version that needs material, if any.
"""

from __future__ import annotations

from datetime import datetime

from ekm.crypto.keytypes import KeyState, KeyType
from ekm.errors import StateError
from ekm.model import Key, KeyVersion

PREPARED = "prepared"
ACTIVATED = "activated"


def _state(key: Key) -> str:
    states = ", ".join(f"v{v.version} {v.state.value}" for v in key.versions[-4:])
    stage = f"; staged rotation {key.rotation_stage}" if key.rotation_stage else ""
    return f"(current: {states}{stage})"


def _pending(key: Key) -> KeyVersion | None:
    return next((v for v in key.versions if v.state is KeyState.PENDING), None)


def check_rotatable(key: Key) -> None:
    if key.primary is None:
        raise StateError(f"key {key.name!r} has no primary version and cannot rotate {_state(key)}")
    if key.rotation_stage:
        raise StateError(
            f"key {key.name!r} is in a staged rotation; finish it with "
            f"--activate/--complete or --rollback first {_state(key)}"
        )


def prepare(key: Key, now: datetime, *, to_type: KeyType | None = None) -> KeyVersion:
    """Add a ``pending`` version (optionally of a new algorithm); returns it."""
    check_rotatable(key)
    new = KeyVersion(key.latest_version + 1, KeyState.PENDING, now)
    if to_type is not None and to_type is not key.type:
        for v in key.versions:
            if v.key_type is None:
                v.key_type = key.type
        new.key_type = to_type
    elif any(v.key_type for v in key.versions):
        new.key_type = key.type
    key.versions.append(new)
    key.rotation_stage = PREPARED
    return new


def activate(key: Key, now: datetime) -> KeyVersion:
    """Promote the pending version to primary; the old primary stays ``active``."""
    pending = _pending(key)
    if pending is None or key.rotation_stage != PREPARED:
        raise StateError(
            f"key {key.name!r} has no pending version to activate; run "
            f"`ekm rotate {key.name} --prepare` first {_state(key)}"
        )
    old = key.primary
    if old is not None:
        old.state = KeyState.ACTIVE
    pending.state = KeyState.PRIMARY
    pending.activated = now
    if pending.key_type is not None:
        key.type = pending.key_type
    key.rotated = now
    key.rotation_stage = ACTIVATED
    return pending


def complete(key: Key, now: datetime, keep_versions: int | None) -> list[KeyVersion]:
    """Finish a rotation: retire (disable) readable versions beyond ``keep_versions``
    (None: retire nothing, every version keeps decrypting)."""
    if key.rotation_stage != ACTIVATED:
        raise StateError(f"key {key.name!r} has no activated rotation to complete {_state(key)}")
    key.rotation_stage = None
    return retire(key, now, keep_versions)


def retire(key: Key, now: datetime, keep_versions: int | None) -> list[KeyVersion]:
    """Disable ``active`` versions beyond the newest ``keep_versions`` of them; with no
    policy (None) nothing is disabled and ``min_decryption_version`` is left alone."""
    if keep_versions is None:
        return []
    active = sorted(
        (v for v in key.versions if v.state is KeyState.ACTIVE),
        key=lambda v: v.version,
        reverse=True,
    )
    retired = active[keep_versions:]
    for v in retired:
        v.state = KeyState.DISABLED
        v.retired = now
    readable = [
        v.version
        for v in key.versions
        if v.state in (KeyState.PRIMARY, KeyState.ACTIVE, KeyState.PENDING)
    ]
    if readable:
        key.min_decryption_version = min(readable)
    return retired


def rollback(key: Key, now: datetime) -> KeyVersion:
    """Undo a prepared or activated rotation; returns the version now primary again."""
    if key.rotation_stage is None:
        raise StateError(
            f"key {key.name!r} has no rotation in progress to roll back (a "
            f"completed rotation cannot be rolled back) {_state(key)}"
        )
    newest = max(key.versions, key=lambda v: v.version)
    if key.rotation_stage == ACTIVATED:
        previous = max(
            (v for v in key.versions if v.state is KeyState.ACTIVE and v.version < newest.version),
            key=lambda v: v.version,
            default=None,
        )
        if previous is None:
            raise StateError(
                f"key {key.name!r} has no previous version to roll back to {_state(key)}"
            )
        previous.state = KeyState.PRIMARY
        if previous.key_type is not None:
            key.type = previous.key_type
    else:
        previous = key.primary
        assert previous is not None
    newest.state = KeyState.DISABLED
    newest.retired = now
    key.rotation_stage = None
    return previous


def rotate(
    key: Key, now: datetime, *, keep_versions: int | None, to_type: KeyType | None = None
) -> KeyVersion:
    """One-step rotation (what cron runs): prepare, activate and complete; returns the new
    primary. The previous primary stays ``active`` within the retention window."""
    new = prepare(key, now, to_type=to_type)
    activate(key, now)
    complete(key, now, keep_versions)
    return new
