"""``ekm keys migrate --to vault|file``: copy, verify on the target, then switch ekm.toml."""

from __future__ import annotations

import json
import os
from pathlib import Path

import tomllib

from ekm.manager import KeyManager
from tests.vault_integration.conftest import KEYS_TOML


def _file_home(tmp_path: Path, run, env, vault) -> Path:
    home = tmp_path / "filehome"
    home.mkdir(mode=0o700)
    cfg = home / "ekm.toml"
    cfg.write_text(f'[storage]\nbackend = "file"\n\n[vault]\nendpoint = "{vault.url}"\n{KEYS_TOML}')
    os.chmod(cfg, 0o600)
    run("--home", str(home), "deploy", env=env).expect_ok()
    run("--home", str(home), "rotate", "alpha", "--force", env=env).expect_ok()
    return home


def test_migrate_to_vault_and_back_keeps_every_version(tmp_path, run, venv, vault):
    home = _file_home(tmp_path, run, venv, vault)
    before = {v: KeyManager(home, env=venv).material("alpha", v) for v in (1, 2)}
    res = run("--home", str(home), "--json", "keys", "migrate", "--to", "vault",
              "--master-key", "vault-transit", env=venv).expect_ok()  # fmt: skip
    doc = json.loads(res.stdout)
    assert doc["keys"] == ["alpha", "beta"] and doc["master_key"] == "vault-transit"
    assert Path(doc["old_copy"]).is_dir() and not (home / "keys").exists()
    cfg = tomllib.loads((home / "ekm.toml").read_text())
    assert cfg["storage"]["backend"] == "vault" and cfg["master_key"]["source"] == "vault-transit"
    meta = json.loads((home / "master.json").read_text())
    assert meta["wrapped_root"].startswith("vault:v")
    mgr = KeyManager(home, env=venv)
    assert {v: mgr.material("alpha", v) for v in (1, 2)} == before
    # a second home now joins the migrated keystore
    other = tmp_path / "other"
    env = {**venv, "VAULT_ADDR": vault.url}
    run("--home", str(other), "deploy", "--backend", "vault", env=env).expect_ok()
    assert KeyManager(other, env=venv).material("alpha", 2) == before[2]
    # and back to file: Vault keeps its copy for the other hosts
    run("--home", str(home), "keys", "migrate", "--to", "file", env=venv).expect_ok()
    assert tomllib.loads((home / "ekm.toml").read_text())["storage"]["backend"] == "file"
    # (the other home added its own default key set to the shared keystore meanwhile)
    assert {"alpha.json", "beta.json", "rsa.json"} <= {p.name for p in (home / "keys").iterdir()}
    assert KeyManager(home, env=venv).material("alpha", 1) == before[1]
    assert KeyManager(other, env=venv).key_info("alpha").latest_version == 2
    ops = [json.loads(x)["op"] for x in (home / "audit.log").read_text().splitlines()]
    assert ops.count("keystore.migrate") == 2


def test_file_master_key_cannot_move_to_vault_unwrapped(tmp_path, run, venv, vault):
    home = _file_home(tmp_path, run, venv, vault)
    res = run("--home", str(home), "keys", "migrate", "--to", "vault", env=venv)
    res.expect_error(3, "[master_key]", "vault-transit")
    assert (home / "keys" / "alpha.json").exists()
    assert vault.requests == [] or not any("ekm/keys" in r["path"] for r in vault.requests)


def test_failure_midway_removes_the_copy_and_switches_nothing(tmp_path, run, venv, vault):
    home = _file_home(tmp_path, run, venv, vault)
    cfg_before = (home / "ekm.toml").read_bytes()
    master_before = (home / "master.json").read_bytes()
    vault.set_policy(
        "no-beta",
        {
            "secret/data/ekm/*": ["create", "read", "update"],
            "secret/data/ekm/keys/beta": ["deny"],
            "secret/metadata/ekm/*": ["read", "list", "delete"],
            "secret/metadata/ekm": ["list"],
            "transit/*": ["read", "create", "update"],
        },
    )
    env = {**venv, "VAULT_TOKEN": vault.create_token(["no-beta"])}
    res = run("--home", str(home), "keys", "migrate", "--to", "vault",
              "--master-key", "vault-transit", env=env)  # fmt: skip
    res.expect_error(4, vault.url, "denied", "secret/data/ekm/keys/beta", "'create' capability")
    assert (home / "ekm.toml").read_bytes() == cfg_before
    assert (home / "master.json").read_bytes() == master_before
    store = KeyManager(home, env=venv).vault_store()
    assert store.names() == [] and store.read_master() is None  # the partial copy is gone


def test_target_already_holding_keys_is_refused(pair, tmp_path, run, venv, vault):
    home = _file_home(tmp_path, run, venv, vault)
    res = run("--home", str(home), "keys", "migrate", "--to", "vault",
              "--master-key", "vault-transit", env=venv)  # fmt: skip
    res.expect_error(3, "already holds keys", "nothing was copied")
    assert tomllib.loads((home / "ekm.toml").read_text())["storage"]["backend"] == "file"


def test_migrate_usage_errors(tmp_path, run, venv, vault):
    home = _file_home(tmp_path, run, venv, vault)
    run("--home", str(home), "keys", "migrate", "--to", "file", env=venv).expect_error(
        2, "already on file"
    )
    run("--home", str(home), "keys", "migrate", "--to", "s3", env=venv).expect_error(2, "--to 's3'")
    run("--home", str(home), "keys", "migrate", "--to", "vault", "--master-key", "pkcs11",
        env=venv).expect_error(2, "--master-key")  # fmt: skip
