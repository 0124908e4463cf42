"""``ekm audit``: compliance audits for CI, and ``--verify-log`` for the audit log chain.

CI reads the exit code and a file: 0 when no finding reaches ``--fail-on`` (default high), 1
when one does (``--soft-fail``: always 0). The report goes to stdout or, atomically, to
``--output FILE``; the one-line summary and warnings go to stderr so stdout stays parseable.
``--verify-log`` exits 4 on a broken chain, naming the first bad record. ``--explain RULE``
prints a rule's source and severity mapping; ``--evidence DIR`` also writes a signed evidence
bundle. ``ekm audit attest RULE`` records an operator attestation: ``audit`` is a command
group whose callback runs when no subcommand is named, so every ``ekm audit [OPTIONS]``
invocation keeps working.
"""

from __future__ import annotations

from typing import Any

import typer

from ekm.cli import complete
from ekm.cli.app import app
from ekm.cli.render import emit_json, message, success, table, warn
from ekm.errors import IntegrityError, UsageError

FORMATS = ("table", "json", "sarif", "junit", "markdown")
SEVERITIES = ("low", "medium", "high", "critical")


def _as_of(value: str | None) -> Any:
    from ekm.timeutil import parse_when

    if not value:
        return None
    try:
        return parse_when(value)
    except ValueError as exc:
        raise UsageError(f"--as-of: {exc}") from None


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> str:
    v = value.strip().lower()
    if v not in choices:
        raise UsageError(f"{flag} {value!r}: expected one of {', '.join(choices)}")
    return v


def _list(obj: Any) -> None:
    from ekm.compliance.engine import list_rule_sets

    sets = list_rule_sets()
    if obj.json:
        emit_json(
            {
                "rule_sets": [
                    {
                        "id": s.id,
                        "title": s.title,
                        "version": s.version,
                        "rules": s.rules,
                        "sources": [x.to_dict() for x in s.sources],
                    }
                    for s in sets
                ]
            }
        )
        return
    table(
        None,
        ["id", "version", "rules", "title", "sources"],
        [[s.id, s.version, s.rules, s.title, "; ".join(x.id for x in s.sources)] for s in sets],
    )


def _verify_log(obj: Any) -> None:
    res = obj.manager().verify_audit_log()
    for w in res.warnings:
        warn(w)
    if obj.json:
        emit_json({**res.to_dict(), "warnings": res.warnings})
    files = f"{len(res.files)} file{'s' if len(res.files) != 1 else ''}"
    if not res.ok:
        raise IntegrityError(
            f"audit log chain broken at {res.first_bad}; {res.records} records before it "
            f"verified ({files}); keep the files as evidence and investigate"
        )
    how = "hash chain and MACs" if res.keyed else "hash chain only (MACs not checked)"
    if not obj.json:
        success(  # silent unless a person is watching: cron mails only on trouble
            f"audit log intact: {res.records} records in {files} ({', '.join(res.files)}); {how}"
        )
        if res.unkeyed_tail:
            warn(f"the last {res.unkeyed_tail} record(s) carry no MAC")


def _render(result: Any, fmt: str, verbose: bool, home: str) -> str | None:
    """The report text for ``fmt`` (None: the table, printed directly)."""

    from ekm.compliance import formats
    from ekm.jsonout import dumps

    if fmt == "json":  # one finding per line through the C encoder (10,000 keys: fast)
        return dumps(formats.to_json(result, verbose=verbose)).decode()
    if fmt == "sarif":
        from ekm import __version__

        doc = formats.to_sarif(result, home=home, tool_version=__version__)
        return dumps(doc).decode()
    if fmt == "junit":
        return formats.to_junit(result) + "\n"
    if fmt == "markdown":
        return formats.to_markdown(result, verbose=verbose)
    return None


def _table(result: Any, verbose: bool) -> None:
    from ekm.compliance.formats import table_rows

    rows = table_rows(result, verbose)
    if not rows:
        return
    table(
        None,
        ["status", "severity", "rule", "key", "version", "found", "required", "source"],
        [
            [
                r["status"],
                r["severity"],
                r["rule"],
                r["key"],
                r["version"],
                r["found"],
                r["required"],
                r["source"],
            ]
            for r in rows
        ],
    )


