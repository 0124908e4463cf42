"""Fixtures for the operator-experience tests: the source tree and the CLI's command tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
READMES = ("README.md", "README.fr.md", "README.de.md")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def cli_root() -> Any:
    from ekm.cli.gen import cli_command

    return cli_command()


@pytest.fixture(scope="session")
def cli_groups(cli_root: Any) -> dict[str, set[str]]:
    """Command path ("" for ekm, "keys" for ekm keys) -> its subcommand names."""
    out: dict[str, set[str]] = {}

    def walk(cmd: Any, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            out[" ".join(path)] = set(subs)
            for name, sub in subs.items():
                walk(sub, [*path, name])

    walk(cli_root, [])
    return out
