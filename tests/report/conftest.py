from __future__ import annotations

import pytest

from ekm.report.model import ReportData
from tests.report.synthetic import report


@pytest.fixture
def data() -> ReportData:
    """46 keys (6 hand-made, 40 random): more than the key-age chart's 25 bars."""
    return report(extra_keys=40)


@pytest.fixture
def small() -> ReportData:
    """Only the 6 hand-made keys: fewer than the chart limit, so no histogram."""
    return report(extra_keys=0, n_events=200)
