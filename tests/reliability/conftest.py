"""Fixtures of the reliability harness: a prepared home (every operation has work to do)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import harness


@pytest.fixture(scope="session")
def prepared_template(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's deployed home plus the state ``harness.prepare_home`` sets up."""
    path = harness.copy_home(template_home, tmp_path_factory.mktemp("rel-template") / "home")
    harness.prepare_home(path)
    return path


@pytest.fixture
def prepared(prepared_template: Path, tmp_path: Path) -> Path:
    """A private copy of the prepared home for one test."""
    return harness.copy_home(prepared_template, tmp_path / "home")
