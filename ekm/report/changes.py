"""What changed between two reports: keys added, removed, rotated; findings new, resolved.

The manager keeps the previous report's JSON and passes both models here, so the comparison
uses exactly what the earlier document showed, not a reconstruction of past state.
"""

from __future__ import annotations

from ekm.report.model import Changes, ReportData


def diff_reports(previous: ReportData | None, current: ReportData) -> Changes:
    """Changes from ``previous`` to ``current``; empty with ``since=None`` without a previous."""
    if previous is None:
        return Changes()
    before = {k.name: k for k in previous.keys}
    after = {k.name: k for k in current.keys}
    rotated = [
        name
        for name, k in after.items()
        if name in before
        and (
            k.primary_version != before[name].primary_version or k.versions > before[name].versions
        )
    ]
    old_f = {f.ident: f for f in previous.findings}
    new_f = {f.ident: f for f in current.findings}
    return Changes(
        keys_added=sorted(after.keys() - before.keys()),
        keys_removed=sorted(before.keys() - after.keys()),
        keys_rotated=sorted(rotated),
        findings_new=[f for i, f in new_f.items() if i not in old_f],
        findings_resolved=[f for i, f in old_f.items() if i not in new_f],
        since=previous.generated_at,
    )
