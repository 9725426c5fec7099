# -*- test-case-name: tests.scada.reports.test_export -*-
"""Tables to files: CSV for 1C and spreadsheets, XLSX through openpyxl.

Shared by every export of the API (alarm journal, reports, billing pulls),
so that they all guard against the same spreadsheet traps:

- **CSV** is UTF-8 with a BOM (Excel on a Russian Windows then opens it
  with the right letters, and 1C's text import detects the encoding),
  ``;`` between fields (the list separator of the Russian locale, where
  ``,`` is the decimal separator), CRLF line ends.  Numbers are written
  with a decimal comma when asked (``decimal_comma``): 1C's and Excel's
  Russian number parsing expect ``12,5``; with a decimal point they read
  ``12.5`` as a date or text.  Text a spreadsheet would take for a formula
  (starting with ``= + - @``, tab or CR) gets a leading ``'`` (OWASP: CSV
  injection); numbers stay numbers.
- **XLSX** is written with openpyxl in write-only mode (rows streamed, not
  kept as cell objects), bold frozen header row, text kept as text (a
  value starting with ``=`` is a string cell, never a live formula) and
  control characters openpyxl refuses removed.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: What a CSV cell must not start with, lest a spreadsheet take it for a formula (OWASP: CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: The byte order mark that starts every CSV export.
BOM = "\ufeff"
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def csv_cell(value):
    """Return a CSV cell's value; text a spreadsheet would run as a formula gets a leading ``'``.

    Numbers stay as they are (``-3.5`` is a value, not a formula).
    """
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def number_text(value: float, decimal_comma: bool) -> str:
    """Return a number as CSV text: shortest round-trip form, no exponent, ``,`` or ``.`` as decimal separator."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return ""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = f"{value:.15f}".rstrip("0").rstrip(".")
    if text.endswith(".0"):
        text = text[:-2]
    return text.replace(".", ",") if decimal_comma else text


class CsvWriter:
    """Rows to CSV text chunks (``;``, CRLF, formula-safe text, numbers with the chosen decimal separator).

    `header` returns the BOM and the header line; `rows` returns the text
    of more rows, so that a long export can be streamed chunk by chunk.
    """

    def __init__(self, decimal_comma: bool = False) -> None:
        """Write numbers with a decimal comma if ``decimal_comma``, else with a point."""
        self.decimal_comma = decimal_comma

    def header(self, headers: Sequence[str]) -> str:
        """Return the BOM and the header line."""
        return BOM + self.rows([headers])

    def rows(self, rows: Iterable[Sequence]) -> str:
        """Return the CSV text of ``rows`` (None is an empty cell)."""
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        for row in rows:
            writer.writerow([self._cell(v) for v in row])
        return out.getvalue()

    def _cell(self, value):
        if value is None:
            return ""
        if isinstance(value, (int, float)):
            return number_text(value, self.decimal_comma)
        return csv_cell(value)


def csv_bytes(headers: Sequence[str], rows: Iterable[Sequence], decimal_comma: bool = False) -> bytes:
    """Return a whole CSV file (BOM, header line, rows) as UTF-8 bytes."""
    writer = CsvWriter(decimal_comma)
    return (writer.header(headers) + writer.rows(rows)).encode("utf-8")


@dataclass
class Sheet:
    """One worksheet of an XLSX export: a title, a header row, data rows and column widths (characters)."""

    title: str
    headers: Sequence[str]
    rows: Iterable[Sequence]
    widths: Sequence[float] = field(default_factory=tuple)
    #: Formats by column index, e.g. ``{5: "0.000"}`` (openpyxl number formats).
    formats: dict[int, str] = field(default_factory=dict)


def xlsx_bytes(sheets: Sequence[Sheet]) -> bytes:
    """Return an XLSX workbook of ``sheets`` (write-only: rows are streamed, not kept as cell objects).

    Slow for big tables (some 0.15 s per thousand rows): call it off the
    event loop (``run_in_executor``).
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    bold = Font(bold=True)
    for spec in sheets:
        # Excel limits sheet titles to 31 characters and forbids a few.
        title = "".join(c for c in spec.title if c not in "[]:*?/\\")[:31] or "Sheet"
        sheet = book.create_sheet(title)
        sheet.freeze_panes = "A2"
        for index, width in enumerate(spec.widths, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = width
        header_cells = []
        for text in spec.headers:
            cell = WriteOnlyCell(sheet, value=text)
            cell.font = bold
            header_cells.append(cell)
        sheet.append(header_cells)

        def text_cell(value: str):
            # Free text is text: control characters would make openpyxl refuse the cell (a 500 for
            # the whole export), and a text starting with "=" would become a live formula in Excel.
            value = ILLEGAL_CHARACTERS_RE.sub("", value)
            if not value.startswith("="):
                return value
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"
            return cell

        formats = spec.formats
        for row in spec.rows:
            out = []
            for index, value in enumerate(row):
                if isinstance(value, str):
                    out.append(text_cell(value))
                elif isinstance(value, float) and not math.isfinite(value):
                    out.append(None)
                elif index in formats and isinstance(value, (int, float)) and not isinstance(value, bool):
                    cell = WriteOnlyCell(sheet, value=value)
                    cell.number_format = formats[index]
                    out.append(cell)
                else:
                    out.append(value)
            sheet.append(out)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
