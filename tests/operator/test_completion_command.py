"""``ekm completion SHELL`` prints the completion script, and that script completes in a real
bash: how a venv or pipx user (whose shell never looks inside the venv) enables completion."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Result

BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
FILES = {"bash": "ekm.bash", "zsh": "_ekm", "fish": "ekm.fish"}


def _ekm(env: dict[str, str], *args: str) -> Result:
    proc = subprocess.run(
        ["ekm", *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=60, check=False,
    )  # fmt: skip
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("shell", sorted(FILES))
def test_prints_the_shipped_script(repo_root: Path, base_env: dict[str, str], shell: str) -> None:
    res = _ekm(base_env, "completion", shell).expect_ok()
    assert res.stdout == (repo_root / "completions" / FILES[shell]).read_text()
    assert res.stderr == ""


@pytest.mark.skipif(not BASH_COMPLETION.exists(), reason="bash-completion not installed")
def test_eval_in_bash_completes_key_names(ekm_env: dict[str, str]) -> None:
    """The README's line for ~/.bashrc, then <Tab> after `ekm rotate se`."""
    script = (
        f"source {BASH_COMPLETION}\n"
        'eval "$(ekm completion bash)"\n'
        "COMP_WORDS=(ekm rotate se); COMP_CWORD=2; COMP_LINE='ekm rotate se'\n"
        'complete -p ekm >&2; "$(complete -p ekm | sed -E "s/.* -F ([^ ]+) .*/\\1/")" ekm\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    res = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script], env=ekm_env, capture_output=True,
        text=True, check=True, timeout=60,
    )  # fmt: skip
    assert res.stdout.split() == ["session"]
    assert "_ekm_completion" in res.stderr  # the function the printed script registered


def test_unknown_shell_is_a_usage_error(base_env: dict[str, str]) -> None:
    _ekm(base_env, "completion", "ksh").expect_error(2, "'ksh'", "bash, zsh, fish")


def test_json_is_refused_not_ignored(base_env: dict[str, str]) -> None:
    _ekm(base_env, "--json", "completion", "bash").expect_error(2, "--json")
