"""The monitor's checks: one function per concern, each returning Events.

A check looks, it never repairs: it reads the home with ``os.lstat`` and the keystore with the
manager's own readers, and reports what it finds as :class:`~ekm.monitor.events.Event`. Every
input here (key files, the audit log, the config) may have been tampered with, so a check turns
each failure into an event about the thing that failed, and one broken key never hides the
others. A check that itself crashes on hostile input is reported as ``monitor.check_failed``
by :class:`Checker`, and the remaining checks still run.

State between passes lives in :class:`CheckState` (keys seen before, the highest audit-log
sequence number seen): that is how a deleted key file or a truncated-then-regrown audit log is
told apart from a home that never had them.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ekm.crypto.keytypes import KeyType, SecurityLevel
from ekm.errors import EkmError, IntegrityError, UnsafePermissionsError
from ekm.monitor.events import Event, make_fingerprint
from ekm.timeutil import from_iso, iso, parse_duration

log = logging.getLogger("ekm.monitor.checks")

# Algorithms whose safe number of messages per key is bounded by random 96-bit nonces
# (NIST SP 800-38D 8.3: at most 2**32 invocations per key).
GCM_LIMIT = 2**32
NONCE_LIMITED = frozenset({KeyType.AES_128_GCM, KeyType.AES_256_GCM})

# Audit-log operations whose failure counts towards the failed-operation burst.
FAILURE_RESULTS = frozenset({"denied", "error", "failed", "invalid", "unknown"})
FAILURE_OPS = ("unlock", "decrypt", "unwrap", "verify", "apikey", "key.", "token", "jwt")
MAX_WALK = 10_000  # entries in the home walked per pass; more is hostile or a mistake
ATOMIC_TMP_GRACE = 120  # seconds an atomic_write temporary file may exist before it is odd


@dataclass
class CheckState:
    """What one pass remembers for the next (a fresh state per monitor)."""

    known_keys: set[str] = field(default_factory=set)
    max_audit_seq: int = 0
    unlock_tried: bool = False
    unlock_error: str | None = None


@dataclass
class CheckContext:
    """Everything a check needs: the manager, the time, the state and shared findings."""

    manager: Any
    now: datetime
    state: CheckState
    keys: dict[str, Any] = field(default_factory=dict)  # name -> Key, loaded this pass
    unreadable: set[str] = field(default_factory=set)  # key names whose file failed to load
    backends: dict[str, bool] = field(default_factory=dict)
    listed: bool = False  # the keystore could be listed this pass (check_deleted relies on it)

    def event(
        self,
        check: str,
        severity: SecurityLevel,
        subject: str,
        message: str,
        **details: Any,
    ) -> Event:
        return Event(check, severity, subject, message, self.now, details=details)


def _home_rel(ctx: CheckContext, path: Path) -> str:
    try:
        return str(path.relative_to(ctx.manager.home))
    except ValueError:
        return str(path)


def _walk(top: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """``lstat`` every entry under ``top`` (not following links), ``top`` first."""
    try:
        yield top, os.lstat(top)
    except OSError:
        return
    count = 0
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in entries:
            count += 1
            if count > MAX_WALK:
                log.warning("more than %d entries under %s; the walk stops there", MAX_WALK, top)
                return
            p = directory / name
            try:
                st = os.lstat(p)
            except OSError:
                continue
            yield p, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(p)


# -- files ------------------------------------------------------------------------------------


def check_permissions(ctx: CheckContext) -> list[Event]:
    """Anything in the home that group or others can reach, or that someone else owns.

    ssh's rule, applied continuously: key documents, the master key file, the audit log and the
    directories holding them must be 0600/0700 and owned by the user running ekm.
    """
    events = []
    uid = os.geteuid()
    for path, st in _walk(ctx.manager.home):
        if stat.S_ISLNK(st.st_mode):
            continue  # reported by check_unexpected: a link is not ours, whatever its mode
        rel = _home_rel(ctx, path)
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            want = "0700" if stat.S_ISDIR(st.st_mode) else "0600"
            events.append(
                ctx.event(
                    "files.permissions",
                    SecurityLevel.HIGH,
                    rel,
                    f"{rel} has mode {mode:04o}: group or others can access it "
                    f"(run: chmod {want} {path})",
                    path=str(path),
                    mode=f"{mode:04o}",
                )
            )
        if st.st_uid != uid:
            events.append(
                ctx.event(
                    "files.owner",
                    SecurityLevel.HIGH,
                    rel,
                    f"{rel} is owned by uid {st.st_uid}, not by the user running ekm ({uid}); "
                    f"restore its owner with chown",
                    path=str(path),
                    uid=st.st_uid,
                )
            )
    events.extend(_parent_events(ctx))
    return events


def _parent_events(ctx: CheckContext) -> list[Event]:
    """Directories above the home through which another user could swap the home's files."""
    from ekm.storage.paths import unsafe_ancestors

    return [
        ctx.event(
            "files.parent",
            SecurityLevel.HIGH,
            "home parent",
            f"{directory}, above the home, is {why}: another user could replace the home "
            "or its files (remove their write access, or move the home)",
            path=str(directory),
        )
        for directory, why in unsafe_ancestors(ctx.manager.home)
    ]


