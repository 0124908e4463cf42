"""Long tables made readable: findings grouped by rule, individual rows listed up to a bound.

A home of 10,000 keys easily yields 70,000 findings; a 1,500-page table of them is evidence
nobody reads, and it made the PDF take minutes. People need *which rules fail, how badly, on
how many keys*, plus enough individual rows to act on. So the HTML, PDF and Markdown reports
show one row per rule (:func:`group_findings`) and then the first :data:`LIST_LIMIT` findings by
severity (:func:`first_by_severity`), saying how many more exist and where to get them all
(``--format json`` keeps every finding). Alerts get the same bound (:func:`latest_alerts`).

The grouped table is computed from the same list the summary counts, and its ``findings``
column is a plain count per group, so it always adds up to the summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ekm.report.model import SEVERITIES, AlertRow, FindingRow

LIST_LIMIT = 200  # individual rows shown per long table in the documents for people
EXAMPLES = 3  # example keys named per rule in the grouped table
DEPLOYMENT = "deployment"  # what a finding without a key is about
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True)
class FindingGroup:
    """All findings of one rule: how many, on how many keys, a few examples, the requirement."""

    rule_set: str
    rule: str
    severity: str
    findings: int
    keys: int  # distinct keys among the findings (deployment findings name no key)
    examples: tuple[str, ...]  # the first EXAMPLES subjects, in table order
    required: str  # the requirement; "X (and N other values)" when findings differ
    cite: str


class _Acc:
    """Mutable accumulator for one group (slots: 70,000 updates, no per-finding object)."""

    __slots__ = ("count", "examples", "first", "keys", "required")

    def __init__(self, first: FindingRow) -> None:
        self.first = first
        self.count = 0
        self.keys: set[str] = set()
        self.examples: list[str] = []
        self.required: dict[str, None] = {}


def group_findings(rows: Iterable[FindingRow], examples: int = EXAMPLES) -> list[FindingGroup]:
    """One group per (rule set, rule, severity), most severe first, then the most findings."""
    groups: dict[tuple[str, str, str], _Acc] = {}
    for row in rows:
        ident = (row.rule_set, row.rule, row.severity)
        acc = groups.get(ident)
        if acc is None:
            acc = groups[ident] = _Acc(row)
        acc.count += 1
        subject = DEPLOYMENT if row.key is None else row.key
        if row.key is not None:
            acc.keys.add(row.key)
        if len(acc.examples) < examples and subject not in acc.examples:
            acc.examples.append(subject)
        if len(acc.required) < 100:  # a bounded memory of distinct requirements
            acc.required[row.required] = None
    out = [
        FindingGroup(
            rule_set=rs,
            rule=rule,
            severity=sev,
            findings=acc.count,
            keys=len(acc.keys),
            examples=tuple(acc.examples),
            required=_required(list(acc.required)),
            cite=acc.first.cite,
        )
        for (rs, rule, sev), acc in groups.items()
    ]
    out.sort(key=lambda g: (_RANK.get(g.severity, len(_RANK)), -g.findings, g.rule_set, g.rule))
    return out


def _required(values: list[str]) -> str:
    if len(values) <= 1:
        return values[0] if values else ""
    more = len(values) - 1
    return f"{values[0]} (and {more} other value{'s' if more > 1 else ''})"


def first_by_severity(
    rows: Sequence[FindingRow], limit: int = LIST_LIMIT
) -> tuple[list[FindingRow], int]:
    """Every row when there are at most ``limit`` (in table order); else the first ``limit``
    by severity, most severe first (table order kept within a severity). Also returns how many
    rows were left out."""
    if len(rows) <= limit:
        return list(rows), 0
    ranked = sorted(rows, key=lambda r: _RANK.get(r.severity, len(_RANK)))  # stable
    return ranked[:limit], len(rows) - limit


def latest_alerts(rows: Sequence[AlertRow], limit: int = LIST_LIMIT) -> tuple[list[AlertRow], int]:
    """The ``limit`` most recent alerts, in time order, and how many older ones were left out."""
    if len(rows) <= limit:
        return list(rows), 0
    return list(rows[-limit:]), len(rows) - limit


def more_findings(shown: int, left_out: int) -> str:
    """The sentence under a bounded findings table: what is shown, what is not, where it is."""
    return (
        f"Only the first {shown} of {shown + left_out} findings by severity are listed; "
        f"{left_out} more are not. The table above counts every one by rule, and "
        "`ekm report --format json` or `ekm audit --format json` lists each of them."
    )


def more_alerts(shown: int, left_out: int) -> str:
    """The sentence under a bounded alerts table."""
    return (
        f"Only the {shown} most recent of {shown + left_out} alerts are listed; {left_out} "
        "older ones are not. `ekm report --format json` lists each of them."
    )
