"""Results out as CSV or Excel, safe to open in a spreadsheet program.

Why: uploaded cells travel back to the user's spreadsheet. A cell such as
=HYPERLINK(...) or @SUM(...) would run as a formula there (CSV/formula
injection), so text starting with = + - @ TAB or CR gets a leading
apostrophe, the convention spreadsheets show as plain text. Real numbers
(numeric columns, and text that is just a number such as -12.5) are left
alone so sums still work. Lists (problems) become '; '-joined text.
"""
from __future__ import annotations

import io
import re

import pandas as pd

DANGEROUS_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def safe_cell(value: object) -> object:
    """One cell made inert: formula-like text prefixed with ', numbers untouched."""
    if isinstance(value, (list, tuple)):
        value = "; ".join(str(v) for v in value)
    if isinstance(value, str) and value.startswith(DANGEROUS_STARTS) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with every text cell made safe and a named index (e.g. 'row') kept as a column."""
    out = df.reset_index() if df.index.name else df.copy()
    out.columns = [str(safe_cell(str(c))) for c in out.columns]
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(safe_cell).astype(object)
    return out


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """UTF-8 CSV with a BOM (Excel then shows accents right), CRLF lines (RFC 4180), formula-safe.

    CRLF also makes the csv writer quote any cell holding a stray CR, which
    would otherwise split the row for every reader.
    """
    return safe_frame(df).to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")


def to_excel_bytes(df: pd.DataFrame, problems: pd.DataFrame | None = None, sheet_name: str = "Results") -> bytes:
    """An .xlsx with the results sheet and, if given, a Problems sheet; formula-safe."""
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        safe_frame(df).to_excel(writer, sheet_name=sheet_name[:31], index=False)
        if problems is not None:
            safe_frame(problems).to_excel(writer, sheet_name="Problems", index=False)
    return buffer.getvalue()


def problems_report(results: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """One line per problem (row, field, problem) from `validate_record` results, for fixing by hand."""
    rows = results.to_dict("records") if isinstance(results, pd.DataFrame) else results
    lines = []
    for result in rows:
        for problem in result.get("problems") or []:
            field, sep, text = str(problem).partition(": ")
            lines.append({"row": result.get("row"), "field": field if sep else "", "problem": text if sep else field})
    return pd.DataFrame(lines, columns=["row", "field", "problem"])
