"""A broken or hostile ekm.toml: exit 3, one line naming the file and the offending key."""

from __future__ import annotations

import pytest

from tests.foundation.helpers import append_config, snapshot

BAD_CONFIGS = [
    # (name, text appended to a valid ekm.toml, fragments the message must contain)
    ("invalid-toml", "[storage\nbackend = ", ("invalid TOML", "line")),
    ("duplicate-table", '[storage]\nbackend = "file"', ("invalid TOML",)),
    ("unknown-section", "[telemetry]\nenabled = true", ("unknown section [telemetry]",)),
    ("unknown-key", "[audit]\ncolour = true", ("unknown key audit.colour", "valid keys")),
    ("wrong-type", '[audit]\nmax_bytes = "lots"', ("audit.max_bytes = 'lots'", "integer")),
    ("bool-for-int", "[cache]\nmax_size = true", ("cache.max_size = True",)),
    (
        "out-of-range",
        "[rotation]\ndefault_keep_versions = 5000",
        ("rotation.default_keep_versions",),
    ),
    (
        "bad-duration",
        '[keys.billing]\ntype = "aes-256-gcm"\nusage = "encryption"\nrotate_every = "9x"',
        ("keys.billing.rotate_every = '9x'", "90d"),
    ),
    (
        "bad-key-type",
        '[keys.billing]\ntype = "des"\nusage = "encryption"',
        ("keys.billing.type = 'des'",),
    ),
    ("missing-usage", '[keys.billing]\ntype = "aes-256-gcm"', ("keys.billing.usage is missing",)),
    (
        "unknown-key-option",
        '[keys.billing]\ntype = "aes-256-gcm"\nusage = "encryption"\nsecret = "x"',
        ("unknown key keys.billing.secret",),
    ),
    (
        "traversal-key-name",
        '[keys."../../etc/evil"]\ntype = "aes-256-gcm"\nusage = "encryption"',
        ("invalid key name",),
    ),
    ("policy-unknown-type", '[policy."rot13"]\nrotate_every = "1d"', ('[policy."rot13"]',)),
]


@pytest.mark.parametrize(
    ("text", "fragments"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config_is_exit_3_naming_file_and_key(home, run, text, fragments):
    path = append_config(home, text)
    before = snapshot(home)
    line = run("status").expect_error(3, str(path), *fragments)
    assert len(line) < 600
    assert snapshot(home) == before


def test_config_larger_than_one_mib_is_refused_without_parsing(home, run):
    path = home / "ekm.toml"
    with open(path, "a") as fh:
        fh.write("# " + "x" * (2 * 1024 * 1024) + "\n")
    run("status").expect_error(3, str(path), "larger than 1 MiB")


def test_non_utf8_config_is_refused(home, run):
    path = home / "ekm.toml"
    with open(path, "ab") as fh:
        fh.write(b'\n[audit]\nactor = "\xff\xfe ops"\n')
    run("status").expect_error(3, str(path), "not UTF-8")


def test_long_hostile_value_is_cut_in_the_message(home, run):
    path = append_config(home, f'[audit]\nmax_bytes = "{"A" * 5000}"')
    line = run("status").expect_error(3, str(path), "audit.max_bytes")
    assert "A" * 100 not in line


def test_explicit_config_that_does_not_exist_is_exit_3(home, run, tmp_path):
    missing = tmp_path / "other.toml"
    run("--config", str(missing), "status").expect_error(3, str(missing), "no such config file")


def test_ekm_config_env_points_to_another_file(home, run, ekm_env, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text("[bogus]\n")
    env = {**ekm_env, "EKM_CONFIG": str(other)}
    run("status", env=env).expect_error(3, str(other), "unknown section [bogus]")


def test_config_that_is_a_directory_is_exit_3(home, run):
    path = home / "ekm.toml"
    path.unlink()
    path.mkdir(mode=0o700)
    run("status").expect_error(3, str(path))
