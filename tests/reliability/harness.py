"""The reliability harness: a table of real ekm operations and the invariants a home must keep.

Why a table: crash, fault-injection, concurrency and leak tests all need "run operation X on a
home" in two shapes, as the ``ekm`` command (for SIGKILL and concurrency) and through the
``KeyManager`` API (for in-process fault injection). Adding an operation that another engineer
wires later (``ekm encrypt``, monitor, HSM, Vault) is one ``Operation(...)`` line in
``OPERATIONS``; every test picks it up. An operation whose command does not exist yet
(``needs=``) is skipped, not failed, until ``ekm --help`` lists it.

The invariants (``check_home``) are the storage contract of DESIGN.md: after any crash the home
loads, every MAC and material blob verifies, the audit chain verifies, and each key is in its
state from before the operation or from after it, never in between, with no version and no
byte of material lost. Ciphertexts made before the operation still decrypt.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The backup passphrase every scenario uses (a test secret; leak checks look for it).
BACKUP_PASSPHRASE = "reliability-backup-passphrase-7f3a"
#: Where the pre-built backup bundle lives inside a prepared home.
BUNDLE_NAME = "prepared.ekmbak"
#: Where the id of the pre-made API key lives inside a prepared home (``apikey revoke`` needs one).
APIKEY_ID_NAME = "prepared.apikey"
#: Keys the ciphertext fixture encrypts under (AES keys the operations never destroy).
CIPHER_KEYS = ("database_encryption", "session")
#: A key no operation of the table touches: the crash tests' "next command" rotates it, so a
#: writer runs after every crash (resolving what the crash left) without blurring the check.
NEXT_WRITER_KEY = "next_writer"


def ekm_argv() -> list[str]:
    """The ``ekm`` console script of this interpreter (no PATH lookup surprises)."""
    exe = Path(sys.executable).with_name("ekm")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ekm.cli.main"]


@functools.cache
def available_commands() -> frozenset[str]:
    """Top-level commands of the ekm CLI (read from the click command tree, not --help text)."""
    import typer

    from ekm.cli.main import build_app

    return frozenset(typer.main.get_command(build_app()).commands)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """An operator's environment for ``home``: no EKM_* leaking in from the developer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EKM_", "VAULT_"))}
    env.update(NO_COLOR="1", COLUMNS="200", TERM="dumb", EKM_HOME=str(home))
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------------
# Preparing a home every operation can run on
# ------------------------------------------------------------------------------------------
def prepare_home(home: Path) -> None:
    """Turn a freshly deployed default home into one where every operation has work to do.

    * ``session`` is rotated once (v1 active, v2 primary), so ``destroy v1`` is legal;
    * ``jwt_signing`` has a prepared (pending) rotation, so ``--activate`` is legal;
    * a passphrase backup of ``hmac`` and ``api_master`` is written *before* ``hmac`` rotates,
      so ``backup restore --force --resurrect-destroyed`` really replaces a key (hmac v1,
      the bundle's primary, is destroyed below: a plain restore keeps it destroyed);
    * ``hmac`` v1 is then soft-destroyed (7-day recovery window), so ``keys recover`` is legal;
    * an API key exists (its id in ``prepared.apikey``), so ``apikey revoke`` is legal;
    * the key :data:`NEXT_WRITER_KEY` exists for the crash tests' next command.
    """
    from ekm.manager import KeyManager
    from ekm.timeutil import utcnow

    cfg = home / "ekm.toml"
    # Cheap Argon2 for backup bundles: the harness measures crash safety, not KDF cost.
    text = cfg.read_text().replace(
        'source = "file"\n',
        'source = "file"\nargon2_memory_kib = 19456\nargon2_iterations = 2\n'
        "argon2_parallelism = 1\n",
        1,
    )
    from ekm.fsutil import atomic_write

    atomic_write(cfg, text.encode())
    mgr = KeyManager(home, env={})
    mgr.rotate(["session"], now=utcnow())
    mgr.prepare_rotation(["jwt_signing"])
    bundle = mgr.backup_create(["hmac", "api_master"], passphrase=BACKUP_PASSPHRASE)
    atomic_write(home / BUNDLE_NAME, bundle)
    mgr.rotate(["hmac"])
    mgr.destroy_version("hmac", 1, recovery_window="7d")
    _, record = mgr.create_api_key("api_master", name="prepared")
    atomic_write(home / APIKEY_ID_NAME, record["id"].encode())
    mgr.generate(NEXT_WRITER_KEY, type="hmac-sha256")


