"""``ekm rotate --check``: the cron contract.

Cron mails whatever a job prints, so: nothing due -> no stdout, no stderr, exit 0; due keys
-> one stdout line each, exit 1; keys inside their notify window -> a warning on stderr only,
exit 0. It reads metadata only: no master key, no passphrase.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from ekm.manager import KeyManager
from tests.conftest import copy_home
from tests.rotation.helpers import at, snapshot, t0

ROTATING = {"session", "jwt_signing", "hmac", "api_master", "api_internal", "database_encryption"}


def test_nothing_due_is_silent_and_exits_0(frun, fhome: Path) -> None:
    before = snapshot(fhome)
    for args in ([], ["--as-of", "+5d"], ["--as-of", at(fhome, 5.9)]):
        res = frun("rotate", "--check", *args)
        assert (res.code, res.stdout, res.stderr) == (0, "", ""), args
    assert snapshot(fhome) == before  # a check changes nothing, not even the audit log


def test_notify_window_warns_on_stderr_only_and_exits_0(frun, fhome: Path) -> None:
    res = frun("rotate", "--check", "--as-of", at(fhome, 6.5))  # session: 7d, notify 1d
    assert (res.code, res.stdout) == (0, "")
    assert res.stderr.splitlines() == [
        f"ekm: warning: session: rotation due in 12h ({at(fhome, 7)})"
    ]


def test_one_line_per_due_key_and_exit_1(frun, fhome: Path) -> None:
    res = frun("rotate", "--check", "--as-of", at(fhome, 8))
    assert res.code == 1 and res.stderr == ""
    assert res.stdout.splitlines() == [
        f"session: rotation overdue since {at(fhome, 7)} (1d ago; rotate every 1w)"
    ]
    # due and upcoming together: still exit 1, warnings on stderr
    res = frun("rotate", "--check", "--as-of", at(fhome, 28))
    assert res.code == 1
    assert [line.split(":")[0] for line in res.stdout.splitlines()] == ["session"]
    warned = sorted(line.split(": ")[2] for line in res.stderr.splitlines())
    assert warned == ["hmac", "jwt_signing"]


def test_due_this_instant_counts_as_due(frun, fhome: Path) -> None:
    """next rotation == now: due (exit 1) but not overdue."""
    res = frun("--json", "rotate", "--check", "--as-of", at(fhome, 7))
    assert res.code == 1
    (entry,) = json.loads(res.stdout)["due"]
    assert (entry["name"], entry["due"], entry["overdue"]) == ("session", at(fhome, 7), False)


def test_relative_as_of_and_json_shape(frun, fhome: Path) -> None:
    res = frun("--json", "rotate", "--check", "--as-of", "+90d")
    assert res.code == 1 and res.stderr == ""
    doc = json.loads(res.stdout)
    assert set(doc) >= {"due", "upcoming"} and doc["upcoming"] == []
    assert {d["name"] for d in doc["due"]} == ROTATING  # offline never rotates
    for entry in doc["due"]:
        assert set(entry) >= {"name", "due", "overdue"}
        assert isinstance(entry["overdue"], bool) and entry["due"].endswith("Z")
    assert [d["due"] for d in doc["due"]] == sorted(d["due"] for d in doc["due"])
    # the human form of the same instant: one line per due key
    assert len(frun("rotate", "--check", "--as-of", "+90d").stdout.splitlines()) == len(ROTATING)


def test_json_when_nothing_is_due(frun) -> None:
    res = frun("--json", "rotate", "--check")
    assert res.code == 0 and res.stderr == ""
    doc = json.loads(res.stdout)
    assert doc["due"] == [] and doc["upcoming"] == []


def test_check_needs_no_master_key_file(frun, fhome: Path) -> None:
    (fhome / "master.key").rename(fhome / "elsewhere.key")
    res = frun("rotate", "--check", "--as-of", at(fhome, 8))
    assert res.code == 1 and res.stdout.startswith("session: rotation overdue")
    assert res.stderr == ""
    # ... whereas rotating needs it, and says so
    frun("rotate", "--force", "--yes").expect_error(3, "master.key is missing")


def test_check_needs_no_passphrase(run, base_env, pass_template: Path, tmp_path: Path) -> None:
    home = copy_home(pass_template, tmp_path / "p")
    env = {**base_env, "EKM_HOME": str(home)}  # no EKM_PASSPHRASE, no terminal
    res = run("rotate", "--check", "--as-of", at(home, 8), env=env)
    assert (res.code, res.stderr) == (1, "")
    assert res.stdout.startswith("session: rotation overdue")
    assert run("rotate", "--check", env=env).code == 0
    run("rotate", "--force", "--yes", env=env).expect_error(3, "EKM_PASSPHRASE")
    check = KeyManager(home, env={}).rotation_check(now=t0(home) + timedelta(days=8))
    assert [d.name for d in check.due] == ["session"]


def test_api_rotation_check(mgr: KeyManager, fhome: Path) -> None:
    start = t0(fhome)
    assert mgr.rotation_check(now=start).due == []
    result = mgr.rotation_check(now=start + timedelta(days=28))
    assert [d.name for d in result.due] == ["session"]
    assert result.due[0].due == start + timedelta(days=7) and result.due[0].overdue
    assert sorted(d.name for d in result.upcoming) == ["hmac", "jwt_signing"]
    doc = result.to_dict()
    assert doc["due"][0]["name"] == "session" and doc["checked"] == 7


@pytest.mark.parametrize(
    ("args", "code", "fragments"),
    [
        (["--as-of", "yesterday"], 2, ["--as-of", "'yesterday' is not a time"]),
        (["--as-of", "+6x"], 2, ["--as-of"]),
        (["--force"], 2, ["--check only reports"]),
        (["--dry-run"], 2, ["--check only reports"]),
        (["--prepare"], 2, ["--check only reports"]),
    ],
)
def test_check_usage_errors(frun, args: list[str], code: int, fragments: list[str]) -> None:
    frun("rotate", "--check", *args).expect_error(code, *fragments)


def test_check_on_a_missing_home(frun, base_env, tmp_path: Path) -> None:
    env = {**base_env, "EKM_HOME": str(tmp_path / "absent")}
    frun("rotate", "--check", env=env).expect_error(3, "no ekm home at", "ekm deploy")


def test_check_reports_a_tampered_document_instead_of_passing(frun, fhome: Path) -> None:
    """A hostile key document must not make cron silently report 'nothing due'."""
    (fhome / "keys" / "session.json").write_text('{"format": 1, "meta": "x"}')
    res = frun("rotate", "--check")
    assert res.code in (3, 4) and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and "session" in res.stderr
