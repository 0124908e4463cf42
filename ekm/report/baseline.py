"""The stored baseline of ``ekm report``: only what "what changed" needs, read as hostile.

The previous report used to be stored whole (31 MB of JSON for 10,000 keys and 70,000
findings) and parsed whole on the next run, which alone pushed the report past its memory
target. :func:`diff_reports` needs far less: each key's name, primary version and version
count (added / removed / rotated), each finding's identity (rule set, rule, key, version) for
new / resolved, and when the previous report was made. A resolved finding is still shown as
a row, so each rule keeps its severity and citation once (not once per finding).

Document (``schema`` ``ekm-report-baseline/1``)::

    {"schema": ..., "ekm_version": ..., "generated_at": ISO, "period_end": ISO,
     "keys": {"name": [primary_version or null, versions], ...},
     "rules": [{"rule_set": ..., "rule": ..., "severity": ..., "cite": ...,
                "subjects": ["key" or null, version or null, ...]}, ...]}

``subjects`` is a flat list of (key, version) pairs: one list per rule instead of one object
per finding keeps both the file and its parse small. A baseline in the old format (a whole
report, schema ``ekm-report/1``) is still accepted, through the strict report parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ekm.errors import InvalidError
from ekm.timeutil import from_iso, iso

SCHEMA = "ekm-report-baseline/1"
MAX_TEXT = 4096  # as for reports: nothing legitimate is longer
RESOLVED_MESSAGE = "no longer reported (resolved since the previous report)"

FindingId = tuple[str, str, str | None, int | None]


@dataclass(frozen=True)
class RuleInfo:
    """What a resolved finding's row shows about its rule."""

    severity: str
    cite: str


