"""Exports open safely in spreadsheet programs: no formula runs, numbers stay numbers."""
from __future__ import annotations

import csv
import io

import openpyxl
import pandas as pd

from streamlit_app.validation.export import problems_report, safe_cell, to_csv_bytes, to_excel_bytes
from streamlit_app.validation.record_check import validate_record
from streamlit_app.validation.records import read_sheet

HOSTILE = ["=HYPERLINK(\"http://evil\",\"x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1"]


def _frame() -> pd.DataFrame:
    df = pd.DataFrame({
        "Name": ["Ann", "Bo", "Cy", "Di", "Ed", "Flo"],
        "Note": HOSTILE,
        "Balance": [-12.5, 3.0, -1.0, 0.0, 2.0, -7.25],
        "Phone": ["+1 212 736 5000", "-5", "212-736-5000", "ok", "", "1.5e3"],
    })
    df.index = pd.RangeIndex(2, 8, name="row")
    return df


def test_formula_like_text_gets_an_apostrophe():
    for value in HOSTILE:
        assert safe_cell(value) == "'" + value
    assert safe_cell("Ann") == "Ann" and safe_cell("") == ""
    assert safe_cell("-12.5") == "-12.5" and safe_cell("+3") == "+3"  # plain numbers are not formulas
    assert safe_cell(-3) == -3
    assert safe_cell(["phone: too short", "e-mail: no @"]) == "phone: too short; e-mail: no @"


def test_csv_export_is_inert_and_keeps_the_row_numbers():
    data = to_csv_bytes(_frame())
    assert data.startswith(b"\xef\xbb\xbf")  # Excel reads the accents right
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert len(rows) == 7  # a CR inside a cell did not split its row
    assert rows[0] == ["row", "Name", "Note", "Balance", "Phone"]
    cells = [cell for row in rows[1:] for cell in row]
    assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in cells)
    assert [row[3] for row in rows[1:]] == ["-12.5", "3.0", "-1.0", "0.0", "2.0", "-7.25"]
    assert rows[1][4] == "'+1 212 736 5000" and rows[2][4] == "-5"
    again = read_sheet(data, "export.csv")  # our own reader takes it back
    assert again["Note"].tolist() == ["'" + v for v in HOSTILE]


def test_excel_export_has_no_formulas_and_numeric_numbers():
    problems = pd.DataFrame({"row": [2], "field": ["phone"], "problem": ["=1+1 looks odd"]})
    workbook = openpyxl.load_workbook(io.BytesIO(to_excel_bytes(_frame(), problems=problems)))
    assert workbook.sheetnames == ["Results", "Problems"]
    sheet = workbook["Results"]
    cells = [cell for row in sheet.iter_rows(min_row=2) for cell in row]
    assert not any(cell.data_type == "f" for cell in cells)
    balances = [row[3].value for row in sheet.iter_rows(min_row=2)]
    assert balances == [-12.5, 3, -1, 0, 2, -7.25]
    assert all(row[3].data_type == "n" for row in sheet.iter_rows(min_row=2))
    assert sheet["C2"].value == "'" + HOSTILE[0]
    assert workbook["Problems"]["C2"].value == "'=1+1 looks odd"


def test_problems_report_has_one_line_per_problem():
    results = [
        validate_record({"row": 2, "phone": "12345", "email": "a@", "street": "1 Main St", "city": "Springfield",
                         "state": "IL", "zip": "62701"}, {}),
        validate_record({"row": 3, "phone": "217-544-1234", "email": "b@c.com", "street": "1 Main St",
                         "city": "Springfield", "state": "IL", "zip": "62701"}, {}),
    ]
    report = problems_report(results)
    assert report.to_dict("records") == [
        {"row": 2, "field": "phone", "problem": "too short"},
        {"row": 2, "field": "e-mail", "problem": "There must be something after the @-sign."},
    ]
    assert problems_report(pd.DataFrame(results)).equals(report)
    assert list(problems_report([]).columns) == ["row", "field", "problem"]
