"""Rotation policies: the default key set table, then [policy."TYPE"] and [keys.NAME] overrides.

A key's policy is decided when it is created (deploy / generate) and stored in its document;
the precedence is: the key's own settings (ekm.toml [keys.NAME] or generate flags) >
[policy."TYPE"] > ekm's fallback (90d, notify 7d, backup on).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from ekm.errors import ConfigError
from ekm.manager import KeyManager
from ekm.timeutil import parse_duration
from tests.rotation.helpers import DEFAULT_KEY_SET, make_home, t0

OVERRIDES = """
[policy."aes-256-gcm"]
rotate_every = "45d"
notify_before = "2d"
backup = false
keep_versions = 1

[policy."hmac-sha256"]
rotate_every = "never"

[keys.by_type]
type = "aes-256-gcm"
usage = "encryption"

[keys.per_key]
type = "aes-256-gcm"
usage = "encryption"
rotate_every = "10d"
backup = true

[keys.mac_never]
type = "hmac-sha256"
usage = "mac"

[keys.fallback]
type = "chacha20-poly1305"
usage = "encryption"
"""


def _policy(show_json: str) -> tuple[timedelta | None, timedelta, bool, int | None]:
    pol = json.loads(show_json)["policy"]
    interval = parse_duration(pol["interval"]) if pol["interval"] else None
    return interval, parse_duration(pol["notify_before"]), pol["backup"], pol["keep_versions"]


@pytest.mark.parametrize("name", sorted(DEFAULT_KEY_SET))
def test_default_key_set_policies_match_the_table(run, template_home: Path, name: str) -> None:
    """CLI.md's table, through `ekm keys show --json` and KeyManager.key_info."""
    key_type, usage, every, backup, notify = DEFAULT_KEY_SET[name]
    shown = run("--json", "keys", "show", name).expect_ok().stdout
    assert json.loads(shown)["type"] == key_type
    assert json.loads(shown)["usage"] == usage
    assert _policy(shown)[:3] == (parse_duration(every), parse_duration(notify), backup)
    key = KeyManager(template_home, env={}).key_info(name)
    assert key.type.value == key_type and key.usage.value == usage
    assert key.policy.interval == parse_duration(every)
    assert key.policy.notify_before == parse_duration(notify)
    assert key.policy.backup is backup


@pytest.fixture
def override_home(tmp_path: Path, run, base_env) -> tuple[Path, dict[str, str]]:
    home = make_home(tmp_path / "ovr", OVERRIDES)
    env = {**base_env, "EKM_HOME": str(home)}
    run("deploy", env=env).expect_ok()
    return home, env


def test_type_policy_and_key_overrides_through_the_command(run, override_home) -> None:
    _home, env = override_home

    def shown(name: str):
        return _policy(run("--json", "keys", "show", name, env=env).expect_ok().stdout)

    d = parse_duration
    assert shown("by_type") == (d("45d"), d("2d"), False, 1)  # [policy."aes-256-gcm"]
    assert shown("per_key") == (d("10d"), d("2d"), True, 1)  # key wins where it says
    assert shown("mac_never") == (None, d("7d"), True, None)  # "never" from the type
    assert shown("fallback") == (d("90d"), d("7d"), True, None)  # no policy: the fallback
    # generate: the type policy applies to a new key, flags win over it
    run("generate", "extra", "--type", "aes-256-gcm", env=env).expect_ok()
    assert shown("extra") == (d("45d"), d("2d"), False, 1)
    run("generate", "extra2", "--type", "aes-256-gcm", "--rotate-every", "5d", env=env).expect_ok()
    assert shown("extra2")[0] == d("5d")


def test_type_policy_and_key_overrides_through_the_api(override_home) -> None:
    home, _ = override_home
    mgr = KeyManager(home, env={})
    (key,) = mgr.generate("api_made", type="aes-256-gcm", notify_before="1d")
    assert key.policy.interval == parse_duration("45d")
    assert key.policy.notify_before == parse_duration("1d")
    assert key.policy.backup is False and key.policy.keep_versions == 1
    assert mgr.key_info("mac_never").policy.interval is None


def test_the_policy_drives_the_schedule(run, override_home) -> None:
    """by_type is due after 45d (upcoming in its 2d window); mac_never never appears."""
    home, env = override_home
    start = t0(home, "by_type")

    def check(days: float) -> dict:
        when = (start + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        res = run("--json", "rotate", "--check", "--as-of", when, env=env)
        assert res.code in (0, 1), res.stderr
        return json.loads(res.stdout)

    names = lambda items: {d["name"] for d in items}  # noqa: E731
    early = check(42)
    assert "by_type" not in names(early["due"]) | names(early["upcoming"])
    assert "by_type" in names(check(44)["upcoming"])
    assert "by_type" in names(check(45.01)["due"])
    assert "per_key" in names(check(10.01)["due"])
    late = check(3650)
    assert "mac_never" not in names(late["due"]) | names(late["upcoming"])


@pytest.mark.parametrize(
    ("table", "fragments"),
    [
        ('[policy."aes-256-gcm"]\nrotate_every = "soon"', ['policy."aes-256-gcm".rotate_every']),
        ('[policy."nonsense"]\nrotate_every = "9d"', ["unknown key type 'nonsense'"]),
        ('[policy."aes-256-gcm"]\nkeep_versions = -1', ["keep_versions = -1", "0 to 1000"]),
        ('[policy."aes-256-gcm"]\ncolour = "red"', ['unknown key policy."aes-256-gcm".colour']),
        ('[rotation]\nsoft_delete_window = "3d"', ["soft_delete_window", "7d to 30d"]),
        ('[rotation]\ndefault_keep_versions = "two"', ["default_keep_versions"]),
    ],
)
def test_invalid_policies_are_refused(
    run, base_env, tmp_path: Path, table: str, fragments: list[str]
) -> None:
    home = make_home(tmp_path / "bad", table + "\n")
    env = {**base_env, "EKM_HOME": str(home)}
    line = run("deploy", env=env).expect_error(3, str(home / "ekm.toml"), *fragments)
    assert "Traceback" not in line
    with pytest.raises(ConfigError) as exc:
        KeyManager(home, env={})
    assert all(f in str(exc.value) for f in fragments) and exc.value.exit_code == 3
    assert not (home / "keys").exists()
