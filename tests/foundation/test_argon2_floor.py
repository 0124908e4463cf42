"""Argon2id parameters below the OWASP / RFC 9106 minimums are refused (exit 3)."""

from __future__ import annotations

import pytest

from ekm.errors import InvalidError
from ekm.masterkey import MasterKeyOptions, create


def test_config_below_the_floor_is_refused_naming_the_keys(tmp_path, run, base_env):
    home = tmp_path / "h"
    home.mkdir(mode=0o700)
    (home / "ekm.toml").write_text(
        '[master_key]\nsource = "passphrase"\nargon2_memory_kib = 19456\nargon2_iterations = 1\n'
    )
    env = {**base_env, "EKM_HOME": str(home), "EKM_PASSPHRASE": "correct horse battery"}
    run("deploy", env=env).expect_error(3, "argon2_memory_kib x argon2_iterations", "38912")


def test_the_api_refuses_weak_parameters_too(tmp_path):
    opts = MasterKeyOptions(
        source="passphrase", passphrase=lambda new: "correct horse battery", argon2=(8192, 1, 1)
    )
    with pytest.raises(InvalidError, match="below the floor"):
        create(tmp_path, opts)
    assert not (tmp_path / "master.json").exists()
