"""Fixtures of the fourth review: the rotation area's fast home (no rsa-4096), reused."""

from __future__ import annotations

from tests.rotation.conftest import fast_template, fenv, fhome, frun, mgr

__all__ = ["fast_template", "fenv", "fhome", "frun", "mgr"]