# ------------------------------------------------------------------------------------------
# Operations
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    """One real ekm operation, runnable as a command and (where it exists) through the API.

    ``argv`` are the ``ekm`` arguments; ``api`` does the same through ``KeyManager``
    (None: command-only); ``needs`` is the top-level command that must exist; ``env`` adds
    variables (secrets the command reads from the environment).
    """

    name: str
    argv: tuple[str, ...]
    api: Callable[[Any, Path], Any] | None = None
    needs: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def available(self) -> bool:
        return self.needs is None or self.needs in available_commands()

    def command(self, home: Path, out_dir: Path) -> list[str]:
        """Full argv with ``{home}``/``{out}`` placeholders filled in."""
        idfile = home / APIKEY_ID_NAME
        apikey = idfile.read_text() if idfile.exists() else ""
        fill = {"home": home, "out": out_dir, "bundle": home / BUNDLE_NAME, "apikey": apikey}
        return [*ekm_argv(), *(a.format(**fill) for a in self.argv)]


def _restore(mgr: Any, home: Path) -> Any:
    data = (home / BUNDLE_NAME).read_bytes()
    return mgr.backup_restore(
        data, passphrase=BACKUP_PASSPHRASE, force=True, resurrect_destroyed=True
    )


#: Every operation the harness exercises. One line per operation: add yours here.
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "generate",
        ("generate", "reliability_new", "--type", "aes-256-gcm"),
        lambda m, h: m.generate("reliability_new", type="aes-256-gcm"),
    ),
    Operation(
        "rotate",
        ("rotate", "database_encryption", "session", "api_internal"),
        lambda m, h: m.rotate(["database_encryption", "session", "api_internal"]),
    ),
    Operation(
        "rotate-prepare",
        ("rotate", "database_encryption", "--prepare"),
        lambda m, h: m.prepare_rotation(["database_encryption"]),
    ),
    Operation(
        "rotate-activate",
        ("rotate", "jwt_signing", "--activate"),
        lambda m, h: m.activate_rotation(["jwt_signing"]),
    ),
    Operation(
        "destroy",
        ("keys", "destroy", "--yes", "session", "--version", "1", "--recovery-window", "0s"),
        lambda m, h: m.destroy_version("session", 1, recovery_window="0s"),
    ),
    Operation(
        "backup-restore",
        ("backup", "restore", "--force", "--resurrect-destroyed", "{bundle}"),
        _restore,
        env={"EKM_BACKUP_PASSPHRASE": BACKUP_PASSPHRASE},
    ),
    Operation(
        "backup-create",
        ("backup", "create", "--out", "{out}/made.ekmbak"),
        lambda m, h: m.backup_create(passphrase=BACKUP_PASSPHRASE),
        env={"EKM_BACKUP_PASSPHRASE": BACKUP_PASSPHRASE},
    ),
    Operation(
        "recover",
        ("keys", "recover", "hmac", "--version", "1"),
    ),
    Operation(
        "apikey-create",
        ("apikey", "create", "--name", "reliability"),
    ),
    Operation(
        "apikey-revoke",
        ("apikey", "revoke", "--yes", "{apikey}"),
    ),
    Operation(
        "audit-append",  # reads a key, writes nothing but its audit record (and the export)
        ("keys", "export", "rsa", "--public", "-o", "{out}/rsa.pem"),
    ),
    Operation(
        "encrypt",
        ("encrypt", "--key", "database_encryption", "-o", "{out}/data.ekm", "{out}/plain.txt"),
        needs="encrypt",
    ),
)


def operation(name: str) -> Operation:
    return next(op for op in OPERATIONS if op.name == name)


# ------------------------------------------------------------------------------------------
# State snapshots and invariants
# ------------------------------------------------------------------------------------------
Signature = tuple[tuple[int, str], ...]


@dataclass
class HomeState:
    """What must survive: each key's (version, state) list and every version's material."""

    versions: dict[str, Signature]
    material: dict[tuple[str, int], bytes]
    apikeys: dict[str, bool] = field(default_factory=dict)  # id -> revoked


def manager(home: Path, **kw: Any) -> Any:
    from ekm.manager import KeyManager

    return KeyManager(home, env={}, **kw)


