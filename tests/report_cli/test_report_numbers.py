"""``ekm report`` agrees with ``ekm audit`` and ``ekm status``, and reads the log it claims to."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from ekm.timeutil import from_iso, iso, utcnow
from tests.report_cli.conftest import ROTATED, Varied


def report_json(run: Any, *args: str) -> dict[str, Any]:
    res = run("report", "--format", "json", *args).expect_ok()
    return json.loads(res.stdout)


@pytest.mark.parametrize("sets", ["bsi-tr-02102-1", "all"])
def test_findings_per_rule_set_match_ekm_audit(run: Any, sets: str) -> None:
    as_of = iso(utcnow() + timedelta(days=400))
    doc = report_json(run, "--compliance", sets, "--as-of", as_of)
    audit = run("audit", "--compliance", sets, "--format", "json", "--as-of", as_of)
    assert audit.code in (0, 1), audit.stderr
    adoc = json.loads(audit.stdout)
    # the same totals per severity ...
    assert {s: n for s, n in doc["totals"]["findings_by_severity"].items() if s != "info"} == (
        adoc["summary"]
    )
    # ... and the same findings per rule set, rule by rule
    by_set = Counter(f["rule_set"] for f in adoc["findings"])
    assert {c["id"]: sum(c["findings_by_severity"].values()) for c in doc["compliance"]} == {
        rs["id"]: by_set.get(rs["id"], 0) for rs in adoc["rule_sets"]
    }
    mine = Counter((f["rule"], f["key"], f["version"]) for f in doc["findings"])
    theirs = Counter((f["rule"], f["key"], f["version"]) for f in adoc["findings"])
    assert mine == theirs
    if sets == "bsi-tr-02102-1":
        assert any(f["key"] == "legacy_rsa" for f in doc["findings"])  # the rsa-2048 key


def test_key_count_and_rows_match_ekm_status(run: Any) -> None:
    as_of = iso(utcnow() + timedelta(days=25))
    doc = report_json(run, "--as-of", as_of)
    status = json.loads(run("--json", "status", "--as-of", as_of).expect_ok().stdout)
    assert doc["totals"]["keys"] == len(status["keys"]) == 8
    rows = {k["name"]: k for k in doc["keys"]}
    for key in status["keys"]:
        row = rows[key["name"]]
        assert row["primary_version"] == key["primary_version"]
        assert row["versions"] == len(key["versions"])
        assert row["next_rotation"] == key["next_rotation"]
        assert (row["dueness"] == "overdue") == key["due"]
        assert (row["dueness"] == "soon") == key["notify"]
    # 25 days on: session (7d) is overdue, the 30d keys fall due within the horizon
    assert rows["session"]["dueness"] == "overdue"
    assert {"session", "jwt_signing", "hmac"} <= set(doc["due_keys"])
    assert "rsa" not in doc["due_keys"]
    assert doc["totals"]["due_within_30d"] == len(doc["due_keys"])
    assert rows["legacy_rsa"]["type"] == "rsa-2048"
    assert doc["totals"]["keys_by_type"]["rsa-2048"] == 1


def test_period_activity_and_alerts_come_from_the_audit_log(run: Any, varied: Varied) -> None:
    doc = report_json(run, "--since", varied.since())
    t = doc["totals"]
    assert t["rotations"] == len(ROTATED)
    assert t["failures"] == 1  # the denied unlock
    day = {a["date"]: a for a in doc["activity"]}
    assert day[varied.day(2).date().isoformat()]["rotations"] == len(ROTATED)
    alerts = {a["check"]: a for a in doc["alerts"]}
    assert set(alerts) == {"files.permissions", "key.overdue"}
    assert alerts["files.permissions"]["severity"] == "high"
    assert alerts["files.permissions"]["message"].startswith("firing, resolved ")
    assert alerts["key.overdue"]["message"] == "firing"
    assert from_iso(doc["period_start"]) == from_iso(varied.since())
    # alerts are not also counted as operations
    records = [json.loads(x) for x in (varied.path / "audit.log").read_text().splitlines()]
    assert t["rotations"] + t["failures"] + t["other_operations"] == sum(
        1 for r in records if r["op"] != "monitor.event" and r["op"] != "report"
    )


def test_period_excludes_what_came_before_since(run: Any, varied: Varied) -> None:
    doc = report_json(run, "--since", iso(varied.day(4) + timedelta(hours=12)))
    assert doc["totals"]["rotations"] == 0
    assert [a["check"] for a in doc["alerts"]] == ["key.overdue"]
    assert all(a["date"] >= varied.day(4).date().isoformat() for a in doc["activity"])


def test_metadata_audit_record_and_head_hash(run: Any, varied: Varied) -> None:
    doc = report_json(run, "--compliance", "pci-dss")
    assert doc["ekm_version"] == run("--version").expect_ok().stdout.split()[1]
    import hashlib

    cfg = (varied.path / "ekm.toml").read_bytes()
    assert doc["config_fingerprint"] == "sha256:" + hashlib.sha256(cfg).hexdigest()
    log = (varied.path / "audit.log").read_bytes().splitlines(keepends=True)
    # the head hash is that of the last record before the report's own record
    assert (
        doc["audit_log"]["head_hash"]
        == "sha256:" + hashlib.sha256(log[-2].rstrip(b"\n")).hexdigest()
    )
    assert doc["audit_log"]["records"] == len(log) - 1
    assert doc["audit_log"]["chain_ok"] is True
    last = json.loads(log[-1])
    assert last["op"] == "report"
    assert last["rule_sets"] == "ekm-integrity,pci-dss"
    assert last["keys"] == 8 and last["findings"] == doc["totals"]["findings"]
    run("audit", "--verify-log").expect_ok()
