"""Crash consistency under SIGKILL: the short version (the soak is benchmarks/crash_soak.py).

Each command-line operation of the harness table is killed at a few seeded random instants.
The home must then load and verify, and each key must be wholly "before" or "after"; a kill
mid-way through a multi-key rotation may leave some keys rotated and others not ("mixed"),
each key on its own being consistent. That is the documented contract (one atomic write per
key document), and the outcome is recorded so a change in it is visible.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.reliability import crashkill, harness

KILLS_PER_OP = 2


@pytest.mark.parametrize("op", harness.OPERATIONS, ids=lambda op: op.name)
def test_sigkill_leaves_previous_or_next_state(
    op: harness.Operation, prepared_template: Path, tmp_path: Path
) -> None:
    if not op.available():
        pytest.skip(f"`ekm {op.needs}` does not exist yet")
    before = harness.snapshot(prepared_template)
    ciphertexts = harness.make_ciphertexts(prepared_template, before)
    ref = crashkill.reference(prepared_template, tmp_path, op)
    rng = random.Random(f"sigkill-{op.name}")
    outcomes = []
    for i in range(KILLS_PER_OP):
        # one early (start-up), the others where the storage work happens (last half)
        delay = rng.uniform(0, 0.3) * ref.seconds if i == 0 else rng.uniform(0.5, 1.0) * ref.seconds
        outcomes.append(
            crashkill.kill_trial(
                prepared_template, tmp_path / f"kill-{i}", ref, before, ciphertexts, delay
            )
        )
    assert all(o.state in ("before", "after", "mixed") for o in outcomes)
    assert any(o.killed for o in outcomes), "no trial was killed: the delays are too long"


def test_the_check_catches_a_lost_version(prepared: Path, prepared_template: Path) -> None:
    """The harness itself can fail: a key document replaced by an older one is caught."""
    before = harness.snapshot(prepared_template)
    doc = prepared / "keys" / "hmac.json"
    doc.unlink()
    with pytest.raises(AssertionError, match="key hmac: versions None"):
        harness.check_home(prepared, before, None)
