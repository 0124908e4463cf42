"""`[hsm] fips_validation`: the operator declares the module's certificate for the audit."""

from __future__ import annotations

import pytest

from ekm import config
from ekm.backends.pkcs11_token import HsmSettings
from ekm.compliance.collect import declared_validation
from ekm.errors import ConfigError

HSM = {"library_path": "/usr/lib/softhsm/libsofthsm2.so", "token_label": "t", "pin_env": "P"}


def test_a_declared_certificate_reaches_the_audit_facts():
    cfg = config.validate({"hsm": {**HSM, "fips_validation": "fips-140-3"}}, None)
    assert declared_validation(cfg) == {"pkcs11": "fips-140-3"}
    assert HsmSettings.from_mapping(cfg.hsm, env={}).fips_validation == "fips-140-3"


def test_nothing_declared_leaves_the_module_not_evaluated():
    assert declared_validation(config.validate({"hsm": HSM}, None)) == {}
    assert declared_validation(config.validate({}, None)) == {}


def test_a_bad_declaration_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"\[hsm\] fips_validation .* fips-140-3, fips-140-2"):
        HsmSettings.from_mapping({**HSM, "fips_validation": "level-3"}, env={})
