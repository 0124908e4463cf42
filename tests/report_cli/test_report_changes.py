"""What changed between two reports: the stored baseline, and ``--since``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from ekm.timeutil import from_iso, iso
from tests.report_cli.conftest import Varied


def _json(run: Any, *args: str) -> dict[str, Any]:
    return json.loads(run("report", "--format", "json", *args).expect_ok().stdout)


def _baseline(home: Path) -> Path:
    return home / "state" / "last-report.json"


def test_second_report_shows_a_key_added_and_a_key_rotated(run: Any, varied: Varied) -> None:
    first = _json(run, "--compliance", "bsi-tr-02102-1")
    assert first["changes"] == {
        "keys_added": [], "keys_removed": [], "keys_rotated": [],
        "findings_new": [], "findings_resolved": [], "since": None,
    }  # fmt: skip
    base = _baseline(varied.path)
    assert base.stat().st_mode & 0o777 == 0o600
    assert base.parent.stat().st_mode & 0o777 == 0o700
    run("generate", "billing_key", "--type", "aes-256-gcm").expect_ok()
    run("rotate", "jwt_signing").expect_ok()
    second = _json(run, "--compliance", "bsi-tr-02102-1")
    ch = second["changes"]
    assert ch["keys_added"] == ["billing_key"]
    assert ch["keys_rotated"] == ["jwt_signing"]
    assert ch["keys_removed"] == []
    assert ch["since"] == first["generated_at"]
    assert second["period_start"] == first["period_end"]  # the period picks up where it ended
    md = run("report", "--format", "markdown").expect_ok().stdout
    assert "billing_key" in md and "jwt_signing" in md


def test_a_resolved_finding_is_reported(run: Any, varied: Varied) -> None:
    from ekm.manager import KeyManager

    _json(run, "--compliance", "bsi-tr-02102-1")
    # migrate the weak key and shred the old version: its finding goes away
    mgr = KeyManager(varied.path, env={})
    mgr.rotate("legacy_rsa", force=True, to_type="rsa-3072")
    mgr.destroy_version("legacy_rsa", 1)  # the rsa-2048 version is retired for good
    ch = _json(run, "--compliance", "bsi-tr-02102-1")["changes"]
    assert ch["keys_rotated"] == ["legacy_rsa"]
    resolved = [(f["rule"], f["key"], f["version"]) for f in ch["findings_resolved"]]
    assert resolved == [("BSI-RSA-3000", "legacy_rsa", 1)]
    assert ch["findings_new"] == []


def test_since_reconstructs_key_changes_from_the_keystore(run: Any, varied: Varied) -> None:
    doc = _json(run, "--since", iso(varied.day(1) + timedelta(hours=12)))
    ch = doc["changes"]
    assert ch["keys_added"] == []  # legacy_rsa came on day one, before --since
    assert ch["keys_rotated"] == ["database_encryption", "hmac"]
    assert from_iso(ch["since"]) == varied.day(1) + timedelta(hours=12)
    doc = _json(run, "--since", iso(varied.day(0) + timedelta(hours=12)))
    assert doc["changes"]["keys_added"] == ["legacy_rsa"]


def test_as_of_preview_does_not_move_the_baseline(run: Any, varied: Varied) -> None:
    _json(run, "--as-of", "+400d")
    assert not _baseline(varied.path).exists()
    first = _json(run)
    _json(run, "--as-of", "+400d")
    assert json.loads(_baseline(varied.path).read_text())["generated_at"] == first["generated_at"]


def test_damaged_baseline_is_refused_naming_the_file(run: Any, varied: Varied) -> None:
    _json(run)
    base = _baseline(varied.path)
    doc = json.loads(base.read_text())
    doc["keys"]["hmac"] = [1, "many"]
    base.write_text(json.dumps(doc))
    run("report").expect_error(
        3, str(base), "keys['hmac'] must be a non-negative integer", "remove the file"
    )
    base.write_text("{not json")
    run("report").expect_error(3, str(base), "is not JSON")
    base.write_text(json.dumps({**doc, "schema": "other/9"}))
    run("report").expect_error(3, "schema is 'other/9'")


def test_baseline_with_smuggled_material_never_reaches_a_report(run: Any, varied: Varied) -> None:
    _json(run)
    base = _baseline(varied.path)
    doc = json.loads(base.read_text())
    doc["rules"][0]["material"] = "SMUGGLED-" + "ab" * 32
    doc["secret"] = "SMUGGLED-TOP"
    base.write_text(json.dumps(doc))
    for fmt in ("json", "markdown", "html"):
        res = run("report", "--format", fmt).expect_ok()
        assert "SMUGGLED" not in res.stdout
    assert "SMUGGLED" not in base.read_text()  # the new baseline is rebuilt from the model
