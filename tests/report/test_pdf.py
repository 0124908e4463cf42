"""The PDF report, checked with poppler: pdftotext finds the figures, pdftoppm renders pages."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ekm.report.model import ReportData
from ekm.report.pdf import render_pdf
from tests.report.synthetic import FINGERPRINT, HEAD

pytestmark = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="poppler-utils is not installed"
)
SECRET = "S3CR3T-KEY-MATERIAL-0123456789abcdef"


def _text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    )
    return out.stdout


def test_pdf_text_has_summary_figures_and_every_key(data: ReportData, tmp_path: Path) -> None:
    text = _text(render_pdf(data), tmp_path)
    t = data.totals()
    flat = " ".join(text.split())
    assert f"Keys: {t.keys} " in flat
    assert f"Rotation: {t.keys_by_dueness['overdue']} overdue" in flat
    assert f"{t.due_within_30d} overdue or due within 30 days" in flat
    assert "Findings: 4 (1 critical, 1 high, 1 medium, 1 low)" in flat
    assert f"{t.rotations} rotations, {t.failures} failed operations" in flat
    assert f"Key inventory ({t.keys})" in flat
    for k in data.keys:
        if k.name.isidentifier():
            assert k.name in text, k.name
    assert HEAD in flat and FINGERPRINT in flat
    assert "Since the previous report of 2026-03-01T12:00:00Z." in flat
    assert "nist-800-57 (NIST SP 800-57): pass; 9/9 rules passed" in flat
    assert "2026-01-01T00:00:00Z to 2026-03-31T12:00:00Z (UTC)" in flat
    # the inventory table has one line per key with its due-ness in the last column
    rows = [ln for ln in text.splitlines() if re.match(r"\s*key_\d{5}\s", ln)]
    inventory_rows = rows[-40:]
    assert len({r.split()[0] for r in inventory_rows}) == 40


def test_every_page_renders(data: ReportData, tmp_path: Path) -> None:
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(render_pdf(data))
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, check=True, text=True)
    pages = int(re.search(r"Pages:\s+(\d+)", info.stdout).group(1))
    assert pages >= 3
    subprocess.run(
        ["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "p")],
        check=True,
        capture_output=True,
    )
    images = sorted(tmp_path.glob("p-*.png"))
    assert len(images) == pages
    assert all(p.stat().st_size > 1000 for p in images)


def test_pdf_is_deterministic_and_titled(small: ReportData, tmp_path: Path) -> None:
    a, b = render_pdf(small), render_pdf(small)
    assert a == b and a.startswith(b"%PDF-")
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(a)
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, check=True, text=True)
    assert "ekm security report" in info.stdout


def test_markup_in_data_is_not_interpreted(small: ReportData, tmp_path: Path) -> None:
    hostile = dataclasses.replace(
        small, home="<b>/srv</b> & <font color=red>x</font>", ekm_version="0.1.0 <br/>"
    )
    flat = " ".join(_text(render_pdf(hostile), tmp_path).split())
    assert "Home: <b>/srv</b> & <font color=red>x</font>" in flat
    assert "<script>alert(1)</script>|x" in flat  # the hostile key name, as text


def test_non_latin_names_do_not_break_the_build(small: ReportData, tmp_path: Path) -> None:
    k = dataclasses.replace(small.keys[3], name="clé_ключ_鍵")
    pdf = render_pdf(dataclasses.replace(small, keys=[*small.keys, k]))
    assert "clé" in _text(pdf, tmp_path)


def test_material_never_rendered(small: ReportData, tmp_path: Path) -> None:
    doc = small.to_dict()
    doc["keys"][0]["material"] = SECRET
    pdf = render_pdf(ReportData.from_dict(doc))
    assert SECRET.encode() not in pdf
    assert SECRET not in _text(pdf, tmp_path)
