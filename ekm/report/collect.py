"""Fill a :class:`ReportData` from a deployed home: keys, an audit run, the audit log, alerts.

Everything the report shows is computed here from the same sources the other commands use, so
the numbers agree by construction: the key rows come from ``KeyManager.list_keys`` (what
``ekm status`` lists), the findings from one ``KeyManager.audit`` run (what ``ekm audit``
reports for the same ``--as-of``), the audit-log figures from ``AuditLog.verify``.

The audit log can be large (100,000 records and more). It is read as a stream, once, and
reduced on the fly: per-day counters (:func:`bin_activity`) and the monitor alerts of the
period. No list of records is ever built here.

Nothing in this module touches key material: the model has no field for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ekm.report.activity import bin_activity, classify_due
from ekm.report.model import (
    AlertRow,
    AuditLogSummary,
    Changes,
    FindingRow,
    KeyRow,
    RuleSetSummary,
)
from ekm.timeutil import from_iso

DEFAULT_PERIOD = timedelta(days=30)  # the period of a first report (no --since, no baseline)
_DAY = 86400.0


def config_fingerprint(path: Path | None) -> str:
    """``sha256:<hex>`` of the config file's bytes, so a reader can tell which config ran."""
    if path is None or not path.exists():
        return "none (built-in defaults)"
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def key_rows(keys: Iterable[Any], as_of: datetime) -> list[KeyRow]:
    """One metadata row per key (``ekm.model.Key``), sorted by name; never material."""
    rows = []
    for key in keys:
        primary = key.primary
        age = (as_of - primary.created).total_seconds() / _DAY if primary else 0.0
        counts: dict[str, int] = {}
        for v in key.versions:
            counts[v.state.value] = counts.get(v.state.value, 0) + 1
        interval = key.policy.interval
        nxt = key.next_rotation
        rows.append(
            KeyRow(
                name=key.name,
                type=key.type.value,
                usage=key.usage.value,
                backend=key.backend,
                state_summary=", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
                primary_version=key.primary_version,
                versions=len(key.versions),
                age_days=round(max(0.0, age), 2),
                rotate_every_days=interval.total_seconds() / _DAY if interval else None,
                next_rotation=nxt.replace(microsecond=0) if nxt else None,
                dueness=classify_due(nxt, key.policy.notify_before, as_of),
            )
        )
    return sorted(rows, key=lambda r: r.name)


def compliance_rows(result: Any) -> tuple[list[RuleSetSummary], list[FindingRow]]:
    """Per-rule-set summaries and the findings table of one ``AuditResult``.

    A rule counts as *evaluated* when at least one of its verdicts is pass or fail (a rule seen
    only as "not evaluated" is not), and as *passed* when it is evaluated and never failed.
    """
    failed: dict[str, set[str]] = {}
    judged: dict[str, set[str]] = {}
    for verdict in [*result.findings, *result.passed]:
        judged.setdefault(verdict.rule.rule_set, set()).add(verdict.rule.id)
    for f in result.findings:
        failed.setdefault(f.rule.rule_set, set()).add(f.rule.id)
    findings = [
        FindingRow(
            rule=f.rule.id,
            rule_set=f.rule.rule_set,
            key=f.key,
            version=f.version,
            severity=f.rule.severity,
            message=f.message,
            required=f.required,
            cite=f.rule.cite,
        )
        for f in result.findings
    ]
    summaries = []
    for rs in result.rule_sets:
        by_sev: dict[str, int] = {}
        for f in findings:
            if f.rule_set == rs.id:
                by_sev[f.severity] = by_sev.get(f.severity, 0) + 1
        evaluated = len(judged.get(rs.id, ()))
        summaries.append(
            RuleSetSummary(
                id=rs.id,
                title=rs.title,
                findings_by_severity=by_sev,
                passed=evaluated - len(failed.get(rs.id, ())),
                evaluated=evaluated,
            )
        )
    return summaries, findings


def log_summary(res: Any) -> AuditLogSummary:
    """The audit log's chain state from an ``ekm.auditlog.VerifyResult``."""
    return AuditLogSummary(
        records=res.records,
        chain_ok=bool(res.ok),
        head_hash="sha256:" + res.head_hash,
        first_bad=res.first_bad,
    )


def _when(record: dict[str, Any]) -> datetime | None:
    """A record's time, or None when it is missing or malformed (the log is evidence, not code)."""
    raw = record.get("time")
    if not isinstance(raw, str) or len(raw) > 40:
        return None
    try:
        return from_iso(raw)
    except ValueError:
        return None


class _LogReducer:
    """One pass over the audit log: activity triples out, monitor alerts kept aside."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.start, self.end = start, end
        self.alerts: list[AlertRow] = []
        self._open: dict[str, int] = {}  # alert identity -> index of its firing row

    def activity(self, records: Iterable[dict[str, Any]]) -> Iterator[tuple[datetime, str, str]]:
        for rec in records:
            when = _when(rec)
            op = rec.get("op")
            if when is None or not isinstance(op, str):
                continue
            result = rec.get("result", "ok")
            result = result if isinstance(result, str) else "error"
            if op == "monitor.event":
                self._alert(rec, when, result)
                continue  # a monitor transition is an alert, not an operation
            yield when, op, result

    def _alert(self, rec: dict[str, Any], when: datetime, result: str) -> None:
        """Alerts raised in the period; a later ``resolved`` record marks them resolved."""
        if not self.start <= when <= self.end:
            return
        check, subject, severity = rec.get("check"), rec.get("subject"), rec.get("severity")
        if not (isinstance(check, str) and isinstance(subject, str) and isinstance(severity, str)):
            return
        fp = rec.get("fingerprint")
        ident = fp if isinstance(fp, str) else f"{check}\0{subject}"
        if result == "firing":
            self._open[ident] = len(self.alerts)
            row = AlertRow(when.replace(microsecond=0), severity.lower()[:16], check[:200],
                           subject[:500], "firing")  # fmt: skip
            self.alerts.append(row)
        elif result == "resolved" and ident in self._open:
            i = self._open.pop(ident)
            raised = self.alerts[i]
            self.alerts[i] = AlertRow(
                raised.time,
                raised.severity,
                raised.check,
                raised.subject,
                f"firing, resolved {when.strftime('%Y-%m-%d %H:%M')} UTC",
            )


def scan_log(records: Iterable[dict[str, Any]], start: datetime, end: datetime) -> tuple:
    """``(activity by day, alerts)`` of ``[start, end]`` from a stream of audit records."""
    reducer = _LogReducer(start, end)
    days = bin_activity(reducer.activity(records), start, end)
    alerts = sorted(reducer.alerts, key=lambda a: (a.time, a.check, a.subject))
    return days, alerts


def changes_since(keys: Iterable[Any], since: datetime, as_of: datetime) -> Changes:
    """Key changes in ``(since, as_of]`` reconstructed from the keystore's own timestamps.

    Used with ``--since WHEN``, when no stored report describes that instant: a key created in
    the period was added; a key with a version created in the period was rotated. Findings
    cannot be reconstructed (they depend on the rules of the time), so they stay empty.
    """
    added, rotated = [], []
    for key in keys:
        if since < key.created <= as_of:
            added.append(key.name)
        elif any(since < v.created <= as_of for v in key.versions if v.version > 1):
            rotated.append(key.name)
    return Changes(keys_added=sorted(added), keys_rotated=sorted(rotated), since=since)
