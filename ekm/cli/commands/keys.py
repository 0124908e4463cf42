"""``ekm keys``: list, show and export keys (destroy/import/migrate live beside them)."""

from __future__ import annotations

import sys

import typer

from ekm.cli import complete
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
        None, "--version", "-v", help="Version (default: the primary)."
    ),
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
    out: str | None = typer.Option(
        None, "--out", "-o", metavar="FILE", help="Write to FILE (0600) instead of stdout."
    ),
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
                raise UsageError(
                    f"key {name!r} is symmetric: its only export is the secret; pass "
                    "--reveal to export it"
                )
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


@keys_app.command("destroy")
def destroy(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Key name.", autocompletion=complete.key_names),
    version: int = typer.Option(
        ..., "--version", "-v", help="The version to destroy (never the primary)."
    ),
    recovery_window: str | None = typer.Option(
        None,
        "--recovery-window",
        metavar="DURATION",
        help="Keep the material this long (7d-30d) before shredding; 0s: now.",
    ),
) -> None:
    """Crypto-shred one version: material removed, metadata kept as destroyed.

    Example: ekm keys destroy jwt_signing --version 1
    """
    result = ctx.obj.manager().destroy_version(name, version, recovery_window=recovery_window)
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
    version: int = typer.Option(..., "--version", "-v", help="The soft-deleted version."),
) -> None:
    """Undo a destroy inside its recovery window (the version comes back disabled).

    Example: ekm keys recover jwt_signing --version 1
    """
    result = ctx.obj.manager().recover_version(name, version)
    emit_json(result) if ctx.obj.json else message(f"{name} v{version} recovered (disabled)")


@keys_app.command("enable")
def enable(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Key name.", autocompletion=complete.key_names),
    version: int = typer.Option(..., "--version", "-v", help="The disabled version."),
) -> None:
    """Re-enable a disabled version for decryption and verification.

    Example: ekm keys enable session --version 3
    """
    result = ctx.obj.manager().enable_version(name, version)
    emit_json(result) if ctx.obj.json else message(f"{name} v{version} is active again")


@keys_app.command("purge")
def purge(ctx: typer.Context) -> None:
    """Shred the material of destroyed versions whose recovery window has ended.

    Example: ekm keys purge
    """
    purged = ctx.obj.manager().purge_destroyed()
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
