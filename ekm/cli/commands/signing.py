"""``ekm sign`` and ``ekm verify``: detached signature documents (ekm/crypto/signatures.py).

``ekm sign --key NAME FILE...`` writes FILE.sig; ``ekm verify FILE...`` reads FILE.sig. Both read
the data once, in 1 MiB chunks (constant memory), and ``-`` means stdin. Several files in one
call follow ekm/cli/batch.py: a report line and an audit record per file, failures do not stop
the others. ``ekm verify DIR`` checks an evidence bundle of ``ekm audit --evidence``. The
signature names its key and version, so ``ekm verify`` needs no ``--key``: a signature made
before a rotation or an algorithm migration verifies with the version that made it.
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
from ekm.errors import UsageError


def _info_doc(info: Any, data: str, sig: str) -> dict[str, Any]:
    return {
        "valid": True,
        "file": data,
        "signature": sig,
        "key": info.key_name,
        "version": info.version,
        "type": info.key_type.value,
        "algorithm": info.algorithm,
    }


_OUT_DIR = "With several files: write each FILE.sig into DIR (default: beside its file)."
_FAIL_FAST = "Stop at the first file that fails (the rest are reported as skipped)."


def _finish(ctx: typer.Context, verb: str, outcomes: list[batch.Outcome]) -> None:
    if ctx.obj.json:
        emit_json(batch.summary(outcomes))
    else:
        message(batch.tally(verb, outcomes))
    code = batch.exit_code(outcomes)
    if code:
        raise typer.Exit(code)


@app.command("sign", rich_help_panel="Data")
def sign(
    ctx: typer.Context,
    inputs: list[str] = typer.Argument(
        ..., metavar="FILE...", help="Files to sign (- for stdin, once)."
    ),
    key: str = typer.Option(
        ..., "--key", "-k", metavar="NAME", help="Signing key.", autocompletion=complete.key_names
    ),
    out: str | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="SIGFILE",
        help="Where the signature of one FILE goes (default FILE.sig; - for stdout).",
    ),
    out_dir: str | None = typer.Option(None, "--out-dir", metavar="DIR", help=_OUT_DIR),
    force: bool = typer.Option(False, "--force", help="Overwrite existing signatures."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help=_FAIL_FAST),
) -> None:
    """Make detached signatures with a key's primary version (HSM keys sign in the token).

    Each FILE gets FILE.sig (or DIR/NAME.sig), with a report line and an audit record per
    file; with several files, - (stdin) may be one of them and its signature goes to stdout.

    Example: ekm sign --key release_signing dist/app.tar.gz
    Example: ekm sign --key release_signing --out-dir sigs/ dist/*
    """
    from ekm.ops import signing as ops

    items = batch.check_inputs(inputs)
    if len(items) > 1 or out_dir is not None:
        _sign_many(ctx, items, key, out, out_dir, force, fail_fast)
        return
    inp = items[0]
    if inp == "-" and out is None:
        raise UsageError("signing stdin needs -o SIGFILE (or -o - for stdout)")
    from ekm.cli.outputs import is_stream, write_output

    mgr = ctx.obj.manager()
    if out is not None and is_stream(out):  # stdout, a device or a FIFO: written in place
        if out == "-" and sys.stdout.isatty():
            raise UsageError("refusing to write a binary signature to a terminal; use -o FILE")
        with contextlib.ExitStack() as stack:
            src = sys.stdin.buffer if inp == "-" else stack.enter_context(ops.open_input(inp))
            doc = mgr.sign_stream(key, src)
        write_output(out, doc)
        if out != "-" and not ctx.obj.json:
            message(f"signed {inp} with {key}: {out}")
        elif out != "-":
            emit_json({"file": inp, "signature": out, "key": key})
        return
    if inp == "-":
        target = ops.check_sig_target(out, force)
        ops.write_signature(target, mgr.sign_stream(key, sys.stdin.buffer))
    else:
        target = mgr.sign_file(key, inp, out, force=force)
    if ctx.obj.json:
        emit_json({"file": inp, "signature": str(target), "key": key})
    else:
        message(f"signed {inp} with {key}: {target}")


def _sign_many(
    ctx: typer.Context,
    items: list[str],
    key: str,
    out: str | None,
    out_dir: str | None,
    force: bool,
    fail_fast: bool,
) -> None:
    from ekm.ops.signing import default_sig_path

    if out is not None:
        raise UsageError(
            "-o names one signature; with several files each FILE.sig goes beside its file "
            "or into --out-dir DIR"
        )
    if batch.STDIN in items and (ctx.obj.json or sys.stdout.isatty()):
        raise UsageError(
            "the signature of - (stdin) goes to stdout: not to a terminal, and not with --json"
        )
    targets = batch.output_paths(items, out_dir, lambda p: str(default_sig_path(p)))
    mgr = ctx.obj.manager()

    def one(item: str, target: str | None) -> dict[str, Any]:
        if target is None:
            sys.stdout.buffer.write(mgr.sign_stream(key, sys.stdin.buffer))
            sys.stdout.buffer.flush()
            return {"key": key, "signature": "-"}
        return {"key": key, "signature": str(mgr.sign_file(key, item, target, force=force))}

    def said(o: batch.Outcome) -> None:
        message(f"signed {o.input} with {key}: {o.output}")

    from ekm.ops.file_batch import FileBatch

    with FileBatch(mgr, "sign").active() as group:
        outcomes = batch.run(
            items, targets, one, fail_fast=fail_fast, on_ok=None if ctx.obj.json else said,
            group=group,
        )  # fmt: skip
    _finish(ctx, "signed", outcomes)


def _verify_evidence(ctx: typer.Context, directory: str) -> None:
    """``ekm verify DIR``: an evidence bundle of ``ekm audit --evidence`` (exit 4 if altered).

    Where the home has an evidence key, the bundle must be signed by it; elsewhere (an
    auditor's machine) the bundle is checked against its own key and a warning says so.
    """
    from ekm.compliance import evidence
    from ekm.errors import EkmError

    expected = None
    try:
        pub = evidence.home_public_key(Path(ctx.obj.manager().home))
        expected = evidence.fingerprint(pub) if pub is not None else None
    except EkmError:
        expected = None
    info = evidence.verify_bundle(directory, expected_fingerprint=expected)
    if not info["key_checked"]:
        warn(
            "no evidence key in this home: the bundle was checked against its own key "
            f"{info['signing_key_fingerprint']}; compare it with the home's audit log"
        )
    if ctx.obj.json:
        emit_json(info)
    else:
        message(
            f"evidence bundle {directory} verified: {info['files']} files, signed by "
            f"{info['signing_key_fingerprint']} (home {info['home_id']}, as of {info['as_of']})"
        )


@app.command("verify", rich_help_panel="Data")
def verify(
    ctx: typer.Context,
    inputs: list[str] = typer.Argument(
        ..., metavar="FILE...", help="Signed files (- for stdin, once)."
    ),
    sig: str | None = typer.Option(
        None,
        "--sig",
        "-s",
        metavar="SIGFILE",
        help="The signature of one FILE, or of - among several (default FILE.sig).",
    ),
    fail_fast: bool = typer.Option(False, "--fail-fast", help=_FAIL_FAST),
    key: str | None = typer.Option(
        None,
        "--key",
        "-k",
        metavar="NAME",
        help="Accept only signatures by this key (exit 4 if another key signed).",
        autocompletion=complete.key_names,
    ),
) -> None:
    """Verify detached signatures; each names the key and version that made it.

    Exit 0 when every file verifies, else the code of the first that did not: 4 when a
    signature does not match or --key names another signer than the one that signed, 3 for
    an unknown, disabled or destroyed key version or a file that is not a signature. Each
    file is reported; one failing does not stop the others.

    Example: ekm verify --key release_signing dist/app.tar.gz
    Example: ekm verify --json dist/*.tar.gz
    """
    from ekm.ops.signing import default_sig_path, read_signature

    if len(inputs) == 1 and inputs[0] != "-" and sig is None and Path(inputs[0]).is_dir():
        _verify_evidence(ctx, inputs[0])
        return
    items = batch.check_inputs(inputs)
    mgr = ctx.obj.manager()
    if len(items) > 1:
        if sig is not None and batch.STDIN not in items:
            raise UsageError("--sig names the signature of one file; several files use FILE.sig")
        if batch.STDIN in items and sig is None:
            raise UsageError("verifying - (stdin) needs --sig SIGFILE")

        sigs: list[batch.Target] = [
            str(sig) if i == batch.STDIN else str(default_sig_path(i)) for i in items
        ]

        def one(item: str, sig_path: str | None) -> dict[str, Any]:
            assert sig_path is not None
            if item == batch.STDIN:
                info = mgr.verify_stream(read_signature(sig_path), sys.stdin.buffer, key=key)
                return _info_doc(info, item, sig_path)
            return _info_doc(mgr.verify_file(item, sig_path, key=key), item, sig_path)

        def said(o: batch.Outcome) -> None:
            d = o.detail
            message(f"good signature on {o.input} by {d['key']} v{d['version']} ({d['algorithm']})")

        from ekm.ops.file_batch import FileBatch

        with FileBatch(mgr, "verify").active() as group:
            outcomes = batch.run(
                items, sigs, one, fail_fast=fail_fast,
                on_ok=None if ctx.obj.json else said, group=group,
            )  # fmt: skip
        _finish(ctx, "verified", outcomes)
        return
    inp = items[0]
    if inp == "-" and sig is None:
        raise UsageError("verifying stdin needs --sig SIGFILE")
    sig_path = sig if sig is not None else str(default_sig_path(inp))
    if inp == "-":
        info = mgr.verify_stream(read_signature(sig_path), sys.stdin.buffer, key=key)
    else:
        info = mgr.verify_file(inp, sig_path, key=key)
    if ctx.obj.json:
        emit_json(_info_doc(info, inp, sig_path))
    else:
        message(f"good signature on {inp} by {info.key_name} v{info.version} ({info.algorithm})")
