"""``ekm completion SHELL``: print the shell completion script.

``pip install .`` puts the same scripts where a system-wide bash-completion, zsh or fish looks
(``PREFIX/share/...``), but a shell does not look inside a virtual environment or a pipx venv;
this command lets such a user enable completion with one line in their shell's start-up file.
The scripts are the ones committed in ``completions/`` (both come from ``ekm.cli.gen``).
"""

from __future__ import annotations

import sys

import typer

from ekm.cli import complete
from ekm.cli.app import app
from ekm.errors import UsageError

SHELLS = ("bash", "zsh", "fish")
shells = complete._choices(SHELLS)


@app.command(rich_help_panel="Set-up")
def completion(
    ctx: typer.Context,
    shell: str = typer.Argument(
        ..., metavar="SHELL", help="bash, zsh or fish.", autocompletion=shells
    ),
) -> None:
    """Print the completion script for SHELL (bash, zsh or fish) on stdout.

    For a venv or pipx install, add one line to the shell's start-up file: bash (~/.bashrc)
    eval "$(ekm completion bash)"; zsh (~/.zshrc, after compinit) eval "$(ekm completion zsh)";
    fish (~/.config/fish/config.fish) ekm completion fish | source.

    Example: ekm completion bash > ~/.local/share/bash-completion/completions/ekm
    """
    if ctx.obj.json:
        raise UsageError("--json: `ekm completion` prints a shell script, not JSON")
    if shell not in SHELLS:
        raise UsageError(f"SHELL {shell!r}: expected one of {', '.join(SHELLS)}")
    from ekm.cli.gen import completion_script

    sys.stdout.write(completion_script(shell))
