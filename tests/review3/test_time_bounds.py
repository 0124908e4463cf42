"""Review fixes: instants and durations outside what datetime can add are clean errors.

Before the fix ``ekm report --as-of 9999-12-31`` died with "internal error: OverflowError"
(``now + interval`` past year 9999), ``--as-of +999999999y`` overflowed timedelta itself, a key
whose stored ``created`` was 9999-12-31 broke ``rotate --check`` the same way, and a naive
``now=`` from the Python API raised TypeError deep inside a comparison.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ekm import timeutil
from ekm.errors import UsageError

UTC = timezone.utc


@pytest.mark.parametrize(
    "args",
    [
        ("rotate", "--check", "--as-of", "9999-12-31"),
        ("audit", "--as-of", "9999-12-31"),
        ("status", "--as-of", "0001-01-01"),
        ("report", "--as-of", "9999-12-31"),
        ("rotate", "--check", "--as-of", "0001-01-01T00:00:00+01:00"),
    ],
)
def test_as_of_out_of_range_is_a_usage_error(frun, args: tuple[str, ...]) -> None:
    line = frun(*args).expect_error(2, "--as-of", "out of range", "1970-01-01", "2999-12-31")
    assert "OverflowError" not in line


@pytest.mark.parametrize("offset", ["+999999999y", "-999999999w", "+1001y"])
def test_as_of_offset_too_long_is_a_usage_error(frun, offset: str) -> None:
    frun("rotate", "--check", "--as-of", offset).expect_error(2, "--as-of", "at most 1000y")


def test_as_of_within_range_still_works(frun) -> None:
    res = frun("rotate", "--check", "--as-of", "2999-12-31", "--json")
    assert res.code == 1, res.stderr  # everything is overdue by then
    assert json.loads(res.stdout)["due"]


def _poison_created(home: Path, name: str, when: str) -> None:
    """Rewrite a key's stored times (the metadata an attacker or a bad restore could leave)."""
    path = home / "keys" / f"{name}.json"
    doc = json.loads(path.read_text())
    doc["meta"]["created"] = when
    for v in doc["meta"]["versions"]:
        v["created"] = when
        v["activated"] = when
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("args", [("rotate", "--check"), ("status",), ("keys", "list")])
def test_stored_time_near_year_9999_is_refused_as_tampered(fhome, frun, args) -> None:
    name = sorted(p.stem for p in (fhome / "keys").glob("*.json"))[0]
    _poison_created(fhome, name, "9999-12-31T23:00:00Z")
    line = frun(*args).expect_error(4, "malformed", "tampered")
    assert "OverflowError" not in line and "internal error" not in line


def test_naive_now_from_the_api_is_a_usage_error(mgr) -> None:
    naive = datetime(2030, 1, 1)
    for call in (
        lambda: mgr.rotation_check(now=naive),
        lambda: mgr.status(now=naive),
        lambda: mgr.audit(now=naive),
    ):
        with pytest.raises(UsageError, match="now must be timezone-aware"):
            call()


def test_far_now_from_the_api_is_a_usage_error(mgr) -> None:
    with pytest.raises(UsageError, match="now is out of range"):
        mgr.rotation_check(now=datetime(9999, 12, 31, tzinfo=UTC))


def test_aware_non_utc_now_is_accepted_as_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert timeutil.instant(datetime(2030, 1, 1, 2, tzinfo=plus2)) == datetime(
        2030, 1, 1, tzinfo=UTC
    )


def test_timeutil_bounds() -> None:
    with pytest.raises(ValueError, match="at most 1000y"):
        timeutil.parse_duration("1001y")
    assert timeutil.parse_duration("1000y") == timedelta(days=365000)
    with pytest.raises(ValueError, match="out of range"):
        timeutil.from_iso("9999-12-31T23:59:59Z")
    with pytest.raises(ValueError, match="out of range"):
        timeutil.from_iso("0001-01-01T00:00:00+01:00")  # astimezone itself overflowed here
    with pytest.raises(ValueError, match="out of range"):
        timeutil.parse_when("+900y", now=datetime(2500, 1, 1, tzinfo=UTC))
    with pytest.raises(UsageError, match="must be a datetime"):
        timeutil.instant("2030-01-01")  # type: ignore[arg-type]


def test_iso_pads_the_year() -> None:
    """glibc's %Y printed year 1 as "1-01-01": not ISO 8601, and not what from_iso reads."""
    assert timeutil.iso(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0999-01-02T03:04:05Z"
