"""Piped output and NO_COLOR carry no escape codes; every command's help has an example."""

from __future__ import annotations

import pytest

COMMANDS = [
    ("status",),
    ("keys", "list"),
    ("keys", "show", "rsa"),
    ("rotate", "--check", "--as-of", "+400d"),
    ("audit", "--compliance", "pci-dss"),
    ("deploy", "--status"),
    ("--help",),
    ("rotate", "--chek"),
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("no_color", ["1", None])
def test_no_escape_codes_when_piped(run, ekm_env, args, no_color) -> None:
    env = dict(ekm_env)
    env.pop("NO_COLOR", None)
    if no_color:
        env["NO_COLOR"] = no_color
    env["TERM"] = "xterm-256color"  # a colour terminal type, yet stdout is a pipe
    res = run(*args, env=env)
    assert res.stdout or res.stderr
    assert "\x1b[" not in res.stdout and "\x1b[" not in res.stderr


def test_every_command_help_shows_an_example(cli_root) -> None:
    missing = []
    for name, cmd in cli_root.commands.items():
        subs = getattr(cmd, "commands", None) or {name: cmd}
        for sub_name, sub in subs.items():
            if "Example" not in (sub.help or ""):
                missing.append(f"{name} {sub_name}".strip())
    assert missing == []
