"""What a verdict rests on: a rule's source as data, and the facts behind each result.

Every report format (JSON, SARIF, Markdown, table), ``ekm audit --explain RULE``, the evidence
bundle and docs/compliance.md take these from here, so they cannot disagree about where a rule
comes from or why a key failed it. Nothing here prints key material: facts are types,
strengths, dates, states, backends and identifiers.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ekm.compliance.ruleset import DRAFT_CAP, SEVERITY_RANK, STRENGTHS, Rule
from ekm.timeutil import iso

if TYPE_CHECKING:  # pragma: no cover
    from ekm.compliance.engine import AuditResult, CheckResult
    from ekm.compliance.inventory import DeploymentFacts


def in_force_text(rule: Rule) -> str:
    """``from 2031-01-01``, ``until 2035-12-31`` (inclusive), both, or ``always``."""
    from datetime import timedelta

    parts = []
    if rule.valid_from is not None:
        parts.append(f"from {rule.valid_from.date().isoformat()}")
    if rule.valid_until is not None:
        last = (rule.valid_until - timedelta(days=1)).date().isoformat()
        parts.append(f"until {last}")
    return " ".join(parts) or "always"


def severity_mapping(rule: Rule) -> str:
    """One sentence: the source's strength, the severity it maps to, and any draft cap."""
    if not rule.strength:
        text = f"severity {rule.severity} (custom rule: no strength declared)"
    else:
        low, high, meaning = STRENGTHS[rule.strength]
        text = (
            f"'{rule.strength}' ({meaning}) maps to {low}..{high}; "
            f"this rule: {rule.declared_severity or rule.severity}"
        )
    if rule.mapping:
        text += f" ({rule.mapping})"
    if rule.capped:
        text += (
            f"; capped at {DRAFT_CAP} because the source is a draft (--enforce-drafts restores it)"
        )
    elif rule.draft and rule.rank > SEVERITY_RANK[DRAFT_CAP]:
        text += f"; the source is a draft: audits cap it at {DRAFT_CAP} unless --enforce-drafts"
    elif rule.draft:
        text += "; the source is a draft"
    return text


def rule_source(rule: Rule) -> dict[str, Any]:
    """The rule's provenance as data (JSON, SARIF properties, evidence, ``--explain``)."""
    return {
        "source": rule.source.to_dict() if rule.source is not None else None,
        "section": rule.section or None,
        "strength": rule.strength or None,
        "declared_severity": rule.declared_severity or rule.severity,
        "severity": rule.severity,
        "draft_capped": rule.capped,
        "mapping": severity_mapping(rule),
        "cite": rule.cite,
        "verified": rule.verified,
        "in_force": in_force_text(rule),
    }


def explain(rule: Rule) -> dict[str, Any]:
    """Everything ``ekm audit --explain RULE`` shows."""
    types = sorted(t.value for t in rule.types) if rule.scope == "key" else []
    return {
        "rule": rule.id,
        "rule_set": rule.rule_set,
        "title": rule.title,
        "scope": rule.scope,
        **rule_source(rule),
        "applies_to": {
            "types": types,
            "usages": sorted(u.value for u in rule.usages) if rule.usages else None,
            "operation": rule.operation,
            "labels": {k: sorted(v) for k, v in rule.labels} or None,
            "used_beyond": iso(rule.used_beyond) if rule.used_beyond else None,
        },
        "requires": {name: _param(value) for name, value in rule.checks},
        "note": rule.note or None,
        "remedy": rule.remedy or None,
    }


def _param(value: Any) -> Any:
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "total_seconds"):
        from ekm.timeutil import format_duration

        return format_duration(value)
    return value


def explain_text(rule: Rule) -> list[str]:
    """``--explain`` as lines for a terminal."""
    doc = explain(rule)
    src = doc["source"]
    lines = [f"{rule.id} ({rule.rule_set}): {rule.title}"]
    if src:
        lines.append(
            f"  source:    {src['id']}: {src['title']}; {src['publisher']}, "
            f"{src['edition']} ({src['date']}), {src['status']}"
        )
        if src["url"]:
            lines.append(f"  url:       {src['url']}")
    lines += [
        f"  section:   {doc['section'] or '-'}",
        f"  strength:  {doc['strength'] or '-'}",
        f"  severity:  {doc['severity']} ({doc['mapping']})",
        f"  in force:  {doc['in_force']}",
        f"  cite:      {doc['cite']}",
    ]
    applies = doc["applies_to"]
    if rule.scope == "key":
        lines.append(f"  key types: {', '.join(applies['types'])}")
        if applies["usages"]:
            lines.append(f"  usages:    {', '.join(applies['usages'])}")
        if applies["labels"]:
            labels = "; ".join(f"{k} in {v}" for k, v in applies["labels"].items())
            lines.append(f"  labels:    {labels} ('' = unset)")
        if applies["used_beyond"]:
            lines.append(f"  only keys in use beyond {applies['used_beyond']}")
        lines.append(f"  versions:  {applies['operation']}")
    else:
        lines.append("  scope:     the deployment")
    for name, value in doc["requires"].items():
        lines.append(f"  requires:  {name} = {value}")
    if not rule.verified:
        lines.append(f"  UNVERIFIED: {rule.note}")
    elif rule.note:
        lines.append(f"  note:      {rule.note}")
    if rule.remedy:
        lines.append(f"  remedy:    {rule.remedy}")
    return lines


