"""The Python API an application uses: ``from ekm import KeyManager`` and its legacy alias."""

from __future__ import annotations

import pytest

from tests.foundation.helpers import DEFAULT_KEYS, key_path


def test_public_names_import_from_the_package():
    from ekm import EnterpriseKeyManager, KeyManager, KeyType, KeyUsage, SecurityLevel

    assert EnterpriseKeyManager is KeyManager
    assert KeyType("aes-256-gcm") is KeyType.AES_256_GCM
    assert KeyUsage("encryption") is KeyUsage.ENCRYPTION
    assert len(list(SecurityLevel)) >= 2


def test_unknown_attribute_is_an_attribute_error():
    import ekm

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        ekm.Nope  # noqa: B018


def test_get_key_returns_32_bytes_for_the_database_key(home):
    from ekm import KeyManager, KeyUsage

    mgr = KeyManager(home, env={})
    first = mgr.get_key("database_encryption", KeyUsage.ENCRYPTION)
    assert isinstance(first, bytes) and len(first) == 32
    assert mgr.get_key("database_encryption", "encryption") == first
    assert KeyManager(str(home), env={}).get_key("database_encryption") == first
    assert mgr.get_key("session") != first


def test_wrong_usage_is_a_usage_error(home):
    from ekm import KeyManager, KeyUsage
    from ekm.errors import UsageError

    with pytest.raises(UsageError, match="'database_encryption' is for encryption, not signing"):
        KeyManager(home, env={}).get_key("database_encryption", KeyUsage.SIGNING)


def test_unknown_key_and_version_are_not_found(home):
    from ekm import KeyManager
    from ekm.errors import NotFoundError

    mgr = KeyManager(home, env={})
    with pytest.raises(NotFoundError, match="no key named 'nope'"):
        mgr.get_key("nope")
    with pytest.raises(NotFoundError):
        mgr.get_key("hmac", version=7)


def test_list_keys_and_status(home):
    from ekm import KeyManager, KeyType

    mgr = KeyManager(home, env={})
    keys = {k.name: k for k in mgr.list_keys()}
    assert set(keys) == set(DEFAULT_KEYS)
    assert keys["rsa"].type is KeyType.RSA_4096
    assert keys["rsa"].primary_version == 1
    doc = mgr.status()
    assert doc["home"] == str(home)
    assert {k["name"] for k in doc["keys"]} == set(DEFAULT_KEYS)


def test_generate_through_the_api(home):
    from ekm import KeyManager, KeyType, KeyUsage
    from ekm.errors import KeyExistsError
    from ekm.timeutil import from_iso

    now = from_iso("2030-01-01T00:00:00Z")
    mgr = KeyManager(home, env={})
    (key,) = mgr.generate(
        "billing", type=KeyType.AES_256_GCM, usage=KeyUsage.ENCRYPTION, rotate_every="30d", now=now
    )
    assert key.name == "billing" and key.created == now
    assert key.next_rotation == from_iso("2030-01-31T00:00:00Z")
    assert key_path(home, "billing").is_file()
    assert len(KeyManager(home, env={}).get_key("billing", "encryption")) == 32
    with pytest.raises(KeyExistsError, match="ekm rotate billing"):
        mgr.generate("billing", type="aes-256-gcm")


def test_enterprise_key_manager_accepts_the_legacy_dictionaries(home):
    from ekm import EnterpriseKeyManager

    mgr = EnterpriseKeyManager(
        home,
        cache_config={"enabled": True, "max_size": 50, "ttl_seconds": 60},
        hsm_config={"enabled": True, "library_path": "/nonexistent/libsofthsm2.so"},
        monitoring_config={"webhook_url": "https://alerts.example.com/ekm"},
        env={},
    )
    assert mgr.config.sections["cache"]["max_size"] == 50
    assert mgr.config.hsm["library_path"] == "/nonexistent/libsofthsm2.so"
    assert mgr.config.sections["monitor"]["webhook"] == "https://alerts.example.com/ekm"
    # the HSM is only opened when something needs it: file keys keep working
    assert len(mgr.get_key("database_encryption", "encryption")) == 32


def test_disabled_hsm_config_is_ignored(home):
    from ekm import EnterpriseKeyManager

    mgr = EnterpriseKeyManager(home, hsm_config={"enabled": False, "library_path": "x"}, env={})
    assert mgr.config.hsm is None


def test_bad_legacy_cache_config_is_a_config_error(home):
    from ekm import EnterpriseKeyManager
    from ekm.errors import ConfigError

    with pytest.raises(ConfigError, match=r"cache_config\['max_size'\] = -1 is invalid"):
        EnterpriseKeyManager(home, cache_config={"max_size": -1}, env={})
    with pytest.raises(ConfigError, match="pqc_config"):
        EnterpriseKeyManager(home, pqc_config={"enabled": "yes"}, env={})


def test_missing_home_through_the_api(tmp_path):
    from ekm import KeyManager
    from ekm.errors import NotFoundError

    with pytest.raises(NotFoundError, match="ekm deploy"):
        KeyManager(tmp_path / "none", env={}).list_keys()
