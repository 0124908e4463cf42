"""``ekm backup create | verify | restore``: encrypted key bundles.

A bundle is protected by a passphrase (``EKM_BACKUP_PASSPHRASE`` or a prompt; Argon2id) or
sealed to a recipient public key (``--recipient``) whose private half can stay offline.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ekm.cli import complete
from ekm.cli.app import app
from ekm.cli.render import emit_json, message, table
from ekm.errors import ConfigError, InvalidError, NotFoundError, UsageError

backup_app = typer.Typer(help="Encrypted backups of keys.", no_args_is_help=True)
app.add_typer(backup_app, name="backup", rich_help_panel="Keys")


def _passphrase(new: bool) -> str:
    value = os.environ.get("EKM_BACKUP_PASSPHRASE")
    if value:
        return value
    if not sys.stdin.isatty():
        raise ConfigError(
            "the backup needs a passphrase: set EKM_BACKUP_PASSPHRASE (no terminal "
            "to ask on), or use --recipient"
        )
    import getpass

    first = getpass.getpass("backup passphrase: ")
    if new:
        from ekm.crypto.kdf import check_new_passphrase

        check_new_passphrase(first, "the backup passphrase")
        if getpass.getpass("repeat the passphrase: ") != first:
            raise UsageError("the two passphrases differ; nothing was written")
    return first


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as fh:
            return fh.read(512 * 1024 * 1024 + 1)
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such backup file") from None
    except OSError as exc:
        raise NotFoundError(f"{path}: cannot read it ({exc.strerror})") from None


@backup_app.command("create")
def create(
    ctx: typer.Context,
    names: list[str] | None = typer.Argument(
        None, metavar="[NAME]...", help="Keys (default: all).", autocompletion=complete.key_names
    ),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        metavar="FILE",
        help="Bundle file (default: $EKM_HOME/backups/ekm-TIME.ekmbak).",
    ),
    recipient: str | None = typer.Option(
        None,
        "--recipient",
        "-r",
        metavar="NAME|ekm-recipient:...",
        help="Seal to a public key instead of a passphrase.",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out FILE."),
) -> None:
    """Write an encrypted bundle of keys (all versions, with material).

    Example: EKM_BACKUP_PASSPHRASE=... ekm backup create --out keys.ekmbak
    """
    mgr = ctx.obj.manager()
    from ekm.fsutil import ensure_private_dir
    from ekm.timeutil import utcnow

    now = utcnow()
    if out:
        path = Path(out)
    else:
        directory = mgr._backup_dir()
        ensure_private_dir(directory, home=mgr.home)
        stem = f"ekm-{now.strftime('%Y%m%dT%H%M%SZ')}"
        path = directory / f"{stem}.ekmbak"
        n = 1
        while path.exists():  # two backups in one second get distinct names
            n += 1
            path = directory / f"{stem}-{n}.ekmbak"
    if path.exists() and not force:
        raise InvalidError(f"{path} exists; pass --force to overwrite it")
    if recipient:
        data = mgr.backup_create(
            names or None, mode="recipient", recipient=recipient, path=path, now=now
        )
    else:
        data = mgr.backup_create(
            names or None, mode="passphrase", passphrase=_passphrase(True), path=path, now=now
        )
    if ctx.obj.json:
        emit_json(
            {
                "path": str(path),
                "bytes": len(data),
                "mode": "recipient" if recipient else "passphrase",
            }
        )
    else:
        message(f"wrote {path} ({len(data)} bytes, mode 0600)")


@backup_app.command("verify")
def verify(
    ctx: typer.Context,
    file: str = typer.Argument(..., help="Bundle file (- for stdin)."),
    identity: str | None = typer.Option(
        None,
        "--identity",
        "-i",
        metavar="NAME",
        help="Recipient key in this home that opens a sealed bundle.",
    ),
) -> None:
    """Authenticate a bundle and check every key in it (exit 4 if altered or wrong secret).

    Example: ekm backup verify keys.ekmbak
    """
    mgr = ctx.obj.manager()
    data = _read(file)
    from ekm.rotation.backup import read_header

    header, _, _ = read_header(data)
    passphrase = _passphrase(False) if header["mode"] == "passphrase" else None
    report = mgr.backup_verify(data, passphrase=passphrase, identity=identity)
    if ctx.obj.json:
        emit_json(report)
        return
    table(
        f"backup of {report['created']} ({report['mode']}): authentic",
        ["name", "type", "versions", "with material"],
        [
            [k["name"], k["type"], k["versions"], ",".join(f"v{v}" for v in k["with_material"])]
            for k in report["keys"]
        ],
    )


@backup_app.command("restore")
def restore(
    ctx: typer.Context,
    file: str = typer.Argument(..., help="Bundle file (- for stdin)."),
    names: list[str] | None = typer.Argument(None, metavar="[NAME]...", help="Only these keys."),
    identity: str | None = typer.Option(
        None,
        "--identity",
        "-i",
        metavar="NAME",
        help="Recipient key in this home that opens a sealed bundle.",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite keys that are newer here."),
    resurrect_destroyed: bool = typer.Option(
        False,
        "--resurrect-destroyed",
        help="Bring back versions destroyed here after the backup was made (audited).",
    ),
) -> None:
    """Restore keys from a bundle into this home. Versions destroyed here after the backup was
    made stay destroyed unless --resurrect-destroyed is given.

    Example: ekm --home /var/lib/ekm backup restore keys.ekmbak
    """
    mgr = ctx.obj.manager()
    data = _read(file)
    from ekm.rotation.backup import read_header

    header, _, _ = read_header(data)
    passphrase = _passphrase(False) if header["mode"] == "passphrase" else None
    results = mgr.backup_restore(
        data,
        passphrase=passphrase,
        identity=identity,
        force=force,
        names=names or None,
        resurrect_destroyed=resurrect_destroyed,
    )
    if ctx.obj.json:
        emit_json({"keys": results})
        return
    table(None, ["name", "result"], [[r["name"], r["result"]] for r in results])