def _module(d: DeploymentFacts, backend: str) -> str:
    table = d.module_validation or {}
    return table.get(backend, "not checked")


def facts(item: CheckResult, result: AuditResult) -> dict[str, Any]:
    """The facts a verdict rests on: the key's type, strength, age, state, backend, module,
    what it protects as a KEK (or, for deployment rules, the master key and home)."""
    from ekm.compliance.engine import strength_table

    d = result.deployment
    key = item.subject
    if key is None:
        out: dict[str, Any] = {
            "home_id": d.master_key_id,
            "master_key_source": d.master_key_source,
        }
        if d.master_key_strength is not None:
            out["master_key_strength"] = d.master_key_strength
        if d.master_key_created is not None:
            out["master_key_created"] = iso(d.master_key_created)
            out["master_key_age_days"] = _age(result.as_of, d.master_key_created)
        return out
    row = strength_table()[key.type.value]
    out = {
        "type": key.type.value,
        "strength": row["strength"],
        "key_bits": row["bits"],
        "usage": key.usage.value,
        "backend": key.backend,
        "module": _module(d, key.backend),
    }
    version = next((v for v in key.versions if v.version == item.version), None)
    if version is not None:
        out["state"] = version.state.value
        out["created"] = iso(version.created)
        out["age_days"] = _age(result.as_of, version.created)
    if key.rotate_every is not None:
        out["rotate_every_days"] = key.rotate_every.days
    if key.usage.value in ("encryption", "key-wrapping", "key-agreement"):
        out["protects"] = "256-bit data keys (every ciphertext's data key is sealed by it)"
    if key.backend == "file":
        strength = d.master_key_strength
        out["wrapped_by"] = (
            f"master key {d.master_key_id or '?'} ({d.master_key_source or '?'}, "
            + (f"{strength}-bit)" if strength else "strength not measurable)")
        )
    return out


def _age(as_of: datetime, created: datetime) -> int:
    return max((as_of - created).days, 0)


def identity(result: AuditResult) -> dict[str, Any]:
    """Which home and keystore were audited, and when the inventory was taken."""
    d = result.deployment
    return {
        "home": result.home,
        "home_id": d.master_key_id,
        "keystore": result.keystore_file,
        "master_key_source": d.master_key_source,
        "collected_at": iso(result.collected_at) if result.collected_at else None,
        "as_of": iso(result.as_of),
        "enforce_drafts": result.enforce_drafts,
    }


class Memo:
    """Per-report caches: a rule's source is the same for each of its results, and a key
    version's facts the same under every rule, so 10,000 keys x 100 rules compute each once.
    """

    def __init__(self, result: AuditResult) -> None:
        self.result = result
        self._sources: dict[int, dict[str, Any]] = {}
        self._facts: dict[tuple[int, int | None], dict[str, Any]] = {}

    def source(self, rule: Rule) -> dict[str, Any]:
        """A result's compact provenance: the source's id, edition, date and status, the
        section and strength, and the severity; the full document and the mapping sentence
        are in the report's ``rules`` table (one entry per rule, not per result)."""
        got = self._sources.get(id(rule))
        if got is None:
            src = rule.source
            got = self._sources[id(rule)] = {
                "id": src.id if src else None,
                "edition": src.edition if src else None,
                "date": src.date if src else None,
                "status": src.status if src else None,
                "section": rule.section or None,
                "strength": rule.strength or None,
                "declared_severity": rule.declared_severity or rule.severity,
                "draft_capped": rule.capped,
            }
        return got

    def facts(self, item: CheckResult) -> dict[str, Any]:
        k = (id(item.subject), item.version)
        got = self._facts.get(k)
        if got is None:
            got = self._facts[k] = facts(item, self.result)
        return got
