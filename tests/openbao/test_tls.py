"""TLS against a real OpenBao listener whose certificate a CA made in the test signed.

ekm verifies the certificate: the right CA works; a wrong CA or a wrong host name is refused
with one line and exit 5, and OpenBao's own audit device proves no request (so no token)
reached it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.openbao.conftest import new_space, write_home


def _audit_entries(server: Any) -> int:
    return len(server.audit_log.read_text().splitlines())


@pytest.fixture
def tls_space(openbao_tls: Any) -> Any:
    return new_space(openbao_tls)


def test_the_right_ca_verifies_and_works(
    tls_space: Any, run: Callable[..., Any], base_env: dict[str, str], tmp_path: Path
) -> None:
    server = tls_space.server
    ca = server.pki["ca"]
    home = write_home(tmp_path / "a", tls_space.table(endpoint=server.tls_url, ca_cert=f'"{ca}"'))
    env = {**base_env, "VAULT_TOKEN": server.root_token}
    run("--home", str(home), "deploy", env=env).expect_ok()
    doc = json.loads(run("--home", str(home), "--json", "status", "--vault", env=env).stdout)
    assert doc["backends"]["vault"]["endpoint"] == server.tls_url
    assert doc["backends"]["vault"]["sealed"] is False


@pytest.mark.parametrize("fault", ["wrong CA", "wrong host name"])
def test_an_unverifiable_server_gets_no_request_and_no_token(
    fault: str,
    tls_space: Any,
    run: Callable[..., Any],
    base_env: dict[str, str],
    tmp_path: Path,
) -> None:
    server = tls_space.server
    port = server.tls_url.rsplit(":", 1)[1]
    if fault == "wrong CA":
        endpoint, ca = server.tls_url, server.pki["other_ca"]
    else:  # the certificate names 127.0.0.1 only
        endpoint, ca = f"https://localhost:{port}", server.pki["ca"]
    home = write_home(tmp_path / "a", tls_space.table(endpoint=endpoint, ca_cert=f'"{ca}"'))
    env = {**base_env, "VAULT_TOKEN": server.root_token}
    before = _audit_entries(server)
    res = run("--home", str(home), "deploy", env=env)
    line = res.expect_error(5, "TLS verification", endpoint, "vault.ca_cert", "nothing was sent")
    assert server.root_token not in line + res.stdout
    assert _audit_entries(server) == before  # OpenBao's audit device saw no request at all
    assert not (home / "master.json").exists()
