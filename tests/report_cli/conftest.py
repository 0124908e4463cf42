"""A deployment with a varied inventory for ``ekm report``, built once per session.

The template is deployed ten days in the past (``now=``, never a patched clock) so that its
history has depth: an rsa-2048 key (a finding under bsi-tr-02102-1) added a day later, two
rotations on day two, monitor alerts (one resolved) and a denied operation on days three to
five. Tests run ``ekm report`` on a private copy, since every report writes an audit record
and a baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ekm.timeutil import iso, utcnow
from tests.conftest import copy_home

ROTATED = ("database_encryption", "hmac")


@dataclass(frozen=True)
class Varied:
    """The template home and the instants its history was written at."""

    path: Path
    t0: datetime  # deployment

    def day(self, n: int) -> datetime:
        return self.t0 + timedelta(days=n)

    def since(self) -> str:
        """A --since value covering the whole history."""
        return iso(self.t0 - timedelta(hours=1))


@pytest.fixture(scope="session")
def varied_template(tmp_path_factory: pytest.TempPathFactory) -> Varied:
    from ekm.manager import KeyManager

    t0 = utcnow().replace(microsecond=0) - timedelta(days=10)
    path = tmp_path_factory.mktemp("report-cli") / "home"
    mgr = KeyManager(path, env={})
    mgr.deploy(now=t0)
    mgr.generate("legacy_rsa", type="rsa-2048", now=t0 + timedelta(days=1))
    mgr.rotate(list(ROTATED), force=True, now=t0 + timedelta(days=2))
    event = {"op": "monitor.event", "key": None, "subject": "keys/hmac.json"}
    mgr.audit_log.append_many(
        [
            {**event, "result": "firing", "check": "files.permissions", "severity": "HIGH",
             "fingerprint": "fp-perm", "now": t0 + timedelta(days=3)},
            {**event, "result": "resolved", "check": "files.permissions", "severity": "HIGH",
             "fingerprint": "fp-perm", "now": t0 + timedelta(days=4)},
            {**event, "result": "firing", "check": "key.overdue", "severity": "MEDIUM",
             "subject": "session", "fingerprint": "fp-due", "now": t0 + timedelta(days=5)},
            {"op": "unlock", "result": "denied", "error": "IntegrityError",
             "now": t0 + timedelta(days=5)},
        ]
    )  # fmt: skip
    return Varied(path, t0)


@pytest.fixture
def varied(varied_template: Varied, tmp_path: Path) -> Varied:
    """A private copy of the varied deployment."""
    return Varied(copy_home(varied_template.path, tmp_path / "home"), varied_template.t0)


@pytest.fixture
def ekm_env(base_env: dict[str, str], varied: Varied) -> dict[str, str]:
    """Overrides the root ``ekm_env``: ``run`` works on the varied home."""
    return {**base_env, "EKM_HOME": str(varied.path)}
