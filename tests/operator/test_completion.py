"""Completion in a real bash with bash-completion, through the committed completions/ekm.bash.

Key names come from the home's metadata only: a passphrase-protected home completes without
the passphrase, a completion writes no audit record, and a missing home completes nothing
without an error on the terminal.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from ekm.cli import complete

BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
DEFAULT_KEYS = [
    "api_internal", "api_master", "database_encryption", "hmac", "jwt_signing", "rsa", "session",
]  # fmt: skip


def tab(repo_root: Path, env: dict[str, str], line: str) -> tuple[list[str], str]:
    """COMPREPLY for the command line ``line`` (completing its last word), and bash's stderr."""
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    script = (
        f"source {BASH_COMPLETION}\n"
        f"source {repo_root / 'completions' / 'ekm.bash'}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE={shlex.quote(line)}\n"
        "_ekm_completion ekm\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    res = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [w for w in res.stdout.splitlines() if w], res.stderr


@pytest.mark.skipif(not BASH_COMPLETION.exists(), reason="bash-completion not installed")
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ekm rotate ", DEFAULT_KEYS),
        ("ekm rotate rsa jwt", ["jwt_signing"]),
        ("ekm keys show ", DEFAULT_KEYS),
        ("ekm keys export da", ["database_encryption"]),
        ("ekm keys export rsa --format ", ["pem", "der", "jwk", "jwks", "raw"]),
        ("ekm encrypt --key d", ["database_encryption"]),
        ("ekm sign --key r", ["rsa"]),
        ("ekm generate billing --type ml-dsa", ["ml-dsa-44", "ml-dsa-65", "ml-dsa-87"]),
        ("ekm generate billing --usage key-", ["key-wrapping", "key-agreement"]),
        ("ekm audit --format ", ["table", "json", "sarif", "junit", "markdown"]),
        ("ekm audit --compliance pci", ["pci-dss"]),
        (
            "ekm audit --compliance pci-dss,nist-800-5",
            ["pci-dss,nist-800-53", "pci-dss,nist-800-57"],
        ),
        ("ekm audit --fail-on ", ["low", "medium", "high", "critical"]),
        ("ekm report --format ", ["html", "pdf", "markdown", "json"]),
        ("ekm deploy --master-key ", ["file", "passphrase", "pkcs11", "vault-transit"]),
        ("ekm ro", ["rotate"]),
    ],
)
def test_bash_completes(repo_root: Path, ekm_env: dict[str, str], line: str, expected) -> None:
    got, err = tab(repo_root, ekm_env, line)
    assert sorted(got) == sorted(expected)
    assert err == ""


def test_rule_sets_complete_to_every_shipped_id(repo_root: Path, ekm_env) -> None:
    got, _ = tab(repo_root, ekm_env, "ekm audit --compliance ")
    shipped = sorted(p.stem for p in (repo_root / "ekm" / "compliance" / "rules").glob("*.toml"))
    assert sorted(got) == sorted([*shipped, "all"])
    assert "pci-dss" in got


def test_home_from_the_command_line_wins(repo_root, home: Path, base_env) -> None:
    got, _ = tab(repo_root, base_env, f"ekm --home {home} rotate se")
    assert got == ["session"]


def test_completion_reads_metadata_only(repo_root, home: Path, ekm_env) -> None:
    audit_log = home / "audit.log"
    before = audit_log.read_bytes()
    (home / "master.key").unlink()  # no master key at all: names still complete
    got, err = tab(repo_root, ekm_env, "ekm keys show ")
    assert got == DEFAULT_KEYS and err == ""
    assert audit_log.read_bytes() == before  # no record for a <TAB>


@pytest.mark.parametrize("problem", ["missing", "not-deployed", "world-readable", "bad-config"])
def test_broken_homes_complete_nothing_silently(repo_root, home: Path, base_env, problem) -> None:
    target = home
    if problem == "missing":
        target = home.parent / "nowhere"
    elif problem == "not-deployed":
        (home / "master.json").unlink()
    elif problem == "world-readable":
        (home / "keys").chmod(0o755)
    else:
        (home / "ekm.toml").write_text("[storage]\nbackend = 12\n")
    got, err = tab(repo_root, {**base_env, "EKM_HOME": str(target)}, "ekm rotate ")
    assert got == [] and err == ""


def test_vault_backed_keystore_is_not_listed(home: Path, monkeypatch) -> None:
    """A remote keystore could stall the shell: its names are not fetched on <TAB>."""
    cfg = home / "ekm.toml"
    cfg.write_text(cfg.read_text().replace('backend = "file"', 'backend = "vault"', 1))
    assert 'backend = "vault"' in cfg.read_text()
    assert complete.stored_key_names(str(home)) == []


def test_key_names_skips_names_already_given(home: Path) -> None:
    class Ctx:
        def __init__(self) -> None:
            self.params = {"names": ["rsa", "hmac"]}

        def find_root(self):
            return type("Root", (), {"params": {"home": str(home), "config": None}})()

    assert complete.key_names(Ctx(), "") == [n for n in DEFAULT_KEYS if n not in ("rsa", "hmac")]


def test_rule_set_lists_offer_all_only_first() -> None:
    assert "all" in complete.rule_sets(None, "")
    assert not any(x.endswith(",all") for x in complete.rule_sets(None, "pci-dss,"))
    assert "pci-dss,pci-dss" not in complete.rule_sets(None, "pci-dss,")
