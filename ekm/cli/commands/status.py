"""``ekm status``: the key inventory at a glance, plus backend diagnostics."""

from __future__ import annotations

import typer

from ekm.cli.app import app
from ekm.cli.options import parse_as_of
from ekm.cli.render import emit_json, kv, message, table, warn


@app.command(rich_help_panel="Keys")
def status(
    ctx: typer.Context,
    hsm: bool = typer.Option(False, "--hsm", help="Also diagnose the HSM (PKCS#11)."),
    vault: bool = typer.Option(
        False, "--vault", help="Also show Vault's seal state, identity and token TTL."
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", metavar="WHEN", help="Evaluate due-ness at this time (ISO or +90d)."
    ),
) -> None:
    """Show every key, its versions and when it rotates next. Needs no master key.

    Example: ekm status --json | jq '.keys[] | select(.due)'
    """
    obj = ctx.obj
    mgr = obj.manager()
    now = parse_as_of(as_of)
    doc = mgr.status(now=now)
    code = 0
    if hsm:
        diag = mgr.diagnose_hsm()
        doc["backends"]["hsm"] = diag.to_dict()
        code = 0 if diag.connected else 5
    if vault:
        doc["backends"]["vault"] = mgr.vault_status()
    if obj.json:
        emit_json(doc)
        raise typer.Exit(code)
    rows = []
    for k in doc["keys"]:
        primary = k["primary_version"]
        count = next((v.get("usage_count", 0) for v in k["versions"] if v["version"] == primary), 0)
        due = "OVERDUE" if k["due"] else ("soon" if k["notify"] else "")
        states = ",".join(f"v{v['version']}:{v['state']}" for v in k["versions"][-3:])
        decrypts = _version_ranges(sorted(v["version"] for v in k["versions"] if v["decrypts"]))
        rows.append(
            [
                k["name"],
                k["type"],
                k["usage"],
                k["backend"],
                f"v{primary}" if primary else "-",
                states,
                decrypts,
                count,
                (k["next_rotation"] or "never").replace("T", " "),
                due,
            ]
        )
    table(
        f"{len(rows)} keys in {doc['home']}",
        [
            "name",
            "type",
            "usage",
            "backend",
            "primary",
            "versions",
            "decrypts",
            "uses",
            "next rotation",
            "due",
        ],
        rows,
    )
    mk = doc["backends"]["master_key"]
    kv(
        None,
        [
            ("master key", f"{mk['source']} (key id {mk.get('key_id')})"),
            (
                "keystore",
                f"{doc['backends']['storage']['kind']}: {doc['backends']['storage']['location']}",
            ),
            ("audit log", f"{doc['audit_log']['path']} ({doc['audit_log']['bytes']} bytes)"),
        ],
    )
    if hsm:
        _print_hsm(doc["backends"]["hsm"])
    if vault:
        _print_vault(doc["backends"]["vault"])
    raise typer.Exit(code)


def _version_ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``v1-v3,v5``: which versions still decrypt, short enough for a
    table cell even on a key rotated daily for years."""
    if not numbers:
        return "none"
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(f"v{start}" if start == prev else f"v{start}-v{prev}")
        if n is not None:
            start = prev = n
    return ",".join(parts)


def _print_hsm(d: dict) -> None:
    if not d.get("connected"):
        message(f"HSM: not connected: {d.get('error_message')}")
        return
    pairs = [
        (k, _plain(v))
        for k, v in d.items()
        if k not in ("mechanisms",) and v not in (None, "", [], {})
    ]
    kv("HSM", pairs)
    mech = d.get("mechanisms") or {}
    missing = [m for m, ok in mech.items() if not ok]
    if missing:
        warn("the token lacks mechanisms ekm uses: " + ", ".join(missing))


def _plain(value: object) -> str:
    """A value as an operator reads it: lists joined, mappings as k=v, never a Python repr."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _print_vault(d: dict) -> None:
    kv("Vault", [(k, v) for k, v in d.items() if not isinstance(v, (dict, list))])
    if d.get("expires_soon"):
        warn("the Vault token expires soon; renew it or fix the auth method")