def snapshot(home: Path) -> HomeState:
    """Read every key and its material through a fresh, unlocked KeyManager."""
    mgr = manager(home)
    mgr.unlock()
    ks = mgr.keystore
    versions: dict[str, Signature] = {}
    material: dict[tuple[str, int], bytes] = {}
    for key in ks.load_all():
        versions[key.name] = tuple((v.version, v.state.value) for v in key.versions)
        for v in key.versions:
            if ks.has_material(key.name, v.version):
                material[(key.name, v.version)] = ks.material(key.name, v.version)
    apikeys = {r["id"]: bool(r["revoked"]) for r in mgr._apikey_store().load()}
    return HomeState(versions, material, apikeys)


def make_ciphertexts(home: Path, state: HomeState) -> list[tuple[str, int, bytes, bytes]]:
    """Envelope records under every readable version of the AES keys: (name, v, pt, ct)."""
    from ekm.crypto import envelope
    from ekm.crypto.wrapping import AeadWrapper

    out = []
    for (name, version), secret in sorted(state.material.items()):
        if name not in CIPHER_KEYS:
            continue
        pt = f"record of {name} v{version}".encode()
        ct = envelope.encrypt(AeadWrapper(name, version, "aes-256-gcm", secret), pt, b"aad")
        out.append((name, version, pt, ct))
    return out


def check_home(
    home: Path,
    before: HomeState,
    after: HomeState | None,
    ciphertexts: list[tuple[str, int, bytes, bytes]] = (),
    *,
    allow_torn_audit_tail: bool = False,
    ignore: set[str] | frozenset[str] = frozenset(),
) -> HomeState:
    """Assert the storage contract on ``home`` after an operation (crashed or not).

    Each key must match ``before`` or ``after`` (its versions and states), material of every
    version present before must be byte-identical now (unless destroyed), the API key table
    must be the one from before or after, the keystore and the audit chain must verify, and
    ``ciphertexts`` must decrypt. Keys in ``ignore`` may differ. Returns the state found.
    """
    from ekm.crypto import envelope
    from ekm.crypto.wrapping import AeadWrapper

    mgr = manager(home)
    mgr.unlock()
    problems = mgr.keystore.verify_all()
    assert problems == [], f"keystore integrity: {problems}"
    result = mgr.audit_log.verify()
    if not result.ok:
        torn = result.first_bad is not None and "truncated record" in result.first_bad
        assert allow_torn_audit_tail and torn, f"audit log: {result.first_bad}"
    now = snapshot(home)
    allowed_sets = [before.versions] + ([after.versions] if after else [])
    names = set(before.versions) | set(now.versions) | set((after or before).versions)
    for name in names - set(ignore):
        got = now.versions.get(name)
        options = {s.get(name) for s in allowed_sets}
        assert got in options, f"key {name}: versions {got}, expected one of {options}"
    tables = [before.apikeys] + ([after.apikeys] if after else [])
    shapes = [table_shape(before.apikeys, t) for t in tables]
    got = table_shape(before.apikeys, now.apikeys)
    assert got in shapes, f"API key table {now.apikeys}, expected one of {tables} (new ids aside)"
    for (name, version), secret in before.material.items():
        state = dict(now.versions.get(name, ())).get(version)
        if state in (None, "destroyed"):
            continue  # the key's whole version set matched "after" (a restore replaced it)
        assert now.material.get((name, version)) == secret, f"material of {name} v{version} lost"
    for name, version, pt, ct in ciphertexts:
        if (name, version) not in now.material:
            continue  # the operation destroyed that version on purpose
        secret = now.material[(name, version)]
        wrapper = AeadWrapper(name, version, "aes-256-gcm", secret)
        assert envelope.decrypt(ct, b"aad", resolve=lambda n, v, w=wrapper: w) == pt
    return now


def table_shape(
    before: dict[str, bool], table: dict[str, bool]
) -> tuple[tuple[tuple[str, bool], ...], tuple[bool, ...]]:
    """An API key table up to the ids of keys created since ``before`` (random each run)."""
    old = tuple(sorted((i, table[i]) for i in before if i in table))
    new = tuple(sorted(table[i] for i in table if i not in before))
    return old, new


def copy_home(src: Path, dst: Path) -> Path:
    """A private copy (copytree keeps the 0700/0600 modes)."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


def stray_files(home: Path) -> list[str]:
    """Temporary files a crash left behind (harmless: never read; reported, not failed)."""
    return sorted(str(p.relative_to(home)) for p in home.rglob(".*.tmp"))


def run_ekm(
    args: list[str], env: dict[str, str], *, stdin: bytes = b"", timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """Run the ekm command and capture bytes (leak checks need every byte)."""
    return subprocess.run(
        [*ekm_argv(), *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def stdin_bytes(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