def _is_fresh_atomic_tmp(name: str, st: os.stat_result, now: datetime) -> bool:
    """A temporary file of :func:`ekm.fsutil.atomic_write` in flight (a rotation writing)."""
    if not (name.startswith(".") and name.endswith(".tmp")) or not stat.S_ISREG(st.st_mode):
        return False
    return now.timestamp() - st.st_mtime < ATOMIC_TMP_GRACE


def check_unexpected(ctx: CheckContext) -> list[Event]:
    """Files in the keystore directory that are not key documents, and any symbolic link.

    An attacker's planted file, a stray editor backup (which holds a key document), or a
    symlink pointing elsewhere: none belongs in ``keys/``.
    """
    events = []
    keys_dir = ctx.manager.layout.keys_dir
    try:
        names = sorted(os.listdir(keys_dir))
    except FileNotFoundError:
        return events
    except OSError as exc:
        return [
            ctx.event(
                "files.permissions",
                SecurityLevel.HIGH,
                "keys",
                f"cannot list {keys_dir} ({exc.strerror}); restore its mode 0700 and owner",
                path=str(keys_dir),
            )
        ]
    for name in names:
        path = keys_dir / name
        try:
            st = os.lstat(path)
        except OSError:
            continue
        odd = stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode)
        odd = odd or not name.endswith(".json") or name.startswith(".")
        if odd and not _is_fresh_atomic_tmp(name, st, ctx.now):
            kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "file"
            events.append(
                ctx.event(
                    "files.unexpected",
                    SecurityLevel.HIGH if stat.S_ISLNK(st.st_mode) else SecurityLevel.MEDIUM,
                    f"keys/{name}"[:200],
                    f"unexpected {kind} keys/{name[:200]} in the keystore; find out who put it "
                    "there, then remove it",
                    path=str(path)[:500],
                )
            )
    # A link elsewhere in the home (in place of audit.log or master.key) is as suspicious.
    for path, st in _walk(ctx.manager.home):
        if stat.S_ISLNK(st.st_mode) and path.parent != keys_dir:
            rel = _home_rel(ctx, path)
            events.append(
                ctx.event(
                    "files.unexpected",
                    SecurityLevel.HIGH,
                    rel,
                    f"{rel} is a symbolic link; ekm never creates links: remove it and restore "
                    "the file from a backup",
                    path=str(path)[:500],
                )
            )
    return events


