"""``ekm audit attest``: operator attestations in the audit log, shown by audits, expiring.

Each test runs the real ``ekm`` command on a private copy of the deployed home.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .conftest import items

RULE = "PCI-3.7.6-ATTEST"


def _evidence(tmp_path: Path, text: str = "dual control procedure, signed 2026-12-01\n") -> Path:
    path = tmp_path / "dual-control.txt"
    path.write_text(text)
    return path


def test_attestation_is_recorded_and_makes_the_rule_pass(run, home, tmp_path, audit_json):
    ev = _evidence(tmp_path)
    _, before = audit_json("--compliance", "pci-dss", "--soft-fail")
    (missing,) = items(before, "findings", RULE)
    assert missing["found"] == "no attestation recorded" and missing["severity"] == "medium"

    res = run("--json", "audit", "attest", RULE, "--by", "Ann Custodian", "--evidence", str(ev))
    res.expect_ok()
    doc = json.loads(res.stdout)
    sha = hashlib.sha256(ev.read_bytes()).hexdigest()
    assert doc["rule"] == RULE and doc["by"] == "Ann Custodian" and doc["evidence_sha256"] == sha
    last = json.loads((home / "audit.log").read_text().splitlines()[-1])
    assert last["op"] == "audit.attest" and last["evidence_sha256"] == sha
    assert last["mac"]  # written unlocked: evidence only counts when MAC'd

    _, after = audit_json("--compliance", "pci-dss", "--soft-fail")
    assert not items(after, "findings", RULE)
    (ok,) = items(after, "passed", RULE)
    assert "attested by Ann Custodian" in ok["found"] and sha[:16] in ok["found"]
    assert "evidence dual-control.txt" in ok["found"]


def test_attestation_expires(run, tmp_path, audit_json):
    ev = _evidence(tmp_path)
    run("audit", "attest", RULE, "--by", "Ann", "--evidence", str(ev), "--expires", "30d")
    _, day29 = audit_json("--compliance", "pci-dss", "--soft-fail", "--as-of", "+29d")
    assert items(day29, "passed", RULE)
    _, day31 = audit_json("--compliance", "pci-dss", "--soft-fail", "--as-of", "+31d")
    (f,) = items(day31, "findings", RULE)
    assert "expired" in f["found"]
    # an audit judged before the attestation was recorded does not count it either
    _, past = audit_json("--compliance", "pci-dss", "--soft-fail", "--as-of", "2026-01-01")
    (early,) = items(past, "findings", RULE)
    assert "recorded after" in early["found"]


def test_forged_attestation_line_counts_for_nothing(run, home, tmp_path, audit_json):
    """The attack: append an audit.attest record by hand (no MAC, wrong chain)."""
    log = home / "audit.log"
    last = json.loads(log.read_text().splitlines()[-1])
    forged = {
        "seq": last["seq"] + 1,
        "time": last["time"],
        "actor": "mallory",
        "op": "audit.attest",
        "result": "ok",
        "rule": RULE,
        "by": "Mallory",
        "evidence": "x",
        "evidence_sha256": "0" * 64,
        "expires": "2999-01-01T00:00:00Z",
        "prev": "0" * 64,
        "mac": None,
    }
    with open(log, "a") as fh:
        fh.write(json.dumps(forged) + "\n")
    _, doc = audit_json("--compliance", "pci-dss", "--soft-fail")
    assert not items(doc, "passed", RULE)
    (u,) = items(doc, "unknown", RULE)
    assert "need a verified, MAC-checked audit log" in u["found"]


def test_attest_errors(run, tmp_path):
    ev = _evidence(tmp_path)
    run("audit", "attest", "NOPE-1", "--by", "A", "--evidence", str(ev)).expect_error(
        2, "unknown rule 'NOPE-1'"
    )
    run("audit", "attest", "SP800-57-ROTATION", "--by", "A", "--evidence", str(ev)).expect_error(
        2, "checked by ekm itself", "--explain SP800-57-ROTATION"
    )
    run("audit", "attest", RULE, "--by", "A", "--evidence", str(tmp_path / "no")).expect_error(
        3, "evidence file not found"
    )
    run("audit", "attest", RULE, "--by", " ", "--evidence", str(ev)).expect_error(2, "--by")
    run(
        "audit", "attest", RULE, "--by", "A", "--evidence", str(ev), "--expires", "soon"
    ).expect_error(2, "--expires")
    run(
        "audit", "--compliance", "pci-dss", "attest", RULE, "--by", "A", "--evidence", str(ev)
    ).expect_error(2, "ekm audit attest takes none of --compliance")


def test_attest_needs_the_master_key(run, home, tmp_path):
    (home / "master.key").rename(tmp_path / "master.key")
    res = run("audit", "attest", RULE, "--by", "A", "--evidence", str(_evidence(tmp_path)))
    res.expect_error(3, "master key file is needed")
    assert "audit.attest" not in (home / "audit.log").read_text()


def test_explain_prints_source_section_strength_and_mapping(run):
    out = run("audit", "--explain", "CNSA1-PUBKEY").expect_ok().stdout
    assert "CNSSP-15" in out and "Annex B" in out and "strength:  shall" in out
    assert "maps to medium..critical" in out
    doc = json.loads(run("--json", "audit", "--explain", "IR8547-QV-2036").expect_ok().stdout)
    assert doc["source"]["status"] == "draft" and doc["in_force"] == "from 2036-01-01"
    assert "cap it at low unless --enforce-drafts" in doc["mapping"]
    run("audit", "--explain", "NOPE").expect_error(2, "unknown rule 'NOPE'")
    run("audit", "--explain", "CNSA1-PUBKEY", "--format", "json").expect_error(
        2, "--explain takes none of --format"
    )


def test_enforce_drafts_restores_the_declared_severity(audit_json):
    _, capped = audit_json("--compliance", "nist-800-131a", "--as-of", "2036-01-01", "--soft-fail")
    _, full = audit_json(
        "--compliance", "nist-800-131a", "--as-of", "2036-01-01", "--soft-fail", "--enforce-drafts"
    )
    rsa = [f for f in capped["findings"] if f["rule"] == "IR8547-QV-2036"]
    assert rsa and {f["severity"] for f in rsa} == {"low"}
    assert {f["source"]["declared_severity"] for f in rsa} == {"critical"}
    assert {f["severity"] for f in full["findings"] if f["rule"] == "IR8547-QV-2036"} == {
        "critical"
    }
    assert full["audited"]["enforce_drafts"] is True
