"""``ekm keys``: list, show and export keys (destroy/import/migrate live beside them)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from ekm.cli import complete
from ekm.cli.app import app
from ekm.cli.confirm import confirm
from ekm.cli.options import (
    DryRun,
    OldVersionFlag,
    OutAlias,
    Output,
    Yes,
    pick_output,
    pick_version,
)
from ekm.cli.render import emit_json, kv, message, table
from ekm.errors import StateError, UsageError

keys_app = typer.Typer(help="List, inspect, export and manage keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys", rich_help_panel="Keys")

EXPORT_FORMATS = ("pem", "der", "jwk", "jwks", "raw")


@keys_app.command("list")
def list_keys(ctx: typer.Context) -> None:
    """List key names, types and primary versions.

    Example: ekm keys list --json
    """
    mgr = ctx.obj.manager()
    keys = mgr.list_keys()
    if ctx.obj.json:
        emit_json(
            {
                "keys": [
                    {
                        "name": k.name,
                        "type": k.type.value,
                        "usage": k.usage.value,
                        "backend": mgr.kept_in(k.backend),
                        "primary_version": k.primary_version,
                        "labels": k.labels,
                    }
                    for k in keys
                ]
            }
        )
        return
    table(
        None,
        ["name", "type", "usage", "backend", "primary"],
        [
            [k.name, k.type.value, k.usage.value, mgr.kept_in(k.backend), f"v{k.primary_version}"]
            for k in keys
        ],
    )


@keys_app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Key name.", autocompletion=complete.key_names),
) -> None:
    """Show one key: policy, labels and every version (never material).

    Example: ekm keys show database_encryption
    """
    mgr = ctx.obj.manager()
    key = mgr.key_info(name)
    doc = key.to_dict()
    doc["backend"] = mgr.kept_in(key.backend)
    nxt = key.next_rotation
    from ekm.timeutil import iso

    doc["next_rotation"] = iso(nxt) if nxt else None
    if ctx.obj.json:
        emit_json(doc)
        return
    pol = key.policy.to_dict()
    kv(
        f"key {key.name}",
        [
            ("type", key.type.value),
            ("usage", key.usage.value),
            ("backend", doc["backend"]),
            ("rotate every", pol["interval"] or "never"),
            ("notify before", pol["notify_before"]),
            ("backup", "yes" if key.policy.backup else "no"),
            ("next rotation", doc["next_rotation"] or "never"),
            ("min decryption version", key.min_decryption_version),
            ("labels", ", ".join(f"{k}={v}" for k, v in key.labels.items()) or "-"),
        ],
    )
    table(
        None,
        ["version", "state", "type", "created", "uses"],
        [
            [f"v{v.version}", v.state.value, key.type_of(v).value, iso(v.created), v.usage_count]
            for v in key.versions
        ],
    )


@keys_app.command("export")
def export(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Key name.", autocompletion=complete.key_names),
    version: int | None = typer.Option(
        None, "--version", metavar="N", help="Version (default: the primary)."
    ),
    old_version: OldVersionFlag = None,
    public: bool = typer.Option(False, "--public", help="Export the public key (asymmetric keys)."),
    reveal: bool = typer.Option(False, "--reveal", help="Export the secret or private material."),
    fmt: str = typer.Option(
        "pem",
        "--format",
        "-f",
        metavar="pem|der|jwk|jwks|raw",
        help="Output format.",
        autocompletion=complete.export_formats,
    ),
    out: Output = None,
    out_alias: OutAlias = None,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing -o FILE."),
) -> None:
    """Export a key. Public keys by default; secret material only with --reveal.

    With --json: one document {name, version, type, format, public, encoding, data}, where
    data is the text (PEM, JWK) or, for binary formats, base64. `ekm keys import` reads both.

    Example: ekm keys export rsa --public --format jwk
    """
    out = pick_output(out, out_alias)
    if old_version is not None:
        version = pick_version(version, old_version)
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    if public and reveal:
        raise UsageError("--public and --reveal exclude each other")
    mgr = ctx.obj.manager()
    key = mgr.key_info(name)
    from ekm.crypto.keytypes import spec

    asymmetric = spec(key.type).asymmetric
    if fmt == "jwks":
        data = mgr.export_jwks(name)
    else:
        if not public and not reveal:
            if not asymmetric:
                raise UsageError(
                    f"key {name!r} is symmetric: its only export is the secret; pass "
                    "--reveal to export it"
                )
            public = True
        data = mgr.export_key(name, version=version, public=public, fmt=fmt)
    secret = not public and fmt != "jwks"
    if ctx.obj.json:
        doc = _export_doc(key, version, fmt, public or fmt == "jwks", data)
        from ekm.jsonout import dumps

        data = dumps(doc)
    _write_out(data, out, force, secret=secret)


def _export_doc(key: Any, version: int | None, fmt: str, public: bool, data: bytes) -> dict:
    """The ``keys export --json`` document: the export plus what it is."""
    import base64

    text = _printable(data)
    return {
        "name": key.name,
        "version": version if version is not None else key.primary_version,
        "type": key.type.value,
        "format": fmt,
        "public": public,
        "encoding": "text" if text else "base64",
        "data": data.decode("ascii") if text else base64.b64encode(data).decode("ascii"),
    }


def _write_out(data: bytes, out: str | None, force: bool, *, secret: bool) -> None:
    from ekm.cli.outputs import is_stream, write_output

    if out and not is_stream(out):
        write_output(out, data, force=force, mode=0o600 if secret else 0o644)
        message(f"wrote {out}{' (mode 0600)' if secret else ''}")
        return
    if out and out != "-":  # a device or a FIFO: written in place
        write_output(out, data)
        return
    if sys.stdout.isatty() and not _printable(data):
        raise UsageError("refusing to write binary data to a terminal; use -o FILE")
    sys.stdout.buffer.write(data if data.endswith(b"\n") or not _printable(data) else data + b"\n")
    sys.stdout.flush()


def _printable(data: bytes) -> bool:
    try:
        data.decode("ascii")
    except UnicodeDecodeError:
        return False
    return True


@keys_app.command("destroy")
def destroy(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Key name.", autocompletion=complete.key_names),
    version: int | None = typer.Option(
        None, "--version", metavar="N", help="The version to destroy (never the primary)."
    ),
    old_version: OldVersionFlag = None,
    recovery_window: str | None = typer.Option(
        None,
        "--recovery-window",
        metavar="DURATION",
        help="Keep the material this long (7d-30d; default [rotation] soft_delete_window, "
        "7d) before `ekm keys purge` shreds it; 0s shreds it now.",
    ),
    yes: Yes = False,
    dry_run: DryRun = False,
) -> None:
    """Crypto-shred one version: material removed, metadata kept as destroyed.

    Asks on a terminal; off a terminal it needs --yes. --dry-run shows the plan.

    Example: ekm keys destroy jwt_signing --version 1
    """
    version = pick_version(version, old_version)
    mgr = ctx.obj.manager()
    key = mgr.key_info(name)
    kv = key.version(version)
    if kv.state.value == "primary":
        raise StateError(
            f"version {version} is the primary of {name!r}; rotate first, then destroy the old "
            "version"
        )
    window = recovery_window or str(mgr.config.get("rotation", "soft_delete_window"))
    from ekm.timeutil import parse_duration

    try:
        shred_now = not parse_duration(window)
    except ValueError as exc:
        raise UsageError(f"--recovery-window: {exc}") from None
    count = int(kv.usage_count or 0)
    uses = f"{count} use{'s' if count != 1 else ''}"
    when = "shred its material now" if shred_now else f"keep its material for {window}"
    plan = [f"destroy {name} v{version} ({kv.state.value}, {uses}) and {when}"]
    if not shred_now:
        note = f"undo within {window} with: ekm keys recover {name} --version {version}"
    else:
        note = "anything still encrypted under it can never be decrypted again"
    detail = {"name": name, "version": version, "state": kv.state.value,
              "uses": count, "recovery_window": window}  # fmt: skip
    confirm(ctx, "keys destroy", plan, yes=yes, dry_run=dry_run, details=[detail], note=note)
    result = mgr.destroy_version(name, version, recovery_window=window)
    if ctx.obj.json:
        emit_json(result)
    elif result["recoverable_until"]:
        message(
            f"{name} v{version} destroyed; recoverable with `ekm keys recover` until "
            f"{result['recoverable_until']}"
        )
    else:
        message(f"{name} v{version} destroyed; its material is gone")


@keys_app.command("recover")
def recover(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Key name.", autocompletion=complete.key_names),
    version: int | None = typer.Option(
        None, "--version", metavar="N", help="The soft-deleted version."
    ),
    old_version: OldVersionFlag = None,
) -> None:
    """Undo a destroy inside its recovery window (the version comes back disabled).

    Example: ekm keys recover jwt_signing --version 1
    """
    version = pick_version(version, old_version)
    result = ctx.obj.manager().recover_version(name, version)
    emit_json(result) if ctx.obj.json else message(f"{name} v{version} recovered (disabled)")


@keys_app.command("enable")
def enable(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Key name.", autocompletion=complete.key_names),
    version: int | None = typer.Option(
        None, "--version", metavar="N", help="The disabled version."
    ),
    old_version: OldVersionFlag = None,
) -> None:
    """Re-enable a disabled version for decryption and verification.

    Example: ekm keys enable session --version 3
    """
    version = pick_version(version, old_version)
    result = ctx.obj.manager().enable_version(name, version)
    emit_json(result) if ctx.obj.json else message(f"{name} v{version} is active again")


@keys_app.command("purge")
def purge(ctx: typer.Context, yes: Yes = False, dry_run: DryRun = False) -> None:
    """Shred the material of destroyed versions whose recovery window has ended.

    Asks on a terminal; off a terminal it needs --yes. --dry-run lists what would go.

    Example: ekm keys purge --yes
    """
    mgr = ctx.obj.manager()
    from ekm.timeutil import iso, utcnow

    now = utcnow()
    due = [
        (k.name, v.version, v.destroy_after)
        for k in (mgr.key_info(meta.name) for meta in mgr.list_keys())
        for v in k.versions
        if v.state.value == "destroyed" and v.destroy_after is not None and v.destroy_after <= now
    ]
    plan = [f"shred {n} v{v} (recovery window ended {iso(t)})" for n, v, t in due]
    details = [{"name": n, "version": v, "destroy_after": iso(t)} for n, v, t in due]
    confirm(ctx, "keys purge", plan, yes=yes, dry_run=dry_run, details=details)
    purged = mgr.purge_destroyed(now=now)
    if ctx.obj.json:
        emit_json({"purged": [{"name": n, "version": v} for n, v in purged]})
    else:
        message(f"purged {len(purged)} version{'s' if len(purged) != 1 else ''}")


@keys_app.command("recipient")
def recipient(
    ctx: typer.Context,
    name: str = typer.Argument(
        ...,
        help="An x25519, ml-kem or x25519-ml-kem-768 key.",
        autocompletion=complete.key_names,
    ),
) -> None:
    """Print the public recipient string others seal backups and files to.

    Example: ekm keys recipient offline_backup > backup.recipient
    """
    text = ctx.obj.manager().recipient_string(name)
    emit_json({"recipient": text}) if ctx.obj.json else print(text)
