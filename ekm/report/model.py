"""The security report's data model: everything a rendering shows, and nothing else.

The renderers (HTML, PDF, Markdown, JSON) draw only from :class:`ReportData`, so what a report
can contain is decided here. There is deliberately no field for key material, passphrases,
PINs or tokens: a report is evidence to hand around, and a secret that is not in the model
cannot leak through any format. :meth:`ReportData.from_dict` reads a (possibly hostile) JSON
document back, ignores fields it does not know and validates every value it keeps.

The summary is not stored: :meth:`ReportData.totals` computes it from the tables, and
:meth:`ReportData.validate` refuses a model whose per-rule-set counts disagree with its
findings table, so the numbers on the first page always add up to the tables behind them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any

from ekm.errors import InvalidError
from ekm.timeutil import iso

SCHEMA = "ekm-report/1"
DUENESS = ("overdue", "soon", "ok", "none")
SEVERITIES = ("critical", "high", "medium", "low", "info")
DUE_HORIZON_DAYS = 30


@dataclass(frozen=True)
class AuditLogSummary:
    """State of the hash-chained audit log when the report was made."""

    records: int
    chain_ok: bool
    head_hash: str
    first_bad: str | None = None  # where the chain breaks (record id / line), if it does


@dataclass(frozen=True)
class KeyRow:
    """One key of the inventory: metadata only, never material."""

    name: str
    type: str
    usage: str
    backend: str
    state_summary: str  # e.g. "1 primary, 2 active"
    primary_version: int | None
    versions: int
    age_days: float  # age of the primary version
    rotate_every_days: float | None
    next_rotation: datetime | None
    dueness: str  # one of DUENESS: overdue / soon (notify window) / ok / none (no policy)


@dataclass(frozen=True)
class RuleSetSummary:
    """Compliance status of one rule set: findings by severity, rules passed of evaluated."""

    id: str
    title: str
    findings_by_severity: dict[str, int]
    passed: int
    evaluated: int

    @property
    def findings(self) -> int:
        return sum(self.findings_by_severity.values())


@dataclass(frozen=True)
class FindingRow:
    """One compliance finding, with the requirement and where it is written down."""

    rule: str
    rule_set: str
    key: str | None
    version: int | None
    severity: str
    message: str
    required: str
    cite: str

    @property
    def ident(self) -> tuple[str, str, str | None, int | None]:
        """What makes a finding 'the same' across two reports (for new/resolved)."""
        return (self.rule_set, self.rule, self.key, self.version)


@dataclass(frozen=True)
class DayActivity:
    """Audit-log operations of one UTC day."""

    date: date
    rotations: int
    failures: int
    other: int


@dataclass(frozen=True)
class AlertRow:
    """A monitor alert raised in the period."""

    time: datetime
    severity: str
    check: str
    subject: str
    message: str


@dataclass(frozen=True)
class Changes:
    """What changed since the previous report (``since`` is None when there was none)."""

    keys_added: list[str] = field(default_factory=list)
    keys_removed: list[str] = field(default_factory=list)
    keys_rotated: list[str] = field(default_factory=list)
    findings_new: list[FindingRow] = field(default_factory=list)
    findings_resolved: list[FindingRow] = field(default_factory=list)
    since: datetime | None = None


@dataclass(frozen=True)
class Totals:
    """The summary figures, computed from the tables (never stored separately)."""

    keys: int
    keys_by_type: dict[str, int]
    keys_by_backend: dict[str, int]
    keys_by_dueness: dict[str, int]
    due_within_30d: int  # overdue, or next rotation within DUE_HORIZON_DAYS of period_end
    findings: int
    findings_by_severity: dict[str, int]
    rotations: int
    failures: int
    other_operations: int
    alerts: int
    alerts_by_severity: dict[str, int]


@dataclass
class ReportData:
    """Everything one security report shows. ``period_end`` is the report's as-of instant."""

    generated_at: datetime
    period_start: datetime
    period_end: datetime
    ekm_version: str
    home: str
    config_fingerprint: str
    audit_log: AuditLogSummary
    keys: list[KeyRow] = field(default_factory=list)
    compliance: list[RuleSetSummary] = field(default_factory=list)
    findings: list[FindingRow] = field(default_factory=list)
    activity: list[DayActivity] = field(default_factory=list)
    alerts: list[AlertRow] = field(default_factory=list)
    changes: Changes = field(default_factory=Changes)

    # -- derived -------------------------------------------------------------------------

    def due_keys(self) -> list[KeyRow]:
        """Keys overdue or due within 30 days of ``period_end``, soonest first."""
        horizon = self.period_end + timedelta(days=DUE_HORIZON_DAYS)
        due = [
            k
            for k in self.keys
            if k.dueness == "overdue"
            or (k.next_rotation is not None and k.next_rotation <= horizon)
        ]
        return sorted(due, key=_due_sort_key)

    def totals(self) -> Totals:
        """Summary figures; each one is a count over a table the report also shows."""
        by_dueness = Counter(k.dueness for k in self.keys)
        by_sev = Counter(f.severity for f in self.findings)
        alert_sev = Counter(a.severity for a in self.alerts)
        return Totals(
            keys=len(self.keys),
            keys_by_type=dict(sorted(Counter(k.type for k in self.keys).items())),
            keys_by_backend=dict(sorted(Counter(k.backend for k in self.keys).items())),
            keys_by_dueness={d: by_dueness.get(d, 0) for d in DUENESS},
            due_within_30d=len(self.due_keys()),
            findings=len(self.findings),
            findings_by_severity={s: by_sev.get(s, 0) for s in SEVERITIES},
            rotations=sum(d.rotations for d in self.activity),
            failures=sum(d.failures for d in self.activity),
            other_operations=sum(d.other for d in self.activity),
            alerts=len(self.alerts),
            alerts_by_severity=dict(sorted(alert_sev.items())),
        )

    # -- consistency ---------------------------------------------------------------------

    def validate(self) -> ReportData:
        """Refuse a model whose parts contradict each other; return self for chaining.

        Renderers call this first: a report whose summary does not add up to its tables is
        worse than no report.
        """
        for name in ("generated_at", "period_start", "period_end"):
            _aware(getattr(self, name), name)
        if self.period_start > self.period_end:
            raise InvalidError(
                f"report period starts ({iso(self.period_start)}) after it ends "
                f"({iso(self.period_end)}); pass --since earlier than --as-of"
            )
        for i, k in enumerate(self.keys):
            _check_key(k, f"keys[{i}]")
        ids = [c.id for c in self.compliance]
        if len(set(ids)) != len(ids):
            raise InvalidError("report: a rule set appears twice in compliance; list each once")
        counted: dict[str, Counter[str]] = {i: Counter() for i in ids}
        for i, f in enumerate(self.findings):
            if f.severity not in SEVERITIES:
                raise InvalidError(
                    f"report: findings[{i}].severity {f.severity!r} is not one of "
                    f"{', '.join(SEVERITIES)}"
                )
            if f.rule_set not in counted:
                raise InvalidError(
                    f"report: findings[{i}] belongs to rule set {f.rule_set!r}, which has no "
                    "entry in compliance; add its summary"
                )
            counted[f.rule_set][f.severity] += 1
        for c in self.compliance:
            if c.evaluated < 0 or not 0 <= c.passed <= c.evaluated:
                raise InvalidError(
                    f"report: rule set {c.id!r} passed {c.passed} of {c.evaluated} rules; "
                    "passed must be between 0 and evaluated"
                )
            declared = {s: n for s, n in c.findings_by_severity.items() if n}
            if declared != dict(counted[c.id]):
                raise InvalidError(
                    f"report: rule set {c.id!r} summary counts {declared} but the findings "
                    f"table has {dict(counted[c.id])}; fill both from the same audit run"
                )
        first, last = self.period_start.date(), self.period_end.date()
        for d in self.activity:
            if not first <= d.date <= last:
                raise InvalidError(
                    f"report: activity for {d.date.isoformat()} lies outside the period "
                    f"{first.isoformat()}..{last.isoformat()}"
                )
            if min(d.rotations, d.failures, d.other) < 0:
                raise InvalidError(
                    f"report: activity for {d.date.isoformat()} has a negative count"
                )
        for i, a in enumerate(self.alerts):
            _aware(a.time, f"alerts[{i}].time")
        return self

    # -- JSON ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``--format json``), totals included for consumers."""
        out = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}
        out["schema"] = SCHEMA
        out["totals"] = _jsonable(self.totals())
        out["due_keys"] = [k.name for k in self.due_keys()]
        return out

    @classmethod
    def from_dict(cls, data: Any) -> ReportData:
        """Read a report back (e.g. the previous one, for 'what changed'); treat it as hostile."""
        from ekm.report._parse import parse_report

        return parse_report(data)


