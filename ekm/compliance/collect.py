"""Build the compliance :class:`Inventory` of one ekm home, treating every file as hostile.

The engine reasons over plain facts; this module gathers them from a :class:`KeyManager`:
key metadata and versions, keyed fingerprints, backups, permissions, the master-key source,
the audit log chain. It never raises for damage it finds: a tampered key document, an unsafe
file or an unreadable backup becomes a :class:`~ekm.compliance.integrity.Problem` (a finding),
because an audit that crashes on a broken store reports nothing about it.

Facts that need the master key (MACs, fingerprints, the audit log's MACs) are ``None`` ("not
evaluated") when the manager is locked; the rules then say so instead of passing.

Fingerprints are HMAC-SHA256 of the material under a key derived from the root key
(``ekm/v1/compliance-fingerprint``), never a plain hash: a plain SHA-256 of a 128-bit key in a
report would let anyone holding a candidate key confirm it offline. They stay in memory; no
report format prints them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ekm.compliance import integrity
from ekm.compliance.integrity import Problem
from ekm.compliance.inventory import (
    Attestation,
    DeploymentFacts,
    Inventory,
    KeyRecord,
    VersionRecord,
)
from ekm.crypto.keytypes import KeyState
from ekm.errors import EkmError

if TYPE_CHECKING:  # pragma: no cover
    from ekm.auditlog import AuditLog, VerifyResult
    from ekm.keystore import Keystore
    from ekm.manager import KeyManager
    from ekm.model import Key

#: master.json names the key-file source "file"; rule files use the clearer "key-file".
SOURCE_NAMES = {"file": "key-file"}
#: Security strength of the master key (the KEK of every file-keystore key) by source: a
#: 256-bit random key file, an AES-256 HSM key, Vault Transit aes256-gcm96. A passphrase's
#: strength cannot be measured, so it is absent (the KEK rule says "not evaluated").
MASTER_KEY_STRENGTH = {"key-file": 256, "pkcs11": 256, "vault-transit": 256}
MAX_WALK = 20_000  # entries under the home inspected for permissions (a hostile home is bounded)
MAX_BACKUP_READ = 64 * 1024 * 1024  # bigger local bundles are judged by the audit log alone
FINGERPRINT_LABEL = "compliance-fingerprint"


@dataclass
class Collected:
    """An inventory plus what could not be read and what the operator should be told."""

    inventory: Inventory
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    keys_read: int = 0
    mac_checked: bool = False
    #: The audit log's chain verification of this run (None when the log could not be read),
    #: so a caller that also shows the chain (``ekm report``) does not walk the log again.
    log_verify: VerifyResult | None = None


def _rel(home: Path, path: Path) -> str:
    try:
        return path.relative_to(home).as_posix() or "."
    except ValueError:
        return str(path)


def unsafe_paths(home: Path, extra: Iterable[Path] = ()) -> list[str]:
    """Paths under ``home`` (and ``extra`` files) that group or others can reach, or symlinks.

    Symlinks are not followed: ekm refuses them as it refuses group-readable files, since a
    link can point a key document anywhere.
    """
    bad: list[str] = []

    def judge(path: Path, st: os.stat_result) -> None:
        if stat.S_ISLNK(st.st_mode):
            bad.append(f"{_rel(home, path)} (symlink)")
        elif stat.S_IMODE(st.st_mode) & 0o077:
            bad.append(f"{_rel(home, path)} ({stat.S_IMODE(st.st_mode):04o})")

    seen = 0
    try:
        judge(home, os.lstat(home))
    except OSError:
        return [f"{home} (unreadable)"]
    for root, dirs, files in os.walk(home, followlinks=False):
        for name in [*dirs, *files]:
            seen += 1
            if seen > MAX_WALK:
                where = _rel(home, Path(root))
                bad.append(f"{where} (more than {MAX_WALK} entries; not all checked)")
                return bad
            path = Path(root) / name
            try:
                judge(path, os.lstat(path))
            except OSError:
                bad.append(f"{_rel(home, path)} (unreadable)")
    from ekm.storage.paths import unsafe_ancestors

    for directory, why in unsafe_ancestors(home):
        bad.append(f"{directory} (a parent of the home, {why})")
    for path in extra:
        try:
            judge(path, os.lstat(path))
        except FileNotFoundError:
            continue
        except OSError:
            bad.append(f"{path} (unreadable)")
    return sorted(set(bad))


def fips_module_status() -> dict[str, str]:
    """Validation status of the module doing the file backend's cryptography.

    The file backend runs in this process through pyca/cryptography and OpenSSL. Without the
    OpenSSL FIPS provider it is certainly not a validated module ("none"). With it, whether
    that provider build holds a certificate cannot be told from here, so the fact is left out
    ("not checked"). HSM and Vault modules are left out for the same reason.
    """
    try:
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl

        fips = bool(rust_openssl.is_fips_enabled())
    except (ImportError, AttributeError):  # pragma: no cover - depends on the build
        return {}
    return {} if fips else {"file": "none"}


def declared_validation(config: Any) -> dict[str, str]:
    """The HSM module's certificate as the operator declared it (``[hsm] fips_validation``).

    An audit cannot look a module's certificate up; declaring it makes the module rule
    evaluable (pass or fail) instead of "not evaluated". The declaration is the operator's.
    """
    hsm = getattr(config, "hsm", None)
    value = hsm.get("fips_validation") if isinstance(hsm, Mapping) else None
    return {"pkcs11": value} if isinstance(value, str) else {}


def _pin_in_config(hsm: Any) -> bool:
    return isinstance(hsm, Mapping) and hsm.get("pin") is not None


def vault_tls_verify(vault: Any) -> bool | None:
    """``[vault] verify`` from the config alone (None: no ``[vault]`` section).

    Anything but an explicit ``false`` counts as verifying: ekm refuses any other non-boolean
    value when it builds its Vault client, so only ``false`` can turn certificate checks off.
    """
    if not isinstance(vault, Mapping):
        return None
    return vault.get("verify", True) is not False


class _Collector:
    """One collection run over a manager (split into steps so each stays readable)."""

    def __init__(self, mgr: KeyManager, now: datetime) -> None:
        self.mgr = mgr
        self.now = now
        self.home = Path(mgr.home)
        self.out = Collected(Inventory(home=str(self.home), as_of=now))
        self.root = getattr(mgr, "_root", None)
        #: (time, keys) of the backup.create records of a log whose chain verified
        self.logged: set[tuple[str, Any]] = set()
        #: attestations of a verified, MAC-checked log (None: not evidence)
        self.attestations: dict[str, Attestation] | None = None
        self.first_seen: datetime | None = None

    def problem(self, rule: Any, key: str | None, text: str) -> None:
        self.out.problems.append(Problem(rule, key, text))

    # -- the keystore -------------------------------------------------------------------
    def keystore(self) -> Keystore:
        """A keystore over the manager's store, bypassing the manager's permission refusal.

        ``KeyManager.keystore`` refuses an unsafe home outright (right for key operations); an
        audit must instead look inside and report what it finds.
        """
        from ekm.keystore import Keystore

        return Keystore(self.mgr._document_store(), self.root)

    def keys(self, ks: Keystore) -> list[KeyRecord]:
        try:
            names = ks.names()
        except EkmError as exc:
            self.problem(integrity.STORE_RULE, None, exc.message)
            return []
        fp_key = self.root.derive(FINGERPRINT_LABEL) if self.root is not None else None
        records = []
        for name in names:
            try:
                key = ks.load_shared(name)  # read-only here; parsed once
                records.append(self.key_record(ks, key, fp_key))
            except EkmError as exc:
                self.problem(integrity.STORE_RULE, name, exc.message)
        self.out.keys_read = len(records)
        return records

    def key_record(self, ks: Keystore, key: Key, fp_key: bytes | None) -> KeyRecord:
        versions = []
        for v in key.versions:
            present: bool | None
            fingerprint = None
            if key.backend == "pkcs11":
                present = self.hsm_present(key, v) if v.state is KeyState.DESTROYED else True
            else:
                present = ks.has_material(key.name, v.version)
                if present and fp_key is not None:
                    secret = ks.material(key.name, v.version)  # authenticates the blob too
                    fingerprint = hmac.new(fp_key, secret, hashlib.sha256).hexdigest()
                    del secret
            versions.append(
                VersionRecord(
                    version=v.version,
                    state=v.state,
                    created=v.created,
                    usage_count=v.usage_count,
                    material_present=present,
                    fingerprint=fingerprint,
                    key_type=v.key_type,
                    destroy_after=v.destroy_after,
                )
            )
        return KeyRecord(
            name=key.name,
            type=key.type,
            usage=key.usage,
            backend=key.backend,
            versions=tuple(versions),
            rotate_every=key.policy.interval,
            backup_required=key.policy.backup,
            last_backup=None,
            labels=dict(key.labels),
        )

    def hsm_present(self, key: Key, v: Any) -> bool | None:
        """Whether a destroyed HSM version's object is still in the token (None: unknown)."""
        if self.root is None or not self.mgr.config.hsm:
            return None
        try:
            label = v.backend_ref or self.mgr.hsm_label(key.name, v.version)
            return bool(self.mgr.hsm_token().has_key(label))
        except EkmError as exc:
            self.out.warnings.append(
                f"HSM not reachable ({exc.message}); destroyed HSM versions not evaluated"
            )
            return None

    # -- backups ------------------------------------------------------------------------
    def backups(self, log: AuditLog | None) -> dict[str, datetime]:
        """Newest trusted backup time per key name, from the bundles in the backup directory.

        A bundle header is not authenticated on its own, so a bundle counts only when it is
        proven: a local bundle that opens under this home's root key, or any bundle whose
        creation time and key count match a ``backup.create`` record of the (chained, MACed)
        audit log. A file dropped into the directory by hand therefore proves nothing.
        ``log`` is None when its chain did not verify: then only local bundles can prove.
        The log is read only when there are bundles to prove.
        """
        from ekm.rotation import backup as bk
        from ekm.timeutil import from_iso

        directory = self.mgr._backup_dir()
        try:
            entries = sorted(p for p in directory.iterdir() if p.name.endswith(".ekmbak"))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            self.problem(integrity.BACKUP_RULE, None, f"{directory}: {exc.strerror}")
            return {}
        logged = self.logged if log is not None else set()
        newest: dict[str, datetime] = {}
        unproven = 0
        for path in entries:
            where = _rel(self.home, path)
            try:
                from ekm.fsutil import read_private

                data = read_private(path, limit=MAX_BACKUP_READ, home=self.home)
                header, _, _ = bk.read_header(data)
                created = from_iso(str(header.get("created")))
                names = [str(n) for n in header["keys"]]
                proven = (header.get("created"), len(names)) in logged
                if header["mode"] == "local" and self.root is not None:
                    bk.open_bundle(data, local_key=self.root.derive("local-backup"))
                    proven = True
            except (EkmError, ValueError, KeyError, TypeError) as exc:
                text = exc.message if isinstance(exc, EkmError) else "header unreadable"
                self.problem(integrity.BACKUP_RULE, None, f"{where}: {text}")
                continue
            if not proven:
                unproven += 1
                continue
            for name in names:
                if name not in newest or created > newest[name]:
                    newest[name] = created
        if unproven:
            self.out.warnings.append(
                f"{unproven} backup file(s) in {_rel(self.home, directory)} match no "
                "backup.create record of the audit log; they are not counted as backups"
            )
        return newest

    # -- deployment facts ---------------------------------------------------------------
    def master(self) -> dict[str, Any]:
        """Master-key facts from ``master.json``: source, KDF, id, creation time (MAC'd)."""
        from ekm import masterkey
        from ekm.timeutil import from_iso

        try:
            meta = masterkey.read_meta(self.home)
        except EkmError as exc:
            self.problem(integrity.STORE_RULE, None, exc.message)
            return {}
        source = SOURCE_NAMES.get(meta["source"], meta["source"])
        kdf = meta.get("kdf")
        name = kdf.get("name") if isinstance(kdf, dict) else None
        out: dict[str, Any] = {
            "master_key_source": source,
            "passphrase_kdf": name if isinstance(name, str) else None,
            "master_key_id": meta.get("key_id"),
            "master_key_strength": MASTER_KEY_STRENGTH.get(source),
        }
        created = meta.get("created")
        if isinstance(created, str):
            try:
                out["master_key_created"] = from_iso(created)
            except ValueError:
                out["master_key_created_authentic"] = False
                return out
            if self.root is not None:
                want = masterkey.created_mac(self.root, created)
                out["master_key_created_authentic"] = hmac.compare_digest(
                    want, str(meta.get("created_mac"))
                )
        return out

    def audit_log(self) -> tuple[bool | None, bool | None, AuditLog | None]:
        """(present, chain ok, the log when its chain verified); ok only when MACs were checked.

        The chain is walked once here; its :class:`VerifyResult` is kept on the outcome.
        """
        from ekm.auditlog import VerifyResult

        try:
            log = self.mgr.audit_log
            if not log.files():
                self.out.log_verify = log.verify()  # says "missing"; reads nothing
                return False, None, None
            seen: set[tuple[str, Any]] = set()
            notes = _LogNotes()

            def on_record(r: dict[str, Any]) -> None:
                _note_backup(r, seen)
                notes.note(r)

            res = log.verify(on_record=on_record)
        except (EkmError, OSError) as exc:
            text = exc.message if isinstance(exc, EkmError) else str(exc.strerror)
            self.out.warnings.append(f"audit log unreadable ({text})")
            self.out.log_verify = VerifyResult(ok=False, first_bad=f"log unreadable ({text})")
            return True, False, None
        self.out.log_verify = res
        if not res.ok:
            self.out.warnings.append(f"audit log chain broken: {res.first_bad}")
            return True, False, None  # records before the break prove nothing either
        self.logged = seen
        self.first_seen = notes.first
        if not res.keyed:
            return True, None, log
        # only records whose MAC (or a later record's) verified count as evidence
        self.attestations = notes.attestations(res.last_seq - res.unkeyed_tail)
        if res.unkeyed_tail:
            self.out.warnings.append(
                f"the last {res.unkeyed_tail} audit record(s) carry no MAC (written while the "
                "master key was locked); run an unlocked ekm command to seal them"
            )
        return True, True, log

    def run(self) -> Collected:
        mgr = self.mgr
        master = self.master()
        ks = self.keystore()
        keys = self.keys(ks)
        present, chain_ok, log = self.audit_log()
        newest = self.backups(log) if keys else {}
        keys = [_with_backup(k, newest.get(k.name)) for k in keys]
        store_failed = any(p.rule is integrity.STORE_RULE for p in self.out.problems)
        mac_ok: bool | None = None
        if self.root is not None:
            mac_ok = not store_failed
            self.out.mac_checked = True
        elif store_failed:
            mac_ok = False
        config_path = Path(getattr(mgr, "config_path", self.home / "ekm.toml"))
        extra = [config_path] if not _under(config_path, self.home) else []
        inv = self.out.inventory
        directory = getattr(ks.store, "directory", None)
        keystore_file = (
            f"{_rel(self.home, Path(directory))}/{{key}}.json"
            if directory is not None and _under(Path(directory), self.home)
            else _rel(self.home, config_path)
        )
        self.out.inventory = Inventory(
            home=inv.home,
            as_of=inv.as_of,
            keys=keys,
            deployment=DeploymentFacts(
                unsafe_paths=unsafe_paths(self.home, extra),
                **master,
                master_key_first_seen=self.first_seen,
                attestations=self.attestations,
                keystore_mac_ok=mac_ok,
                audit_log_present=present,
                audit_chain_ok=chain_ok,
                hsm_pin_in_config=_pin_in_config(mgr.config.hsm),
                vault_tls_verify=vault_tls_verify(mgr.config.vault),
                module_validation={**fips_module_status(), **declared_validation(mgr.config)},
            ),
            keystore_file=keystore_file,
            config_file=_rel(self.home, config_path),
        )
        return self.out


