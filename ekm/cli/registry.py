"""Which module defines each ``ekm`` command, and the top-level help, without importing typer.

``ekm --version`` and ``ekm --help`` are what scripts and people run most often just to look;
they are answered from this table, so they cost a bare interpreter start plus this module
(no typer, no rich, no cryptography). A command run imports typer and only the module(s)
that define that command. ``tests/operator/test_fast_startup.py`` checks this table against
the typer application (names, panels, first paragraph of each help, global options), so
the two cannot drift apart silently.
"""

from __future__ import annotations

import os

#: name, help panel, defining modules under ekm.cli.commands, first paragraph of its help.
COMMANDS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("deploy", "Set-up", ("deploy",),
     "Deploy ekm: home (0700), ekm.toml, master key, audit log and the configured key set."),
    ("completion", "Set-up", ("completion",),
     "Print the completion script for SHELL (bash, zsh or fish) on stdout."),
    ("generate", "Keys", ("generate",),
     "Generate keys. An existing NAME is an error: use `ekm rotate NAME`."),
    ("status", "Keys", ("status",),
     "Show every key, its versions and when it rotates next. Needs no master key."),
    ("rotate", "Keys", ("rotate",),
     "Rotate keys that are due; check for cron; staged zero-downtime rotation."),
    ("keys", "Keys", ("keys", "migrate"), "List, inspect, export and manage keys."),
    ("backup", "Keys", ("backup",), "Encrypted backups of keys."),
    ("apikey", "Keys", ("apikey",), "API keys: create, verify, revoke, list."),
    ("monitor", "Operations", ("monitor",),
     "Check permissions, integrity, rotation, usage, the audit log and backends; alert."),
    ("audit", "Compliance", ("audit",),
     "Audit keys and deployment against compliance rule sets; verify the audit log."),
    ("report", "Compliance", ("report",),
     "Write a security report: summary, compliance, due keys, audit log, alerts, changes."),
    ("encrypt", "Data", ("crypto",),
     "Encrypt files or stdin under a key's primary version (or to public keys)."),
    ("decrypt", "Data", ("crypto",),
     "Verify and decrypt files or stdin; each ciphertext names its key and version."),
    ("rewrap", "Data", ("crypto",),
     "Re-seal files' data keys under their key's current primary (payload not re-encrypted)."),
    ("sign", "Data", ("signing",),
     "Make detached signatures with a key's primary version (HSM keys sign in the token)."),
    ("verify", "Data", ("signing",),
     "Verify detached signatures; each names the key and version that made it."),
)  # fmt: skip

PANELS = ("Set-up", "Keys", "Operations", "Compliance", "Data")

DESCRIPTION = (
    "Generate, store, rotate, audit and monitor cryptographic keys.\n\n"
    "Exit codes: 0 ok, 1 findings or due work, 2 usage error, 3 not found or invalid, "
    "4 refused for safety (integrity, permissions, audit log), 5 backend unreachable."
)

#: The global options as the help shows them: (flags, metavar, help).
GLOBAL_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--home", "DIR",
     "Deployment home (default ~/.local/share/ekm, /var/lib/ekm as root). [env var: EKM_HOME]"),
    ("--config", "FILE", "Config file (default $EKM_HOME/ekm.toml). [env var: EKM_CONFIG]"),
    ("--json", "", "One JSON document on stdout (any command; refused where none)."),
    ("-q, --quiet", "", "Print nothing on success; warnings, findings and errors still go to "
     "stderr."),
    ("--debug", "", "Tracebacks and debug logging (never secrets)."),
    ("--version", "", "Print the version and exit."),
    ("--install-completion", "", "Install completion for the current shell."),
    ("--show-completion", "", "Show completion for the current shell, to copy it or customize "
     "the installation."),
    ("-h, --help", "", "Show this message and exit."),
)  # fmt: skip

#: Global options that take a value (skipped when looking for the command name).
VALUED_GLOBALS = ("--home", "--config")
FLAG_GLOBALS = ("--json", "--debug", "--quiet", "-q")


def modules_for(name: str) -> tuple[str, ...] | None:
    """The modules defining command ``name``; None for a name ekm does not have."""
    for cmd, _panel, modules, _summary in COMMANDS:
        if cmd == name:
            return modules
    return None


def all_modules() -> list[str]:
    """Every command module, in help order (each imported once)."""
    seen: list[str] = []
    for _cmd, _panel, modules, _summary in COMMANDS:
        seen.extend(m for m in modules if m not in seen)
    return seen


def first_word(args: list[str]) -> str | None:
    """The first argument that is not a global option (the command name, ``--help``...)."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in VALUED_GLOBALS:
            i += 2
            continue
        if arg in FLAG_GLOBALS or arg.split("=", 1)[0] in VALUED_GLOBALS:
            i += 1
            continue
        return arg
    return None


def render_help(width: int | None = None) -> str:
    """The top-level help as plain text (no colour, no box drawing: it is read in pipes too)."""
    import textwrap

    if width is None:
        try:
            width = os.get_terminal_size().columns
        except OSError:
            width = 80
    width = max(60, min(width, 100))
    out = ["Usage: ekm [OPTIONS] COMMAND [ARGS]...", ""]
    for para in DESCRIPTION.split("\n\n"):
        out.extend(textwrap.wrap(para, width - 2, initial_indent="  ", subsequent_indent="  "))
        out.append("")

    def rows(title: str, items: list[tuple[str, str]]) -> None:
        out.append(f"{title}:")
        left = max(len(a) for a, _ in items) + 2
        for a, text in items:
            lines = textwrap.wrap(text, max(20, width - left - 4)) or [""]
            out.append(f"  {a:<{left}}{lines[0]}")
            out.extend(f"  {'':<{left}}{line}" for line in lines[1:])
        out.append("")

    rows("Options", [(f"{f} {m}".rstrip(), h) for f, m, h in GLOBAL_OPTIONS])
    for panel in PANELS:
        rows(panel, [(n, s) for n, p, _m, s in COMMANDS if p == panel])
    out.append("Run 'ekm COMMAND --help' for a command's options and an example.")
    return "\n".join(out) + "\n"
