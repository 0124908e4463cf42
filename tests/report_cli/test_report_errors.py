"""Every refusal of ``ekm report``: exit code, one stderr line saying what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.report_cli.conftest import Varied


@pytest.mark.parametrize(
    ("args", "code", "fragments"),
    [
        (["--format", "docx"], 2, ["--format 'docx'", "html, pdf, markdown, json"]),
        (["--since", "last tuesday"], 2, ["--since:"]),
        (["--as-of", "soon"], 2, ["--as-of:"]),
        (["--since", "+10d"], 2, ["--since", "after the report's end", "earlier --since"]),
        (["--since", "2030-01-01", "--as-of", "2029-01-01"], 2, ["after the report's end"]),
        (["--compliance", "iso-9999"], 2, ["unknown rule set 'iso-9999'", "valid ids"]),
        (["--compliance", ","], 2, ["no rule set named"]),
    ],
)
def test_bad_values_are_usage_errors(
    run: Any, varied: Varied, args: list[str], code: int, fragments: list[str]
) -> None:
    before = (varied.path / "audit.log").read_bytes()
    run("report", *args).expect_error(code, *fragments)
    assert (varied.path / "audit.log").read_bytes() == before  # nothing was reported
    assert not (varied.path / "state" / "last-report.json").exists()


def test_json_flag_contradicting_format(run: Any) -> None:
    run("--json", "report", "--format", "pdf").expect_error(2, "--json and --format pdf")


def test_json_flag_alone_means_json(run: Any) -> None:
    doc = json.loads(run("--json", "report").expect_ok().stdout)
    assert doc["schema"] == "ekm-report/1"


def test_output_is_a_directory(run: Any, tmp_path: Path) -> None:
    run("report", "--output", str(tmp_path)).expect_error(2, "is a directory; name a file")


def test_output_in_a_missing_directory(run: Any, tmp_path: Path) -> None:
    # exit 3 (not found), as for encrypt, decrypt, audit and keys export: one table (issue 21)
    res = run("report", "--output", str(tmp_path / "nope" / "r.html"))
    res.expect_error(3, "nope does not exist; create the directory first")


def test_not_deployed(run: Any, base_env: dict[str, str], tmp_path: Path) -> None:
    env = {**base_env, "EKM_HOME": str(tmp_path / "none")}
    run("report", env=env).expect_error(3, "no ekm home", "ekm deploy")


def test_unwritable_audit_log_refuses_the_report(run: Any, varied: Varied) -> None:
    log = varied.path / "audit.log"
    log.chmod(0o644)  # unsafe permissions: the log cannot take the report's record
    res = run("report", "--format", "json")
    assert res.code == 4, res.stderr
    assert res.stdout == ""
    assert "audit.log" in res.stderr and "Traceback" not in res.stderr
    assert not (varied.path / "state" / "last-report.json").exists()


def test_broken_chain_is_reported_not_hidden(run: Any, varied: Varied) -> None:
    log = varied.path / "audit.log"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"result":"ok"', b'"result":"OK"')
    log.write_bytes(b"".join(lines))
    res = run("report", "--format", "json").expect_ok()
    doc = json.loads(res.stdout)
    assert doc["audit_log"]["chain_ok"] is False
    assert "line 4" in doc["audit_log"]["first_bad"]
    assert "ekm: warning: the audit log chain is broken (audit.log line 4" in res.stderr
    assert "audit log BROKEN" in res.stderr


def test_missing_audit_log_is_not_recreated(run: Any, varied: Varied) -> None:
    for p in varied.path.glob("audit.log*"):
        p.unlink()
    doc = json.loads(run("report", "--format", "json").expect_ok().stdout)
    assert doc["audit_log"]["chain_ok"] is False
    assert "missing" in doc["audit_log"]["first_bad"]
    assert not (varied.path / "audit.log").exists()
