"""The typer application and its global options.

Each command lives in its own module under ``ekm.cli.commands`` and registers itself on
``app`` when imported; ``COMMAND_MODULES`` is the list ``main`` imports, in help order.
"""

from __future__ import annotations

import typer

from ekm import __version__
from ekm.cli.context import Context

app = typer.Typer(
    name="ekm",
    help="Generate, store, rotate, audit and monitor cryptographic keys.\n\n"
    "Exit codes: 0 ok, 1 findings or due work, 2 usage error, 3 not found or invalid, "
    "4 refused for safety (integrity, permissions, audit log), 5 backend unreachable.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    rich_markup_mode="rich",
)

COMMAND_MODULES = [
    "deploy",
    "generate",
    "status",
    "rotate",
    "keys",
    "backup",
    "migrate",
    "monitor",
    "audit",
    "crypto",
    "signing",
    "apikey",
    "report",
    "completion",
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ekm {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    home: str | None = typer.Option(
        None,
        "--home",
        envvar="EKM_HOME",
        metavar="DIR",
        help="Deployment home (default ~/.local/share/ekm, /var/lib/ekm as root).",
    ),
    config: str | None = typer.Option(
        None,
        "--config",
        envvar="EKM_CONFIG",
        metavar="FILE",
        help="Config file (default $EKM_HOME/ekm.toml).",
    ),
    json_output: bool = typer.Option(
        False, "--json", help="One JSON document on stdout (any command; refused where none)."
    ),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        help="Print nothing on success; warnings, findings and errors still go to stderr.",
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Tracebacks and debug logging (never secrets)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Global options."""
    from ekm.cli.render import set_quiet

    set_quiet(quiet)
    ctx.obj = Context(home=home, config=config, json=json_output, debug=debug, quiet=quiet)
