"""Every command and option the three READMEs show exists, checked against ``ekm ... --help``."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.operator.conftest import READMES
from tests.operator.readme_cli import (
    code_lines,
    inline_invocations,
    invocations,
    split_invocation,
)

SETUP = ("python3 -m pip install . && ekm deploy", "bash scripts/test.sh")
MIGRATION = [
    ("./generate_keys.sh", "ekm generate"),
    ("./rotate_keys.sh --check", "ekm rotate --check"),
    ("./rotate_keys.sh --dry-run", "ekm rotate --dry-run"),
    ("./rotate_keys.sh --force", "ekm rotate --force"),
    ("./audit_keys.sh --compliance pci-dss", "ekm audit --compliance pci-dss"),
    ("./audit_keys.sh --verbose", "ekm audit --verbose"),
    ("./monitor_security.sh --daemon", "ekm monitor --daemon"),
    ("./monitor_security.sh --slack URL", "ekm monitor --daemon --slack URL"),
    ("./monitor_security.sh --webhook URL", "ekm monitor --daemon --webhook URL"),
    ("./deploy_system.sh", "ekm deploy"),
    ("./deploy_system.sh --status", "ekm deploy --status"),
    ("./generate_security_report.sh --format pdf", "ekm report --format pdf -o report.pdf"),
]


def _all_invocations(text: str) -> list[list[str]]:
    return invocations(code_lines(text)) + inline_invocations(text)


@pytest.fixture(scope="module")
def helps(repo_root: Path, cli_groups) -> dict[str, str]:
    """``ekm PATH --help`` of every command path any README uses, run for real."""
    paths = {
        " ".join(split_invocation(inv, cli_groups)[0])
        for name in READMES
        for inv in _all_invocations((repo_root / name).read_text(encoding="utf-8"))
    }

    def run(path: str) -> tuple[str, str]:
        res = subprocess.run(
            ["ekm", *path.split(), "--help"], capture_output=True, text=True, check=False
        )
        assert res.returncode == 0, f"ekm {path} --help: {res.stderr}"
        return path, res.stdout

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(run, sorted(paths)))


@pytest.mark.parametrize("readme", READMES)
def test_every_shown_option_exists(repo_root: Path, readme: str, cli_groups, helps) -> None:
    invs = _all_invocations((repo_root / readme).read_text(encoding="utf-8"))
    assert len(invs) > 40, "the README lost its examples"
    missing = []
    for inv in invs:
        path, options = split_invocation(inv, cli_groups)
        first = next((t for t in inv if not t.startswith("-")), None)
        if not path and first and not first.isupper():  # COMMAND is a placeholder
            missing.append(f"ekm {' '.join(inv)}: unknown command {first!r}")
            continue
        text = helps[" ".join(path)]
        missing += [f"ekm {' '.join(inv)}: {o}" for o in options if o not in text]
    assert missing == []


@pytest.mark.parametrize("readme", READMES)
def test_setup_commands_and_migration_table(repo_root: Path, readme: str) -> None:
    text = (repo_root / readme).read_text(encoding="utf-8")
    blocks = code_lines(text, ("sh",))
    for cmd in SETUP:
        assert cmd in blocks, cmd
    for old, new in MIGRATION:
        assert f"| `{old}` | `{new}` |" in text, old
    assert "| 70 |" in text
    assert "github/codeql-action/upload-sarif" in text and "junit: ekm-junit.xml" in text
    for cmd in ("python3 benchmarks/crash_soak.py --faults", "python3 benchmarks/run_all.py"):
        assert cmd in text
    assert "SECURITY.md" in text and "docs/hsm.md" in text and "docs/vault.md" in text


def test_translations_show_the_same_commands(repo_root: Path) -> None:
    shown = [
        sorted(" ".join(i) for i in _all_invocations((repo_root / r).read_text(encoding="utf-8")))
        for r in READMES
    ]
    assert shown[1] == shown[0]
    assert shown[2] == shown[0]


def test_checker_catches_a_wrong_option(cli_groups, helps) -> None:
    """The check above can fail: a made-up option and a made-up command are caught."""
    inv = invocations(["15 3 * * * ekm rotate --chek || ekm rotat"])
    assert inv == [["rotate", "--chek"], ["rotat"]]
    path, options = split_invocation(inv[0], cli_groups)
    assert path == ["rotate"] and options == ["--chek"]
    assert "--chek" not in helps["rotate"]
    assert split_invocation(inv[1], cli_groups)[0] == []


def test_parser_positions_and_globals(cli_groups) -> None:
    lines = [
        "python3 -m pip install . && ekm deploy",
        "pip install ekm",
        "  run: ekm --json audit --format sarif",
        "    - EKM_HOME=/x ekm --home /srv/ekm keys export rsa --public > k.pem",
        '0 2 * * * ekm backup create --recipient "$(cat r.txt)"',
    ]
    invs = invocations(lines)
    assert invs[0] == ["deploy"]
    assert [split_invocation(i, cli_groups) for i in invs[1:]] == [
        (["audit"], ["--format"]),
        (["keys", "export"], ["--public"]),
        (["backup", "create"], ["--recipient"]),
    ]
