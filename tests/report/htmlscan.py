"""Parse a rendered HTML report with the standard library's html.parser, for assertions."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser


class Scan(HTMLParser):
    """Collects tags, attributes, data-figure values and the body rows of every table by id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.attrs: list[tuple[str, str, str | None]] = []
        self.figures: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.text: list[str] = []
        self._figure: str | None = None
        self._table: str | None = None
        self._in_body = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.stack_errors = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        for k, v in attrs:
            self.attrs.append((tag, k, v))
        a = dict(attrs)
        if "data-figure" in a:
            self._figure = a["data-figure"]
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._figure = None
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._figure is not None:
            self.figures[self._figure] = data
        if self._cell is not None:
            self._cell.append(data)


def scan(html: str) -> Scan:
    s = Scan()
    s.feed(html)
    s.close()
    return s
