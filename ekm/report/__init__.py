"""Security reports: one document tying keys, compliance, the audit log and alerts together.

The manager fills a :class:`~ekm.report.model.ReportData`; this package only renders it, as
HTML (self-contained), PDF (reportlab), Markdown or JSON. Nothing here reads the keystore, so a
report can never show more than the model holds, and the model holds no key material.
Renderers are imported on use: ``import ekm.report`` loads neither reportlab nor the charts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ekm.errors import UsageError

if TYPE_CHECKING:  # the model is imported by whoever builds one; KeyManager stays light
    from ekm.report.model import ReportData

FORMATS = ("html", "pdf", "markdown", "json")


def render(data: ReportData, fmt: str) -> bytes:
    """The report in ``fmt`` as bytes (UTF-8 for the text formats); UsageError for others."""
    if fmt == "html":
        from ekm.report.html import render_html

        return render_html(data).encode()
    if fmt == "markdown":
        from ekm.report.markdown import render_markdown

        return render_markdown(data).encode()
    if fmt == "pdf":
        from ekm.report.pdf import render_pdf

        return render_pdf(data)
    if fmt == "json":
        from ekm.jsonout import dumps

        return dumps(data.validate().to_dict())
    raise UsageError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")


def write_report(data: ReportData, fmt: str, path: Path) -> None:
    """Render and write atomically, mode 0600 (a report names every key and finding)."""
    from ekm.fsutil import atomic_write

    atomic_write(path, render(data, fmt))


__all__ = ["FORMATS", "ReportData", "render", "write_report"]
