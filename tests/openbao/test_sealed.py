"""An initialised but sealed OpenBao: ekm says "sealed", exit 5, and changes nothing.

The home is deployed on the dev server, then its ``[vault] endpoint`` is pointed at the sealed
server: what an operator sees when the Vault the home uses gets sealed (a restart without
auto-unseal).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def sealed_home(
    make_home: Callable[..., Path],
    run: Callable[..., Any],
    bao_env: dict[str, str],
    openbao_dev: Any,
    openbao_sealed: Any,
) -> Path:
    home = make_home("a")
    run("--home", str(home), "deploy", env=bao_env).expect_ok()
    cfg = home / "ekm.toml"
    cfg.write_text(cfg.read_text().replace(openbao_dev.url, openbao_sealed.url))
    return home


@pytest.mark.parametrize(
    "command", [["keys", "list"], ["rotate", "--check"], ["rotate", "alpha", "--force"]]
)
def test_a_sealed_server_is_named_exit_5(
    command: list[str],
    sealed_home: Path,
    openbao_sealed: Any,
    run: Callable[..., Any],
    bao_env: dict[str, str],
) -> None:
    before = (sealed_home / "audit.log").read_text()
    res = run("--home", str(sealed_home), *command, env=bao_env)
    line = res.expect_error(5, openbao_sealed.url, "is sealed", "operator unseal")
    assert bao_env["VAULT_TOKEN"] not in line
    assert (sealed_home / "audit.log").read_text() == before  # nothing happened


def test_status_vault_reports_sealed(
    sealed_home: Path, openbao_sealed: Any, run: Callable[..., Any], bao_env: dict[str, str]
) -> None:
    """``ekm status --vault`` is how an operator finds out: it names the sealed node."""
    res = run("--home", str(sealed_home), "status", "--vault", env=bao_env)
    assert "sealed" in res.stdout + res.stderr
    assert res.code == 5
