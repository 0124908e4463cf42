"""Report formats: pure functions from an :class:`AuditResult` to JSON, SARIF, JUnit, Markdown.

Nothing here computes a verdict; every format renders the same result, so ``--format json`` and
the table can never disagree. None of them reads the clock, the file system or the keystore, and
no field carries key material: findings hold rule ids, key names, versions, types and dates.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ekm.compliance.engine import AuditResult, CheckResult
from ekm.compliance.explain import Memo, identity, rule_source
from ekm.compliance.ruleset import SEVERITIES, Rule
from ekm.timeutil import iso

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# GitHub code scanning maps security-severity to critical (>= 9.0), high (7.0-8.9),
# medium (4.0-6.9) and low (0.1-3.9).
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}
SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}


def _rule_sets(result: AuditResult) -> list[dict[str, Any]]:
    return [
        {
            "id": rs.id,
            "title": rs.title,
            "version": rs.version,
            "custom": rs.custom,
            "sources": [s.to_dict() for s in rs.sources],
        }
        for rs in result.rule_sets
    ]


def _item(r: CheckResult, memo: Memo) -> dict[str, Any]:
    return {
        "rule": r.rule.id,
        "rule_set": r.rule.rule_set,
        "title": r.rule.title,
        "severity": r.rule.severity,
        "status": r.status,
        "key": r.key,
        "version": r.version,
        "message": r.message,
        "found": r.found,
        "required": r.required,
        "cite": r.rule.cite,
        "verified": r.rule.verified,
        "remedy": r.rule.remedy or None,
        "source": memo.source(r.rule),
        "facts": memo.facts(r),
    }


def to_json(result: AuditResult, *, verbose: bool = False) -> dict[str, Any]:
    """The ``ekm audit --format json`` document (CLI.md shape).

    Findings, unknown and passed results are always listed (``verbose`` is accepted for
    callers of the old signature and changes nothing): an auditor needs the passes as much as
    the failures. ``audited`` names the home and keystore and separates ``collected_at``
    (when the inventory was taken) from ``as_of`` (when the rules were judged).
    """
    ident = identity(result)
    memo = Memo(result)
    doc: dict[str, Any] = {
        "home": ident["home"],
        "home_id": ident["home_id"],
        "keystore": ident["keystore"],
        "collected_at": ident["collected_at"],
        "as_of": iso(result.as_of),
        "audited": ident,
        "rule_sets": _rule_sets(result),
        "findings": [_item(f, memo) for f in result.findings],
        "unknown": [_item(u, memo) for u in result.unknown],
        "passed": [_item(p, memo) for p in result.passed],
        "rules": {f"{r.rule_set}/{r.id}": rule_source(r) for r in result.rules},
        "summary": result.summary(),
        "evaluated": {
            "keys": result.keys_evaluated,
            "rules": result.rules_evaluated,
            "rules_not_in_force": result.rules_not_in_force,
            "passed": len(result.passed),
            "failed": len(result.findings),
            "unknown": len(result.unknown),
        },
        "warnings": list(result.warnings),
    }
    return doc


# --- SARIF 2.1.0 ---------------------------------------------------------------------------


def _help_text(rule: Rule) -> str:
    from ekm.compliance.explain import severity_mapping

    parts = [f"{rule.title}.", f"Source: {rule.cite}.", f"Severity: {severity_mapping(rule)}."]
    if rule.remedy:
        parts.append(f"Fix: {rule.remedy}")
    if not rule.verified:
        parts.append(f"Not verified against the primary source: {rule.note}")
    elif rule.note:
        parts.append(rule.note)
    return " ".join(parts)


def _sarif_rule(rule: Rule) -> dict[str, Any]:
    text = _help_text(rule)
    return {
        "id": rule.id,
        "name": "".join(ch for ch in rule.title.title() if ch.isalnum())[:100] or rule.id,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": f"{rule.title} ({rule.cite})"},
        "help": {"text": text, "markdown": text},
        "defaultConfiguration": {"level": SARIF_LEVEL[rule.severity]},
        "properties": {
            "security-severity": SECURITY_SEVERITY[rule.severity],
            "tags": ["security", "compliance", rule.rule_set],
            "precision": "very-high" if rule.verified else "medium",
            "ekm-severity": rule.severity,
            "rule-set": rule.rule_set,
            "verified": rule.verified,
            "source": rule_source(rule),
        },
    }


def _fingerprint(f: CheckResult) -> str:
    text = f"{f.rule.rule_set}\0{f.rule.id}\0{f.key}\0{f.version}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def to_sarif(result: AuditResult, *, home: str, tool_version: str) -> dict[str, Any]:
    """SARIF 2.1.0 for GitHub code scanning.

    Key findings point at the keystore file, deployment findings at ekm.toml (both relative to
    the ``EKMHOME`` base, so the log does not leak absolute paths unless the viewer resolves it);
    the key and version travel as a logical location.
    """
    rules = result.rules
    memo = Memo(result)
    index = {(r.rule_set, r.id): i for i, r in enumerate(rules)}
    results = []
    for f in [*result.findings, *result.unknown, *result.passed]:
        if f.key is None:
            artifact = result.config_file
        else:
            from urllib.parse import quote

            artifact = result.keystore_file.replace("{key}", quote(f.key))
        location: dict[str, Any] = {
            "physicalLocation": {
                "artifactLocation": {"uri": artifact, "uriBaseId": "EKMHOME"},
                "region": {"startLine": 1},
            }
        }
        if f.key is not None:
            name = f.key if f.version is None else f"{f.key}/v{f.version}"
            location["logicalLocations"] = [
                {"name": f.key, "fullyQualifiedName": name, "kind": "resource"}
            ]
        kind = {"fail": "fail", "unknown": "review", "pass": "pass"}[f.status]
        results.append(
            {
                "ruleId": f.rule.id,
                "ruleIndex": index[(f.rule.rule_set, f.rule.id)],
                "kind": kind,
                "level": SARIF_LEVEL[f.rule.severity] if kind == "fail" else "none",
                "message": {"text": f"{f.rule.title}: {f.message}. Source: {f.rule.cite}"},
                "locations": [location],
                "partialFingerprints": {"ekmFinding/v1": _fingerprint(f)},
                "properties": {
                    "rule-set": f.rule.rule_set,
                    "key": f.key,
                    "version": f.version,
                    "required": f.required,
                    "cite": f.rule.cite,
                    "status": f.status,
                    # passes are listed for completeness; their facts are in the JSON report
                    "facts": memo.facts(f) if kind != "pass" else None,
                },
            }
        )
    home_path = Path(home)
    if home_path.is_absolute():
        base = home_path.as_uri().rstrip("/") + "/"
    else:
        from urllib.parse import quote

        base = quote(home_path.as_posix().rstrip("/") + "/")
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "ekm",
                        "version": tool_version,
                        "informationUri": "https://github.com/ekm/ekm",
                        "rules": [_sarif_rule(r) for r in rules],
                    }
                },
                "originalUriBaseIds": {"EKMHOME": {"uri": base}},
                "results": results,
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "properties": {
                            **identity(result),
                            "as_of": iso(result.as_of),
                            "keys": result.keys_evaluated,
                            "rules": result.rules_evaluated,
                            "unknown": len(result.unknown),
                        },
                    }
                ],
            }
        ],
    }


# --- JUnit XML -----------------------------------------------------------------------------


def to_junit(result: AuditResult) -> str:
    """One testsuite per rule set, one testcase per rule x key; findings are failures.

    A (rule, key) with several results (one per version) is one testcase whose failure lists
    every failing version; an unknown result is a skipped testcase, so CI shows it.
    """
    import xml.etree.ElementTree as ET

    groups: dict[str, dict[tuple[str, str], list[CheckResult]]] = {
        rs.id: {} for rs in result.rule_sets
    }
    for r in [*result.findings, *result.unknown, *result.passed]:
        subject = r.key if r.key is not None else "(deployment)"
        groups.setdefault(r.rule.rule_set, {}).setdefault((r.rule.id, subject), []).append(r)

    root = ET.Element("testsuites", name="ekm audit")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for set_id, cases in groups.items():
        suite = ET.SubElement(root, "testsuite", name=set_id, timestamp=iso(result.as_of))
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        for (rule_id, subject), items in sorted(cases.items()):
            case = ET.SubElement(suite, "testcase", classname=f"{set_id}.{rule_id}", name=subject)
            counts["tests"] += 1
            fails = [i for i in items if i.status == "fail"]
            unknown = [i for i in items if i.status == "unknown"]
            if fails:
                counts["failures"] += 1
                first = fails[0]
                body = "\n".join(f"{i.message} [{i.rule.cite}]" for i in fails)
                el = ET.SubElement(case, "failure", message=first.message, type=first.rule.severity)
                el.text = body
            elif unknown:
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=unknown[0].message)
        suite.set("tests", str(counts["tests"]))
        suite.set("failures", str(counts["failures"]))
        suite.set("errors", "0")
        suite.set("skipped", str(counts["skipped"]))
        for k in totals:
            totals[k] += counts[k]
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("errors", "0")
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


# --- Markdown and table rows ---------------------------------------------------------------


def _md(text: Any) -> str:
    s = "" if text is None else str(text)
    for ch in ("\\", "|", "`", "*", "_", "<", ">", "[", "]"):
        s = s.replace(ch, "\\" + ch)
    return s.replace("\n", " ")


def to_markdown(result: AuditResult, *, verbose: bool = False) -> str:
    """A Markdown report (for a PR comment or a job summary)."""
    s = result.summary()
    memo = Memo(result)
    ids = ", ".join(f"{rs.id} {rs.version}" for rs in result.rule_sets)
    lines = [
        "# ekm compliance audit",
        "",
        f"Home {_md(result.home)} (id {_md(result.deployment.master_key_id or '?')}), "
        f"inventory collected {iso(result.collected_at or result.as_of)}, judged as of "
        f"{iso(result.as_of)}; rule sets: {_md(ids)}.",
        f"Evaluated {result.keys_evaluated} keys against {result.rules_evaluated} rules "
        f"({len(result.findings)} findings, {len(result.passed)} passed, "
        f"{len(result.unknown)} not evaluated).",
        "",
        "| critical | high | medium | low |",
        "|---:|---:|---:|---:|",
        f"| {s['critical']} | {s['high']} | {s['medium']} | {s['low']} |",
        "",
    ]
    sections = [("Findings", result.findings), ("Not evaluated", result.unknown)]
    if verbose:
        sections.append(("Passed", result.passed))
    for heading, items in sections:
        lines += [f"## {heading}", ""]
        if not items:
            lines += ["None.", ""]
            continue
        lines += [
            "| severity | rule | key | version | found | required | source | facts |",
            "|---|---|---|---:|---|---|---|---|",
        ]
        for i in items:
            cells = [
                i.rule.severity + (" (draft, capped)" if i.rule.capped else ""),
                i.rule.id + ("" if i.rule.verified else " (unverified)"),
                i.key or "(deployment)",
                "" if i.version is None else i.version,
                i.found,
                i.required,
                _source_cell(i.rule),
                _facts_cell(i, memo),
            ]
            lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _source_cell(rule: Rule) -> str:
    """``cite; strength; publisher date, status`` for the Markdown and table views."""
    src = rule.source
    text = rule.cite
    if rule.strength:
        text += f"; {rule.strength}"
    if src is not None:
        text += f"; {src.publisher} {src.date}, {src.status}"
    return text


def _facts_cell(item: CheckResult, memo: Memo) -> str:
    return ", ".join(f"{k}={v}" for k, v in memo.facts(item).items() if v is not None)


def table_rows(result: AuditResult, verbose: bool = False) -> list[dict[str, str]]:
    """Rows for the CLI's rich table: findings, then unknown, then (verbose) passed."""
    items = [*result.findings, *result.unknown, *(result.passed if verbose else ())]
    memo = Memo(result)
    return [
        {
            "status": i.status,
            "severity": i.rule.severity,
            "rule": i.rule.id,
            "key": i.key or "(deployment)",
            "version": "" if i.version is None else str(i.version),
            "found": i.found,
            "required": i.required,
            "cite": i.rule.cite,
            "source": _source_cell(i.rule),
            "facts": _facts_cell(i, memo),
        }
        for i in items
    ]


__all__ = ["SEVERITIES", "table_rows", "to_json", "to_junit", "to_markdown", "to_sarif"]
