"""The integrity findings every audit carries, whatever rule sets were chosen.

Rule sets judge keys that could be read. A key document that cannot be read at all (tampered,
truncated, swapped, unsafe permissions) has no type or versions to judge, so no rule set would
ever mention it, and the audit would look cleaner for the damage. This module turns each such
problem into a critical finding of a small built-in rule set, ``ekm-integrity``, that names the
file, so ``ekm audit --compliance hipaa`` cannot pass over a tampered keystore.
"""

from __future__ import annotations

from dataclasses import dataclass

from ekm.compliance.engine import AuditResult, CheckResult
from ekm.compliance.ruleset import Rule, RuleSet, Source

SET_ID = "ekm-integrity"

_SOURCE = Source(
    "ekm DESIGN",
    "ekm design: every keystore document is authenticated (MAC) under the master key",
)

STORE_RULE = Rule(
    id="EKM-STORE-INTEGRITY",
    rule_set=SET_ID,
    title="Every key document reads and authenticates",
    severity="critical",
    cite="ekm DESIGN.md, Storage (metadata authenticated with a MAC); SP 800-57 Pt 1 6.1.1",
    scope="deployment",
    checks=(),
    remedy="Restore the named file from a backup (ekm backup restore) and find out who changed it.",
)

BACKUP_RULE = Rule(
    id="EKM-BACKUP-READABLE",
    rule_set=SET_ID,
    title="Backup files in the backup directory are ekm bundles",
    severity="low",
    cite="ekm docs/FORMAT.md, Backup bundles",
    scope="deployment",
    checks=(),
    remedy="Remove or replace the named file; it is not counted as a backup.",
)

RULE_SET = RuleSet(
    id=SET_ID,
    title="ekm: keystore and backup integrity (always evaluated)",
    version="1.0.0",
    sources=(_SOURCE,),
    rules=(STORE_RULE, BACKUP_RULE),
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something unreadable: which rule, which key (if known), and a one-line description."""

    rule: Rule
    key: str | None
    found: str


def apply(
    result: AuditResult, problems: list[Problem], *, keys_read: int, mac_checked: bool
) -> None:
    """Add the integrity rule set, its findings and its verdicts to ``result`` (in place).

    With the master key locked, documents were only parsed, not authenticated: the store rule
    is then "not evaluated" (unless something already failed to parse), never a pass.
    """
    result.rule_sets.insert(0, RULE_SET)
    result.rules_evaluated += len(RULE_SET.rules)
    need = "key documents parse and their MACs verify"
    for p in problems:
        required = need if p.rule is STORE_RULE else "only ekm backup bundles"
        result.findings.append(CheckResult(p.rule, p.key, None, "fail", p.found, required))
    if not any(p.rule is STORE_RULE for p in problems):
        if mac_checked:
            found = f"{keys_read} key documents authenticated"
            result.passed.append(CheckResult(STORE_RULE, None, None, "pass", found, need))
        else:
            found = "key document MACs not checked (needs the master key)"
            result.unknown.append(CheckResult(STORE_RULE, None, None, "unknown", found, need))
    if not any(p.rule is BACKUP_RULE for p in problems):
        result.passed.append(
            CheckResult(BACKUP_RULE, None, None, "pass", "backup files readable", "ekm bundles")
        )
    result.findings.sort(key=lambda f: (-f.rule.rank, f.rule.rule_set, f.rule.id, f.key or ""))
