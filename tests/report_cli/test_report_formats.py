"""Every format renders from the real command; no secret reaches any output."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ekm.report.model import ReportData
from tests.reliability.leakcheck import LeakCheck
from tests.report.htmlscan import Scan
from tests.report_cli.conftest import Varied

CHARTS = 4  # keys by type, by backend, rotation timeline, findings by severity


def _write(run: Any, tmp_path: Path, fmt: str, *extra: str) -> bytes:
    out = tmp_path / f"report.{fmt}"
    res = run("report", "--format", fmt, "--output", str(out), *extra).expect_ok()
    assert res.stdout == ""
    assert res.stderr == ""  # off a terminal: silent on success (issue 21, cron)
    assert out.stat().st_mode & 0o777 == 0o600
    return out.read_bytes()


def test_html_is_self_contained_with_one_svg_per_chart(run: Any, tmp_path: Path) -> None:
    html = _write(run, tmp_path, "html", "--compliance", "bsi-tr-02102-1").decode()
    s = Scan()
    s.feed(html)
    s.close()
    assert s.stack_errors == 0
    assert s.tags["svg"] == s.tags["figure"] == CHARTS
    for tag, name, value in s.attrs:
        if name in ("src", "href", "xlink:href", "srcset", "action"):
            assert "http" not in (value or ""), (tag, name, value)
    assert "http://" not in html and "https://" not in html
    figures = {k: v for k, v in s.figures.items()}
    assert figures["keys"] == "8"
    assert len(s.tables["inventory-table"]) == 8
    assert int(figures["findings"]) == len(s.tables["findings-table"]) > 0


def test_markdown_and_json_from_one_model(run: Any, tmp_path: Path) -> None:
    md = _write(run, tmp_path, "markdown", "--as-of", "+25d").decode()
    doc = json.loads(_write(run, tmp_path, "json", "--as-of", "+25d"))
    data = ReportData.from_dict(doc)  # the JSON is a valid model (hostile-input parser)
    assert md.startswith("# ekm security report")
    for key in data.keys:
        assert f"| {key.name} |" in md
    assert f"**Keys:** {len(data.keys)}" in md
    assert f"**Findings:** {len(data.findings)}" in md


def test_pdf_text_and_every_page_render(run: Any, tmp_path: Path, varied: Varied) -> None:
    pdf = _write(run, tmp_path, "pdf", "--compliance", "bsi-tr-02102-1", "--since", varied.since())
    assert pdf.startswith(b"%PDF-")
    log = (varied.path / "audit.log").read_bytes().splitlines()
    head = hashlib.sha256(log[-2]).hexdigest()  # before the report's own record
    doc = json.loads(
        run("report", "--format", "json", "--compliance", "bsi-tr-02102-1", "--since",
            varied.since()).stdout
    )  # fmt: skip
    path = tmp_path / "report.pdf"
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout
    flat = " ".join(text.split())
    for key in doc["keys"]:
        assert key["name"] in text
    assert "legacy_rsa" in text and "rsa-2048" in text
    t = doc["totals"]
    assert f"Keys: {t['keys']} (by type:" in flat
    assert f"Findings: {t['findings']} (" in flat
    assert f"{t['rotations']} rotations, {t['failures']} failed operations" in flat
    assert f"Monitor alerts: {t['alerts']}" in flat
    assert head[:16] in flat.replace(" ", "")
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True, text=True)
    pages = int(next(x for x in info.stdout.splitlines() if x.startswith("Pages:")).split()[1])
    assert pages >= 2
    subprocess.run(["pdftoppm", "-r", "20", "-png", str(path), str(tmp_path / "page")], check=True)
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) == pages
    assert all(p.stat().st_size > 200 for p in images)


@pytest.mark.parametrize("fmt", ["html", "markdown", "json"])
def test_text_formats_go_to_stdout(run: Any, fmt: str) -> None:
    res = run("report", "--format", fmt).expect_ok()
    assert res.stdout.strip()
    assert res.stderr == ""  # stdout not a terminal: silent on success (issue 21, cron)


def _ekm(env: dict[str, str], *args: str, stdout: Any = subprocess.PIPE) -> Any:
    """The installed ``ekm`` with byte output (script_runner decodes stdout as text)."""
    return subprocess.run(
        [shutil.which("ekm") or "ekm", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=120,
        check=False,
    )


def test_pdf_to_a_pipe_is_allowed(ekm_env: dict[str, str]) -> None:
    res = _ekm(ekm_env, "report", "--format", "pdf", "--compliance", "pci-dss")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(b"%PDF-") and res.stdout.rstrip().endswith(b"%%EOF")


def test_pdf_refused_on_a_terminal(ekm_env: dict[str, str], varied: Varied) -> None:
    primary, secondary = os.openpty()
    try:
        res = _ekm(ekm_env, "report", "--format", "pdf", stdout=secondary)
    finally:
        os.close(secondary)
        os.close(primary)
    assert res.returncode == 2
    assert res.stderr.decode().splitlines() == [
        "ekm: error: a PDF is binary: pass --output FILE, or redirect stdout to a file"
    ]
    assert not (varied.path / "state" / "last-report.json").exists()  # refused before any work


def test_output_replaces_an_existing_file_like_ekm_audit(run: Any, tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    out.write_text("old contents\n")
    run("report", "--format", "markdown", "--output", str(out)).expect_ok()
    assert out.read_text().startswith("# ekm security report")
    assert out.stat().st_mode & 0o777 == 0o600


def _secrets(home: Path) -> LeakCheck:
    """Every key version's material (via KeyManager.get_key / material) and the master key."""
    from ekm.manager import KeyManager

    mgr = KeyManager(home, env={})
    check = LeakCheck()
    for key in mgr.list_keys():
        check.secret(f"{key.name} primary", mgr.get_key(key.name))
        for v in key.versions:
            check.secret(f"{key.name} v{v.version}", mgr.material(key.name, v.version))
    check.secret("master.key", (home / "master.key").read_bytes())
    assert len(check.secrets) >= 10
    return check


def test_no_material_in_any_output(run: Any, tmp_path: Path, varied: Varied) -> None:
    check = _secrets(varied.path)
    for fmt in ("html", "markdown", "json", "pdf"):
        out = tmp_path / f"r.{fmt}"
        res = run("report", "--format", fmt, "--output", str(out), "--since", varied.since())
        res.expect_ok()
        check.output(f"{fmt} file", out.read_bytes())
        check.output(f"{fmt} stderr", res.stderr)
    res = run("report", "--format", "json")
    check.output("json stdout", res.stdout)
    text = subprocess.run(
        ["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, check=True
    ).stdout
    check.output("pdf text", text)
    check.output("baseline", (varied.path / "state" / "last-report.json").read_bytes())
    check.assert_clean()
    # and the check would have caught a leak: plant one and look again
    some = next(iter(check.secrets.values()))
    check.output("planted", b"x" + some.hex().encode())
    assert check.find()
