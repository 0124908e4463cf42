"""Entry point of the ``ekm`` console script.

Turns every failure into one line on stderr and the exit code of the CLI contract: EkmError
carries its own code; click usage errors are 2; anything else is a bug, reported in one line
(exit 70) unless ``--debug`` asks for the traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys

from ekm.cli.registry import FLAG_GLOBALS, VALUED_GLOBALS, first_word

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


_pending_signal = 0  # set by the handler: the run ends as "stopped", whatever unwound it


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C so every ``finally`` cleans up.

    A BaseException (as KeyboardInterrupt is), so ``except Exception`` in the core cannot
    swallow it; temporary files are removed by the ``finally`` blocks that created them.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_termination_signals() -> None:
    """SIGTERM (CI cancel, systemctl stop, timeout) and SIGHUP clean up exactly like Ctrl-C.

    SIGINT takes the same path, so the three end alike: one ``ekm: stopped by SIGxxx`` line,
    exit 128 + the signal number (130 for Ctrl-C, as before).

    ``ekm monitor --daemon`` installs its own handlers (graceful stop, reload) over these.
    """
    import signal

    def handler(signum: int, frame: object) -> None:
        global _pending_signal
        from ekm.fsutil import remove_live_temps

        _pending_signal = signum
        remove_live_temps()  # first, in case the exception below lands where it is swallowed
        raise Terminated(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        with contextlib.suppress(ValueError, OSError):  # not the main thread (embedded)
            signal.signal(sig, handler)


def _surrogate_safe_output() -> None:
    """File names that are not UTF-8 print as the bytes they are, never crash the output.

    Python hands them to ekm as str with lone surrogates (surrogateescape); writing those back
    with surrogateescape gives the operator the file's real name.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]


def build_app(command: str | None = None):  # type: ignore[no-untyped-def]
    """The typer app with command ``command`` registered (every command when None).

    Registering one command imports only its module: ``ekm status`` does not pay for the
    report renderers or the PKCS#11 bindings. Unknown names, shell completion and help
    listings get every command (click then suggests the close names).
    """
    import importlib

    from ekm.cli.app import app
    from ekm.cli.registry import all_modules, modules_for

    modules = (modules_for(command) if command else None) or all_modules()
    for name in modules:
        importlib.import_module(f"ekm.cli.commands.{name}")
    return app


_GLOBAL_FLAGS = FLAG_GLOBALS
_GLOBAL_VALUED = VALUED_GLOBALS


def hoist_global_options(args: list[str]) -> list[str]:
    """Let the global options stand anywhere: ``ekm status --json`` = ``ekm --json status``.

    ``-q/--quiet`` is global the same way, so every command has it with one meaning.

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


def _answer_without_typer(args: list[str]) -> int | None:
    """``ekm --version`` and ``ekm --help``: answered from ekm/cli/registry.py, no typer.

    Returns the exit code, or None when the arguments name a command (typer parses those).
    """
    word = first_word(args)
    if word is None:  # bare ``ekm``: the help, with the usage exit code
        from ekm.cli.registry import render_help

        sys.stdout.write(render_help())
        return 2
    if word == "--version":
        from ekm import __version__

        sys.stdout.write(f"ekm {__version__}\n")
        return 0
    if word in ("--help", "-h"):
        from ekm.cli.registry import render_help

        sys.stdout.write(render_help())
        return 0
    return None


def main(argv: list[str] | None = None) -> int:
    """Run ``ekm``; returns (and exits with) the process exit code."""
    args = hoist_global_options(sys.argv[1:] if argv is None else list(argv))
    completing = "_EKM_COMPLETE" in os.environ  # shell completion: typer answers it
    if not completing:
        quick = _answer_without_typer(args)  # before _harden: nothing secret is loaded here
        if quick is not None:
            sys.stdout.flush()
            return quick
    _harden()
    debug = "--debug" in args
    try:
        return _main(args, debug, completing)
    except ModuleNotFoundError as exc:  # typer, rich, ... themselves: the CLI could not start
        return _missing_module(exc, debug)


def _missing_module(exc: ModuleNotFoundError, debug: bool) -> int:
    """One line naming the package to install (exit 5); an ``ekm.*`` module is a bug (70)."""
    from ekm.dependencies import missing_dependency

    if debug:
        import traceback

        traceback.print_exc()
    error = missing_dependency(exc)
    if error is None:
        sys.stderr.write(
            f"ekm: internal error: ModuleNotFoundError: {exc.name} "
            "(a broken ekm install: reinstall it; rerun with --debug and report it)\n"
        )
        return EXIT_INTERNAL
    sys.stderr.write(f"ekm: error: {error.message}\n")
    return error.exit_code


def _main(args: list[str], debug: bool, completing: bool) -> int:
    import typer

    try:  # typer >= 0.26 ships its own copy of click; older ones use click itself
        from typer._click.exceptions import ClickException, UsageError
    except ImportError:  # pragma: no cover
        from click.exceptions import ClickException, UsageError

    from ekm.errors import EkmError

    _route_warnings()
    _on_termination_signals()
    _surrogate_safe_output()
    try:
        app = build_app(None if completing else first_word(args))
        rv = app(args=args, prog_name="ekm", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except EkmError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        if not _pending_signal:  # a failure caused by the stop (a removed temp) is the stop
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
    except Terminated:
        pass  # reported below
    except BrokenPipeError:
        code = 0
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    except ModuleNotFoundError as exc:  # an environment that lost a dependency of a command
        code = _missing_module(exc, debug)
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
    if _pending_signal:
        import signal

        sys.stderr.write(f"ekm: stopped by {signal.Signals(_pending_signal).name}\n")
        code = 128 + _pending_signal
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    return code


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
