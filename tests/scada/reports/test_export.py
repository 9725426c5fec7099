"""CSV and XLSX writers shared by the exports: separators, BOM, decimal comma, formula guard, headers."""

from __future__ import annotations

import io

import pytest

from scada.reports.export import CsvWriter, Sheet, csv_bytes, csv_cell, number_text, xlsx_bytes


@pytest.mark.parametrize(("value", "comma", "text"), [
    (7.44, True, "7,44"), (7.44, False, "7.44"), (100.0, True, "100"), (-3.5, True, "-3,5"), (12, True, "12"),
    (1e-7, True, "0,0000001"), (1.5e20, False, "150000000000000000000"), (float("nan"), True, ""), (True, True, "1"),
])
def test_numbers(value, comma, text) -> None:
    """Shortest round-trip digits, never an exponent, the chosen decimal separator."""
    assert number_text(value, comma) == text


def test_csv_file() -> None:
    """BOM, ';', CRLF, None as empty, quoting where needed, formula-looking text defused, numbers kept."""
    data = csv_bytes(["Счёт", "Значение", "Текст"], [["001", 2.5, "a;b"], [None, -1.0, "=SUM(A1)"], ["x", 3, "@x"]],
                     decimal_comma=True)
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").split("\r\n") == [
        "Счёт;Значение;Текст", '001;2,5;"a;b"', ";-1;'=SUM(A1)", "x;3;'@x", ""]
    writer = CsvWriter()
    assert writer.rows([[1.25, "-x"]]) == "1.25;'-x\r\n"
    assert csv_cell("-3") == "'-3" and csv_cell(-3) == -3


def test_xlsx_sheets() -> None:
    """Several sheets; bold frozen headers; text kept as text; control characters dropped; NaN empty."""
    from openpyxl import load_workbook

    data = xlsx_bytes([Sheet("Показания: [1]", ["А", "Б"], [["=1+1", 2.5], ["a\x00b", float("nan")]], (10, 12),
                             {1: "0.000"}), Sheet("Second", ["x"], [])])
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["Показания 1", "Second"]
    sheet = book["Показания 1"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows == [("А", "Б"), ("=1+1", 2.5), ("ab", None)]
    assert sheet["A1"].font.bold and sheet.freeze_panes == "A2" and sheet["A2"].data_type == "s"
    assert sheet["B2"].number_format == "0.000"
