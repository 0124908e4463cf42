"""completions/ and man/ are what the CLI generates now, and every man page lints clean."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ekm.cli import gen


def test_committed_files_match_the_cli(repo_root: Path) -> None:
    assert gen.stale(repo_root) == [], "regenerate with: python -m ekm.cli.gen"


def test_every_command_has_a_page_and_the_units_pages_exist(repo_root: Path, cli_root) -> None:
    pages = {p.name for p in (repo_root / "man").iterdir()}
    assert {"ekm.1", "ekm.toml.5", "ekm-monitor.1", "ekm-rotate.1"} <= pages
    assert {f"ekm-{name}.1" for name in cli_root.commands} <= pages


@pytest.mark.parametrize(
    "page", sorted(p.name for p in (Path(__file__).resolve().parents[2] / "man").glob("*.[15]"))
)
def test_man_page_lints_clean(repo_root: Path, page: str) -> None:
    res = subprocess.run(
        ["mandoc", "-T", "lint", str(repo_root / "man" / page)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.stdout + res.stderr == "", res.stdout + res.stderr
    assert res.returncode == 0


def test_pages_carry_options_help_and_hand_written_sections(repo_root: Path) -> None:
    rotate = (repo_root / "man" / "ekm-rotate.1").read_text()
    for needle in (
        "\\-\\-check",
        "\\-\\-to\\-type",
        ".SH EXIT STATUS",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH EXAMPLES",
        ".SH SEE ALSO",
        "EKM_PASSPHRASE",
        "crontab",
    ):
        assert needle in rotate, needle
    main = (repo_root / "man" / "ekm.1").read_text()
    for var in (
        "EKM_HOME",
        "EKM_CONFIG",
        "EKM_BACKUP_PASSPHRASE",
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "EKM_WEBHOOK_SECRET",
        "NO_COLOR",
    ):
        assert var in main, var
    assert ".B 70" in main  # the internal-error code of the exit table


def test_config_page_lists_every_schema_option(repo_root: Path) -> None:
    from ekm.config import KEY_OPTIONS, SCHEMA

    page = (repo_root / "man" / "ekm.toml.5").read_text()
    for section, options in SCHEMA.items():
        assert f'.SS "[{section}]"' in page
        for name in options:
            assert f".B {name}\n" in page, f"[{section}] {name}"
    for name in KEY_OPTIONS:
        assert f".B {name}\n" in page


def _copy(repo_root: Path, dst: Path) -> Path:
    for sub in ("completions", "man"):
        shutil.copytree(repo_root / sub, dst / sub)
    return dst


def test_check_fails_on_an_edited_page(repo_root: Path, tmp_path: Path, capsys) -> None:
    root = _copy(repo_root, tmp_path)
    page = root / "man" / "ekm-rotate.1"
    page.write_text(page.read_text().replace("\\-\\-check", "\\-\\-chek", 1))
    assert gen.main(["--check", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "stale: man/ekm-rotate.1" in err
    assert "python -m ekm.cli.gen" in err


def test_check_fails_on_missing_and_leftover_files(repo_root: Path, tmp_path: Path) -> None:
    root = _copy(repo_root, tmp_path)
    (root / "completions" / "ekm.fish").unlink()
    (root / "man" / "ekm-oldcommand.1").write_text(".TH X 1\n")
    bad = gen.stale(root)
    assert "completions/ekm.fish" in bad
    assert "man/ekm-oldcommand.1 (not generated any more)" in bad


def test_write_regenerates_and_then_check_passes(repo_root: Path, tmp_path: Path) -> None:
    root = _copy(repo_root, tmp_path)
    (root / "man" / "ekm-keys.1").write_text("stale\n")
    assert gen.main(["--root", str(root)]) == 0
    assert gen.main(["--check", "--root", str(root)]) == 0
    assert (root / "man" / "ekm-keys.1").stat().st_mode & 0o777 == 0o644


def test_completion_scripts_are_what_typer_prints(repo_root: Path) -> None:
    env = {"_EKM_COMPLETE": "source_bash", "PATH": __import__("os").environ["PATH"]}
    res = subprocess.run(["ekm"], env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 0
    assert res.stdout.strip() == (repo_root / "completions" / "ekm.bash").read_text().strip()
