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
from ekm.compliance.inventory import DeploymentFacts
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

VAULT_TLS_RULE = Rule(
    id="EKM-VAULT-TLS-VERIFY",
    rule_set=SET_ID,
    title="Vault's TLS certificate is verified",
    severity="high",
    cite="RFC 9525 (TLS server identity verification); ekm docs/vault.md, [vault] verify",
    scope="deployment",
    checks=(),
    note=(
        "Key documents, wrapped material and the Vault token cross this connection; without "
        "certificate checks anyone on the path can read or replace them. PCI DSS v4.0.1 "
        "Req. 4.2.1 asks the same of certificates protecting card data in transit."
    ),
    remedy=(
        "Remove verify = false from [vault] in ekm.toml; for a private CA set [vault] ca_cert "
        "(or VAULT_CACERT) instead."
    ),
)

RULE_SET = RuleSet(
    id=SET_ID,
    title="ekm: keystore, backup and Vault-connection integrity (always evaluated)",
    version="1.1.0",
    sources=(
        _SOURCE,
        Source(
            "RFC 9525",
            "Service Identity in TLS (IETF, 2023)",
            "https://www.rfc-editor.org/rfc/rfc9525",
        ),
    ),
    rules=(STORE_RULE, BACKUP_RULE, VAULT_TLS_RULE),
    changelog=("1.1.0: EKM-VAULT-TLS-VERIFY flags [vault] verify = false.",),
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something unreadable: which rule, which key (if known), and a one-line description."""

    rule: Rule
    key: str | None
    found: str


def apply(
    result: AuditResult,
    problems: list[Problem],
    *,
    keys_read: int,
    mac_checked: bool,
    deployment: DeploymentFacts | None = None,
) -> None:
    """Add the integrity rule set, its findings and its verdicts to ``result`` (in place).

    With the master key locked, documents were only parsed, not authenticated: the store rule
    is then "not evaluated" (unless something already failed to parse), never a pass.
    """
    result.rule_sets.insert(0, RULE_SET)
    # The Vault rule counts only where there is a [vault] section to judge.
    vault_judged = deployment is not None and deployment.vault_tls_verify is not None
    result.rules_evaluated += len(RULE_SET.rules) - (0 if vault_judged else 1)
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
    _vault_tls(result, deployment)
    result.findings.sort(key=lambda f: (-f.rule.rank, f.rule.rule_set, f.rule.id, f.key or ""))


def _vault_tls(result: AuditResult, deployment: DeploymentFacts | None) -> None:
    """EKM-VAULT-TLS-VERIFY: a finding naming the config key when ``verify = false``.

    Without a ``[vault]`` section there is no connection to judge, so no verdict at all.
    """
    verify = deployment.vault_tls_verify if deployment is not None else None
    if verify is None:
        return
    need = "[vault] verify = true (the default): Vault's certificate checked"
    if verify:
        result.passed.append(
            CheckResult(VAULT_TLS_RULE, None, None, "pass", "[vault] verify is on", need)
        )
        return
    found = "[vault] verify = false in ekm.toml: Vault's TLS certificate is not checked"
    result.findings.append(CheckResult(VAULT_TLS_RULE, None, None, "fail", found, need))
