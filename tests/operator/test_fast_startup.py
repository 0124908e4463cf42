"""``ekm --version`` / ``--help`` answer without typer; a command loads only its own module.

The quick answers come from ekm/cli/registry.py, so that table is checked here against the
typer application itself: same commands, panels, first help paragraph and global options.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ekm.cli import registry

HEAVY = ("typer", "click", "rich", "cryptography", "ekm.manager", "ekm.crypto")


def _modules_after(args: list[str], env: dict[str, str]) -> tuple[int, str, list[str]]:
    """Run ``ekm ARGS`` in a fresh interpreter; the modules it had imported at exit."""
    code = (
        "import json, sys\n"
        "from ekm.cli.main import main\n"
        f"rc = main({args!r})\n"
        "sys.stderr.write(json.dumps([rc, sorted(sys.modules)]))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    rc, modules = json.loads(res.stderr.splitlines()[-1])
    return rc, res.stdout, modules


@pytest.mark.parametrize(
    "args",
    [["--version"], ["--help"], ["-h"], ["--home", "/nowhere", "--version"], ["--json", "--help"]],
    ids=" ".join,
)
def test_version_and_help_import_no_framework_and_no_crypto(args, ekm_env) -> None:
    rc, out, modules = _modules_after(args, ekm_env)
    assert rc == 0
    assert out.startswith("ekm 0.1.0" if "--version" in args else "Usage: ekm")
    heavy = [m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]
    assert heavy == []


def test_help_lists_every_command_by_panel(run) -> None:
    out = run("--help").expect_ok().stdout
    for name, panel, _modules, _summary in registry.COMMANDS:
        assert f"\n  {name} " in out
        assert f"\n{panel}:\n" in out
    assert "\x1b[" not in out and "│" not in out  # plain text: grep-able, pipe-safe
    assert "ekm --version" not in out and "--version" in out


def test_bare_ekm_prints_help_and_exits_2(run) -> None:
    res = run()
    assert res.code == 2 and res.stdout.startswith("Usage: ekm") and res.stderr == ""


def test_a_command_imports_only_its_own_module(ekm_env) -> None:
    rc, _out, modules = _modules_after(["status", "--json"], ekm_env)
    assert rc == 0
    loaded = {m.rsplit(".", 1)[-1] for m in modules if m.startswith("ekm.cli.commands.")}
    assert loaded == {"status"}
    assert not [m for m in modules if m.startswith(("rich", "cryptography", "ekm.report.render"))]


def test_subcommand_version_option_is_not_taken_for_the_global_one(run) -> None:
    run("keys", "destroy", "nosuchkey", "--version", "1").expect_error(3, "nosuchkey")


def test_unknown_command_still_gets_suggestions(run) -> None:
    run("stauts").expect_error(2, "No such command", "status")


def test_registry_matches_the_typer_application(cli_root) -> None:
    names = [c[0] for c in registry.COMMANDS]
    assert sorted(names) == sorted(cli_root.commands)
    for name, panel, _modules, summary in registry.COMMANDS:
        cmd = cli_root.commands[name]
        assert cmd.rich_help_panel == panel, name
        first = (cmd.help or "").split("\n\n")[0].replace("\n", " ").strip()
        assert first == summary, name
    shown = {f.split(", ")[-1] for f, _m, _h in registry.GLOBAL_OPTIONS}
    declared = {o for p in cli_root.params for o in p.opts if o.startswith("--")} | {"--help"}
    assert shown == declared


def test_each_command_is_defined_by_the_modules_the_registry_names() -> None:
    """Importing a command's modules alone registers that command (no hidden dependency)."""
    for name, _panel, modules, _summary in registry.COMMANDS:
        code = (
            "import importlib, typer\n"
            "from ekm.cli.app import app\n"
            f"for m in {modules!r}: importlib.import_module('ekm.cli.commands.' + m)\n"
            "print(' '.join(typer.main.get_command(app).commands))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        assert name in out, (name, modules, out)
