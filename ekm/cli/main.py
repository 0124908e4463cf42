"""Entry point of the ``ekm`` console script.

Turns every failure into one line on stderr and the exit code of the CLI contract: EkmError
carries its own code; click usage errors are 2; anything else is a bug, reported in one line
(exit 70) unless ``--debug`` asks for the traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys

EXIT_INTERNAL = 70


def _harden() -> None:
    """No core dumps of a process holding keys; private umask for everything it creates."""
    os.umask(0o077)
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_DUMPABLE = 4
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def build_app():
    from ekm.cli.app import COMMAND_MODULES, app

    for name in COMMAND_MODULES:
        importlib.import_module(f"ekm.cli.commands.{name}")
    return app


_GLOBAL_FLAGS = ("--json", "--debug")
_GLOBAL_VALUED = ("--home", "--config")


def hoist_global_options(args: list[str]) -> list[str]:
    """Let the global options stand anywhere: ``ekm status --json`` = ``ekm --json status``.

    CLI.md spells both forms (``ekm [--json] COMMAND`` and ``ekm rotate --check --json``);
    click only accepts a group's options before the command, so they are moved there.
    Nothing after a ``--`` separator is touched.
    """
    head: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in _GLOBAL_FLAGS:
            head.append(arg)
        elif arg in _GLOBAL_VALUED and i + 1 < len(args):
            head.extend(args[i : i + 2])
            i += 1
        elif arg.split("=", 1)[0] in _GLOBAL_VALUED and "=" in arg:
            head.append(arg)
        else:
            rest.append(arg)
        i += 1
    return head + rest


def _route_warnings() -> None:
    """Show the core's EkmWarning as one ``ekm: warning: ...`` stderr line (no source line)."""
    import warnings

    from ekm.errors import EkmWarning

    previous = warnings.showwarning
    if getattr(previous, "ekm_routed", False):
        return  # main() ran before in this process

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, EkmWarning):
            first = str(message).splitlines()[0] if str(message) else category.__name__
            sys.stderr.write(f"ekm: warning: {first}\n")
            sys.stderr.flush()
            return
        previous(message, category, filename, lineno, file, line)

    show.ekm_routed = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    """Run ``ekm``; returns (and exits with) the process exit code."""
    _harden()
    args = hoist_global_options(sys.argv[1:] if argv is None else list(argv))
    debug = "--debug" in args
    import typer

    try:  # typer >= 0.26 ships its own copy of click; older ones use click itself
        from typer._click.exceptions import ClickException, UsageError
    except ImportError:  # pragma: no cover
        from click.exceptions import ClickException, UsageError

    from ekm.errors import EkmError

    _route_warnings()
    try:
        app = build_app()
        rv = app(args=args, prog_name="ekm", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except EkmError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"ekm: error: {exc.message}\n")
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        sys.stderr.write("ekm: aborted\n")
        code = 130
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.stderr.write(exc.ctx.get_help() + "\n" if exc.ctx else "")
        else:
            where = exc.ctx.command_path if exc.ctx else "ekm"
            sys.stderr.write(f"ekm: error: {exc.format_message()} (see '{where} --help')\n")
        code = 2
    except ClickException as exc:
        sys.stderr.write(f"ekm: error: {exc.format_message()}\n")
        code = exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("ekm: interrupted\n")
        code = 130
    except BrokenPipeError:
        code = 0
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    except Exception as exc:  # a bug: one line, never secrets (type and location only)
        if debug:
            import traceback

            traceback.print_exc()
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = (
            f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else ""
        )
        sys.stderr.write(
            f"ekm: internal error: {type(exc).__name__}{where} (rerun with --debug and report it)\n"
        )
        code = EXIT_INTERNAL
    sys.stdout.flush()
    return code


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
