"""The slim stored baseline: what it holds, an old whole-report baseline, hostile files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ekm.errors import InvalidError
from ekm.report.baseline import SCHEMA, parse_baseline
from tests.report_cli.conftest import Varied


def _json(run: Any, *args: str) -> dict[str, Any]:
    return json.loads(run("report", "--format", "json", *args).expect_ok().stdout)


def _baseline(home: Path) -> Path:
    return home / "state" / "last-report.json"


def test_baseline_holds_key_versions_and_finding_identities_only(run: Any, varied: Varied) -> None:
    report = _json(run, "--compliance", "bsi-tr-02102-1")
    doc = json.loads(_baseline(varied.path).read_text())
    assert set(doc) == {"schema", "ekm_version", "generated_at", "period_end", "keys", "rules"}
    assert doc["schema"] == SCHEMA and doc["period_end"] == report["period_end"]
    assert doc["keys"] == {k["name"]: [k["primary_version"], k["versions"]] for k in report["keys"]}
    for rule in doc["rules"]:
        assert set(rule) == {"rule_set", "rule", "severity", "cite", "subjects"}
    stored = {
        (r["rule_set"], r["rule"], key, version)
        for r in doc["rules"]
        for key, version in zip(r["subjects"][::2], r["subjects"][1::2], strict=True)
    }
    assert stored == {
        (f["rule_set"], f["rule"], f["key"], f["version"]) for f in report["findings"]
    }
    assert ("bsi-tr-02102-1", "BSI-RSA-3000", "legacy_rsa", 1) in stored
    text = _baseline(varied.path).read_text()
    assert "message" not in text and "required" not in text  # rows are not stored


def test_resolved_finding_row_comes_from_the_baseline(run: Any, varied: Varied) -> None:
    from ekm.manager import KeyManager

    _json(run, "--compliance", "bsi-tr-02102-1")
    mgr = KeyManager(varied.path, env={})
    mgr.rotate("legacy_rsa", force=True, to_type="rsa-3072")
    mgr.destroy_version("legacy_rsa", 1)
    (row,) = _json(run, "--compliance", "bsi-tr-02102-1")["changes"]["findings_resolved"]
    assert row["rule"] == "BSI-RSA-3000" and row["severity"] in ("high", "medium", "critical")
    assert row["message"] == "no longer reported (resolved since the previous report)"
    assert "BSI TR-02102-1" in row["cite"]


def test_old_whole_report_baseline_is_accepted_then_replaced(run: Any, varied: Varied) -> None:
    first = _json(run, "--compliance", "bsi-tr-02102-1")
    base = _baseline(varied.path)
    base.write_text(json.dumps(first))  # what ekm stored before the slim baseline
    base.chmod(0o600)
    run("generate", "billing_key", "--type", "aes-256-gcm").expect_ok()
    second = _json(run, "--compliance", "bsi-tr-02102-1")
    assert second["changes"]["keys_added"] == ["billing_key"]
    assert second["changes"]["since"] == first["generated_at"]
    assert second["changes"]["findings_new"] == second["changes"]["findings_resolved"] == []
    assert json.loads(base.read_text())["schema"] == SCHEMA  # rewritten slim


def test_damaged_old_format_baseline_is_refused_naming_the_file(run: Any, varied: Varied) -> None:
    first = _json(run)
    first["findings"][0]["version"] = -1
    base = _baseline(varied.path)
    base.write_text(json.dumps(first))
    run("report").expect_error(
        3, str(base), "findings[0].version must be a non-negative integer", "remove the file"
    )


GOOD = {
    "schema": SCHEMA,
    "ekm_version": "1.0",
    "generated_at": "2026-01-01T00:00:00Z",
    "period_end": "2026-01-01T00:00:00Z",
    "keys": {"a": [1, 2], "b": [None, 0]},
    "rules": [
        {"rule_set": "fips-140-2", "rule": "R1", "severity": "high", "cite": "c",
         "subjects": ["a", 1, None, None]},
    ],
}  # fmt: skip


def test_parse_baseline_reads_what_it_stores() -> None:
    base = parse_baseline(GOOD)
    assert base.keys == {"a": (1, 2), "b": (None, 0)}
    assert base.findings == {("fips-140-2", "R1", "a", 1), ("fips-140-2", "R1", None, None)}
    assert parse_baseline(base.to_dict()) == base


def _bad(**changes: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        *parents, last = path.split("__")
        target: Any = doc
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        target[int(last) if last.isdigit() else last] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "the document must be an object"),
        (_bad(schema="ekm-report-baseline/9"), "schema is 'ekm-report-baseline/9'"),
        (_bad(generated_at="yesterday"), "generated_at is not an ISO 8601 time"),
        (_bad(period_end=5), "period_end must be a string"),
        (_bad(ekm_version="x" * 5000), "ekm_version is longer than 4096 characters"),
        (_bad(keys=[]), "keys must be an object"),
        (_bad(keys__a=[1]), "keys['a'] must be [primary version or null, version count]"),
        (_bad(keys__a=[True, 2]), "keys['a'] must be a non-negative integer"),
        (_bad(keys__a=[1, -2]), "keys['a'] must be a non-negative integer"),
        (_bad(rules={}), "rules must be a list"),
        (_bad(rules__0="R1"), "rules[0] must be an object"),
        (_bad(rules__0__severity="fatal"), "rules[0].severity must be one of critical"),
        (_bad(rules__0__rule=None), "rules[0].rule must be a string"),
        (_bad(rules__0__subjects=["a"]), "rules[0].subjects must be a list of key, version"),
        (_bad(rules__0__subjects=[3, 1]), "rules[0].subjects[0] must be a string"),
        (_bad(rules__0__subjects=["a", 1.5]), "rules[0].subjects[1] must be a non-negative"),
        (_bad(rules=[GOOD["rules"][0], GOOD["rules"][0]]), "rules[1] repeats rule 'R1'"),
    ],
)
def test_hostile_baseline_is_invalid_naming_the_path(doc: Any, message: str) -> None:
    with pytest.raises(InvalidError) as exc:
        parse_baseline(doc)
    assert message in exc.value.message and exc.value.exit_code == 3
    assert "\n" not in exc.value.message


def test_hostile_baseline_file_is_exit_3_naming_the_file(run: Any, varied: Varied) -> None:
    base = _baseline(varied.path)
    base.parent.mkdir(mode=0o700, exist_ok=True)
    base.write_text(json.dumps(_bad(rules__0__subjects=["a", -1])))
    base.chmod(0o600)
    run("report").expect_error(3, str(base), "rules[0].subjects[1]", "remove the file")