def check_deleted(ctx: CheckContext) -> list[Event]:
    """Key documents, the master key or its metadata gone since the previous pass."""
    mgr = ctx.manager
    events = []
    present = set(ctx.keys) | ctx.unreadable
    gone = ctx.state.known_keys - present if ctx.listed else set()
    for name in sorted(gone):
        events.append(
            ctx.event(
                "files.deleted",
                SecurityLevel.CRITICAL,
                name,
                f"key {name!r} disappeared from the keystore; restore it from a backup "
                "(ekm backup restore)",
                key=name,
            )
        )
    if ctx.listed and not events:
        # Only a complete view becomes the baseline; a deletion stays reported until restored.
        ctx.state.known_keys = present
    else:
        ctx.state.known_keys |= present
    if not mgr.layout.master_meta.exists():
        events.append(
            ctx.event(
                "files.deleted",
                SecurityLevel.CRITICAL,
                "master.json",
                "master.json disappeared from the home; restore it from a backup",
            )
        )
    mk = mgr.config.sections["master_key"]
    if mk["source"] == "file":
        key_file = Path(mk["key_file"])
        key_file = key_file if key_file.is_absolute() else mgr.home / key_file
        if not os.path.lexists(key_file):
            events.append(
                ctx.event(
                    "files.deleted",
                    SecurityLevel.CRITICAL,
                    _home_rel(ctx, key_file),
                    f"the master key file {key_file} is missing; restore it from a backup, "
                    "or no key can be read",
                )
            )
    return events


def _try_unlock(ctx: CheckContext) -> str | None:
    """Unlock when it needs no prompt; None when unlocked, else why the MAC check is skipped.

    Tried once per monitor: a wrong EKM_PASSPHRASE must not write a denied record every pass
    (that would itself look like a brute-force burst).
    """
    mgr = ctx.manager
    if mgr.unlocked:
        return None
    st = ctx.state
    if st.unlock_tried and st.unlock_error is not None:
        return st.unlock_error
    # Tried and succeeded, yet locked now: another manager (a reload) or a lock(). Unlock
    # again; answering "unlocked" would report every key whose material is read as tampered.
    st.unlock_tried = True
    from ekm import masterkey

    source = masterkey.read_meta(mgr.home)["source"]
    if source == "passphrase" and not (mgr._passphrase or mgr.env.get("EKM_PASSPHRASE")):
        st.unlock_error = "the master key is passphrase-derived and EKM_PASSPHRASE is not set"
        return st.unlock_error
    try:
        mgr.unlock()
    except UnsafePermissionsError:
        st.unlock_tried = False  # not a wrong secret: try again once the modes are fixed
        return "the home's permissions are unsafe (see files.permissions)"
    except IntegrityError:
        st.unlock_error = "the master key could not be unlocked (wrong passphrase or key file?)"
    except EkmError as exc:
        st.unlock_error = f"the master key could not be unlocked ({type(exc).__name__})"
    return st.unlock_error


def check_integrity(ctx: CheckContext) -> list[Event]:
    """Every key document's MAC and every version's material (needs the master key).

    Locked, the documents are still parsed (a truncated or swapped file is caught), and an INFO
    event says the MAC check was skipped, so a locked monitor never passes silently.
    """
    events = []
    why_locked = _try_unlock(ctx)
    if why_locked:
        events.append(
            ctx.event(
                "integrity.skipped",
                SecurityLevel.INFO,
                "keystore",
                f"keystore MAC check skipped: {why_locked}",
            )
        )
    ctx.keys.clear()
    ctx.unreadable.clear()
    try:
        store = ctx.manager.keystore
        store.forget()
        names = store.names()
    except UnsafePermissionsError:
        # The keystore refuses an unsafe home or keys/ (check_permissions reports the modes).
        return [
            ctx.event(
                "integrity.skipped",
                SecurityLevel.INFO,
                "keystore",
                "keystore check skipped: the keystore refuses unsafe permissions "
                "(see files.permissions)",
            )
        ]
    ctx.listed = True
    for name in names:
        try:
            key = store.load(name)
            if not why_locked:
                for v in key.versions:
                    if store.has_material(name, v.version):
                        store.material(name, v.version)
            ctx.keys[name] = key
        except UnsafePermissionsError:
            ctx.unreadable.add(name)  # check_permissions reports it
        except EkmError as exc:
            ctx.unreadable.add(name)
            events.append(
                ctx.event(
                    "files.tampered",
                    SecurityLevel.CRITICAL,
                    name,
                    str(exc),
                    key=name,
                )
            )
    return events