def _note_backup(r: dict[str, Any], logged: set[tuple[str, Any]]) -> None:
    """Add ``(time, keys)`` of a successful ``backup.create`` record to ``logged``.

    Called for each record of the one verifying pass over the log (``AuditLog.verify``), so
    the proofs come from exactly the bytes whose chain was checked, and only two fields of
    a 100,000-record log are kept.
    """
    if r.get("op") != "backup.create" or r.get("result", "ok") != "ok":
        return
    keys = r.get("keys")
    logged.add((str(r.get("time")), keys if type(keys) is int else None))


class _LogNotes:
    """What the audit pass keeps besides backups: the first record's time, attestations."""

    def __init__(self) -> None:
        self.first: datetime | None = None
        self._attest: list[Attestation] = []

    def note(self, r: dict[str, Any]) -> None:
        from ekm.timeutil import from_iso

        if self.first is None:
            with contextlib.suppress(ValueError):
                self.first = from_iso(str(r.get("time")))
        if r.get("op") != "audit.attest" or r.get("result", "ok") != "ok":
            return
        with contextlib.suppress(KeyError, ValueError, TypeError):  # malformed: attests nothing
            self._attest.append(
                Attestation(
                    rule=str(r["rule"]),
                    by=str(r["by"]),
                    evidence=str(r["evidence"]),
                    evidence_sha256=str(r["evidence_sha256"]),
                    recorded=from_iso(str(r["time"])),
                    expires=from_iso(str(r["expires"])),
                    seq=int(r.get("seq", 0)),
                )
            )

    def attestations(self, last_verified_seq: int) -> dict[str, Attestation]:
        """The newest attestation per rule among records up to ``last_verified_seq``."""
        out: dict[str, Attestation] = {}
        for a in self._attest:
            if a.seq <= last_verified_seq:
                out[a.rule] = a
        return out


def _under(path: Path, home: Path) -> bool:
    try:
        path.relative_to(home)
    except ValueError:
        return False
    return True


def _with_backup(key: KeyRecord, when: datetime | None) -> KeyRecord:
    if when is None:
        return key
    from dataclasses import replace

    return replace(key, last_backup=when)


def collect(mgr: KeyManager, *, now: datetime) -> Collected:
    """Gather the inventory of ``mgr``'s home as of ``now`` (unlock the manager first to get
    MAC, fingerprint and audit-MAC facts; a locked manager yields them as "not evaluated")."""
    return _Collector(mgr, now).run()
