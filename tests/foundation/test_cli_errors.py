"""Usage and not-found errors: exit codes 2 and 3, one line on stderr, never a traceback."""

from __future__ import annotations

import pytest

from tests.foundation.helpers import key_path, snapshot


def test_missing_home_is_exit_3(tmp_path, run, base_env):
    missing = tmp_path / "nowhere"
    env = {**base_env, "EKM_HOME": str(missing)}
    run("status", env=env).expect_error(3, str(missing), "ekm deploy")
    run("keys", "list", env=env).expect_error(3, str(missing))
    assert not missing.exists()


def test_home_without_master_key_is_exit_3(tmp_path, run, base_env):
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    run("status", env={**base_env, "EKM_HOME": str(empty)}).expect_error(
        3, "master.json is missing", "ekm deploy"
    )


def test_home_flag_overrides_the_environment(home, tmp_path, run, base_env):
    env = {**base_env, "EKM_HOME": str(tmp_path / "elsewhere")}
    assert "rsa" in run("--home", str(home), "keys", "list", env=env).expect_ok().stdout


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "show", "nope"),
        ("keys", "export", "nope", "--reveal"),
    ],
)
def test_unknown_key_is_exit_3_and_lists_known_keys(home, run, args):
    run(*args).expect_error(3, "no key named 'nope'", "database_encryption")


def test_generate_existing_key_is_exit_3_and_points_to_rotate(home, run):
    before = key_path(home, "rsa").read_bytes()
    run("generate", "rsa").expect_error(3, "'rsa' already exists", "ekm rotate rsa")
    assert key_path(home, "rsa").read_bytes() == before


def test_generate_without_name_when_everything_exists_does_nothing(home, run):
    before = snapshot(home)
    res = run("generate").expect_ok()
    assert "nothing to do" in res.stderr
    assert snapshot(home) == before


def test_generate_a_named_key_works(home, run):
    res = run("generate", "billing", "--type", "ed25519", "--label", "team=payments").expect_ok()
    assert "generated 1 key" in res.stderr
    assert "billing" in run("keys", "list").stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--type", "aes-999"), ("unknown key type 'aes-999'", "aes-256-gcm")),
        (("--type", "aes-256-gcm", "--usage", "telepathy"), ("unknown key usage", "encryption")),
        (("--type", "aes-256-gcm", "--usage", "signing"), ("cannot be used for signing",)),
        (("--type", "aes-256-gcm", "--rotate-every", "9x"), ("--rotate-every", "'9x'", "90d")),
        (("--type", "aes-256-gcm", "--rotate-every", "-5d"), ("--rotate-every",)),
        (("--type", "aes-256-gcm", "--notify-before", "soon"), ("--notify-before",)),
        (("--type", "aes-256-gcm", "--label", "novalue"), ("--label", "KEY=VALUE")),
        (("--type", "aes-256-gcm", "--backend", "floppy"), ("--backend", "file")),
    ],
)
def test_generate_bad_values_are_exit_2(home, run, args, fragments):
    before = snapshot(home)
    run("generate", "newkey", *args).expect_error(2, *fragments)
    assert snapshot(home) == before


def test_generate_unconfigured_name_without_type_is_exit_2(home, run):
    run("generate", "newkey").expect_error(2, "not in the configured key set", "--type")


def test_generate_options_without_name_are_exit_2(home, run):
    run("generate", "--type", "ed25519").expect_error(2, "need a key NAME")


@pytest.mark.parametrize("name", ["../escape", "UPPER", ".hidden", "a" * 65, "sp ace"])
def test_generate_hostile_key_names_are_refused(home, run, name):
    before = snapshot(home)
    res = run("generate", name, "--type", "aes-256-gcm")
    res.expect_error(3, "invalid key name")
    assert snapshot(home) == before
    assert not (home.parent / "escape.json").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("frobnicate",), "No such command 'frobnicate'"),
        (("status", "--jsn"), "No such option: --jsn"),
        (("keys", "lst"), "No such command 'lst'"),
        (("--hme", "/tmp"), "No such option: --hme"),
        (("keys", "export", "rsa", "--format", "png"), "--format 'png'"),
        (("keys", "export", "rsa", "--public", "--reveal"), "exclude each other"),
        (("keys", "export", "session"), "--reveal"),
        (("keys", "export", "session", "--public"), "symmetric"),
    ],
)
def test_usage_errors_are_exit_2_on_one_line(home, run, args, fragment):
    run(*args).expect_error(2, fragment)


def test_export_refuses_to_overwrite_an_existing_file(home, run, tmp_path):
    out = tmp_path / "rsa.pem"
    out.write_text("keep me")
    run("keys", "export", "rsa", "--public", "--out", str(out)).expect_error(3, "--force")
    assert out.read_text() == "keep me"