# -- keys -------------------------------------------------------------------------------------


def check_rotation(ctx: CheckContext) -> list[Event]:
    """Keys past their rotation date (HIGH) or inside their notify window (LOW)."""
    events = []
    for name, key in sorted(ctx.keys.items()):
        nxt = key.next_rotation
        if nxt is None:
            continue
        if nxt <= ctx.now:
            late = ctx.now - nxt
            events.append(
                ctx.event(
                    "rotation.overdue",
                    SecurityLevel.HIGH,
                    name,
                    f"key {name!r} was due for rotation at {iso(nxt)} ({_ago(late)} ago); "
                    f"run: ekm rotate {name}",
                    key=name,
                    due=iso(nxt),
                )
            )
        elif key.in_notify_window(ctx.now):
            events.append(
                ctx.event(
                    "rotation.due_soon",
                    SecurityLevel.LOW,
                    name,
                    f"key {name!r} is due for rotation at {iso(nxt)}; plan: ekm rotate {name}",
                    key=name,
                    due=iso(nxt),
                )
            )
    return events


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def check_usage(ctx: CheckContext) -> list[Event]:
    """AES-GCM versions near their 2^32 random-nonce message limit.

    MEDIUM from ``[rotation] usage_warn_fraction`` of the limit, CRITICAL at the limit: past it,
    nonce collisions (which leak the authentication key) become a real risk.
    """
    events = []
    fraction = float(ctx.manager.config.get("rotation", "usage_warn_fraction"))
    for name, key in sorted(ctx.keys.items()):
        for v in key.versions:
            if key.type_of(v) not in NONCE_LIMITED or v.state.value == "destroyed":
                continue
            used = int(v.usage_count or 0)
            if used >= GCM_LIMIT:
                severity = SecurityLevel.CRITICAL
            elif fraction and used >= fraction * GCM_LIMIT:
                severity = SecurityLevel.MEDIUM
            else:
                continue
            events.append(
                Event(
                    "key.usage_limit",
                    severity,
                    name,
                    f"key {name!r} version {v.version} has been used {used} times, "
                    f"{used / GCM_LIMIT:.0%} of the AES-GCM limit of 2^32; run: ekm rotate {name}",
                    ctx.now,
                    details={"key": name, "version": v.version, "usage_count": used},
                    fingerprint=make_fingerprint("key.usage_limit", f"{name}/v{v.version}"),
                )
            )
    return events


# -- audit log --------------------------------------------------------------------------------


def check_audit_log(ctx: CheckContext) -> list[Event]:
    """The audit log's hash chain, its head file, and that it never goes backwards.

    ``AuditLog.verify`` catches edits, gaps, truncation against ``audit.log.head`` and a deleted
    log. A log deleted together with its head restarts at seq 1 and verifies; the highest
    sequence number this monitor has seen catches that.
    """
    alog = ctx.manager.audit_log
    result = alog.verify()
    subject = alog.path.name
    if not result.ok:
        return [
            ctx.event(
                "auditlog.chain",
                SecurityLevel.CRITICAL,
                subject,
                f"audit log verification failed: {result.first_bad}; keep the files for "
                "investigation and restore the log from a backup",
                problem=str(result.first_bad)[:500],
            )
        ]
    if result.last_seq < ctx.state.max_audit_seq:
        return [
            ctx.event(
                "auditlog.chain",
                SecurityLevel.CRITICAL,
                subject,
                f"audit log went back from seq {ctx.state.max_audit_seq} to {result.last_seq} "
                "(deleted or replaced); restore it from a backup",
                seen=ctx.state.max_audit_seq,
                now_at=result.last_seq,
            )
        ]
    ctx.state.max_audit_seq = result.last_seq
    return []