def _due_sort_key(k: KeyRow) -> tuple[int, str, str]:
    when = iso(k.next_rotation) if k.next_rotation else ""
    return (0 if k.dueness == "overdue" else 1, when, k.name)


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidError(f"report: {name} has no time zone; pass an aware UTC datetime")


def _check_key(k: KeyRow, where: str) -> None:
    if k.dueness not in DUENESS:
        raise InvalidError(
            f"report: {where}.dueness {k.dueness!r} is not one of {', '.join(DUENESS)}"
        )
    if k.next_rotation is not None:
        _aware(k.next_rotation, f"{where}.next_rotation")
    if k.versions < 0 or k.age_days < 0:
        raise InvalidError(f"report: {where} ({k.name!r}) has a negative version count or age")


def _jsonable(value: Any) -> Any:
    """``value`` with dates as ISO text and dataclasses as dicts.

    Walks the model directly instead of through ``dataclasses.asdict``, whose deep copy of
    every row cost seconds on 70,000 findings. Rows are flat: their scalars are taken as they
    are, and only a date, datetime or container among them is converted.
    """
    if type(value) in _ROWS:
        names = _ROWS[type(value)]
        row = {n: getattr(value, n) for n in names}
        for n, v in row.items():
            if v is not None and type(v) not in _SCALARS:
                row[n] = _jsonable(v)
        return row
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    return value


_SCALARS = frozenset({str, int, float, bool})
_ROWS: dict[type, tuple[str, ...]] = {
    c: tuple(f.name for f in fields(c))
    for c in (AuditLogSummary, KeyRow, RuleSetSummary, FindingRow, DayActivity, AlertRow)
}


def field_names() -> dict[str, list[str]]:
    """Every field of every model class (tests use it to prove no material field exists)."""
    classes = (ReportData, AuditLogSummary, KeyRow, RuleSetSummary, FindingRow, DayActivity)
    classes += (AlertRow, Changes, Totals)
    return {c.__name__: [f.name for f in fields(c)] for c in classes}