def _summary(result: Any, fail_on: str, failing: int) -> str:
    s = result.summary()
    counts = ", ".join(f"{s[k]} {k}" for k in ("critical", "high", "medium", "low"))
    line = (
        f"audit: {result.keys_evaluated} keys against {result.rules_evaluated} rules "
        f"({', '.join(rs.id for rs in result.rule_sets)}) as of "
        f"{result.as_of.strftime('%Y-%m-%dT%H:%M:%SZ')}: {len(result.findings)} findings "
        f"({counts}), {len(result.passed)} passed, {len(result.unknown)} not evaluated"
    )
    if failing:
        line += f"; {failing} at or above {fail_on}"
    return line


audit_app = typer.Typer(invoke_without_command=True)
app.add_typer(audit_app, name="audit", rich_help_panel="Compliance")


def _explain(obj: Any, rule_id: str) -> None:
    from ekm.compliance.engine import find_rule
    from ekm.compliance.explain import explain, explain_text

    rule = find_rule(rule_id.strip())
    if obj.json:
        emit_json(explain(rule))
        return
    for line in explain_text(rule):
        typer.echo(line)


@audit_app.command("attest")
def attest(
    ctx: typer.Context,
    rule: str = typer.Argument(..., metavar="RULE", help="The attested rule's id."),
    by: str = typer.Option(..., "--by", metavar="NAME", help="Who attests (a person)."),
    evidence: str = typer.Option(
        ..., "--evidence", metavar="FILE", help="The evidence file (its SHA-256 is recorded)."
    ),
    expires: str = typer.Option(
        "365d", "--expires", metavar="DURATION", help="Valid for (default 365d)."
    ),
) -> None:
    """Record an operator attestation of a control ekm cannot see, in the audit log.

    Example: ekm audit attest PCI-3.7.6-ATTEST --by "A. Custodian" --evidence dual-control.pdf
    """
    from ekm.compliance.attest import attest as record
    from ekm.timeutil import parse_duration

    try:
        valid_for = parse_duration(expires)
    except ValueError as exc:
        raise UsageError(f"--expires: {exc}") from None
    doc = record(ctx.obj.manager(), rule, by=by, evidence=evidence, valid_for=valid_for)
    if ctx.obj.json:
        emit_json(doc)
    else:
        message(
            f"ekm: attested {doc['rule']} by {doc['by']} (evidence {doc['evidence']} "
            f"sha256:{doc['evidence_sha256']}), valid until {doc['expires']}"
        )


