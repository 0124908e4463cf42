"""``ekm keys``: list, show and export keys (destroy/import/migrate live beside them)."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from ekm.cli.app import app
from ekm.cli.render import emit_json, kv, message, table
from ekm.errors import InvalidError, UsageError

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
        emit_json({"keys": [{"name": k.name, "type": k.type.value, "usage": k.usage.value,
                             "backend": k.backend, "primary_version": k.primary_version,
                             "labels": k.labels} for k in keys]})
        return
    table(None, ["name", "type", "usage", "backend", "primary"],
          [[k.name, k.type.value, k.usage.value, k.backend, f"v{k.primary_version}"] for k in keys])


@keys_app.command("show")
def show(ctx: typer.Context, name: str = typer.Argument(..., help="Key name.")) -> None:
    """Show one key: policy, labels and every version (never material).

    Example: ekm keys show database_encryption
    """
    mgr = ctx.obj.manager()
    key = mgr.key_info(name)
    doc = key.to_dict()
    nxt = key.next_rotation
    from ekm.timeutil import iso

    doc["next_rotation"] = iso(nxt) if nxt else None
    if ctx.obj.json:
        emit_json(doc)
        return
    pol = key.policy.to_dict()
    kv(f"key {key.name}", [
        ("type", key.type.value), ("usage", key.usage.value), ("backend", key.backend),
        ("rotate every", pol["interval"] or "never"), ("notify before", pol["notify_before"]),
        ("backup", "yes" if key.policy.backup else "no"),
        ("next rotation", doc["next_rotation"] or "never"),
        ("min decryption version", key.min_decryption_version),
        ("labels", ", ".join(f"{k}={v}" for k, v in key.labels.items()) or "-"),
    ])
    table(None, ["version", "state", "type", "created", "uses"],
          [[f"v{v.version}", v.state.value, key.type_of(v).value, iso(v.created), v.usage_count]
           for v in key.versions])


@keys_app.command("export")
def export(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Key name."),
    version: Optional[int] = typer.Option(None, "--version", "-v", help="Version (default: the primary)."),  # noqa: UP007
    public: bool = typer.Option(False, "--public", help="Export the public key (asymmetric keys)."),
    reveal: bool = typer.Option(False, "--reveal", help="Export the secret or private material."),
    fmt: str = typer.Option("pem", "--format", "-f", metavar="pem|der|jwk|jwks|raw", help="Output format."),
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="FILE", help="Write to FILE (0600) instead of stdout."),  # noqa: UP007
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out FILE."),
) -> None:
    """Export a key. Public keys by default; secret material only with --reveal.

    Example: ekm keys export rsa --public --format jwk
    """
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
                raise UsageError(f"key {name!r} is symmetric: its only export is the secret; pass "
                                 "--reveal to export it")
            public = True
        data = mgr.export_key(name, version=version, public=public, fmt=fmt)
    _write_out(data, out, force, secret=not public and fmt != "jwks")


def _write_out(data: bytes, out: str | None, force: bool, *, secret: bool) -> None:
    if out and out != "-":
        from pathlib import Path

        from ekm.fsutil import atomic_write

        path = Path(out)
        if path.exists() and not force:
            raise InvalidError(f"{path} exists; pass --force to overwrite it")
        atomic_write(path, data, mode=0o600 if secret else 0o644)
        message(f"wrote {path}{' (mode 0600)' if secret else ''}")
        return
    if sys.stdout.isatty() and not _printable(data):
        raise UsageError("refusing to write binary data to a terminal; use --out FILE")
    sys.stdout.buffer.write(data if data.endswith(b"\n") or not _printable(data) else data + b"\n")
    sys.stdout.flush()


def _printable(data: bytes) -> bool:
    try:
        data.decode("ascii")
    except UnicodeDecodeError:
        return False
    return True
