"""The key model: keys, versions, rotation policies (DESIGN.md "Model").

A key never overwrites a version: rotation appends one. Exactly one version is ``primary``
(used to encrypt/sign); ``pending`` and ``active`` versions still decrypt/verify; ``disabled``
ones do nothing until re-enabled; ``destroyed`` ones keep only their metadata.

This module is pure data with (de)serialisation; it imports no cryptography.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ekm.crypto.keytypes import KeyState, KeyType, KeyUsage
from ekm.errors import InvalidError, NotFoundError
from ekm.timeutil import format_duration, from_iso, iso, parse_duration

#: States whose material may decrypt / verify.
READABLE_STATES = frozenset({KeyState.PENDING, KeyState.PRIMARY, KeyState.ACTIVE})


@dataclass
class RotationPolicy:
    """When a key rotates and what happens around it."""

    interval: timedelta | None = None  # None: never rotates on a schedule
    notify_before: timedelta = timedelta(0)
    backup: bool = False
    keep_versions: int | None = None  # retired (beyond primary) versions kept on complete

    def to_dict(self) -> dict[str, Any]:
        return {
            "interval": format_duration(self.interval) if self.interval else None,
            "notify_before": format_duration(self.notify_before),
            "backup": self.backup,
            "keep_versions": self.keep_versions,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RotationPolicy:
        return cls(
            interval=parse_duration(d["interval"]) if d.get("interval") else None,
            notify_before=parse_duration(d.get("notify_before") or "0s"),
            backup=bool(d.get("backup", False)),
            keep_versions=d.get("keep_versions"),
        )


@dataclass
class KeyVersion:
    """One version of a key. Material lives in the backend, never here."""

    version: int
    state: KeyState
    created: datetime
    key_type: KeyType | None = None  # set when the version's algorithm differs (migration)
    activated: datetime | None = None
    retired: datetime | None = None
    usage_count: int = 0
    destroy_after: datetime | None = None  # soft delete: material removed after this instant
    backend_ref: str | None = None  # e.g. the PKCS#11 object label

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": self.version, "state": self.state.value}
        d["created"] = iso(self.created)
        for name in ("activated", "retired", "destroy_after"):
            value = getattr(self, name)
            if value is not None:
                d[name] = iso(value)
        if self.key_type is not None:
            d["type"] = self.key_type.value
        if self.usage_count:
            d["usage_count"] = self.usage_count
        if self.backend_ref:
            d["backend_ref"] = self.backend_ref
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeyVersion:
        return cls(
            version=int(d["version"]),
            state=KeyState(d["state"]),
            created=from_iso(d["created"]),
            key_type=KeyType(d["type"]) if d.get("type") else None,
            activated=from_iso(d["activated"]) if d.get("activated") else None,
            retired=from_iso(d["retired"]) if d.get("retired") else None,
            usage_count=int(d.get("usage_count", 0)),
            destroy_after=from_iso(d["destroy_after"]) if d.get("destroy_after") else None,
            backend_ref=d.get("backend_ref"),
        )


@dataclass
class Key:
    """A named key: algorithm, purpose, policy, labels and its versions 1..n."""

    name: str
    type: KeyType
    usage: KeyUsage
    backend: str = "file"
    policy: RotationPolicy = field(default_factory=RotationPolicy)
    labels: dict[str, str] = field(default_factory=dict)
    versions: list[KeyVersion] = field(default_factory=list)
    created: datetime | None = None
    rotated: datetime | None = None
    min_decryption_version: int = 1
    rotation_stage: str | None = None  # "prepared" | "activated" during a staged rotation

    # -- versions -------------------------------------------------------------------------
    @property
    def primary(self) -> KeyVersion | None:
        """The version that encrypts and signs (None only for a fully destroyed key)."""
        for v in self.versions:
            if v.state is KeyState.PRIMARY:
                return v
        return None

    @property
    def primary_version(self) -> int | None:
        p = self.primary
        return p.version if p else None

    @property
    def latest_version(self) -> int:
        return max((v.version for v in self.versions), default=0)

    def version(self, number: int | None = None) -> KeyVersion:
        """A version by number (the primary when None); NotFoundError when unknown."""
        if number is None:
            p = self.primary
            if p is None:
                raise NotFoundError(f"key {self.name!r} has no primary version")
            return p
        for v in self.versions:
            if v.version == number:
                return v
        raise NotFoundError(
            f"key {self.name!r} has no version {number} "
            f"(versions: {', '.join(str(v.version) for v in self.versions) or 'none'})"
        )

    def type_of(self, version: KeyVersion) -> KeyType:
        """The algorithm of one version (versions made after a migration may differ)."""
        return version.key_type or self.type

    # -- rotation schedule ----------------------------------------------------------------
    @property
    def last_rotation(self) -> datetime | None:
        """When the current primary took over (its activation, else its creation)."""
        p = self.primary
        if p is None:
            return None
        return p.activated or p.created

    @property
    def next_rotation(self) -> datetime | None:
        last = self.last_rotation
        if last is None or self.policy.interval is None:
            return None
        return last + self.policy.interval

    def due(self, now: datetime) -> bool:
        """True when the key's rotation time has come (overdue or due now)."""
        nxt = self.next_rotation
        return nxt is not None and nxt <= now

    def in_notify_window(self, now: datetime) -> bool:
        """True when rotation is not due yet but within the policy's notify window."""
        nxt = self.next_rotation
        return nxt is not None and now < nxt <= now + self.policy.notify_before

    # -- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "type": self.type.value,
            "usage": self.usage.value,
            "backend": self.backend,
            "policy": self.policy.to_dict(),
            "labels": dict(self.labels),
            "created": iso(self.created) if self.created else None,
            "rotated": iso(self.rotated) if self.rotated else None,
            "min_decryption_version": self.min_decryption_version,
            "versions": [v.to_dict() for v in self.versions],
        }
        if self.rotation_stage:
            d["rotation_stage"] = self.rotation_stage
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Key:
        """Parse stored metadata; any malformation is an InvalidError (hostile input)."""
        try:
            key = cls(
                name=str(d["name"]),
                type=KeyType(d["type"]),
                usage=KeyUsage(d["usage"]),
                backend=str(d.get("backend", "file")),
                policy=RotationPolicy.from_dict(d.get("policy") or {}),
                labels={str(k): str(v) for k, v in (d.get("labels") or {}).items()},
                versions=[KeyVersion.from_dict(v) for v in d.get("versions", [])],
                created=from_iso(d["created"]) if d.get("created") else None,
                rotated=from_iso(d["rotated"]) if d.get("rotated") else None,
                min_decryption_version=int(d.get("min_decryption_version", 1)),
                rotation_stage=d.get("rotation_stage"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidError(f"malformed key metadata ({type(exc).__name__})") from None
        primaries = [v for v in key.versions if v.state is KeyState.PRIMARY]
        if len(primaries) > 1:
            raise InvalidError(f"key {key.name!r} has more than one primary version")
        return key
