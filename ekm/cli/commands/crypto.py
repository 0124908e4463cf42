"""``ekm encrypt``, ``ekm decrypt``, ``ekm rewrap``: files and pipes, format ``ekm stream v1``.

Streaming in constant memory (about two 64 KiB segments), stdin/stdout when IN/OUT are absent
or ``-``. An output *file* appears only when everything succeeded (temp file, fsync, rename);
to stdout, each segment's plaintext is written only after it verified (as ``age -d`` does).
Several inputs in one call (ekm/cli/batch.py): each output beside its input or in --out-dir,
one report line and one audit record per file, the others go on when one fails.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import typer

from ekm.cli import batch, complete
from ekm.cli.app import app
from ekm.cli.render import emit_json, message, warn
from ekm.errors import InvalidError, NotFoundError, UsageError
from ekm.ops.file_batch import FileBatch

_IO = "Input files (default: stdin; - for stdin, once)."
_OUT_ONE = "Output file (one input; devices and FIFOs are written in place)."
_OUT_DIR = "With several inputs: write each output into DIR (default: beside its input)."
_FAIL_FAST = "Stop at the first file that fails (the rest are reported as skipped)."


def _many(inputs: list[str] | None, out_dir: str | None) -> bool:
    """True for the multi-file form: several inputs, or --out-dir."""
    return len(inputs or []) > 1 or out_dir is not None


def _check_multi(ctx: typer.Context, items: list[str], out: str | None, what: str) -> None:
    if out is not None:
        raise UsageError(
            f"-o names one output; with several files each {what} goes beside its input "
            "or into --out-dir DIR"
        )
    if batch.STDIN in items:
        if ctx.obj.json:
            raise UsageError(
                "--json writes its report to stdout, where the output of - (stdin) would go; "
                "drop --json or give - alone"
            )
        if sys.stdout.isatty():
            raise UsageError("refusing to write - (stdin)'s output to a terminal; use a pipe")


def _finish(ctx: typer.Context, mgr: Any, verb: str, outcomes: list[batch.Outcome]) -> None:
    for w in mgr.usage_warnings():
        warn(w)
    if ctx.obj.json:
        emit_json(batch.summary(outcomes))
    else:
        message(batch.tally(verb, outcomes))
    code = batch.exit_code(outcomes)
    if code:
        raise typer.Exit(code)


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
    """True when the output is a stream (stdout, a device such as /dev/null, a FIFO): written
    in place, with no temporary file, rename or "exists" check. Refuses writing over the input.
    """
    from ekm.cli.outputs import is_stream

    to_stdout = is_stream(out)
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
    inputs: list[str] | None = typer.Argument(None, metavar="[IN]...", help=_IO),
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
    out: str | None = typer.Option(None, "--output", "-o", metavar="OUT", help=_OUT_ONE),
    out_dir: str | None = typer.Option(None, "--out-dir", metavar="DIR", help=_OUT_DIR),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help=_FAIL_FAST),
) -> None:
    """Encrypt files or stdin under a key's primary version (or to public keys).

    One input goes to -o OUT or stdout; several (or --out-dir) each write IN.ekm beside the
    input or DIR/NAME.ekm, with a report line and an audit record per file.

    Example: ekm encrypt --key database_encryption -o dump.sql.ekm dump.sql
    Example: ekm encrypt --key backups --out-dir /srv/sealed logs/*.log
    """
    if bool(key) == bool(recipient):
        raise UsageError("give exactly one of --key NAME or --recipient NAME (repeatable)")
    items = batch.check_inputs(inputs or [])
    if _many(items, out_dir):
        _check_multi(ctx, items, out, "ciphertext")
        targets = batch.output_paths(items, out_dir, lambda p: p + ".ekm")
        mgr = ctx.obj.manager()

        def one(item: str, target: str | None) -> dict[str, Any]:
            with contextlib.ExitStack() as stack:
                src = _open_input(stack, item)
                if target is None:
                    n = mgr.encrypt_stream(src, sys.stdout.buffer, key, aad, recipients=recipient)
                    sys.stdout.buffer.flush()
                else:
                    _check_paths(item, target)
                    n = mgr.encrypt_file(src, target, key, aad, recipients=recipient, force=force)
            return {"bytes": n, "key": key, "recipients": recipient}

        with FileBatch(mgr, "encrypt").active() as group:
            outcomes = batch.run(
                items, targets, one, fail_fast=fail_fast, on_ok=_said(ctx, "encrypted"),
                group=group,
            )  # fmt: skip
        _finish(ctx, mgr, "encrypted", outcomes)
        return
    from ekm.cli.outputs import open_stream

    inp = items[0] if items else None
    to_stdout = _check_paths(inp, out)
    on_stdout = out in (None, "-")
    if on_stdout and sys.stdout.isatty() and not ctx.obj.json:
        raise UsageError("refusing to write ciphertext to a terminal; use -o FILE or a pipe")
    mgr = ctx.obj.manager()
    with contextlib.ExitStack() as stack:
        src = _open_input(stack, inp)
        if to_stdout:
            dst = stack.enter_context(open_stream(out))
            n = mgr.encrypt_stream(src, dst, key, aad, recipients=recipient)
            dst.flush()
        else:
            n = mgr.encrypt_file(src, out, key, aad, recipients=recipient, force=force)
    target = "stdout" if on_stdout else out
    doc = {"input": inp or "-", "output": target, "bytes": n, "key": key, "recipients": recipient}
    _report(
        ctx, mgr, doc if not on_stdout else {}, "" if on_stdout else f"encrypted {n} bytes to {out}"
    )


@app.command("decrypt", rich_help_panel="Data")
def decrypt(
    ctx: typer.Context,
    inputs: list[str] | None = typer.Argument(None, metavar="[IN]...", help=_IO),
    aad: str = typer.Option("", "--aad", metavar="TEXT", help="The associated data used."),
    out: str | None = typer.Option(None, "--output", "-o", metavar="OUT", help=_OUT_ONE),
    out_dir: str | None = typer.Option(None, "--out-dir", metavar="DIR", help=_OUT_DIR),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help=_FAIL_FAST),
) -> None:
    """Verify and decrypt files or stdin; each ciphertext names its key and version.

    One input goes to -o OUT or stdout; several (or --out-dir) each write IN without its .ekm
    beside the input or into DIR, with a report line and an audit record per file.

    Example: ekm decrypt -o dump.sql dump.sql.ekm
    Example: ekm decrypt --out-dir restored/ sealed/*.ekm
    """
    items = batch.check_inputs(inputs or [])
    if _many(items, out_dir):
        _check_multi(ctx, items, out, "plaintext")
        targets = batch.output_paths(items, out_dir, _plain_name)
        mgr = ctx.obj.manager()

        def one(item: str, target: str | None) -> dict[str, Any]:
            with contextlib.ExitStack() as stack:
                src = _open_input(stack, item)
                if target is None:
                    n = mgr.decrypt_stream(src, sys.stdout.buffer, aad)
                    sys.stdout.buffer.flush()
                else:
                    _check_paths(item, target)
                    n = mgr.decrypt_file(src, target, aad, force=force)
            return {"bytes": n}

        with FileBatch(mgr, "decrypt").active() as group:
            outcomes = batch.run(
                items, targets, one, fail_fast=fail_fast, on_ok=_said(ctx, "decrypted"),
                group=group,
            )  # fmt: skip
        _finish(ctx, mgr, "decrypted", outcomes)
        return
    from ekm.cli.outputs import open_stream

    inp = items[0] if items else None
    to_stdout = _check_paths(inp, out)
    mgr = ctx.obj.manager()
    with contextlib.ExitStack() as stack:
        src = _open_input(stack, inp)
        if to_stdout:
            dst = stack.enter_context(open_stream(out))
            n = mgr.decrypt_stream(src, dst, aad)
            dst.flush()
        else:
            n = mgr.decrypt_file(src, out, aad, force=force)
    if out not in (None, "-"):
        _report(ctx, mgr, {"input": inp or "-", "output": out, "bytes": n},
                f"decrypted {n} bytes to {out}")  # fmt: skip


@app.command("rewrap", rich_help_panel="Data")
def rewrap(
    ctx: typer.Context,
    files: list[str] = typer.Argument(..., metavar="FILE...", help="Encrypted files."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help=_FAIL_FAST),
) -> None:
    """Re-seal files' data keys under their key's current primary (payload not re-encrypted).

    Each file is rewritten in place (atomically), with a report line and an audit record per
    file; one that fails leaves the others going unless --fail-fast.

    Example: ekm rewrap backups/*.ekm
    """
    items = batch.check_inputs(files)
    if batch.STDIN in items:
        raise UsageError("rewrap rewrites files in place; - (stdin) cannot be rewrapped")
    mgr = ctx.obj.manager()

    def one(item: str, _target: str | None) -> dict[str, Any]:
        return mgr.rewrap_file(item)

    def said(o: batch.Outcome) -> None:
        r = o.detail
        state = "rewrapped" if r["changed"] else "already current"
        message(f"{r['path']}: {r['key']} v{r['from_version']} -> v{r['version']} ({state})")

    with FileBatch(mgr, "rewrap").active() as group:
        outcomes = batch.run(
            items, items, one, fail_fast=fail_fast, on_ok=None if ctx.obj.json else said,
            group=group,
        )  # fmt: skip
    for w in mgr.usage_warnings():
        warn(w)
    if ctx.obj.json:
        emit_json(batch.summary(outcomes))
    elif len(items) > 1:
        message(batch.tally("rewrapped or checked", outcomes))
    code = batch.exit_code(outcomes)
    if code:
        raise typer.Exit(code)


def _plain_name(path: str) -> str:
    """``x.ekm`` -> ``x``; an input without .ekm has no obvious output name."""
    if path.endswith(".ekm") and len(Path(path).name) > 4:
        return path[:-4]
    raise UsageError(f"{path} does not end in .ekm, so its output has no name; use -o for it alone")


def _said(ctx: typer.Context, verb: str) -> Any:
    """The per-file success line of a text report (None with --json)."""
    if ctx.obj.json:
        return None

    def say(o: batch.Outcome) -> None:
        message(f"{verb} {o.input} -> {o.output} ({o.detail.get('bytes', 0)} bytes)")

    return say
