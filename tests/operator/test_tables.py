"""Tables that fit: on a terminal of 60, 80 or 120 columns, names, versions and rule ids are
never cut; lesser columns wrap or are left out with a note saying which."""

from __future__ import annotations

import json
import re

import pytest

from ekm.cli.render import fit_columns
from tests.operator.tty import run_on_pty

KEYS = ("api_internal", "api_master", "database_encryption", "hmac", "jwt_signing", "rsa",
        "session")  # fmt: skip


def _tokens(out: str) -> set[str]:
    return set(re.findall(r"[\w.:-]+", out))


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_status_keeps_every_key_name_whole(ekm_env, columns: int) -> None:
    code, out = run_on_pty(["status"], ekm_env, columns=columns)
    assert code == 0, out
    assert "…" not in out
    assert set(KEYS) <= _tokens(out)
    assert "hmac-sha…" not in out and "api_inte" not in out.replace("api_internal", "")
    if columns == 120:
        assert "not shown" not in out and "next rotation" in out
    if columns == 60:
        assert "(not shown at 60 columns:" in out and "--json" in out


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_audit_keeps_rule_ids_whole(run, ekm_env, columns: int) -> None:
    doc = json.loads(run("--json", "audit", "--compliance", "pci-dss").stdout)
    rules = {f["rule"] for f in doc["findings"]}
    assert rules
    code, out = run_on_pty(["audit", "--compliance", "pci-dss"], ekm_env, columns=columns)
    assert code == 1, out
    assert "…" not in out
    assert rules <= _tokens(out)
    header = next(line for line in out.splitlines() if line.startswith(("status", "rule")))
    assert {"rule", "key", "version"} <= set(header.split())


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_apikey_list_keeps_ids_whole(run, ekm_env, columns: int) -> None:
    run("apikey", "create", "--key", "api_internal", "--name", "a-rather-long-client-name")
    key_id = json.loads(run("--json", "apikey", "list").stdout)["apikeys"][0]["id"]
    code, out = run_on_pty(["apikey", "list"], ekm_env, columns=columns)
    assert code == 0, out
    assert key_id in out and "…" not in out


def test_fit_columns_drops_lesser_columns_from_the_right() -> None:
    cols = ["name", "type", "created", "message"]
    rows = [["database_encryption", "aes-256-gcm", "2026-01-01T00:00:00Z", "x" * 50]]
    assert fit_columns(cols, rows, 200)[1] == []
    keep, dropped, _ = fit_columns(cols, rows, 40)
    assert [cols[i] for i in keep] == ["name", "type"] and dropped == ["created", "message"]
    keep, dropped, needed = fit_columns(cols, rows, 5)  # identifying columns are never dropped
    assert [cols[i] for i in keep] == ["name"] and needed == len("database_encryption")
