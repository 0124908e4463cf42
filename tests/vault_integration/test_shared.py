"""Two homes on one Vault share a keystore; deploy joins; Transit wraps the root key."""

from __future__ import annotations

import json

import tomllib

from ekm.manager import KeyManager


def _mgr(home, env):
    return KeyManager(home, env=env)


def test_second_home_joins_and_both_see_the_same_keys(pair, run, venv, vault):
    a, b = pair
    out = run("--home", str(b), "--json", "deploy", env=venv).expect_ok()
    steps = {x["step"]: x["status"] for x in json.loads(out.stdout)["actions"]}
    assert steps["shared master key"] == "exists" and steps["key alpha"] == "exists"
    # a key generated on one home is visible, and decryptable, on the other
    run("--home", str(a), "generate", "gamma", "--type", "aes-256-gcm", env=venv).expect_ok()
    listed = json.loads(run("--home", str(b), "--json", "keys", "list", env=venv).stdout)
    assert [k["name"] for k in listed["keys"]] == ["alpha", "beta", "gamma"]
    assert _mgr(b, venv).material("gamma", 1) == _mgr(a, venv).material("gamma", 1)
    # the root key is the shared one, wrapped by Transit (never stored in clear)
    meta_a = json.loads((a / "master.json").read_text())
    meta_b = json.loads((b / "master.json").read_text())
    assert meta_a == meta_b
    assert meta_a["source"] == "vault-transit" and meta_a["wrapped_root"].startswith("vault:v1:")
    assert vault.transit_engine().keys["ekm"] is not None


def test_join_is_reported_and_audited(make_home, run, venv):
    a, b = make_home("a"), make_home("b")
    first = json.loads(run("--home", str(a), "--json", "deploy", env=venv).expect_ok().stdout)
    second = json.loads(run("--home", str(b), "--json", "deploy", env=venv).expect_ok().stdout)
    step = {x["step"]: x["status"] for x in first["actions"]}["shared master key"]
    assert step == "created"
    assert {x["step"]: x["status"] for x in second["actions"]}["shared master key"] == "joined"
    ops = [json.loads(line)["op"] for line in (b / "audit.log").read_text().splitlines()]
    assert "keystore.joined" in ops and "generate" not in ops  # b generated nothing


def test_deploy_backend_vault_from_scratch_writes_the_config(tmp_path, run, venv, vault):
    home = tmp_path / "fresh"
    env = {**venv, "VAULT_ADDR": vault.url}
    run("--home", str(home), "deploy", "--backend", "vault", env=env).expect_ok()
    cfg = tomllib.loads((home / "ekm.toml").read_text())
    assert cfg["storage"]["backend"] == "vault"
    assert cfg["master_key"]["source"] == "vault-transit"
    assert cfg["vault"] == {"endpoint": vault.url}
    assert not (home / "keys").exists() or not list((home / "keys").iterdir())
    status = json.loads(run("--home", str(home), "--json", "status", env=env).stdout)
    assert status["backends"]["storage"]["kind"] == "vault"
    assert status["backends"]["storage"]["location"].startswith(vault.url)
    again = run("--home", str(home), "deploy", env=env).expect_ok()
    assert "nothing to do" in again.stderr


def test_file_master_key_is_refused_for_a_shared_keystore(tmp_path, run, venv, vault):
    home = tmp_path / "h"
    env = {**venv, "VAULT_ADDR": vault.url}
    res = run("--home", str(home), "deploy", "--backend", "vault", "--master-key", "file", env=env)
    res.expect_error(2, "--master-key", "file", "vault-transit")
    assert not (home / "master.json").exists()
    assert vault.requests == [] or all("ekm/master" not in r["path"] for r in vault.requests)


def test_file_source_in_the_config_is_refused(make_home, run, venv, vault):
    home = make_home("a", source="file")
    run("--home", str(home), "deploy", env=venv).expect_error(3, "ekm.toml", "[master_key]")
    assert not (home / "master.json").exists()


def test_passphrase_keystore_joins_with_the_same_passphrase_only(make_home, run, venv, vault):
    a, b = make_home("a", source="passphrase"), make_home("b", source="passphrase")
    good = {**venv, "EKM_PASSPHRASE": "correct horse battery"}
    run("--home", str(a), "deploy", env=good).expect_ok()
    bad = {**venv, "EKM_PASSPHRASE": "wrong passphrase here"}
    run("--home", str(b), "deploy", env=bad).expect_error(4, "wrong passphrase")
    assert not (b / "master.json").exists()  # nothing half-joined
    run("--home", str(b), "deploy", env=good).expect_ok()
    assert _mgr(b, good).material("alpha", 1) == _mgr(a, good).material("alpha", 1)


def test_a_home_of_another_keystore_is_refused(make_home, run, venv, vault, tmp_path):
    a = make_home("a")
    run("--home", str(a), "deploy", env=venv).expect_ok()
    # a second keystore on another prefix-less Vault cannot be reached, so simulate a home
    # whose master.json belongs elsewhere: replace the shared record with another root key
    other = tmp_path / "other.json"
    meta = json.loads((a / "master.json").read_text())
    meta["key_id"] = "0" * 16
    other.write_text(json.dumps(meta))
    client = _mgr(a, venv).vault_store()
    _, version = client.read_master()
    client.publish_master(other.read_bytes(), cas=version)
    run("--home", str(a), "deploy", env=venv).expect_error(4, "another root key", "fresh --home")


def test_tampered_shared_record_is_refused(make_home, run, venv, vault):
    a, b = make_home("a"), make_home("b")
    run("--home", str(a), "deploy", env=venv).expect_ok()
    store = _mgr(a, venv).vault_store()
    raw, version = store.read_master()
    meta = json.loads(raw)
    meta["source"] = "file"
    store.publish_master(json.dumps(meta).encode(), cas=version)
    run("--home", str(b), "deploy", env=venv).expect_error(4, "no other host can open")
    assert not (b / "master.json").exists()


def test_rotate_check_works_with_a_read_only_token(pair, run, venv, vault):
    a, _ = pair
    vault.set_policy(
        "ekm-ro",
        {"secret/data/ekm/*": ["read"], "secret/metadata/ekm/*": ["read", "list"]},
    )
    ro = {**venv, "VAULT_TOKEN": vault.create_token(["ekm-ro"], ttl=3600)}
    assert run("--home", str(a), "rotate", "--check", env=ro).expect_ok().stdout == ""
    due = run("--home", str(a), "rotate", "--check", "--as-of", "+40d", env=ro)
    assert due.code == 1 and "alpha" in due.stdout and "beta" in due.stdout
    # the same token cannot change anything, and nothing is half-written
    res = run("--home", str(a), "rotate", "alpha", "--force", env=ro)
    res.expect_error(4, vault.url, "denied", "docs/vault.md")
    assert _mgr(a, venv).key_info("alpha").latest_version == 1
