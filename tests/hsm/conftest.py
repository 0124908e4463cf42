"""Fixtures for the PKCS#11 layer: one real SoftHSM2 token per test session.

SoftHSM reads SOFTHSM2_CONF when the library loads, once per process, so in-process tests share
:func:`tests.softhsm.shared_token` and use distinct key labels; fault cases that need another
token, library or PIN run in a subprocess (see ``fault_runner.py``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from tests import softhsm

if not softhsm.available():  # pragma: no cover - the CI image installs softhsm2
    pytest.skip("SoftHSM2 is not installed", allow_module_level=True)

PIN_ENV = "EKM_TEST_HSM_PIN"
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def hsm_token() -> softhsm.SoftHsmToken:
    """The session's SoftHSM2 token (created once; SOFTHSM2_CONF set for this process)."""
    return softhsm.shared_token()


@pytest.fixture(scope="session")
def hsm_settings(hsm_token: softhsm.SoftHsmToken):
    from ekm.backends.pkcs11_token import HsmSettings

    env = {PIN_ENV: hsm_token.pin}
    return HsmSettings.from_mapping(hsm_token.hsm_table(), env=env, source="test.toml")


@pytest.fixture(scope="session")
def token(hsm_settings):
    from ekm.backends.pkcs11_token import Token

    return Token.open(hsm_settings)


@pytest.fixture
def label(request: pytest.FixtureRequest) -> Iterator[str]:
    """A label no other test uses: ``test/<test name>/<n>``."""
    name = request.node.name.replace("[", "-").replace("]", "")[:60]
    yield f"test/{name}/{next(_counter)}-{os.getpid()}"
