"""``ekm deploy`` and ``ekm status`` as an operator runs them (CLI.md contract)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.foundation.helpers import DEFAULT_KEYS, append_config, snapshot

STATUS_SCHEMA = {
    "type": "object",
    "required": ["home", "keys", "backends", "audit_log"],
    "properties": {
        "home": {"type": "string"},
        "backends": {"type": "object"},
        "audit_log": {"type": "object"},
        "keys": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "name",
                    "type",
                    "usage",
                    "backend",
                    "primary_version",
                    "versions",
                    "next_rotation",
                ],
                "properties": {
                    "name": {"type": "string"},
                    "type": {"type": "string"},
                    "usage": {"type": "string"},
                    "backend": {"enum": ["file", "pkcs11", "vault"]},
                    "primary_version": {"type": "integer", "minimum": 1},
                    "next_rotation": {
                        "type": ["string", "null"],
                        "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$",
                    },
                    "versions": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["version", "state", "created"],
                            "properties": {
                                "version": {"type": "integer", "minimum": 1},
                                "state": {
                                    "enum": [
                                        "pending",
                                        "primary",
                                        "active",
                                        "disabled",
                                        "destroyed",
                                    ]
                                },
                                "created": {
                                    "type": "string",
                                    "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$",
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One deployment through the real ``ekm deploy`` on a home that does not exist yet."""
    from tests.conftest import clean_environ

    home = tmp_path_factory.mktemp("fresh") / "ekm-home"
    proc = subprocess.run(
        ["ekm", "deploy"],
        env=clean_environ(EKM_HOME=str(home)),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return home, proc


def test_deploy_creates_a_private_home_with_the_default_key_set(fresh):
    home, proc = fresh
    assert proc.returncode == 0, proc.stderr
    assert f"deployed ekm at {home}" in proc.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "keys").stat().st_mode) == 0o700
    for path in home.rglob("*"):
        want = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.lstat().st_mode) == want, path
        assert not path.is_symlink()
    for required in ("ekm.toml", "master.json", "master.key", "audit.log", "audit.log.head"):
        assert (home / required).is_file(), required
    assert sorted(p.stem for p in (home / "keys").glob("*.json")) == sorted(DEFAULT_KEYS)


def test_status_json_lists_the_seven_default_keys_in_the_cli_shape(fresh, run, base_env):
    import jsonschema

    home, _ = fresh
    res = run("--json", "status", env={**base_env, "EKM_HOME": str(home)}).expect_ok()
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, STATUS_SCHEMA)
    assert doc["home"] == str(home)
    got = {k["name"]: (k["type"], k["usage"]) for k in doc["keys"]}
    assert got == DEFAULT_KEYS
    for key in doc["keys"]:
        assert key["backend"] == "file"
        assert key["primary_version"] == 1
        assert [(v["version"], v["state"]) for v in key["versions"]] == [(1, "primary")]


def test_status_accepts_json_after_the_command(home, run):
    res = run("status", "--json").expect_ok()
    assert json.loads(res.stdout)["home"] == str(home)


def test_status_table_shows_every_key(home, run):
    res = run("status").expect_ok()
    assert "7 keys in" in res.stdout
    for name, (key_type, _) in DEFAULT_KEYS.items():
        line = next(ln for ln in res.stdout.splitlines() if ln.split()[:1] == [name])
        assert key_type in line and "v1:primary" in line


def test_status_as_of_is_a_parameter_not_the_clock(home, run):
    now = json.loads(run("--json", "status").stdout)
    assert not any(k["due"] for k in now["keys"])
    later = json.loads(run("--json", "status", "--as-of", "+400d").expect_ok().stdout)
    assert all(k["due"] for k in later["keys"])
    session_only = json.loads(run("--json", "status", "--as-of", "+8d").stdout)
    assert [k["name"] for k in session_only["keys"] if k["due"]] == ["session"]


def test_status_bad_as_of_is_a_usage_error(home, run):
    run("status", "--as-of", "yesterday-ish").expect_error(2, "--as-of")


def test_second_deploy_changes_nothing_and_says_so(home, run):
    before = snapshot(home)
    res = run("deploy").expect_ok()
    assert "nothing to do" in res.stderr
    assert "created" not in res.stdout
    assert snapshot(home) == before
    doc = json.loads(run("--json", "deploy").expect_ok().stdout)
    assert doc["changed"] is False
    assert {a["status"] for a in doc["actions"]} == {"exists"}


def test_dry_run_on_a_fresh_home_writes_nothing(tmp_path, run, base_env):
    target = tmp_path / "not-yet"
    res = run("deploy", "--dry-run", env={**base_env, "EKM_HOME": str(target)}).expect_ok()
    assert "dry run: nothing was changed" in res.stderr
    assert "would create" in res.stdout
    assert not target.exists()


def test_dry_run_on_an_incomplete_home_writes_nothing(home, run):
    append_config(home, '[keys.billing]\ntype = "aes-256-gcm"\nusage = "encryption"')
    before = snapshot(home)
    res = run("--json", "deploy", "--dry-run").expect_ok()
    actions = {a["step"]: a["status"] for a in json.loads(res.stdout)["actions"]}
    assert actions["key billing"] == "would create"
    assert actions["key rsa"] == "exists"
    assert snapshot(home) == before


def test_deploy_status_exit_0_when_complete_1_when_a_key_is_missing(home, run):
    res = run("deploy", "--status").expect_ok()
    assert " NO " not in res.stdout
    append_config(home, '[keys.billing]\ntype = "ed25519"\nusage = "signing"')
    res = run("deploy", "--status")
    assert res.code == 1
    assert "Traceback" not in res.stderr
    row = next(ln for ln in res.stdout.splitlines() if "key billing" in ln)
    assert "NO" in row.split()
    doc = json.loads(run("--json", "deploy", "--status").stdout)
    assert doc["complete"] is False
    # deploy fills the gap, then the deployment is complete again
    res = run("deploy").expect_ok()
    assert "deployed ekm at" in res.stderr
    assert run("deploy", "--status").code == 0
    assert (home / "keys" / "billing.json").is_file()


def test_deploy_status_on_a_missing_home_is_incomplete(tmp_path, run, base_env):
    res = run("deploy", "--status", env={**base_env, "EKM_HOME": str(tmp_path / "none")})
    assert res.code == 1
    assert not (tmp_path / "none").exists()


def test_deploy_refuses_to_change_the_master_key_source(home, run):
    run("deploy", "--master-key", "passphrase").expect_error(2, "master key source is file")


def test_deploy_rejects_an_unknown_master_key_source(tmp_path, run, base_env):
    env = {**base_env, "EKM_HOME": str(tmp_path / "h")}
    run("deploy", "--master-key", "carrier-pigeon", env=env).expect_error(2, "--master-key")


def test_version(run, base_env):
    import ekm

    res = run("--version", env=base_env).expect_ok()
    assert res.stdout.strip() == f"ekm {ekm.__version__}"


def test_import_ekm_is_light():
    """`import ekm` must not pull typer, rich or cryptography: cron jobs start it every minute."""
    code = (
        "import sys, ekm\n"
        "heavy = [m for m in ('typer', 'rich', 'cryptography', 'click') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
