"""The format dispatcher and the file writer used by `ekm report --format/--output`."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ekm.errors import StorageError, UsageError
from ekm.report import FORMATS, render, write_report
from ekm.report.model import ReportData


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders(small: ReportData, fmt: str) -> None:
    out = render(small, fmt)
    head = {
        "html": b"<!DOCTYPE html>",
        "pdf": b"%PDF-",
        "markdown": b"# ekm security report",
        "json": b"{",
    }[fmt]
    assert out.startswith(head)


def test_json_format_round_trips(small: ReportData) -> None:
    doc = json.loads(render(small, "json"))
    assert doc["totals"]["findings"] == 4
    assert doc["due_keys"][0] == "database_encryption"
    assert ReportData.from_dict(doc) == small


def test_unknown_format_is_a_usage_error(small: ReportData) -> None:
    with pytest.raises(UsageError) as exc:
        render(small, "docx")
    assert str(exc.value) == "unknown report format 'docx'; use one of html, pdf, markdown, json"
    assert exc.value.exit_code == 2


def test_write_report_is_private_and_atomic(small: ReportData, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    write_report(small, "html", out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_bytes() == render(small, "html")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary left


def test_write_report_into_missing_directory_fails_cleanly(small, tmp_path: Path) -> None:
    with pytest.raises(StorageError) as exc:
        write_report(small, "markdown", tmp_path / "nope" / "r.md")
    assert "could not write" in str(exc.value) and exc.value.exit_code == 4


def test_importing_the_package_loads_no_renderer() -> None:
    code = (
        "import sys, ekm.report; "
        "heavy = ('reportlab', 'ekm.report.pdf', 'ekm.report.charts'); "
        "bad = [m for m in heavy if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
