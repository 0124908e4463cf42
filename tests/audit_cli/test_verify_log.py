"""``ekm audit --verify-log``: the keyed hash chain end to end, across rotated files."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import clean_environ


def _edit_line(path: Path, lineno: int, **changes: object) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    rec = json.loads(lines[lineno - 1])
    rec.update(changes)
    lines[lineno - 1] = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(lines))


def test_intact_log_says_records_and_files_and_is_audit_logged(run, home):
    n = len((home / "audit.log").read_bytes().splitlines())
    res = run("audit", "--verify-log").expect_ok()
    assert res.stderr == ""  # off a terminal: silent on success, cron mails only on trouble
    from tests.operator.tty import run_on_pty

    n = len((home / "audit.log").read_bytes().splitlines())
    code, out = run_on_pty(["audit", "--verify-log"], {**clean_environ(), "EKM_HOME": str(home)})
    assert code == 0
    assert f"audit log intact: {n} records in 1 file (audit.log); hash chain and MACs" in out
    last = json.loads((home / "audit.log").read_bytes().splitlines()[-1])
    assert last["op"] == "audit.verify" and last["result"] == "ok" and last["records"] == n
    doc = json.loads(run("--json", "audit", "--verify-log").expect_ok().stdout)
    assert doc["ok"] is True and doc["records"] == n + 1 and doc["mac_checked"] is True


def test_edited_record_is_exit_4_naming_the_line(run, home):
    _edit_line(home / "audit.log", 3, actor="someone-else")
    line = run("audit", "--verify-log").expect_error(4, "audit.log line 3", "seq 3")
    assert "2 records before it verified" in line
    # the compliance audit sees the same break as a finding
    res = run("audit", "--compliance", "hipaa", "--format", "json")
    (f,) = [x for x in json.loads(res.stdout)["findings"] if x["rule"] == "HIPAA-164.312(b)-AUDIT"]
    assert f["found"] == "audit log chain broken" and "audit log chain broken" in res.stderr


def test_truncated_tail_is_caught_by_the_head_record(run, home):
    log = home / "audit.log"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-1]))
    run("audit", "--verify-log").expect_error(4, "log truncated")


def test_chain_continues_across_rotated_files(run, home, ekm_env):
    cfg = home / "ekm.toml"
    assert "[audit]" not in cfg.read_text()
    cfg.write_text(cfg.read_text() + "\n[audit]\nmax_bytes = 600\n")
    for _ in range(3):
        run("rotate", "session", "--force").expect_ok()
    files = sorted(p.name for p in home.glob("audit.log*") if not p.name.endswith(".head"))
    assert len(files) >= 3, files
    from tests.operator.tty import run_on_pty

    code, out = run_on_pty(["audit", "--verify-log"], ekm_env)  # the success line: a terminal
    assert code == 0 and f"in {len(files)} files" in out
    _edit_line(home / "audit.log.1", 1, op="nothing-happened")
    run("audit", "--verify-log").expect_error(4, "audit.log.1 line 1")


def test_locked_verification_checks_the_chain_and_says_macs_were_not(run, home, ekm_env):
    from tests.operator.tty import run_on_pty

    (home / "master.key").unlink()
    res = run("audit", "--verify-log").expect_ok()
    assert "master key not unlocked" in res.stderr  # a warning: shown even off a terminal
    code, out = run_on_pty(["audit", "--verify-log"], ekm_env)
    assert code == 0 and "hash chain only (MACs not checked)" in out


def test_python_api(home):
    from datetime import datetime, timezone

    from ekm.manager import KeyManager

    mgr = KeyManager(home, env={})
    inv = mgr.inventory(now=datetime(2027, 1, 1, tzinfo=timezone.utc))
    assert len(inv.keys) == 7 and inv.deployment.keystore_mac_ok is True
    assert inv.deployment.master_key_source == "key-file"
    result = mgr.audit(compliance="nist-800-57", as_of=datetime(2031, 1, 1, tzinfo=timezone.utc))
    assert result.keys_evaluated == 7 and result.rule_sets[0].id == "ekm-integrity"
    assert mgr.verify_audit_log().ok


def test_verify_hands_each_verified_record_once_in_order(unlocked, home):
    """The one pass serves callers that need records (backup proofs): same records, once."""
    lines = (home / "audit.log").read_bytes().splitlines()
    seen: list[dict] = []
    res = unlocked.audit_log.verify(on_record=seen.append)
    assert res.ok and res.records == len(lines) == len(seen)
    assert seen == [json.loads(x) for x in lines]  # mac field included, nothing re-serialised
    assert [r["seq"] for r in seen] == list(range(1, len(lines) + 1))


def test_verify_stops_handing_records_at_the_first_bad_one(unlocked, home):
    _edit_line(home / "audit.log", 3, actor="someone-else")
    seen: list[dict] = []
    res = unlocked.audit_log.verify(on_record=seen.append)
    assert not res.ok and res.first_bad.startswith("audit.log line 3: seq 3: MAC mismatch")
    assert [r["seq"] for r in seen] == [1, 2]  # the forged record never reaches the caller
