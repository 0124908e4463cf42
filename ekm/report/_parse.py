"""Read a report JSON document back into :class:`ReportData`, treating it as hostile.

Every value is type-checked and every error names the JSON path, so a bad or tampered
previous report fails with one line (InvalidError, exit 3) instead of a traceback. Fields the
model does not know are ignored: in particular a ``material`` or ``secret`` field smuggled
into a key row never reaches a renderer, because the model has nowhere to put it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from ekm.errors import InvalidError
from ekm.report.model import (
    SCHEMA,
    AlertRow,
    AuditLogSummary,
    Changes,
    DayActivity,
    FindingRow,
    KeyRow,
    ReportData,
    RuleSetSummary,
)
from ekm.timeutil import from_iso

MAX_TEXT = 4096  # longer strings in a report are refused: nothing legitimate needs more


def _fail(path: str, what: str) -> InvalidError:
    return InvalidError(f"report JSON: {path} {what}; regenerate the report with `ekm report`")


def _obj(v: Any, path: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _fail(path, "must be an object")
    return v


def _list(v: Any, path: str) -> list[Any]:
    if not isinstance(v, list):
        raise _fail(path, "must be a list")
    return v


def _str(o: dict[str, Any], k: str, path: str, *, optional: bool = False) -> Any:
    v = o.get(k)
    if v is None and optional:
        return None
    if not isinstance(v, str):
        raise _fail(f"{path}.{k}", "must be a string")
    if len(v) > MAX_TEXT:
        raise _fail(f"{path}.{k}", f"is longer than {MAX_TEXT} characters")
    return v


def _int(o: dict[str, Any], k: str, path: str, *, optional: bool = False) -> Any:
    v = o.get(k)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _fail(f"{path}.{k}", "must be a non-negative integer")
    return v


def _num(o: dict[str, Any], k: str, path: str, *, optional: bool = False) -> Any:
    v = o.get(k)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e9:
        raise _fail(f"{path}.{k}", "must be a non-negative number")
    return float(v)


def _bool(o: dict[str, Any], k: str, path: str) -> bool:
    v = o.get(k)
    if not isinstance(v, bool):
        raise _fail(f"{path}.{k}", "must be true or false")
    return v


def _time(o: dict[str, Any], k: str, path: str, *, optional: bool = False) -> Any:
    v = _str(o, k, path, optional=optional)
    if v is None:
        return None
    try:
        return from_iso(v)
    except ValueError:
        raise _fail(f"{path}.{k}", "is not an ISO 8601 time") from None


def _day(o: dict[str, Any], k: str, path: str) -> date:
    v = _str(o, k, path)
    try:
        return date.fromisoformat(v)
    except ValueError:
        raise _fail(f"{path}.{k}", "is not an ISO date (YYYY-MM-DD)") from None


def _key(o: Any, p: str) -> KeyRow:
    o = _obj(o, p)
    return KeyRow(
        name=_str(o, "name", p),
        type=_str(o, "type", p),
        usage=_str(o, "usage", p),
        backend=_str(o, "backend", p),
        state_summary=_str(o, "state_summary", p),
        primary_version=_int(o, "primary_version", p, optional=True),
        versions=_int(o, "versions", p),
        age_days=_num(o, "age_days", p),
        rotate_every_days=_num(o, "rotate_every_days", p, optional=True),
        next_rotation=_time(o, "next_rotation", p, optional=True),
        dueness=_str(o, "dueness", p),
    )


def _ruleset(o: Any, p: str) -> RuleSetSummary:
    o = _obj(o, p)
    sev = _obj(o.get("findings_by_severity"), f"{p}.findings_by_severity")
    counts = {str(s): _int(sev, s, f"{p}.findings_by_severity") for s in sev}
    return RuleSetSummary(
        id=_str(o, "id", p),
        title=_str(o, "title", p),
        findings_by_severity=counts,
        passed=_int(o, "passed", p),
        evaluated=_int(o, "evaluated", p),
    )


def _finding(o: Any, p: str) -> FindingRow:
    o = _obj(o, p)
    return FindingRow(
        rule=_str(o, "rule", p),
        rule_set=_str(o, "rule_set", p),
        key=_str(o, "key", p, optional=True),
        version=_int(o, "version", p, optional=True),
        severity=_str(o, "severity", p),
        message=_str(o, "message", p),
        required=_str(o, "required", p),
        cite=_str(o, "cite", p),
    )


def _activity(o: Any, p: str) -> DayActivity:
    o = _obj(o, p)
    return DayActivity(
        date=_day(o, "date", p),
        rotations=_int(o, "rotations", p),
        failures=_int(o, "failures", p),
        other=_int(o, "other", p),
    )


def _alert(o: Any, p: str) -> AlertRow:
    o = _obj(o, p)
    return AlertRow(
        time=_time(o, "time", p),
        severity=_str(o, "severity", p),
        check=_str(o, "check", p),
        subject=_str(o, "subject", p),
        message=_str(o, "message", p),
    )


def _names(o: dict[str, Any], k: str, p: str) -> list[str]:
    out = []
    for i, v in enumerate(_list(o.get(k, []), f"{p}.{k}")):
        if not isinstance(v, str) or len(v) > MAX_TEXT:
            raise _fail(f"{p}.{k}[{i}]", "must be a key name (string)")
        out.append(v)
    return out


def _changes(o: Any, p: str) -> Changes:
    o = _obj(o, p)
    return Changes(
        keys_added=_names(o, "keys_added", p),
        keys_removed=_names(o, "keys_removed", p),
        keys_rotated=_names(o, "keys_rotated", p),
        findings_new=_rows(o.get("findings_new", []), f"{p}.findings_new", _finding),
        findings_resolved=_rows(o.get("findings_resolved", []), f"{p}.findings_resolved", _finding),
        since=_time(o, "since", p, optional=True),
    )


def _rows(v: Any, p: str, parse: Any) -> list[Any]:
    return [parse(item, f"{p}[{i}]") for i, item in enumerate(_list(v, p))]


def parse_report(data: Any) -> ReportData:
    """Build and validate a ReportData from the dict ``ReportData.to_dict`` produced."""
    o = _obj(data, "the document")
    schema = o.get("schema")
    if schema != SCHEMA:
        raise InvalidError(
            f"report JSON: schema is {schema!r}, expected {SCHEMA!r}; "
            "regenerate the report with this ekm version"
        )
    log = _obj(o.get("audit_log"), "audit_log")
    report = ReportData(
        generated_at=_time(o, "generated_at", "$"),
        period_start=_time(o, "period_start", "$"),
        period_end=_time(o, "period_end", "$"),
        ekm_version=_str(o, "ekm_version", "$"),
        home=_str(o, "home", "$"),
        config_fingerprint=_str(o, "config_fingerprint", "$"),
        audit_log=AuditLogSummary(
            records=_int(log, "records", "audit_log"),
            chain_ok=_bool(log, "chain_ok", "audit_log"),
            head_hash=_str(log, "head_hash", "audit_log"),
            first_bad=_str(log, "first_bad", "audit_log", optional=True),
        ),
        keys=_rows(o.get("keys", []), "keys", _key),
        compliance=_rows(o.get("compliance", []), "compliance", _ruleset),
        findings=_rows(o.get("findings", []), "findings", _finding),
        activity=_rows(o.get("activity", []), "activity", _activity),
        alerts=_rows(o.get("alerts", []), "alerts", _alert),
        changes=_changes(o.get("changes", {}), "changes"),
    )
    return report.validate()
