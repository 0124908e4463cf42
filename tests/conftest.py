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