def _failure_group(record: dict[str, Any]) -> str | None:
    if record.get("result") not in FAILURE_RESULTS:
        return None
    op = str(record.get("op", ""))
    if op.startswith("monitor."):
        return None
    for prefix in FAILURE_OPS:
        if op.startswith(prefix):
            return op
    return None


def check_failure_burst(ctx: CheckContext) -> list[Event]:
    """More than ``[monitor] burst_threshold`` failed operations within ``burst_window``.

    Wrong passphrases (``unlock`` denied), failed decryptions, unknown API keys: a burst is how
    guessing looks from the audit log. Records whose time cannot be parsed are ignored here
    (the chain check reports a damaged log).
    """
    cfg = ctx.manager.config
    threshold = int(cfg.get("monitor", "burst_threshold"))
    window = parse_duration(cfg.get("monitor", "burst_window"))
    since = ctx.now - window
    counts: dict[str, int] = {}
    try:
        records = list(ctx.manager.audit_log.records())
    except OSError:
        return []
    for rec in records:
        group = _failure_group(rec)
        if group is None:
            continue
        try:
            when = from_iso(str(rec.get("time")))
        except (ValueError, TypeError):
            continue
        if since <= when <= ctx.now:
            counts[group] = counts.get(group, 0) + 1
    total = sum(counts.values())
    if total <= threshold:
        return []
    top = ", ".join(f"{op} x{n}" for op, n in sorted(counts.items(), key=lambda i: -i[1])[:5])
    return [
        ctx.event(
            "activity.failed_burst",
            SecurityLevel.HIGH,
            "audit log",
            f"{total} failed operations in the last {cfg.get('monitor', 'burst_window')} "
            f"(threshold {threshold}): {top}; someone may be guessing a passphrase or API key",
            failures=total,
            threshold=threshold,
            window=cfg.get("monitor", "burst_window"),
        )
    ]


# -- backends ---------------------------------------------------------------------------------


def check_backends(ctx: CheckContext) -> list[Event]:
    """The HSM (when ``[hsm]`` is configured) and Vault (when ``[vault]`` is) answer."""
    mgr = ctx.manager
    events = []
    if mgr.config.hsm:
        diag = mgr.diagnose_hsm()
        ctx.backends["hsm"] = bool(diag.connected)
        if not diag.connected:
            events.append(
                ctx.event(
                    "backend.unreachable",
                    SecurityLevel.HIGH,
                    "hsm",
                    f"the HSM is unreachable: {diag.error_message or 'no details'}",
                    backend="hsm",
                )
            )
    if mgr.config.vault:
        from ekm.errors import BackendAuthError

        try:
            status = mgr.vault_status()
            ok = not status.get("sealed")
            ctx.backends["vault"] = ok
            if not ok:
                events.append(
                    ctx.event(
                        "backend.unreachable",
                        SecurityLevel.HIGH,
                        "vault",
                        "Vault is sealed; unseal it (vault operator unseal)",
                        backend="vault",
                    )
                )
        except BackendAuthError as exc:
            ctx.backends["vault"] = False
            events.append(
                ctx.event("backend.auth", SecurityLevel.HIGH, "vault", str(exc), backend="vault")
            )
        except EkmError as exc:
            ctx.backends["vault"] = False
            events.append(
                ctx.event(
                    "backend.unreachable", SecurityLevel.HIGH, "vault", str(exc), backend="vault"
                )
            )
    return events


CheckFn = Callable[[CheckContext], list[Event]]

# In order: files first (the keystore readers refuse unsafe files), then the keystore, keys,
# the audit log, backends. Each is independent; a crash in one is reported, not propagated.
CHECKS: tuple[tuple[str, CheckFn], ...] = (
    ("permissions", check_permissions),
    ("unexpected", check_unexpected),
    ("integrity", check_integrity),
    ("deleted", check_deleted),
    ("rotation", check_rotation),
    ("usage", check_usage),
    ("auditlog", check_audit_log),
    ("burst", check_failure_burst),
    ("backends", check_backends),
)
