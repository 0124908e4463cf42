"""The master key's cryptoperiod: master.json records its creation time, MAC'd under the root
key; an attacker who edits the date is caught; an old home without it is judged honestly."""

from __future__ import annotations

import json

from .conftest import items

RULE = "SP800-57-CP-MASTER"


def _meta(home):
    return json.loads((home / "master.json").read_text())


def _write(home, meta):
    path = home / "master.json"
    path.write_text(json.dumps(meta))
    path.chmod(0o600)


def test_fresh_home_records_an_authentic_creation_time(home, audit_json):
    meta = _meta(home)
    assert meta["created"].endswith("Z") and len(meta["created_mac"]) == 64
    _, doc = audit_json("--compliance", "nist-800-57", "--soft-fail")
    (ok,) = items(doc, "passed", RULE)
    assert f"master key created {meta['created']}" in ok["found"]
    assert ok["facts"]["master_key_created"] == meta["created"]
    _, later = audit_json("--compliance", "nist-800-57", "--soft-fail", "--as-of", "+731d")
    (old,) = items(later, "findings", RULE)
    assert "731d old" in old["found"] and old["severity"] == "medium"


def test_a_younger_date_written_by_hand_does_not_authenticate(home, run, audit_json):
    """The attack: make an old master key look young. Unlocking refuses the edited record,
    and the audit, running without the key, never counts the date as a pass."""
    meta = _meta(home)
    meta["created"] = "2999-01-01T00:00:00Z"
    _write(home, meta)
    run("keys", "list").expect_ok()  # metadata needs no key
    run("encrypt", "--key", "database_encryption", stdin="x").expect_error(
        4, "creation time does not authenticate"
    )
    res, doc = audit_json("--compliance", "nist-800-57", "--soft-fail")
    assert "creation time does not authenticate" in res.stderr
    assert not items(doc, "passed", RULE)
    (u,) = items(doc, "unknown", RULE)
    assert "not authenticated" in u["found"]


def test_home_deployed_before_the_date_was_recorded_is_not_evaluated(home, audit_json):
    meta = _meta(home)
    del meta["created"], meta["created_mac"]
    _write(home, meta)
    res, doc = audit_json("--compliance", "nist-800-57", "--soft-fail")
    assert "Traceback" not in res.stderr
    (u,) = items(doc, "unknown", RULE)
    assert "records no creation time" in u["found"] and "in use since at least" in u["found"]
    # an old home keeps working for everything else
    assert items(doc, "passed", "SP800-57-INTEGRITY")


def test_half_a_creation_record_is_refused_as_tampering(home, run):
    meta = _meta(home)
    del meta["created_mac"]
    _write(home, meta)
    run("status").expect_error(4, "master.json")
