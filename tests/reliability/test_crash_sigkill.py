"""The harness's own check can fail (the SIGKILL tests themselves are in tests/storage/).

Crash consistency under SIGKILL is proven at the system-call level by
tests/storage/test_crash_points.py (strace kills ekm at chosen mutating calls) and, for every
call, by benchmarks/crash_soak.py. Both rely on ``harness.check_home``: this shows it catches
a lost version rather than passing whatever it is given.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import harness


def test_the_check_catches_a_lost_version(prepared: Path, prepared_template: Path) -> None:
    """The harness itself can fail: a key document replaced by an older one is caught."""
    before = harness.snapshot(prepared_template)
    doc = prepared / "keys" / "hmac.json"
    doc.unlink()
    with pytest.raises(AssertionError, match="key hmac: versions None"):
        harness.check_home(prepared, before, None)


def test_the_check_catches_a_lost_api_key(prepared: Path, prepared_template: Path) -> None:
    before = harness.snapshot(prepared_template)
    mgr = harness.manager(prepared)
    mgr.unlock()
    with mgr.keystore.store.lock():
        mgr._apikey_store().save([])
    with pytest.raises(AssertionError, match="API key table"):
        harness.check_home(prepared, before, None)
