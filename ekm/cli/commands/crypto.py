"""``ekm encrypt``, ``ekm decrypt``, ``ekm rewrap``: files and pipes, format ``ekm stream v1``.

Streaming in constant memory (about two 64 KiB segments), stdin/stdout when IN/OUT are absent
or ``-``. An output *file* appears only when everything succeeded (temp file, fsync, rename);
to stdout, each segment's plaintext is written only after it verified (as ``age -d`` does).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import typer

from ekm.cli import complete
from ekm.cli.app import app
from ekm.cli.render import emit_json, message, warn
from ekm.errors import InvalidError, NotFoundError, UsageError

_IO = "Input file (default: stdin; - for stdin)."


def _open_input(stack: contextlib.ExitStack, path: str | None) -> Any:
    if path in (None, "-"):
        return sys.stdin.buffer
    p = Path(path)
    if p.is_dir():
        raise InvalidError(f"{p} is a directory; give a file")
    try:
        return stack.enter_context(open(p, "rb"))
    except FileNotFoundError:
        raise NotFoundError(f"{p} does not exist") from None
    except OSError as exc:
        raise NotFoundError(f"{p}: cannot read it ({exc.strerror})") from None


def _check_paths(inp: str | None, out: str | None) -> bool:
    """True when the output is stdout; refuses writing over the input."""
    to_stdout = out in (None, "-")
    if not to_stdout and inp not in (None, "-"):
        with contextlib.suppress(OSError):
            if Path(inp).resolve() == Path(out).resolve():
                raise UsageError("the output file is the input file; choose another -o path")
    return to_stdout


def _report(ctx: typer.Context, mgr: Any, doc: dict[str, Any], text: str) -> None:
    for w in mgr.usage_warnings():
        warn(w)
    if ctx.obj.json:
        emit_json(doc)
    elif text:
        message(text)


@app.command("encrypt", rich_help_panel="Data")
def encrypt(
    ctx: typer.Context,
    inp: str | None = typer.Argument(None, metavar="[IN]", help=_IO),
    key: str | None = typer.Option(
        None,
        "--key",
        "-k",
        metavar="NAME",
        help="Key to seal to.",
        autocompletion=complete.key_names,
    ),
    recipient: list[str] | None = typer.Option(
        None,
        "--recipient",
        "-r",
        metavar="NAME|ekm-recipient:...",
        help="Seal to a public key instead (x25519, ml-kem-*, x25519-ml-kem-768); repeatable.",
    ),
    aad: str = typer.Option("", "--aad", metavar="TEXT", help="Associated data (not stored)."),
    out: str | None = typer.Option(None, "--output", "-o", metavar="OUT", help="Output file."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing OUT."),
) -> None:
    """Encrypt a file or stdin under a key's primary version (or to public keys).

    Example: ekm encrypt --key database_encryption -o dump.sql.ekm dump.sql
    """
    if bool(key) == bool(recipient):
        raise UsageError("give exactly one of --key NAME or --recipient NAME (repeatable)")
    to_stdout = _check_paths(inp, out)
    if to_stdout and sys.stdout.isatty() and not ctx.obj.json:
        raise UsageError("refusing to write ciphertext to a terminal; use -o FILE or a pipe")
    mgr = ctx.obj.manager()
    with contextlib.ExitStack() as stack:
        src = _open_input(stack, inp)
        if to_stdout:
            n = mgr.encrypt_stream(src, sys.stdout.buffer, key, aad, recipients=recipient)
            sys.stdout.buffer.flush()
        else:
            n = mgr.encrypt_file(src, out, key, aad, recipients=recipient, force=force)
    target = "stdout" if to_stdout else out
    doc = {"input": inp or "-", "output": target, "bytes": n, "key": key, "recipients": recipient}
    _report(
        ctx, mgr, doc if not to_stdout else {}, "" if to_stdout else f"encrypted {n} bytes to {out}"
    )


@app.command("decrypt", rich_help_panel="Data")
def decrypt(
    ctx: typer.Context,
    inp: str | None = typer.Argument(None, metavar="[IN]", help=_IO),
    aad: str = typer.Option("", "--aad", metavar="TEXT", help="The associated data used."),
    out: str | None = typer.Option(None, "--output", "-o", metavar="OUT", help="Output file."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing OUT."),
) -> None:
    """Verify and decrypt a file or stdin; the ciphertext names its key and version.

    Example: ekm decrypt -o dump.sql dump.sql.ekm
    """
    to_stdout = _check_paths(inp, out)
    mgr = ctx.obj.manager()
    with contextlib.ExitStack() as stack:
        src = _open_input(stack, inp)
        if to_stdout:
            n = mgr.decrypt_stream(src, sys.stdout.buffer, aad)
            sys.stdout.buffer.flush()
        else:
            n = mgr.decrypt_file(src, out, aad, force=force)
    if not to_stdout:
        _report(ctx, mgr, {"input": inp or "-", "output": out, "bytes": n},
                f"decrypted {n} bytes to {out}")  # fmt: skip


@app.command("rewrap", rich_help_panel="Data")
def rewrap(
    ctx: typer.Context,
    files: list[str] = typer.Argument(..., metavar="FILE...", help="Encrypted files."),
) -> None:
    """Re-seal files' data keys under their key's current primary (payload not re-encrypted).

    Example: ekm rewrap backups/*.ekm
    """
    mgr = ctx.obj.manager()
    results = [mgr.rewrap_file(f) for f in files]
    if ctx.obj.json:
        emit_json({"files": results})
    else:
        for r in results:
            state = "rewrapped" if r["changed"] else "already current"
            message(f"{r['path']}: {r['key']} v{r['from_version']} -> v{r['version']} ({state})")
    for w in mgr.usage_warnings():
        warn(w)
