"""HsmSettings: the [hsm] table, validated; PIN sources that never leak the PIN."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ekm.backends.pkcs11_token import HsmSettings, key_label
from ekm.errors import ConfigError, InvalidError, UnsafePermissionsError

LIB = "/usr/lib/softhsm/libsofthsm2.so"
BASE = {"library_path": LIB, "token_label": "tok", "pin_env": "HSM_PIN"}


def settings(**changes: object) -> HsmSettings:
    table = {**BASE, **changes}
    table = {k: v for k, v in table.items() if v is not None}
    return HsmSettings.from_mapping(table, env={"HSM_PIN": "s3cret-pin"}, source="/etc/ekm.toml")


def test_defaults_and_pin_from_env() -> None:
    s = settings()
    assert s.key_label_prefix == "ekm"
    assert s.read_pin() == "s3cret-pin"
    assert s.pin_source == "environment variable HSM_PIN ([hsm] pin_env)"
    assert not s.pin_in_config
    assert s.warnings == ()
    assert s.key_label("jwt_signing", 3) == "ekm/jwt_signing/v3"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"library_path": None}, r"^\[hsm\] library_path is missing in /etc/ekm.toml"),
        ({"library_path": ""}, r"^\[hsm\] library_path in /etc/ekm.toml must be a non-empty"),
        ({"library_path": 5}, r"^\[hsm\] library_path in /etc/ekm.toml must be a non-empty"),
        ({"token_label": None}, r"^\[hsm\] token_label \(or slot_id\) is missing"),
        ({"token_label": "x" * 33}, r"^\[hsm\] token_label .* longer than 32 bytes"),
        ({"slot_id": 3}, r"^\[hsm\] token_label and slot_id are both set"),
        ({"token_label": None, "slot_id": -1}, r"^\[hsm\] slot_id .* non-negative integer"),
        ({"token_label": None, "slot_id": True}, r"^\[hsm\] slot_id .* non-negative integer"),
        ({"token_label": None, "slot_id": "3"}, r"^\[hsm\] slot_id .* non-negative integer"),
        ({"pin_env": None}, r"^\[hsm\] pin_env \(or pin_file\) is missing in /etc/ekm.toml"),
        ({"pin_file": "/x"}, r"^\[hsm\] pin_env and pin_file are all set"),
        ({"pin_env": "HSM PIN"}, r"^\[hsm\] pin_env .* environment variable name"),
        ({"pin_env": None, "pin": 1234}, r"^\[hsm\] pin in /etc/ekm.toml must be a non-empty"),
        ({"key_label_prefix": "a/b"}, r"^\[hsm\] key_label_prefix .* must be 1-32 letters"),
        ({"key_label_prefix": ""}, r"^\[hsm\] key_label_prefix"),
        ({"pinn": "1"}, r"^unknown key \[hsm\] pinn in /etc/ekm.toml"),
    ],
)
def test_bad_values_name_the_key_and_file(changes: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        settings(**changes)
    assert info.value.exit_code == 3


def test_not_a_table() -> None:
    with pytest.raises(ConfigError, match=r"^\[hsm\] in x.toml must be a table"):
        HsmSettings.from_mapping(["library_path"], source="x.toml")  # type: ignore[arg-type]


def test_pin_in_config_is_accepted_with_a_warning_and_never_shown() -> None:
    s = settings(pin_env=None, pin="0000-literal")
    assert s.pin_in_config
    assert s.read_pin() == "0000-literal"
    assert s.pin_source == "[hsm] pin in /etc/ekm.toml"
    assert len(s.warnings) == 1
    assert "move it to [hsm] pin_env or [hsm] pin_file" in s.warnings[0]
    for text in (repr(s), str(s), s.pin_source, *s.warnings):
        assert "0000-literal" not in text


def test_missing_env_var_is_a_config_error() -> None:
    s = HsmSettings.from_mapping(BASE, env={})
    with pytest.raises(ConfigError, match=r"^\[hsm\] pin_env names HSM_PIN, which is not set"):
        s.read_pin()


def test_pin_file(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("file-pin-9\n")
    os.chmod(pin_file, 0o600)
    s = settings(pin_env=None, pin_file=str(pin_file))
    assert s.read_pin() == "file-pin-9"
    assert s.pin_source == f"file {pin_file} ([hsm] pin_file)"
    assert s.pin_key == "pin_file"


def test_pin_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("file-pin-9\n")
    os.chmod(pin_file, 0o644)
    s = settings(pin_env=None, pin_file=str(pin_file))
    with pytest.raises(UnsafePermissionsError, match="group or others can access it") as info:
        s.read_pin()
    assert info.value.exit_code == 4
    assert "file-pin-9" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "must hold the PIN on one line"),
        (b"one\ntwo\n", "must hold the PIN on one line"),
        (b"\xff\xfe", "is not UTF-8 text"),
        (b"9" * 300, "larger than 256 bytes"),
    ],
)
def test_hostile_pin_files(tmp_path: Path, content: bytes, expected: str) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_bytes(content)
    os.chmod(pin_file, 0o600)
    s = settings(pin_env=None, pin_file=str(pin_file))
    with pytest.raises(Exception, match=expected) as info:
        s.read_pin()
    assert info.value.exit_code in (3, 4)
    assert "two" not in str(info.value)


def test_missing_pin_file(tmp_path: Path) -> None:
    s = settings(pin_env=None, pin_file=str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match=r"^\[hsm\] pin_file .*absent does not exist"):
        s.read_pin()


def test_pin_file_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "real"
    target.write_text("1234\n")
    os.chmod(target, 0o600)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(UnsafePermissionsError, match="symbolic link"):
        settings(pin_env=None, pin_file=str(link)).read_pin()


@pytest.mark.parametrize(
    ("name", "version"), [("a/b", 1), ("", 1), ("ok", 0), ("ok", True), ("x" * 65, 1)]
)
def test_key_label_rejects_what_a_label_cannot_carry(name: str, version: int) -> None:
    with pytest.raises(InvalidError):
        key_label("ekm", name, version)