@audit_app.callback()
def audit(
    ctx: typer.Context,
    compliance: str | None = typer.Option(
        None,
        "--compliance",
        metavar="ID[,ID...]|all",
        help="Rule sets to evaluate (see --list); default: all.",
        autocompletion=complete.rule_sets,
    ),
    rules: str | None = typer.Option(
        None, "--rules", metavar="FILE", help="A custom rule set file (validated strictly)."
    ),
    fmt: str | None = typer.Option(
        None,
        "--format",
        metavar="FORMAT",
        help="table (default), json, sarif, junit, markdown.",
        autocompletion=complete.audit_formats,
    ),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="FILE",
        help="Write the report here (a file: atomic, 0600; devices and FIFOs in place).",
    ),
    fail_on: str = typer.Option(
        "high",
        "--fail-on",
        metavar="SEVERITY",
        help="Exit 1 at or above: low|medium|high|critical.",
        autocompletion=complete.severities,
    ),
    soft_fail: bool = typer.Option(False, "--soft-fail", help="Always exit 0 (report only)."),
    as_of: str | None = typer.Option(
        None, "--as-of", metavar="WHEN", help="Judge the rules at WHEN (ISO date or +90d)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also list passed rules."),
    list_sets: bool = typer.Option(False, "--list", help="List the rule sets and exit."),
    verify_log: bool = typer.Option(
        False, "--verify-log", help="Verify the audit log's hash chain (exit 4 on a break)."
    ),
    explain_rule: str | None = typer.Option(
        None, "--explain", metavar="RULE", help="Print a rule's source, section and severity."
    ),
    enforce_drafts: bool = typer.Option(
        False,
        "--enforce-drafts",
        help="Let rules from draft sources (e.g. NIST IR 8547 ipd) keep their full severity.",
    ),
    evidence_dir: str | None = typer.Option(
        None,
        "--evidence",
        metavar="DIR",
        help="Also write a signed evidence bundle into DIR (new or empty).",
    ),
) -> None:
    """Audit keys and deployment against compliance rule sets; verify the audit log.

    Example: ekm audit --compliance fips-140-3 --format sarif --output ekm.sarif
    """
    obj = ctx.obj
    if ctx.invoked_subcommand is not None:
        given = [
            name
            for name, on in (
                ("--compliance", compliance),
                ("--rules", rules),
                ("--format", fmt),
                ("--output", output),
                ("--as-of", as_of),
                ("--list", list_sets),
                ("--verify-log", verify_log),
                ("--explain", explain_rule),
                ("--evidence", evidence_dir),
            )
            if on
        ]
        if given:
            raise UsageError(f"ekm audit {ctx.invoked_subcommand} takes none of {', '.join(given)}")
        return
    fail_on = _choice("--fail-on", fail_on, SEVERITIES)
    if list_sets or verify_log or explain_rule is not None:
        flag = "--list" if list_sets else "--verify-log" if verify_log else "--explain"
        others = [
            name
            for name, on in (
                ("--list", list_sets and verify_log),
                ("--explain", explain_rule is not None and flag != "--explain"),
                ("--compliance", compliance),
                ("--rules", rules),
                ("--format", fmt),
                ("--output", output),
                ("--as-of", as_of),
                ("--evidence", evidence_dir),
            )
            if on
        ]
        if others:
            raise UsageError(f"{flag} takes none of {', '.join(others)}")
        if list_sets:
            _list(obj)
        elif verify_log:
            _verify_log(obj)
        else:
            _explain(obj, explain_rule or "")
        return
    fmt = _choice("--format", fmt or ("json" if obj.json else "table"), FORMATS)
    if obj.json and fmt != "json":
        raise UsageError(f"--json and --format {fmt} contradict each other; pick one")
    when = _as_of(as_of)
    if output and fmt == "table":
        raise UsageError("--output needs --format json, sarif, junit or markdown")
    if output:
        from ekm.cli.outputs import check_target

        check_target(output)
    mgr = obj.manager()
    bundle = None
    if evidence_dir is not None:
        result, bundle = mgr.audit_evidence(
            evidence_dir, compliance, rules, when, enforce_drafts=enforce_drafts
        )
    else:
        result = mgr.audit(compliance, rules, when, enforce_drafts=enforce_drafts)
    if compliance is None and rules is None:
        message("ekm: no --compliance given: evaluated all built-in rule sets")
    for w in result.warnings:
        warn(w)
    if result.keys_evaluated == 0:
        warn(
            f"the inventory is empty: no keys in {mgr.home}; only deployment rules "
            f"({result.rules_evaluated} rules in force) were evaluated"
        )
    text = _render(result, fmt, verbose, str(mgr.home))
    if output:
        from ekm.cli.outputs import write_output

        assert text is not None  # the table was refused above
        write_output(output, text.encode())
        message(f"ekm: wrote the {fmt} report to {output}")
    elif text is not None:
        typer.echo(text, nl=False)
    else:
        _table(result, verbose)
    if bundle is not None:
        message(
            f"ekm: wrote the evidence bundle to {bundle['directory']} (manifest sha256 "
            f"{bundle['manifest_sha256']}, signing key {bundle['signing_key_fingerprint']})"
        )
    failing = len(result.at_or_above(fail_on))
    message(_summary(result, fail_on, failing))
    if failing and not soft_fail:
        raise typer.Exit(1)
