"""Rotation, retention, destruction and backups as KeyManager operations.

A mixin of :class:`ekm.manager.KeyManager`: every method here works on the manager's
keystore, master key and audit log, under the keystore lock, and writes an audit record.
Decisions (which state follows which) live in :mod:`ekm.rotation.staged`; this module adds
material, persistence, backups and auditing around them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ekm.crypto.keytypes import KeyState, KeyType, parse_type, spec
from ekm.errors import EkmError, InvalidError, NotFoundError, StateError, UsageError
from ekm.model import Key
from ekm.rotation import backup as bk
from ekm.rotation import schedule, staged
from ekm.timeutil import instant, iso, parse_duration


class RotationResult(list):
    """A list of per-key results that can also be awaited.

    The old system's callers wrote ``await key_manager.prepare_rotation("all")``; ekm's
    operations are synchronous (they are file and crypto work), so awaiting one simply
    returns the finished result.
    """

    def __await__(self) -> Generator[Any, None, RotationResult]:
        return self
        yield  # pragma: no cover  (makes this a generator)


class RotationOps:
    """Rotation operations; mixed into KeyManager (which provides the attributes used)."""

    # -- selection --------------------------------------------------------------------------
    def _select(self, names: str | Iterable[str] | None) -> list[str]:
        if names is None or names == "all" or names == ["all"]:
            return self.keystore.names()
        if isinstance(names, str):
            names = [names]
        names = list(dict.fromkeys(getattr(n, "name", n) for n in names))
        known = set(self.keystore.names())
        for n in names:
            if n not in known:
                self.keystore.load(n)  # raises NotFoundError with the list of keys
        return names

    def _keep_versions(self, key: Key) -> int | None:
        """How many previous versions rotation leaves enabled; None (the default) disables
        none: old data keeps decrypting unless an operator sets a policy (issue 22.3)."""
        if key.policy.keep_versions is not None:
            return key.policy.keep_versions
        configured = self.config.get("rotation", "default_keep_versions")
        return None if configured is None else int(configured)

    # -- cron: what is due ------------------------------------------------------------------
    def rotation_check(self, *, now: datetime | None = None) -> schedule.CheckResult:
        """Due and upcoming keys from metadata alone (no master key, no passphrase)."""
        return schedule.check_meta(self.keystore.iter_meta(), instant(now))

    # -- one-step rotation --------------------------------------------------------------------
    def rotate(
        self,
        names: str | Iterable[str] | None = None,
        *,
        force: bool = False,
        dry_run: bool = False,
        to_type: str | KeyType | None = None,
        now: datetime | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> RotationResult:
        """Rotate due keys (named keys: now; ``force``: all or the named now).

        Returns one entry per key: ``{"name", "from_version", "to_version", "type",
        "reason", "backup"}``; with ``dry_run`` nothing is changed.
        """
        now = instant(now)
        explicit = names not in (None, "all", ["all"])
        new_type = None
        if to_type is not None:
            try:
                new_type = parse_type(getattr(to_type, "value", to_type))
            except ValueError as exc:
                raise UsageError(f"--to-type: {exc}") from None
            if not explicit:
                raise UsageError("--to-type needs the key NAME(s) to migrate")
        plan = []
        for name in self._select(names):
            key = self.keystore.load(name)
            if key.primary is None:
                if explicit:
                    raise StateError(
                        f"key {name!r} has no primary version (every version is "
                        "destroyed or disabled); it cannot rotate"
                    )
                continue
            if key.rotation_stage and not dry_run:
                if explicit:
                    staged.check_rotatable(key)
                continue
            reason = (
                "forced" if force else "requested" if explicit else "due" if key.due(now) else None
            )
            if reason is None:
                continue
            if new_type is not None:
                self._check_migration(key, new_type)
            plan.append(
                {
                    "name": name,
                    "from_version": key.primary_version,
                    "to_version": key.latest_version + 1,
                    "type": (new_type or key.type).value,
                    "reason": reason,
                    "backup": key.policy.backup,
                }
            )
        if dry_run or not plan:
            return RotationResult(plan)
        self.unlock()
        self.audit_log.ensure_writable()
        store = self.keystore
        with store.store.lock():
            store.forget()
            # Decide again under the lock: another ekm (an overlapping cron run) may have
            # rotated some of these keys while we waited.
            work: list[tuple[dict[str, Any], Key]] = []
            for entry in plan:
                key = store.load(entry["name"])
                due = force or explicit or key.due(now)
                if not due or key.primary is None or key.rotation_stage:
                    continue
                entry["from_version"] = key.primary_version
                entry["to_version"] = key.latest_version + 1
                work.append((entry, key))
            plan = [entry for entry, _ in work]
            backup_path = self._local_backup(
                [k for _, k in work if k.policy.backup], now, "pre-rotate"
            )
            for start in range(0, len(work), 256):
                self._rotate_batch(work[start : start + 256], now, new_type, backup_path)
                if progress:
                    progress(min(start + 256, len(work)), len(work))
            self._purge_expired(now)
        return RotationResult(plan)

    def _rotate_batch(
        self,
        work: list[tuple[dict[str, Any], Key]],
        now: datetime,
        new_type: KeyType | None,
        backup_path: Path | None,
    ) -> None:
        """Rotate up to 256 keys, and audit each rotation.

        File store: the records are written first (fail closed: no rotation without its
        record), then all documents are committed with one sync; if the commit fails nothing
        changed and the records say so. Shared (Vault) store: another host may rotate the same
        key at the same time, so the version is only known after the check-and-set write; each
        record follows its write.
        """

        def record(entry: dict[str, Any], result: str, **extra: Any) -> dict[str, Any]:
            return {
                "op": "rotate",
                "key": entry["name"],
                "version": entry["to_version"],
                "from_version": entry["from_version"],
                "type": entry["type"],
                "reason": entry["reason"],
                "result": result,
                "now": now,
                **extra,
            }

        def step(key: Key) -> dict[str, Any]:
            new = staged.rotate(key, now, keep_versions=self._keep_versions(key), to_type=new_type)
            return {"add_material": self._make_material(key, new)}

        batched = self.keystore.store.kind == "file"
        if batched:
            self.audit_log.append_many([record(entry, "ok") for entry, _ in work])
        done = 0
        try:
            with self.keystore.batch():
                for entry, key in work:
                    key = self.keystore.mutate(key.name, step)  # re-reads on a CAS conflict
                    entry["to_version"] = key.primary_version
                    entry["backup"] = (
                        str(backup_path) if key.policy.backup and backup_path else None
                    )
                    if not batched:
                        self.audit_log.append_many([record(entry, "ok")])
                    done += 1
        except EkmError as exc:
            failed = work if batched else work[done:]
            self.audit_log.append_many(
                [record(e, "error", error=type(exc).__name__) for e, _ in failed[:1]]
                + [record(e, "not done") for e, _ in failed[1:]]
            )
            raise

    def _check_migration(self, key: Key, new_type: KeyType) -> None:
        old, new = spec(key.type), spec(new_type)
        if key.usage not in new.usages:
            raise UsageError(
                f"cannot migrate {key.name!r} to {new_type.value}: a "
                f"{new_type.value} key cannot be used for {key.usage.value}"
            )
        if old.asymmetric != new.asymmetric:
            raise UsageError(
                f"cannot migrate {key.name!r} from {key.type.value} to "
                f"{new_type.value}: symmetric and asymmetric types do not mix"
            )
        if key.backend == "pkcs11" and new.post_quantum:
            raise InvalidError(
                f"backend pkcs11 cannot hold {new_type.value} keys (the token "
                "has no ML-KEM/ML-DSA mechanisms)"
            )

    # -- staged rotation --------------------------------------------------------------------
    def _transition(
        self,
        names: str | Iterable[str] | None,
        op: str,
        fn: Callable[[Key, datetime], Any],
        now: datetime | None,
    ) -> RotationResult:
        now = instant(now)
        selected = self._select(names)
        self.unlock()
        self.audit_log.ensure_writable()
        store = self.keystore
        results = RotationResult()
        with store.store.lock():
            store.forget()
            for name in selected:
                done: dict[str, int] = {}

                def step(key: Key, done: dict[str, int] = done) -> dict[str, Any]:
                    material, done["version"] = fn(key, now)
                    return {"add_material": material}

                try:
                    key = store.mutate(name, step)  # re-reads and retries on a CAS conflict
                except StateError as exc:
                    self.audit_log.append(op, key=name, result="error", error="StateError", now=now)
                    raise exc from None
                version = done["version"]
                self.audit_log.append(
                    op, key=name, version=version, now=now, stage=key.rotation_stage
                )
                results.append(
                    {
                        "name": name,
                        "version": version,
                        "primary_version": key.primary_version,
                        "stage": key.rotation_stage,
                        "versions": {v.version: v.state.value for v in key.versions},
                    }
                )
        return results

    def prepare_rotation(
        self,
        names: str | Iterable[str] | None = "all",
        *,
        to_type: str | KeyType | None = None,
        now: datetime | None = None,
    ) -> RotationResult:
        """Stage 1: add a ``pending`` version to each key (published, not yet used)."""
        try:
            new_type = parse_type(getattr(to_type, "value", to_type)) if to_type else None
        except ValueError as exc:
            raise UsageError(f"--to-type: {exc}") from None
        backed_up: list[str] = []

        def fn(key: Key, when: datetime) -> tuple[dict[int, bytes], int]:
            if new_type is not None:
                self._check_migration(key, new_type)
            if key.policy.backup:
                backed_up.append(key.name)
            new = staged.prepare(key, when, to_type=new_type)
            return self._make_material(key, new), new.version

        return self._transition(names, "rotate.prepare", fn, now)

    def activate_rotation(
        self, names: str | Iterable[str] | None = "all", *, now: datetime | None = None
    ) -> RotationResult:
        """Stage 2: the pending version becomes primary; the old primary stays ``active``."""
        selected = self._select(names)
        now = instant(now)
        self.unlock()
        with self.keystore.store.lock():
            self.keystore.forget()
            keys = [self.keystore.load(n) for n in selected]
            self._local_backup([k for k in keys if k.policy.backup], now, "pre-activate")
        return self._transition(
            selected, "rotate.activate", lambda k, t: ({}, staged.activate(k, t).version), now
        )

    def complete_rotation(
        self, names: str | Iterable[str] | None = "all", *, now: datetime | None = None
    ) -> RotationResult:
        """Stage 3: retire versions beyond the retention window; no rollback after this."""
        return self._transition(
            names,
            "rotate.complete",
            lambda k, t: (
                {},
                (staged.complete(k, t, self._keep_versions(k)), k.primary_version)[1],
            ),
            now,
        )

    def rollback_rotation(
        self, names: str | Iterable[str], *, now: datetime | None = None
    ) -> RotationResult:
        """Undo a prepared or activated rotation: the previous primary is primary again."""
        return self._transition(
            names, "rotate.rollback", lambda k, t: ({}, staged.rollback(k, t).version), now
        )

    # Old API names --------------------------------------------------------------------------
    def start_migration(
        self, new_keys: Iterable[Any] | str | None = "all", *, now: datetime | None = None
    ) -> RotationResult:
        """Old name of :meth:`activate_rotation` (accepts what prepare_rotation returned)."""
        if isinstance(new_keys, list):
            new_keys = [k["name"] if isinstance(k, dict) else k for k in new_keys]
        return self.activate_rotation(new_keys, now=now)

    def complete_rotation_with_rollback(
        self,
        names: str | Iterable[str] | None = None,
        *,
        health_check: Callable[[], bool | Awaitable[bool]] | None = None,
        now: datetime | None = None,
    ) -> RotationResult:
        """Complete activated rotations, or roll them back if ``health_check`` fails.

        ``health_check`` (sync or async) is the caller's proof that the new keys work in
        production; when it returns False or raises, every rotation is rolled back.
        """
        selected = [
            n
            for n in self._select(names or "all")
            if self.keystore.load(n).rotation_stage == staged.ACTIVATED
        ]
        if not selected:
            return RotationResult()
        ok = True
        if health_check is not None:
            try:
                result = health_check()
                if hasattr(result, "__await__"):
                    import asyncio

                    result = asyncio.run(_await(result))
                ok = bool(result)
            except Exception:  # the caller's check failed: that is the signal to roll back
                ok = False
        if ok:
            return self.complete_rotation(selected, now=now)
        return self.rollback_rotation(selected, now=now)

    # -- retention: destroy / recover / purge -------------------------------------------------
    def destroy_version(
        self,
        name: str,
        version: int,
        *,
        recovery_window: str | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Crypto-shred one version: material removed, metadata kept as ``destroyed``.

        With a recovery window (7-30 days) the material stays until the window ends, and
        :meth:`recover_version` can undo it. The primary can never be destroyed.
        """
        now = instant(now)
        window = recovery_window or self.config.get("rotation", "soft_delete_window")
        try:
            delta = parse_duration(window)
        except ValueError as exc:
            raise UsageError(f"--recovery-window: {exc}") from None
        if delta and not timedelta(days=7) <= delta <= timedelta(days=30):
            raise UsageError(f"--recovery-window {window}: expected 0s or 7d to 30d")
        self.unlock()
        self.audit_log.ensure_writable()
        store = self.keystore
        shredded: set[int] = set()

        def change(key: Key) -> dict[str, Any]:
            kv = key.version(version)
            if kv.state is KeyState.PRIMARY:
                raise StateError(
                    f"version {version} is the primary of {name!r}; rotate first, "
                    "then destroy the old version"
                )
            if kv.state is KeyState.DESTROYED and kv.destroy_after is None:
                raise StateError(f"key {name!r} version {version} is already destroyed")
            if kv.state is KeyState.PENDING:
                raise StateError(
                    f"version {version} of {name!r} is pending; roll the rotation back instead"
                )
            kv.state = KeyState.DESTROYED
            kv.retired = kv.retired or now
            if delta:
                kv.destroy_after = now + delta
                return {}
            kv.destroy_after = None
            if version not in shredded:  # once, even if a CAS conflict re-runs this
                self._destroy_backend_object(key, kv)
                shredded.add(version)
            return {"drop_material": {version}}

        with store.store.lock():
            store.forget()
            # mutate: on a shared (Vault) store another host may write the key meanwhile
            kv = store.mutate(name, change).version(version)
            self.audit_log.append(
                "key.destroy",
                key=name,
                version=version,
                now=now,
                recovery_until=iso(kv.destroy_after) if kv.destroy_after else None,
            )
        return {
            "name": name,
            "version": version,
            "state": "destroyed",
            "material_removed": not delta,
            "recoverable_until": iso(kv.destroy_after) if kv.destroy_after else None,
        }

    def recover_version(
        self, name: str, version: int, *, now: datetime | None = None
    ) -> dict[str, Any]:
        """Undo a soft delete inside its recovery window (the version becomes ``disabled``)."""
        now = instant(now)
        self.unlock()
        self.audit_log.ensure_writable()  # fail closed: no unlogged return of a version
        store = self.keystore

        def change(key: Key) -> None:
            kv = key.version(version)
            if kv.state is not KeyState.DESTROYED or kv.destroy_after is None:
                raise StateError(
                    f"key {name!r} version {version} is {kv.state.value}, not "
                    "scheduled for destruction"
                )
            if kv.destroy_after <= now or not store.has_material(name, version):
                raise StateError(
                    f"the recovery window of {name!r} version {version} ended at "
                    f"{iso(kv.destroy_after)}; the material is gone"
                )
            kv.state, kv.destroy_after = KeyState.DISABLED, None

        with store.store.lock():
            store.forget()
            store.mutate(name, change)  # re-decides on fresh state after a CAS conflict
            self.audit_log.append("key.recover", key=name, version=version, now=now)
        return {"name": name, "version": version, "state": "disabled"}

    def enable_version(
        self, name: str, version: int, *, now: datetime | None = None
    ) -> dict[str, Any]:
        """Re-enable a ``disabled`` version for decrypt/verify (it becomes ``active``)."""
        now = instant(now)
        self.unlock()
        self.audit_log.ensure_writable()  # fail closed: no unlogged re-enabling
        store = self.keystore

        def change(key: Key) -> None:
            kv = key.version(version)
            if kv.state is not KeyState.DISABLED:
                raise StateError(
                    f"key {name!r} version {version} is {kv.state.value}, not disabled"
                )
            kv.state, kv.retired = KeyState.ACTIVE, None
            key.min_decryption_version = min(key.min_decryption_version, version)

        with store.store.lock():
            store.forget()
            store.mutate(name, change)  # re-decides on fresh state after a CAS conflict
            self.audit_log.append("key.enable", key=name, version=version, now=now)
        return {"name": name, "version": version, "state": "active"}

    def _destroy_backend_object(self, key: Key, kv: Any) -> None:
        if key.backend == "pkcs11" and kv.backend_ref:
            self.hsm_token().destroy(kv.backend_ref)

    def _purge_expired(self, now: datetime) -> list[tuple[str, int]]:
        """Shred material of soft-deleted versions whose recovery window has ended.

        Called with the lock held by rotation runs and ``ekm keys purge``. Candidates are
        found from the raw metadata (a rotation run over 100,000 keys must not build every Key);
        the records are written first, then each key is changed through ``mutate`` (a Vault
        conflict re-reads), then HSM objects are destroyed once the document no longer needs
        them.
        """
        purged: list[tuple[str, int]] = []
        store = self.keystore

        def expired_of(key: Key) -> list[Any]:
            return [
                v
                for v in key.versions
                if v.state is KeyState.DESTROYED
                and v.destroy_after is not None
                and v.destroy_after <= now
            ]

        for name, meta in store.iter_meta():
            if not any(
                isinstance(v, dict) and v.get("destroy_after") for v in meta.get("versions") or []
            ):
                continue
            expired = expired_of(store.load(name))
            if not expired:
                continue
            self.audit_log.append_many(
                [
                    {
                        "op": "key.purge",
                        "key": name,
                        "version": v.version,
                        "result": "ok",
                        "now": now,
                    }
                    for v in expired
                ]
            )
            gone: list[Any] = []

            def change(key: Key, gone: list[Any] = gone) -> dict[str, Any]:
                gone[:] = expired_of(key)
                for v in gone:
                    v.destroy_after = None
                return {"drop_material": {v.version for v in gone}}

            key = store.mutate(name, change)
            for v in gone:
                self._destroy_backend_object(key, v)
                purged.append((name, v.version))
        return purged

    def purge_destroyed(self, *, now: datetime | None = None) -> list[tuple[str, int]]:
        """Shred every soft-deleted version whose recovery window has ended (``keys purge``).

        Refused up front when the audit log cannot take the records: shredding is
        irreversible, so it must never happen unlogged.
        """
        now = instant(now)
        self.unlock()
        self.audit_log.ensure_writable()
        with self.keystore.store.lock():
            self.keystore.forget()
            return self._purge_expired(now)

    # -- algorithm migration --------------------------------------------------------------
    def plan_algorithm_migration(
        self, plan: dict[str, Any] | None = None, *, now: datetime | None = None
    ) -> dict[str, Any]:
        """Validate a migration plan and say what it would do (changes nothing).

        ``plan`` is the old system's shape: ``{"from_algorithm": "RSA-2048", "to_algorithm":
        "RSA-4096", "migration_period_days": 90, "rollback_capability": True}``; optional
        ``keys`` limits it to named keys. Without ``plan``, the ``[[migration]]`` tables of
        ekm.toml are used.
        """
        now = instant(now)
        plans = [plan] if plan is not None else list(self.config.raw.get("migration", []))
        out = []
        for p in plans:
            if not isinstance(p, dict):
                raise InvalidError("a migration plan must be a table")
            src, dst = (
                _algo(p.get("from_algorithm"), "from_algorithm"),
                _algo(p.get("to_algorithm"), "to_algorithm"),
            )
            days = p.get("migration_period_days", 90)
            if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
                raise InvalidError("migration_period_days must be an integer from 1 to 3650")
            wanted = p.get("keys")
            affected = []
            for key in self.list_keys():
                if key.type is not src or (wanted and key.name not in wanted):
                    continue
                problem = None
                try:
                    self._check_migration(key, dst)
                except EkmError as exc:
                    problem = str(exc)
                affected.append({
                    "name": key.name, "from_version": key.primary_version,
                    "new_version": key.latest_version + 1,
                    "old_versions_readable_until": iso(now + timedelta(days=days)),
                    "ok": problem is None, "problem": problem,
                    "command": f"ekm rotate {key.name} --to-type {dst.value}",
                })  # fmt: skip
            out.append(
                {
                    "from": src.value,
                    "to": dst.value,
                    "period_days": days,
                    "rollback": bool(p.get("rollback_capability", True)),
                    "keys": affected,
                    "ok": all(a["ok"] for a in affected),
                }
            )
        return RotationResult(out) if plan is None else out[0]

    # -- backups ----------------------------------------------------------------------------
    def _bundle_keys(self, names: Iterable[str]) -> list[bk.BundleKey]:
        out = []
        for name in names:
            key = self.keystore.load(name)
            material = {
                v.version: self.keystore.material(name, v.version)
                for v in key.versions
                if self.keystore.has_material(name, v.version)
            }
            out.append(bk.BundleKey(key, material))
        return out

    def _local_backup(self, keys: list[Key], now: datetime, reason: str) -> Path | None:
        """Write a local (root-key) backup of ``keys`` before they change (lock held)."""
        if not keys:
            return None
        from ekm.fsutil import atomic_write, ensure_private_dir

        directory = self._backup_dir()
        ensure_private_dir(directory, home=self.home)
        data = bk.seal(
            self._bundle_keys(k.name for k in keys),
            created=now,
            source_home=str(self.home),
            mode="local",
            local_key=self._root.derive("local-backup"),
        )
        path = directory / f"{reason}-{now.strftime('%Y%m%dT%H%M%S')}-{len(keys)}keys.ekmbak"
        n = 1
        while path.exists():
            n += 1
            path = path.with_name(f"{path.stem}-{n}.ekmbak")
        atomic_write(path, data, home=self.home)
        self.audit_log.append(
            "backup.create", keys=len(keys), names=[k.name for k in keys], mode="local",
            path=str(path), reason=reason, now=now,
        )  # fmt: skip
        return path

    def _backup_dir(self) -> Path:
        d = Path(self.config.get("backup", "dir"))
        return d if d.is_absolute() else self.home / d

    def backup_create(
        self,
        names: Iterable[str] | None = None,
        *,
        mode: str = "passphrase",
        passphrase: str | None = None,
        recipient: str | None = None,
        path: Path | None = None,
        now: datetime | None = None,
    ) -> bytes:
        """An encrypted bundle of ``names`` (all keys by default), written to ``path`` if given.

        ``recipient`` is a key name in this keystore (x25519, ml-kem-*, x25519-ml-kem-768) or
        an ``ekm-recipient:...`` string exported from an air-gapped home. The audit record
        names the keys and the file, so `ekm audit` can credit the backup.
        """
        now = instant(now)
        self.unlock()
        self.audit_log.ensure_writable()
        selected = self._select(names or "all")
        rcpt = None
        if mode == "recipient":
            if not recipient:
                raise UsageError("--recipient NAME (or an ekm-recipient:... string) is needed")
            rcpt = self.recipient_public(recipient)
        mk = self.config.sections["master_key"]
        with self.keystore.store.lock():
            self.keystore.forget()
            data = bk.seal(
                self._bundle_keys(selected),
                created=now,
                source_home=str(self.home),
                mode=mode,
                passphrase=passphrase,
                recipient=rcpt,
                argon2=(mk["argon2_memory_kib"], mk["argon2_iterations"], mk["argon2_parallelism"]),
                local_key=self._root.derive("local-backup"),
            )
            if path is not None:
                from ekm.fsutil import atomic_write

                atomic_write(path, data, home=self.home)
            self.audit_log.append(
                "backup.create", keys=len(selected), names=selected, mode=mode, now=now,
                path=str(path) if path is not None else None,
            )  # fmt: skip
        return data

    def recipient_public(self, recipient: str) -> tuple[str, bytes, str]:
        """(key type, raw public key, id) for a key name or an ``ekm-recipient:`` string."""
        import base64

        if recipient.startswith("ekm-recipient:"):
            try:
                # the id itself holds a colon (NAME:vN): type from the left, key from the right
                _, type_name, rest = recipient.strip().split(":", 2)
                rid, b64 = rest.rsplit(":", 1)
                raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
                key_type = parse_type(type_name)
            except ValueError:
                raise UsageError(
                    "malformed recipient string; expected ekm-recipient:TYPE:ID:BASE64URL"
                ) from None
            if spec(key_type).family not in ("ecdh", "ml-kem", "hybrid-kem"):
                raise UsageError(f"a {key_type.value} key cannot be a recipient")
            return key_type.value, raw, rid
        self.unlock()
        key = self.keystore.load_shared(recipient)  # read-only
        cache = self.__dict__.setdefault("_recipient_cache", {})
        hit = cache.get(recipient)
        if hit is not None and hit[0] is key:  # same document: same primary, same public key
            return hit[1]
        if spec(key.type).family not in ("ecdh", "ml-kem", "hybrid-kem"):
            raise UsageError(
                f"key {recipient!r} ({key.type.value}) cannot be a recipient; use an "
                "x25519, ml-kem-768/1024 or x25519-ml-kem-768 key"
            )
        kv = key.version()
        key_type = key.type_of(kv)
        from ekm.crypto import pq

        material = self.keystore.material(recipient, kv.version)
        if key_type is KeyType.X25519:
            from cryptography.hazmat.primitives import serialization as ser

            pub = ser.load_der_private_key(material, None).public_key().public_bytes_raw()
        else:
            pub = pq.public_bytes(key_type, material)
        result = (key_type.value, pub, f"{recipient}:v{kv.version}")
        cache[recipient] = (key, result)
        return result

    def recipient_string(self, name: str) -> str:
        """The ``ekm-recipient:TYPE:ID:BASE64URL`` text that others seal backups to."""
        import base64

        key_type, raw, rid = self.recipient_public(name)
        return f"ekm-recipient:{key_type}:{rid}:" + base64.urlsafe_b64encode(raw).decode().rstrip(
            "="
        )

    def _open_bundle(self, data: bytes, passphrase: str | None, identity: str | None) -> bk.Bundle:
        header, _, _ = bk.read_header(data)
        ident = None
        local_key = None
        if header["mode"] == "recipient" and identity:
            key = self.keystore.load(identity)
            ident = (key.type.value, self.material(identity, key.version().version))
        if header["mode"] == "local":
            self.unlock()
            local_key = self._root.derive("local-backup")
        mk_memory = int(self.config.get("master_key", "argon2_memory_kib"))
        return bk.open_bundle(
            data,
            passphrase=passphrase,
            identity=ident,
            local_key=local_key,
            max_memory_kib=max(mk_memory, bk.MAX_ARGON2_MEMORY_KIB),
        )

    def backup_verify(
        self, data: bytes, *, passphrase: str | None = None, identity: str | None = None
    ) -> dict[str, Any]:
        """Authenticate a bundle and check every version's material has the right shape."""
        from ekm.crypto import material as mat

        bundle = self._open_bundle(data, passphrase, identity)
        keys = []
        for item in bundle.keys:
            for version, secret in item.material.items():
                kv = item.key.version(version)
                if item.key.backend != "pkcs11":
                    mat.check_material(item.key.type_of(kv), secret)
            keys.append(
                {
                    "name": item.key.name,
                    "type": item.key.type.value,
                    "versions": len(item.key.versions),
                    "with_material": sorted(item.material),
                }
            )
        return {
            "created": iso(bundle.created),
            "mode": bundle.header["mode"],
            "source_home": bundle.source_home,
            "keys": keys,
        }

    def backup_restore(
        self,
        data: bytes,
        *,
        passphrase: str | None = None,
        identity: str | None = None,
        force: bool = False,
        names: Iterable[str] | None = None,
        now: datetime | None = None,
        resurrect_destroyed: bool = False,
    ) -> list[dict[str, Any]]:
        """Restore keys from a bundle into this home.

        A key whose local copy has newer versions than the bundle is refused unless ``force``.
        Versions destroyed here after the bundle was made stay destroyed (with or without
        ``force``) unless ``resurrect_destroyed``; the audit record lists them either way.
        """
        now = instant(now)
        bundle = self._open_bundle(data, passphrase, identity)
        wanted = set(names or [])
        items = [i for i in bundle.keys if not wanted or i.key.name in wanted]
        if wanted - {i.key.name for i in items}:
            raise NotFoundError(
                "not in the backup: " + ", ".join(sorted(wanted - {i.key.name for i in items}))
            )
        self.unlock()
        self.audit_log.ensure_writable()
        store = self.keystore
        results = []
        with store.store.lock():
            store.forget()
            for item in items:
                name = item.key.name
                exists = store.exists(name)
                kept: list[int] = []
                resurrected: list[int] = []
                if exists:
                    local = store.load(name)
                    if resurrect_destroyed:
                        resurrected = [
                            v.version
                            for v in local.versions
                            if v.state is KeyState.DESTROYED
                            and any(
                                b.version == v.version and b.state is not KeyState.DESTROYED
                                for b in item.key.versions
                            )
                        ]
                    else:
                        kept = bk.keep_destroyed(item, local)
                if exists and not force:
                    if local.latest_version > item.key.latest_version:
                        raise StateError(
                            f"key {name!r} here has version {local.latest_version}, newer than "
                            f"the backup's {item.key.latest_version}; pass --force to overwrite"
                        )
                    if local.to_dict() == item.key.to_dict():
                        if kept:  # the restore was asked for: say what it declined to undo
                            self.audit_log.append(
                                "backup.restore", key=name, version=item.key.primary_version,
                                now=now, replaced=False, unchanged=True, kept_destroyed=kept,
                            )  # fmt: skip
                        results.append({"name": name, "result": "unchanged"})
                        continue
                # one atomic write replaces the old document: a crash leaves old or new
                store.save(item.key, add_material=item.material, create=not exists, replace=exists)
                self.audit_log.append(
                    "backup.restore",
                    key=name,
                    version=item.key.primary_version,
                    now=now,
                    replaced=exists,
                    **({"kept_destroyed": kept} if kept else {}),
                    **({"resurrected": resurrected} if resurrected else {}),
                )
                results.append({"name": name, "result": "replaced" if exists else "restored"})
        return results


def _algo(value: Any, field: str) -> KeyType:
    """Parse the old system's algorithm spellings (RSA-2048, AES-256-GCM, Dilithium...)."""
    if not isinstance(value, str):
        raise InvalidError(f"migration plan: {field} is missing")
    v = value.strip().lower()
    aliases = {
        "crystals-dilithium": "ml-dsa-65",
        "dilithium": "ml-dsa-65",
        "crystals-kyber": "ml-kem-768",
        "kyber": "ml-kem-768",
        "ecdsa-p256": "ec-p256",
        "ecdsa-p384": "ec-p384",
        "x25519+ml-kem-768": "x25519-ml-kem-768",
        "ed25519+ml-dsa-65": "ed25519-ml-dsa-65",
        "hmac-sha-256": "hmac-sha256",
    }
    try:
        return parse_type(aliases.get(v, v))
    except ValueError as exc:
        raise InvalidError(f"migration plan: {field}: {exc}") from None


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
