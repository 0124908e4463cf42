"""The report model: totals from tables, consistency checks, JSON round trip, hostile JSON."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import date, datetime, timedelta, timezone

import pytest

from ekm.errors import EkmError, InvalidError
from ekm.report.activity import bin_activity, classify_due, is_rotation
from ekm.report.changes import diff_reports
from ekm.report.model import SCHEMA, FindingRow, ReportData, RuleSetSummary, field_names
from tests.report.synthetic import AS_OF, START

UTC = timezone.utc
FORBIDDEN = ("material", "secret", "passphrase", "password", "pin", "token", "private", "seed")


def test_model_has_no_field_that_could_hold_a_secret() -> None:
    for cls, names in field_names().items():
        for name in names:
            assert not any(word in name.lower() for word in FORBIDDEN), (cls, name)


def test_totals_count_the_tables(small: ReportData) -> None:
    t = small.totals()
    assert t.keys == 6
    assert t.keys_by_dueness == {"overdue": 1, "soon": 1, "ok": 3, "none": 1}
    assert t.keys_by_backend == {"file": 4, "pkcs11": 1, "vault": 1}
    # overdue database_encryption, soon jwt_signing (4d), api_master (20d), hostile name (29d)
    assert [k.name for k in small.due_keys()] == [
        "database_encryption",
        "jwt_signing",
        "api_master",
        "<script>alert(1)</script>|x",
    ]
    assert t.due_within_30d == 4
    assert t.findings_by_severity == {"critical": 1, "high": 1, "medium": 1, "low": 1, "info": 0}
    assert t.rotations + t.failures + t.other_operations == 200
    assert t.alerts == 2 and t.alerts_by_severity == {"high": 1, "medium": 1}


def test_json_round_trip_is_exact(data: ReportData) -> None:
    doc = json.loads(json.dumps(data.to_dict()))
    assert doc["schema"] == SCHEMA
    assert doc["totals"]["keys"] == len(doc["keys"]) == 46
    back = ReportData.from_dict(doc)
    assert back == data


def test_from_dict_ignores_a_smuggled_material_field(small: ReportData) -> None:
    doc = small.to_dict()
    doc["keys"][0]["material"] = "c2VjcmV0LWtleS1tYXRlcmlhbA=="
    back = ReportData.from_dict(doc)
    assert "c2VjcmV0" not in json.dumps(back.to_dict())


def _mutated(small: ReportData, **changes: object) -> ReportData:
    return dataclasses.replace(small, **changes)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: _mutated(d, period_start=AS_OF + timedelta(days=1)), "after it ends"),
        (lambda d: _mutated(d, period_end=datetime(2026, 3, 31)), "period_end has no time zone"),
        (
            lambda d: _mutated(d, keys=[dataclasses.replace(d.keys[0], dueness="late")]),
            "keys[0].dueness 'late' is not one of",
        ),
        (
            lambda d: _mutated(d, keys=[dataclasses.replace(d.keys[0], versions=-1)]),
            "negative version count",
        ),
        (
            lambda d: _mutated(d, findings=[dataclasses.replace(d.findings[0], severity="bad")]),
            "findings[0].severity 'bad' is not one of",
        ),
        (
            lambda d: _mutated(
                d, findings=[*d.findings, dataclasses.replace(d.findings[0], rule_set="x")]
            ),
            "rule set 'x', which has no entry in compliance",
        ),
        (
            lambda d: _mutated(d, findings=d.findings[1:]),
            "rule set 'pci-dss-4' summary counts {'high': 1} but the findings table has {}",
        ),
        (
            lambda d: _mutated(d, compliance=[*d.compliance, d.compliance[0]]),
            "a rule set appears twice",
        ),
        (
            lambda d: _mutated(
                d,
                compliance=[RuleSetSummary("pci-dss-4", "t", {"high": 1}, 5, 4), *d.compliance[1:]],
            ),
            "passed 5 of 4 rules",
        ),
        (
            lambda d: _mutated(
                d, activity=[dataclasses.replace(d.activity[0], date=date(2025, 12, 31))]
            ),
            "activity for 2025-12-31 lies outside the period",
        ),
        (
            lambda d: _mutated(d, activity=[dataclasses.replace(d.activity[0], failures=-1)]),
            "has a negative count",
        ),
        (
            lambda d: _mutated(
                d, alerts=[dataclasses.replace(d.alerts[0], time=datetime(2026, 2, 1))]
            ),
            "alerts[0].time has no time zone",
        ),
    ],
)
def test_validate_refuses_contradictions(small: ReportData, change, message: str) -> None:
    bad = change(small)
    with pytest.raises(InvalidError) as exc:
        bad.validate()
    assert message in str(exc.value)
    assert exc.value.exit_code == 3
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: [], "the document must be an object"),
        (lambda d: {**d, "schema": "ekm-report/9"}, "schema is 'ekm-report/9'"),
        (lambda d: {**d, "keys": {"a": 1}}, "keys must be a list"),
        (lambda d: {**d, "keys": [{**d["keys"][0], "name": 5}]}, "keys[0].name must be a string"),
        (
            lambda d: {**d, "keys": [{**d["keys"][0], "versions": True}]},
            "keys[0].versions must be a non-negative integer",
        ),
        (
            lambda d: {**d, "keys": [{**d["keys"][0], "age_days": -3}]},
            "keys[0].age_days must be a non-negative number",
        ),
        (lambda d: {**d, "generated_at": "yesterday"}, "$.generated_at is not an ISO 8601 time"),
        (lambda d: {**d, "home": "x" * 5000}, "$.home is longer than 4096 characters"),
        (
            lambda d: {**d, "audit_log": {**d["audit_log"], "chain_ok": "yes"}},
            "audit_log.chain_ok must be true or false",
        ),
        (
            lambda d: {**d, "activity": [{**d["activity"][0], "date": "31/12/2025"}]},
            "activity[0].date is not an ISO date",
        ),
        (
            lambda d: {**d, "changes": {**d["changes"], "keys_added": [1]}},
            "changes.keys_added[0] must be a key name",
        ),
        (
            lambda d: {**d, "compliance": [{**d["compliance"][0], "findings_by_severity": []}]},
            "compliance[0].findings_by_severity must be an object",
        ),
    ],
)
def test_from_dict_refuses_hostile_documents(small: ReportData, mutate, message: str) -> None:
    doc = mutate(copy.deepcopy(small.to_dict()))
    with pytest.raises(InvalidError) as exc:
        ReportData.from_dict(doc)
    assert message in str(exc.value)
    assert isinstance(exc.value, EkmError) and exc.value.exit_code == 3


def test_from_dict_validates_consistency_too(small: ReportData) -> None:
    doc = small.to_dict()
    doc["findings"] = []
    with pytest.raises(InvalidError, match="fill both from the same audit run"):
        ReportData.from_dict(doc)


def test_diff_reports(small: ReportData) -> None:
    assert diff_reports(None, small) == type(small.changes)()
    previous = dataclasses.replace(
        small,
        generated_at=AS_OF - timedelta(days=30),
        keys=[*small.keys[1:], dataclasses.replace(small.keys[0], name="gone")],
        findings=[
            *small.findings[1:],
            FindingRow("r", "fips-140-2", "gone", 1, "low", "m", "q", "c"),
        ],
    )
    bumped = dataclasses.replace(small.keys[1], primary_version=3, versions=3)
    current = dataclasses.replace(small, keys=[small.keys[0], bumped, *small.keys[2:]])
    ch = diff_reports(previous, current)
    assert ch.keys_added == ["database_encryption"]
    assert ch.keys_removed == ["gone"]
    assert ch.keys_rotated == ["jwt_signing"]
    assert [f.rule for f in ch.findings_new] == ["rotation.max-age"]
    assert [f.key for f in ch.findings_resolved] == ["gone"]
    assert ch.since == AS_OF - timedelta(days=30)


def test_bin_activity_counts_per_utc_day() -> None:
    plus2 = timezone(timedelta(hours=2))
    events = [
        (datetime(2026, 1, 2, 23, 30, tzinfo=UTC), "rotate", "ok"),
        # 00:30 at +02:00 is still 2 January in UTC
        (datetime(2026, 1, 3, 0, 30, tzinfo=plus2), "rotate.complete", "ok"),
        (datetime(2026, 1, 3, 9, 0, tzinfo=UTC), "rotate", "error"),  # a failure, not a rotation
        (datetime(2026, 1, 3, 9, 0, tzinfo=UTC), "encrypt", "ok"),
        (datetime(2025, 12, 31, tzinfo=UTC), "rotate", "ok"),  # before the period
        (datetime(2026, 1, 3, 9, 0, tzinfo=UTC), "rotated-not", "ok"),  # not a rotation op
    ]
    days = bin_activity(events, START, AS_OF)
    assert [(d.date.isoformat(), d.rotations, d.failures, d.other) for d in days] == [
        ("2026-01-02", 2, 0, 0),
        ("2026-01-03", 0, 1, 2),
    ]
    assert is_rotation("rotate.prepare") and not is_rotation("rotation")


def test_classify_due_boundaries() -> None:
    week = timedelta(days=7)
    assert classify_due(None, week, AS_OF) == "none"
    assert classify_due(AS_OF, week, AS_OF) == "overdue"
    assert classify_due(AS_OF + week, week, AS_OF) == "soon"
    assert classify_due(AS_OF + week + timedelta(seconds=1), week, AS_OF) == "ok"