@dataclass
class Baseline:
    """The previous report, reduced to what :func:`ekm.report.changes.diff_reports` reads."""

    generated_at: datetime
    period_end: datetime
    ekm_version: str
    keys: dict[str, tuple[int | None, int]] = field(default_factory=dict)
    findings: set[FindingId] = field(default_factory=set)
    rules: dict[tuple[str, str], RuleInfo] = field(default_factory=dict)

    @classmethod
    def from_report(cls, data: Any) -> Baseline:
        """The baseline of a :class:`~ekm.report.model.ReportData` (to store, or to diff)."""
        rules: dict[tuple[str, str], RuleInfo] = {}
        for f in data.findings:
            if (f.rule_set, f.rule) not in rules:
                rules[(f.rule_set, f.rule)] = RuleInfo(f.severity, f.cite)
        return cls(
            generated_at=data.generated_at,
            period_end=data.period_end,
            ekm_version=data.ekm_version,
            keys={k.name: (k.primary_version, k.versions) for k in data.keys},
            findings={f.ident for f in data.findings},
            rules=rules,
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored document (see the module docstring)."""
        subjects: dict[tuple[str, str], list[Any]] = {r: [] for r in self.rules}
        for rule_set, rule, key, version in sorted(self.findings, key=finding_order):
            subjects.setdefault((rule_set, rule), []).extend((key, version))
        return {
            "schema": SCHEMA,
            "ekm_version": self.ekm_version,
            "generated_at": iso(self.generated_at),
            "period_end": iso(self.period_end),
            "keys": {name: [p, n] for name, (p, n) in self.keys.items()},
            "rules": [
                {
                    "rule_set": rs,
                    "rule": r,
                    "severity": info.severity,
                    "cite": info.cite,
                    "subjects": subjects[(rs, r)],
                }
                for (rs, r), info in self.rules.items()
            ],
        }


def finding_order(ident: FindingId) -> tuple[str, str, str, int]:
    """A total order on finding identities (None sorts like "" / 0)."""
    rs, rule, key, version = ident
    return (rs, rule, key or "", version or 0)


# -- reading (hostile input) ---------------------------------------------------------------


def _fail(path: str, what: str) -> InvalidError:
    return InvalidError(f"baseline: {path} {what}")


def _text(v: Any, path: str, *, optional: bool = False) -> Any:
    if v is None and optional:
        return None
    if not isinstance(v, str):
        raise _fail(path, "must be a string")
    if len(v) > MAX_TEXT:
        raise _fail(path, f"is longer than {MAX_TEXT} characters")
    return v


def _count(v: Any, path: str, *, optional: bool = False) -> Any:
    if v is None and optional:
        return None
    if type(v) is not int or v < 0:
        raise _fail(path, "must be a non-negative integer")
    return v


def _time(v: Any, path: str) -> datetime:
    text = _text(v, path)
    try:
        when = from_iso(text)
    except ValueError:
        raise _fail(path, "is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise _fail(path, "has no time zone")
    return when


def _keys(v: Any) -> dict[str, tuple[int | None, int]]:
    if not isinstance(v, dict):
        raise _fail("keys", "must be an object")
    out = {}
    for name, row in v.items():
        where = f"keys[{name[:64]!r}]"
        _text(name, where)
        if not isinstance(row, list) or len(row) != 2:
            raise _fail(where, "must be [primary version or null, version count]")
        out[name] = (_count(row[0], where, optional=True), _count(row[1], where))
    return out


def _rules(v: Any, findings: set[FindingId]) -> dict[tuple[str, str], RuleInfo]:
    from ekm.report.model import SEVERITIES

    if not isinstance(v, list):
        raise _fail("rules", "must be a list")
    out: dict[tuple[str, str], RuleInfo] = {}
    for i, o in enumerate(v):
        p = f"rules[{i}]"
        if not isinstance(o, dict):
            raise _fail(p, "must be an object")
        rs, rule = _text(o.get("rule_set"), f"{p}.rule_set"), _text(o.get("rule"), f"{p}.rule")
        severity = _text(o.get("severity"), f"{p}.severity")
        if severity not in SEVERITIES:
            raise _fail(f"{p}.severity", f"must be one of {', '.join(SEVERITIES)}")
        if (rs, rule) in out:
            raise _fail(p, f"repeats rule {rule!r} of {rs!r}")
        out[(rs, rule)] = RuleInfo(severity, _text(o.get("cite"), f"{p}.cite"))
        subjects = o.get("subjects")
        if not isinstance(subjects, list) or len(subjects) % 2:
            raise _fail(f"{p}.subjects", "must be a list of key, version pairs")
        for j in range(0, len(subjects), 2):
            key = _text(subjects[j], f"{p}.subjects[{j}]", optional=True)
            version = _count(subjects[j + 1], f"{p}.subjects[{j + 1}]", optional=True)
            findings.add((rs, rule, key, version))
    return out


def parse_baseline(doc: Any) -> Baseline:
    """A :class:`Baseline` from a stored document: the slim format, or a whole old report.

    Raises InvalidError (its message names the JSON path; the caller adds the file) on
    anything that is not exactly what :meth:`Baseline.to_dict` writes. Unknown fields are
    ignored, so nothing smuggled into the file can reach a report.
    """
    if not isinstance(doc, dict):
        raise _fail("the document", "must be an object")
    schema = doc.get("schema")
    if schema != SCHEMA:
        from ekm.report.model import SCHEMA as REPORT_SCHEMA
        from ekm.report.model import ReportData

        if schema == REPORT_SCHEMA:  # a baseline stored by an earlier ekm: a whole report
            return Baseline.from_report(ReportData.from_dict(doc))
        raise InvalidError(f"baseline: schema is {str(schema)[:64]!r}, expected {SCHEMA!r}")
    findings: set[FindingId] = set()
    return Baseline(
        generated_at=_time(doc.get("generated_at"), "generated_at"),
        period_end=_time(doc.get("period_end"), "period_end"),
        ekm_version=_text(doc.get("ekm_version"), "ekm_version"),
        keys=_keys(doc.get("keys")),
        rules=_rules(doc.get("rules"), findings),
        findings=findings,
    )
