"""``ekm sign`` and ``ekm verify``: detached signature documents (ekm/crypto/signatures.py).

``ekm sign --key NAME FILE`` writes FILE.sig; ``ekm verify FILE`` reads FILE.sig. Both read the
data once, in 1 MiB chunks (constant memory), and ``-`` means stdin. The signature names its
key and version, so ``ekm verify`` needs no ``--key``: a signature made before a rotation or an
algorithm migration verifies with the version that made it.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import typer

from ekm.cli import complete
from ekm.cli.app import app
from ekm.cli.render import emit_json, message
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


@app.command("sign", rich_help_panel="Data")
def sign(
    ctx: typer.Context,
    inp: str = typer.Argument(..., metavar="FILE", help="File to sign (- for stdin)."),
    key: str = typer.Option(
        ..., "--key", "-k", metavar="NAME", help="Signing key.", autocompletion=complete.key_names
    ),
    out: str | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="SIGFILE",
        help="Where the signature goes (default FILE.sig; - for stdout).",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing SIGFILE."),
) -> None:
    """Make a detached signature with a key's primary version (HSM keys sign in the token).

    Example: ekm sign --key release_signing dist/app.tar.gz
    """
    from ekm.ops import signing as ops

    if inp == "-" and out is None:
        raise UsageError("signing stdin needs -o SIGFILE (or -o - for stdout)")
    mgr = ctx.obj.manager()
    if out == "-":
        if sys.stdout.isatty():
            raise UsageError("refusing to write a binary signature to a terminal; use -o FILE")
        with contextlib.ExitStack() as stack:
            src = sys.stdin.buffer if inp == "-" else stack.enter_context(ops.open_input(inp))
            doc = mgr.sign_stream(key, src)
        sys.stdout.buffer.write(doc)
        sys.stdout.buffer.flush()
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


@app.command("verify", rich_help_panel="Data")
def verify(
    ctx: typer.Context,
    inp: str = typer.Argument(..., metavar="FILE", help="Signed file (- for stdin)."),
    sig: str | None = typer.Option(
        None, "--sig", "-s", metavar="SIGFILE", help="The signature (default FILE.sig)."
    ),
) -> None:
    """Verify a detached signature; it names the key and version that made it.

    Exit 0 when it verifies, 4 when it does not, 3 for an unknown, disabled or destroyed key
    version or a file that is not a signature.

    Example: ekm verify dist/app.tar.gz
    """
    from ekm.ops.signing import default_sig_path, read_signature

    if inp == "-" and sig is None:
        raise UsageError("verifying stdin needs --sig SIGFILE")
    sig_path = sig if sig is not None else str(default_sig_path(inp))
    mgr = ctx.obj.manager()
    if inp == "-":
        info = mgr.verify_stream(read_signature(sig_path), sys.stdin.buffer)
    else:
        info = mgr.verify_file(inp, sig_path)
    if ctx.obj.json:
        emit_json(_info_doc(info, inp, sig_path))
    else:
        message(f"good signature on {inp} by {info.key_name} v{info.version} ({info.algorithm})")
