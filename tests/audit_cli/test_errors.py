"""Bad input to ``ekm audit``: one line, the right exit code, nothing written."""

from __future__ import annotations

import pytest


def test_unknown_rule_set_is_exit_2_with_the_list(run):
    line = run("audit", "--compliance", "fips-140-3,sox").expect_error(
        2, "unknown rule set 'sox'", "valid ids:", "fips-140-3", "nist-800-57"
    )
    assert "or all" in line


def test_malformed_custom_rule_file_is_exit_3_naming_file_rule_and_field(run, tmp_path):
    bad = tmp_path / "acme.toml"
    bad.write_text(
        'id = "acme"\ntitle = "ACME"\nversion = "1"\nsources = [{ id = "A", title = "A" }]\n'
        '[[rule]]\nid = "ACME-RSA"\ntitle = "t"\nseverity = "high"\ncite = "A 1"\n'
        "[rule.require]\nmin_keybits = 4096\n"
    )
    run("audit", "--rules", str(bad)).expect_error(
        3, "acme.toml", "rule 'ACME-RSA'", "require.min_keybits"
    )
    run("audit", "--rules", str(tmp_path / "missing.toml")).expect_error(3, "missing.toml")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--fail-on", "severe"], ["--fail-on 'severe'", "low, medium, high, critical"]),
        (["--format", "pdf"], ["--format 'pdf'", "sarif"]),
        (["--as-of", "next tuesday"], ["--as-of"]),
        (["--list", "--compliance", "hipaa"], ["--list takes none of --compliance"]),
        (["--verify-log", "--format", "json"], ["--verify-log takes none of --format"]),
        (["--list", "--verify-log"], ["--list takes none of --list"]),
        (["--format", "table", "--output", "x"], ["--output needs --format json"]),
    ],
)
def test_usage_errors_are_exit_2(run, args, fragments):
    run("audit", *args).expect_error(2, *fragments)


def test_json_flag_contradicting_format_is_exit_2(run):
    run("--json", "audit", "--format", "sarif").expect_error(2, "--json and --format sarif")


def test_output_to_a_directory_is_refused(run, tmp_path):
    run("audit", "--format", "json", "--output", str(tmp_path)).expect_error(2, "is a directory")
