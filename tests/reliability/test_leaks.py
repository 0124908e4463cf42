"""No secret in anything ekm writes for people or machines to read.

A scenario of real ``ekm`` commands runs on a prepared home; every byte of their stdout and
stderr, the audit log, the headers of every backup bundle, and the monitor's alerts and
metrics (when ``ekm monitor`` exists) is searched for every secret of the home (see
leakcheck.py). ``keys export --reveal`` prints a secret on purpose; it is run with ``--out``
so its stdout/stderr are checked too.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.reliability import harness
from tests.reliability.leakcheck import LeakCheck, encodings


def _secrets(home: Path, check: LeakCheck) -> None:
    state = harness.snapshot(home)
    for (name, version), secret in state.material.items():
        check.secret(f"{name} v{version}", secret)
    mgr = harness.manager(home)
    mgr.unlock()
    check.secret("root key", bytes(mgr._root.key))
    for label in ("metadata-mac", "material-wrap", "audit-mac", "local-backup"):
        check.secret(f"subkey {label}", mgr._root.derive(label))
    kek = (home / "master.key").read_bytes().split(b"\n", 1)[1].strip()
    check.secret("master.key KEK", base64.b64decode(kek))
    check.secret("backup passphrase", harness.BACKUP_PASSPHRASE)


def test_scenario_leaks_no_secret(prepared: Path, tmp_path: Path) -> None:
    check = LeakCheck()
    env = harness.clean_env(prepared, EKM_BACKUP_PASSPHRASE=harness.BACKUP_PASSPHRASE)
    commands = available = harness.available_commands()  # one `ekm --help`, cached
    scenario = [
        ["--json", "status"], ["keys", "show", "session"], ["--json", "rotate", "--check"],
        ["rotate", "session", "hmac", "--force", "--yes"],
        ["rotate", "database_encryption", "--prepare"],
        ["backup", "create", "--out", str(tmp_path / "b.ekmbak")],
        ["--json", "backup", "verify", str(tmp_path / "b.ekmbak")],
        ["keys", "export", "session", "--reveal", "--format", "raw", "--out", str(tmp_path / "k")],
        ["keys", "export", "rsa", "--public"],
        ["keys", "destroy", "--yes", "session", "--version", "1", "--recovery-window", "0s"],
        ["status", "--bogus-flag"], ["keys", "show", "nope"],
    ]  # fmt: skip
    if "encrypt" in available:
        (tmp_path / "p.txt").write_bytes(b"leak scenario plaintext\n")
        scenario += [
            ["encrypt", "--key", "database_encryption", "-o", str(tmp_path / "c"),
             str(tmp_path / "p.txt")],
            ["decrypt", "-o", str(tmp_path / "d"), str(tmp_path / "c")],
        ]  # fmt: skip
    if "audit" in commands:
        scenario += [["audit", "--verify-log"], ["audit", "--format", "json"]]
    if "monitor" in commands:
        scenario += [["monitor", "--once", "--metrics-file", str(tmp_path / "metrics.prom")]]
    for args in scenario:
        res = harness.run_ekm(args, env)
        assert "Traceback" not in res.stderr.decode(), (args, res.stderr)
        check.output(f"stdout of {' '.join(args[:3])}", res.stdout)
        check.output(f"stderr of {' '.join(args[:3])}", res.stderr)
    for log in prepared.glob("audit.log*"):
        check.output(log.name, log.read_bytes())
    bundles = [tmp_path / "b.ekmbak", *prepared.rglob("*.ekmbak")]
    for bundle in bundles:
        data = bundle.read_bytes()
        check.output(f"header of {bundle.name}", data[: data.index(b"\n", 8)])
    for extra in (tmp_path / "metrics.prom", prepared / "state"):
        if extra.is_file():
            check.output(extra.name, extra.read_bytes())
        elif extra.is_dir():
            for f in extra.rglob("*"):
                if f.is_file():
                    check.output(f"state/{f.name}", f.read_bytes())
    _secrets(prepared, check)
    assert len(check.secrets) > 15 and len(check.outputs) > 20
    check.assert_clean()


def test_leakcheck_finds_planted_secrets() -> None:
    """The checker itself can fail: every encoding of a planted secret is found."""
    secret = bytes(range(100, 132))
    for form, needle in encodings(secret).items():
        check = LeakCheck()
        check.secret("planted", secret)
        check.output("stdout", b"noise " + needle + b" noise")
        hits = check.find()
        assert ("planted", form, "stdout") in hits
    check = LeakCheck()
    check.secret("planted", secret)
    check.output("stdout", b"nothing here")
    with pytest.raises(AssertionError):
        check.output("stderr", f"key={secret.hex()[:32]}")  # a truncated hex repr
        check.assert_clean()
