"""Many processes on one home at once: the workload and its ledger.

Shared by the short test (tests/storage/test_concurrency_load.py) and the long run
(benchmarks/crash_soak.py --concurrency). Each worker is a separate process that repeats its
kind of work until a deadline and appends one JSON line per attempt to its own ledger file:
what it asked for and what ekm answered. Afterwards :func:`check` compares the ledgers with
the home: every successful rotation, generation, API key creation and revocation is there
(no lost update); every ciphertext whose version is still enabled decrypts, and no decrypt of
such a ciphertext failed during the run; the keystore and the audit chain verify.

CLI workers run the ``ekm`` command as an operator or cron job would; API workers are Python
processes that use ``KeyManager`` in a loop, as an application does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.reliability import harness

ROTATED = ("session", "database_encryption")

#: (kind, count) of CLI workers, then API workers; 8 + 2 in the short setting.
CLI_WORKERS = (("rotate", 2), ("crypt", 3), ("generate", 1), ("apikey", 1), ("redecrypt", 1))
API_WORKERS = 2


@dataclass
class Ledger:
    """Every attempt of every worker, read back from the ledger files."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    def ok(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["kind"] == kind and e["ok"]]


def _ekm(home: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return harness.run_ekm(list(args), harness.clean_env(home), stdin=stdin, timeout=120)


def cli_worker(home: Path, kind: str, ident: str, deadline: float, ledger: Path) -> None:
    """One CLI worker's loop (runs in its own process: ``python -m tests.storage.concurrency``)."""
    work = ledger.with_suffix(".d")
    work.mkdir(mode=0o700, exist_ok=True)
    i = 0
    with ledger.open("a") as out:

        def note(**entry: Any) -> None:
            out.write(json.dumps({"worker": ident, **entry}) + "\n")
            out.flush()

        while time.time() < deadline:
            i += 1
            if kind == "rotate":
                key = ROTATED[i % len(ROTATED)]
                res = _ekm(home, "--json", "rotate", key, "--force")
                note(kind="rotate", key=key, ok=res.returncode == 0, code=res.returncode,
                     err=res.stderr.decode()[-200:])  # fmt: skip
            elif kind == "crypt":
                plain = work / f"p{i}"
                plain.write_bytes(f"{ident} record {i}\n".encode() * 64)
                ct = work / f"c{i}.ekm"
                key = ROTATED[i % len(ROTATED)]
                res = _ekm(home, "encrypt", "--key", key, "-o", str(ct), str(plain))
                note(kind="encrypt", key=key, ok=res.returncode == 0, code=res.returncode,
                     file=str(ct), plain=str(plain), err=res.stderr.decode()[-200:])  # fmt: skip
                if res.returncode == 0:
                    back = work / f"b{i}"
                    res = _ekm(home, "decrypt", "-o", str(back), str(ct))
                    good = res.returncode == 0 and back.read_bytes() == plain.read_bytes()
                    note(kind="decrypt", file=str(ct), ok=good, code=res.returncode,
                         err=res.stderr.decode()[-200:])  # fmt: skip
            elif kind == "generate":
                name = f"conc_{ident}_{i}"
                res = _ekm(home, "generate", name, "--type", "hmac-sha256")
                note(kind="generate", key=name, ok=res.returncode == 0, code=res.returncode,
                     err=res.stderr.decode()[-200:])  # fmt: skip
            elif kind == "apikey":
                res = _ekm(home, "--json", "apikey", "create", "--name", f"{ident}-{i}")
                key_id = None
                if res.returncode == 0:
                    key_id = json.loads(res.stdout)["id"]
                note(kind="apikey.create", id=key_id, ok=res.returncode == 0,
                     code=res.returncode, err=res.stderr.decode()[-200:])  # fmt: skip
                if key_id and i % 2:
                    res = _ekm(home, "apikey", "revoke", "--yes", key_id)
                    note(kind="apikey.revoke", id=key_id, ok=res.returncode == 0,
                         code=res.returncode, err=res.stderr.decode()[-200:])  # fmt: skip
            elif kind == "redecrypt":
                _redecrypt(home, ledger.parent, note)
                time.sleep(0.2)


def _redecrypt(home: Path, ledgers: Path, note: Any) -> None:
    """Decrypt every ciphertext the crypt workers made so far (old versions included)."""
    for path in sorted(ledgers.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue  # a line being written right now
            if e.get("kind") != "encrypt" or not e["ok"]:
                continue
            res = _ekm(home, "decrypt", "-o", "-", e["file"])
            good = res.returncode == 0 and res.stdout == Path(e["plain"]).read_bytes()
            note(kind="decrypt", file=e["file"], ok=good, code=res.returncode,
                 err=res.stderr.decode()[-200:])  # fmt: skip


def api_worker(home: Path, ident: str, deadline: float, ledger: Path) -> None:
    """An application: one KeyManager per iteration, record crypto, API keys, a rotation."""
    from ekm.errors import EkmError
    from ekm.manager import KeyManager

    made: list[tuple[bytes, bytes]] = []
    i = 0
    with ledger.open("a") as out:

        def note(**entry: Any) -> None:
            out.write(json.dumps({"worker": ident, **entry}) + "\n")
            out.flush()

        while time.time() < deadline:
            i += 1
            mgr = KeyManager(home, env={})
            key = ROTATED[i % len(ROTATED)]
            try:
                plain = f"{ident} api record {i}".encode()
                made.append((plain, mgr.encrypt(key, plain, b"conc")))
                note(kind="api.encrypt", ok=True)
            except EkmError as exc:
                note(kind="api.encrypt", ok=False, err=str(exc))
            for plain, blob in made[-5:]:
                try:
                    good = mgr.decrypt(blob, b"conc") == plain
                    note(kind="api.decrypt", ok=good, blob=blob.hex()[:80], full=blob.hex())
                except EkmError as exc:
                    note(kind="api.decrypt", ok=False, err=str(exc), full=blob.hex())
            try:
                token, record = mgr.create_api_key("api_master", name=f"{ident}-{i}")
                note(kind="apikey.create", id=record["id"], ok=True)
                mgr.verify_api_key(token)
                note(kind="api.verify", ok=True)
            except EkmError as exc:
                note(kind="apikey.create", id=None, ok=False, err=str(exc))
            if i % 3 == 0:
                try:
                    mgr.rotate([key], force=True)
                    note(kind="rotate", key=key, ok=True)
                except EkmError as exc:
                    note(kind="rotate", key=key, ok=False, err=str(exc))


def start(home: Path, work: Path, seconds: float) -> list[subprocess.Popen[bytes]]:
    """Start every worker; they stop by themselves ``seconds`` from now."""
    deadline = time.time() + seconds
    procs = []
    specs = [(kind, f"{kind}{j}") for kind, count in CLI_WORKERS for j in range(count)]
    specs += [("api", f"api{j}") for j in range(API_WORKERS)]
    for kind, ident in specs:
        ledger = work / f"{ident}.jsonl"
        argv = [sys.executable, "-m", "tests.storage.concurrency", str(home), kind, ident,
                repr(deadline), str(ledger)]  # fmt: skip
        procs.append(subprocess.Popen(argv, cwd=Path(__file__).resolve().parents[2],
                                      env=harness.clean_env(home)))  # fmt: skip
    return procs


def read(work: Path) -> Ledger:
    ledger = Ledger()
    for path in sorted(work.glob("*.jsonl")):
        ledger.entries += [json.loads(line) for line in path.read_text().splitlines()]
    return ledger


def check(home: Path, before: harness.HomeState, ledger: Ledger) -> list[str]:
    """Lost updates and failed decrypts of data under versions still enabled."""
    from ekm.crypto.keytypes import KeyState

    problems: list[str] = []
    mgr = harness.manager(home)
    mgr.unlock()
    problems += [f"keystore: {p}" for p in mgr.keystore.verify_all()]
    verified = mgr.audit_log.verify()
    if not verified.ok:
        problems.append(f"audit log: {verified.first_bad}")
    now = harness.snapshot(home)
    for key in ROTATED:
        rotations = sum(1 for e in ledger.ok("rotate") if e["key"] == key)
        added = len(now.versions[key]) - len(before.versions[key])
        if added != rotations:
            problems.append(f"{key}: {rotations} rotations succeeded, {added} versions added")
    for e in ledger.ok("generate"):
        if e["key"] not in now.versions:
            problems.append(f"generated key {e['key']} is missing")
    for e in ledger.ok("apikey.create"):
        if e["id"] not in now.apikeys:
            problems.append(f"API key {e['id']} is missing")
    for e in ledger.ok("apikey.revoke"):
        if not now.apikeys.get(e["id"]):
            problems.append(f"API key {e['id']} is not revoked")
    enabled = {
        (k.name, v.version)
        for k in mgr.keystore.load_all()
        for v in k.versions
        if v.state in (KeyState.PRIMARY, KeyState.ACTIVE, KeyState.PENDING)
    }
    problems += _failed_decrypts(mgr, ledger, enabled)
    for e in ledger.entries:
        if not e["ok"] and "Traceback" in e.get("err", ""):
            problems.append(f"{e['worker']} {e['kind']}: traceback")
    return problems


def _failed_decrypts(mgr: Any, ledger: Ledger, enabled: set[tuple[str, int]]) -> list[str]:
    from ekm.crypto import envelope

    problems = []
    for e in ledger.entries:
        if e["ok"] or e["kind"] not in ("decrypt", "api.decrypt"):
            continue
        try:
            blob = (
                Path(e["file"]).read_bytes() if e["kind"] == "decrypt" else bytes.fromhex(e["full"])
            )
            name, version = envelope.peek(blob)[:2]
        except Exception as exc:
            problems.append(f"{e['kind']} failed and its header is unreadable: {exc}")
            continue
        if (name, version) in enabled:
            problems.append(f"{e['kind']} of data under enabled {name} v{version} failed: "
                            f"{e.get('err', '')[-160:]}")  # fmt: skip
    return problems


if __name__ == "__main__":
    _home, _kind, _ident, _deadline, _ledger = sys.argv[1:6]
    if _kind == "api":
        api_worker(Path(_home), _ident, float(_deadline), Path(_ledger))
    else:
        cli_worker(Path(_home), _kind, _ident, float(_deadline), Path(_ledger))
