"""What changed between two reports: keys added, removed, rotated; findings new, resolved.

The manager keeps a slim baseline of the previous report (:mod:`ekm.report.baseline`: key
versions and finding identities, as that document showed them) and passes it here, so the
comparison uses what the earlier report showed, not a reconstruction of past state.
"""

from __future__ import annotations

from ekm.report.baseline import RESOLVED_MESSAGE, Baseline, FindingId, finding_order
from ekm.report.model import Changes, FindingRow, ReportData


def diff_reports(previous: Baseline | ReportData | None, current: ReportData) -> Changes:
    """Changes from ``previous`` to ``current``; empty without a previous report.

    A resolved finding is no longer in the current report, so its row is rebuilt from the
    baseline: identity, the rule's severity and citation, and a fixed message (the old
    message and requirement are not stored).
    """
    if previous is None:
        return Changes()
    if isinstance(previous, ReportData):
        previous = Baseline.from_report(previous)
    before = previous.keys
    after = {k.name: (k.primary_version, k.versions) for k in current.keys}
    rotated = [
        name
        for name, (primary, versions) in after.items()
        if name in before and (primary != before[name][0] or versions > before[name][1])
    ]
    new_f = {f.ident: f for f in current.findings}
    gone = sorted(previous.findings.difference(new_f), key=finding_order)
    resolved = [_resolved(previous, i) for i in gone]
    return Changes(
        keys_added=sorted(after.keys() - before.keys()),
        keys_removed=sorted(before.keys() - after.keys()),
        keys_rotated=sorted(rotated),
        findings_new=[f for i, f in new_f.items() if i not in previous.findings],
        findings_resolved=resolved,
        since=previous.generated_at,
    )


def _resolved(previous: Baseline, ident: FindingId) -> FindingRow:
    rule_set, rule, key, version = ident
    info = previous.rules.get((rule_set, rule))
    return FindingRow(
        rule=rule,
        rule_set=rule_set,
        key=key,
        version=version,
        severity=info.severity if info else "info",
        message=RESOLVED_MESSAGE,
        required="",
        cite=info.cite if info else "",
    )
