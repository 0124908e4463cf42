"""Helpers for ``ekm audit`` tests: run the real command and read its JSON report.

Every test works on a private copy of the session's deployed home (root ``home`` fixture), so
tampering in one test never leaks into another. ``audit_json`` returns the parsed report and
the result, so a test checks the exit code and the findings of one run together.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def findings(doc: dict[str, Any], rule: str, key: str | None = None) -> list[dict[str, Any]]:
    """Findings of ``rule`` (for ``key`` when given) in an ``--format json`` document."""
    return [f for f in doc["findings"] if f["rule"] == rule and (key is None or f["key"] == key)]


def items(doc: dict[str, Any], section: str, rule: str, key: str | None = None) -> list[dict]:
    """Entries of ``section`` (findings, unknown, passed) for ``rule`` and ``key``."""
    return [f for f in doc[section] if f["rule"] == rule and (key is None or f["key"] == key)]


@pytest.fixture
def audit_json(run: Callable[..., Any]) -> Callable[..., tuple[Any, dict[str, Any]]]:
    """``audit_json(*args, env=None)`` -> (Result, parsed JSON report of ``ekm audit``)."""

    def _audit(*args: str, env: dict[str, str] | None = None) -> tuple[Any, dict[str, Any]]:
        res = run("audit", "--format", "json", *args, env=env)
        assert "Traceback" not in res.stderr, res.stderr
        return res, json.loads(res.stdout)

    return _audit


@pytest.fixture
def unlocked(home: Path) -> Any:
    """A KeyManager on ``home`` with the master key unlocked (to set up a scenario)."""
    from ekm.manager import KeyManager

    mgr = KeyManager(home, env={})
    mgr.unlock()
    return mgr
