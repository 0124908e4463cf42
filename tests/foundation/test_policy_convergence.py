"""`ekm deploy` run again brings existing keys' policies in line with an edited ekm.toml."""

from __future__ import annotations

import json


def _edit_config(home, old: str, new: str) -> None:
    path = home / "ekm.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_a_changed_interval_is_applied_by_deploy_and_audited(home, run):
    _edit_config(home, 'rotate_every = "7d"', 'rotate_every = "3d"')  # the session key

    dry = run("deploy", "--dry-run").expect_ok()
    assert "policy session" in dry.stdout and "would update" in dry.stdout
    assert json.loads(run("--json", "keys", "show", "session").stdout)["policy"]["interval"] == "1w"

    done = run("deploy").expect_ok()
    assert "interval 1w -> 3d" in done.stdout
    show = json.loads(run("--json", "keys", "show", "session").stdout)
    assert show["policy"]["interval"] == "3d"
    records = [json.loads(line) for line in (home / "audit.log").read_text().splitlines()]
    assert any(r["op"] == "key.policy" and r["key"] == "session" for r in records)

    again = run("deploy").expect_ok()
    assert "nothing to do" in again.stderr


def test_an_unchanged_config_changes_no_policy(home, run):
    before = (home / "keys" / "session.json").read_bytes()
    run("deploy").expect_ok()
    assert (home / "keys" / "session.json").read_bytes() == before
