"""Read an uploaded sheet (CSV or .xlsx) into a table of strings and map its columns.

Why: users upload whatever their spreadsheet program saved: Excel's UTF-16 or
cp1252 CSVs, semicolon CSVs from European locales, workbooks with several
sheets. Everything downstream wants one shape: a DataFrame of strings whose
index is the row number the user sees in their sheet (header = row 1), and
records keyed by role (name, phone, email, ...).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pandas as pd

from streamlit_app.warm_workers import pause_for_handout, warm_pool_workers
from utils.decode_guard import (
    UNTRUSTED_POOL,
    DecodeLimits,
    LimitExceeded,
    check_sheet_bytes,
    check_sheet_columns,
    check_sheet_rows,
    check_zip,
    current_limits,
)
from utils.smart_storage import TaskSubmitter

ROLES = (
    "name", "first_name", "last_name", "phone", "email", "address",
    "house_number", "street", "address_2", "city", "state", "zip", "country", "dob", "identifier",
)
DELIMITERS = (",", ";", "\t", "|")
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls
_SNIFF_LINES = 50


class SheetError(ValueError):
    """An upload that cannot be read as a table; the message is meant for the user."""


# --------------------------------------------------------------------------- reading

def is_excel(data: bytes) -> bool:
    """Excel by content (a zip archive), so a workbook renamed to .csv still opens."""
    return data[:4] == _ZIP_MAGIC


def list_sheets(data: bytes, filename: str, limits: DecodeLimits | None = None) -> list[str]:
    """Sheet names of a workbook, or [] for a CSV (which has exactly one table)."""
    if not data:
        raise SheetError(f"{filename}: the file is empty")
    if not is_excel(data):
        return []
    _guard(filename, check_sheet_bytes, len(data), limits)
    workbook = _open_workbook(data, filename, limits)
    try:
        return list(workbook.sheetnames)
    finally:
        workbook.close()


def read_sheet(data: bytes, filename: str, sheet: str | None = None,
               limits: DecodeLimits | None = None) -> pd.DataFrame:
    """The table in an upload: strings only, fully empty rows dropped, index = sheet row number.

    Bytes are checked first, a workbook's zip parts before openpyxl opens it, and rows, columns
    and cells while they are read: an oversized sheet stops at the first row past a limit
    (MAX_SHEET_MB, MAX_SHEET_ROWS, MAX_SHEET_COLUMNS, MAX_SHEET_CELLS) with a message naming it.
    """
    limits = limits or current_limits()
    if not data:
        raise SheetError(f"{filename}: the file is empty")
    if data[:4] == _OLE_MAGIC:
        raise SheetError(f"{filename}: old Excel .xls files are not supported; save it as .xlsx or CSV")
    _guard(filename, check_sheet_bytes, len(data), limits)
    if is_excel(data):
        rows = _excel_rows(data, filename, sheet, limits)
    else:
        if filename.lower().endswith((".xlsx", ".xlsm")):
            raise SheetError(f"{filename}: not a readable Excel file (it is not a zip archive)")
        rows = _csv_rows(data, filename, limits)
    return _table(rows, filename)


@dataclass(frozen=True)
class SheetRead:
    """What reading an upload found: the workbook's sheet names ([] for a CSV), the sheet read and its
    table, or the SheetError's message (a refusal is a result: it crosses a process boundary intact)."""

    sheets: list[str]
    sheet: str | None
    frame: pd.DataFrame | None
    error: str = ""

    def table(self) -> pd.DataFrame:
        """The table, or the SheetError that stopped the read."""
        if self.frame is None:
            raise SheetError(self.error)
        return self.frame


def read_upload(data: bytes, filename: str, sheet: str | None = None) -> SheetRead:
    """List the sheets and read one (the first unless named): the unit of work a sheet-reading job runs."""
    _arrow_within_address_cap()
    try:
        sheets = list_sheets(data, filename)
        chosen = sheet if sheet in sheets else (sheets[0] if sheets else None)
        return SheetRead(sheets, chosen, read_sheet(data, filename, chosen))
    except SheetError as exc:
        return SheetRead([], sheet, None, str(exc))


def _arrow_within_address_cap() -> None:
    """In a worker with an address-space cap (the untrusted pool), give pyarrow (pandas' string columns) the system
    allocator. Its default, mimalloc, reserves 1 GiB of address space at its first allocation: with the libraries'
    own mappings that took a 10,000-row sheet (20 MB in use) past the cap, refused as "needed more memory than the
    512 MB one item may use". Without a cap (the server, a script) the default stays."""
    try:
        import resource
    except ImportError:  # not a POSIX system: no address-space cap either
        return
    if resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY:
        return
    import pyarrow

    if pyarrow.default_memory_pool().backend_name != "system":
        pyarrow.set_memory_pool(pyarrow.system_memory_pool())


def start_sheet_read(manager: TaskSubmitter, data: bytes, filename: str, sheet: str | None = None) -> Future:
    """Read an upload as a job in the untrusted pool's memory-capped worker processes, never in the page's
    script thread: the Future carries a SheetRead (its table, or the message naming the limit hit).
    A file over MAX_SHEET_MB is refused here, before its bytes are shipped to a worker."""
    try:
        _guard(filename, check_sheet_bytes, len(data), None)
    except SheetError as exc:
        refused: Future = Future()
        refused.set_result(SheetRead([], sheet, None, str(exc)))
        return refused
    return manager.submit_task(read_upload, data, filename, sheet, task_name="read sheet", pool=UNTRUSTED_POOL)


def warm_sheet_reader(manager: Any) -> None:
    """Start the untrusted pool's worker processes and read a tiny sheet in each while the visitor picks a file."""
    warm_pool_workers(manager, UNTRUSTED_POOL, _warm_reader, "warm sheet reader")


def _warm_reader(_worker: int) -> int:
    """In a worker process: import the reader and pandas, and read a small sheet once."""
    read_upload(b"Name,Phone\nAnn Lee,555-0100\n", "warm.csv")
    pause_for_handout()
    return _worker


def _guard(filename: str, check: Callable[[int, DecodeLimits | None], None], value: int,
           limits: DecodeLimits | None) -> None:
    """Run one decode_guard check, turning its refusal into a SheetError that names the file."""
    try:
        check(value, limits)
    except LimitExceeded as exc:
        raise SheetError(f"{filename}: {exc}") from exc


def _bounded_rows(rows: Iterable[tuple[int, list[str]]], filename: str,
                  limits: DecodeLimits) -> list[tuple[int, list[str]]]:
    """Collect (row number, cells), stopping at the first row past the rows, columns or cells limit."""
    kept: list[tuple[int, list[str]]] = []
    cells = 0
    max_rows, max_columns, max_cells = limits.max_sheet_rows, limits.max_sheet_columns, limits.max_sheet_cells
    for number, row in rows:
        width = len(row)
        cells += width
        if width > max_columns:
            _guard(filename, check_sheet_columns, width, limits)
        if number > max_rows or cells > max_cells:
            try:
                check_sheet_rows(number, cells, limits)
            except LimitExceeded as exc:
                raise SheetError(f"{filename}: {exc}") from exc
        kept.append((number, row))
    return kept


def decode_text(data: bytes, filename: str = "file") -> tuple[str, str]:
    """Text and encoding name: BOMs first, then UTF-8, then cp1252/Latin-1."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise SheetError(f"{filename}: starts like UTF-16 text but cannot be decoded ({exc.reason})") from exc
    if b"\x00" in data[:4096]:
        utf16 = _utf16_without_bom(data)
        if utf16 is not None:
            return utf16, "utf-16"
        raise SheetError(f"{filename}: this is a binary file, not a CSV or Excel table")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text without a BOM shows NULs in every other byte; anything else is binary."""
    head = data[:4096]
    for encoding, zeros in (("utf-16-le", head[1::2]), ("utf-16-be", head[0::2])):
        if zeros and zeros.count(0) / len(zeros) > 0.9:
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                return None
    return None


def _looks_binary(text: str) -> bool:
    """Many control characters or replacement marks mean the bytes were not text."""
    sample = text[:20000]
    if not sample:
        return False
    bad = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\r\n\t") or ch == "\ufffd")
    return bad / len(sample) > 0.02


def sniff_delimiter(text: str) -> str:
    """The delimiter among , ; TAB | that splits the first lines into the most consistent columns."""
    lines = [line for line in text.splitlines()[:_SNIFF_LINES] if line.strip()]
    if not lines:
        return ","
    best, best_key = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        widths = [len(row) for row in csv.reader(lines, delimiter=delimiter)]
        if not widths:
            continue
        header_width = widths[0]
        if header_width < 2:
            continue
        agreeing = sum(1 for width in widths if width == header_width) / len(widths)
        key = (agreeing, header_width)
        if key > best_key:
            best, best_key = delimiter, key
    return best


def _csv_rows(data: bytes, filename: str, limits: DecodeLimits | None = None) -> list[tuple[int, list[str]]]:
    limits = limits or current_limits()
    text, _encoding = decode_text(data, filename)
    if _looks_binary(text):
        raise SheetError(f"{filename}: this is a binary file, not a CSV or Excel table")
    stripped = text.lstrip()
    if not stripped:
        raise SheetError(f"{filename}: the file has no text in it")
    if stripped[0] in "<{[":
        kind = "HTML/XML" if stripped[0] == "<" else "JSON"
        raise SheetError(f"{filename}: looks like {kind}, not a table; upload a CSV or .xlsx file")
    first_line = stripped[:1_000_000].split("\n", 1)[0]
    widest = max(first_line.count(delimiter) for delimiter in DELIMITERS) + 1
    if widest > limits.max_sheet_columns:  # refused before sniffing 20,000 columns four ways
        _guard(filename, check_sheet_columns, widest, limits)
    delimiter = sniff_delimiter(text)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        return _bounded_rows(enumerate(reader, start=1), filename, limits)
    except csv.Error as exc:
        raise SheetError(f"{filename}: not a readable CSV table ({exc})") from exc


def _open_workbook(data: bytes, filename: str, limits: DecodeLimits | None = None):
    import openpyxl  # lazy: only Excel uploads pay for it

    try:
        check_zip(data, limits)  # before openpyxl inflates a single part
    except LimitExceeded as exc:
        raise SheetError(f"{filename}: {exc}") from exc
    except zipfile.BadZipFile as exc:
        raise SheetError(f"{filename}: cannot open this Excel file; it looks damaged or truncated ({exc})") from exc
    try:
        return openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, EOFError, OSError, ValueError) as exc:
        raise SheetError(f"{filename}: cannot open this Excel file; it looks damaged or truncated ({exc})") from exc
    except Exception as exc:  # openpyxl raises many kinds on broken XML
        raise SheetError(f"{filename}: cannot open this Excel file ({type(exc).__name__}: {exc})") from exc


def _excel_rows(data: bytes, filename: str, sheet: str | None,
                limits: DecodeLimits | None = None) -> list[tuple[int, list[str]]]:
    limits = limits or current_limits()
    workbook = _open_workbook(data, filename, limits)
    try:
        if sheet is None:
            worksheet = workbook.worksheets[0]
        elif sheet in workbook.sheetnames:
            worksheet = workbook[sheet]
        else:
            raise SheetError(f"{filename}: there is no sheet named {sheet!r} (sheets: {', '.join(workbook.sheetnames)})")
        worksheet.reset_dimensions()  # the declared size may lie (A1:XFD1048576): measure rows as they come
        try:
            return _bounded_rows(
                ((number, [_cell_text(value) for value in values])
                 for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1)),
                filename, limits)
        except SheetError:
            raise
        except Exception as exc:  # a truncated part surfaces only while streaming rows
            raise SheetError(f"{filename}: cannot read sheet {worksheet.title!r}; the file looks damaged ({exc})") from exc
    finally:
        workbook.close()


def _cell_text(value: object) -> str:
    """Excel cell → text the way the user saw it: 12345 not 12345.0, dates as YYYY-MM-DD."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _table(rows: list[tuple[int, list[str]]], filename: str) -> pd.DataFrame:
    """Header = first non-empty row; later fully empty rows dropped; short rows padded."""
    rows = [(number, [cell.strip() for cell in cells]) for number, cells in rows]
    rows = [(number, cells) for number, cells in rows if any(cells)]
    if not rows:
        raise SheetError(f"{filename}: there is no table in this file (no non-empty rows)")
    _header_row, header = rows[0]
    data = rows[1:]
    if not data:
        raise SheetError(f"{filename}: the table has a header but no data rows")
    width = max(len(header), max(len(cells) for _, cells in data))
    columns = _column_names(header + [""] * (width - len(header)))
    # trailing empty header cells with no data are Excel's phantom columns
    while width > 1 and not columns[width - 1][1] and all(len(c) < width or not c[width - 1] for _, c in data):
        width -= 1
    names = [name for name, _given in columns[:width]]
    if width == 1 and len(names[0]) > 200:
        raise SheetError(f"{filename}: this does not look like a table (no column separators found)")
    body = [cells[:width] + [""] * (width - len(cells)) for _, cells in data]
    frame = pd.DataFrame(body, columns=names, dtype=str)
    frame.index = pd.Index([number for number, _ in data], name="row")
    return frame


def _column_names(header: list[str]) -> list[tuple[str, bool]]:
    """Unique, non-empty column names; (name, was_given)."""
    seen: dict[str, int] = {}
    out: list[tuple[str, bool]] = []
    for position, raw in enumerate(header, start=1):
        name = raw or f"column_{position}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        out.append((name, bool(raw)))
    return out


def sheet_rows(df: pd.DataFrame) -> list[int]:
    """Row numbers the user sees: the 'row' index from `read_sheet`, else header = 1, data from 2."""
    if df.index.name == "row":
        return [int(value) for value in df.index]
    return list(range(2, len(df) + 2))


# --------------------------------------------------------------------------- columns

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "first", "fname", "givenname", "forename", "christianname"),
    "last_name": ("lastname", "last", "lname", "surname", "familyname"),
    "name": ("name", "fullname", "customername", "contactname", "patronname", "requestername",
             "recipientname", "studentname", "customer", "patron", "requester", "recipient", "contact"),
    "phone": ("phone", "phonenumber", "telephone", "tel", "telno", "mobile", "cell", "cellphone",
              "mobilephone", "contactnumber", "phoneno", "mobilenumber"),
    "email": ("email", "emailaddress", "mail", "eaddress", "emailid"),
    "street": ("street", "streetaddress", "address1", "addressline1", "addr1", "line1", "street1"),
    "address": ("address", "fulladdress", "mailingaddress", "postaladdress", "homeaddress", "addr"),
    "house_number": ("housenumber", "houseno", "housenum", "streetnumber", "streetno", "streetnum",
                     "buildingnumber", "buildingno", "housenr"),
    "address_2": ("address2", "addressline2", "addr2", "line2", "street2", "streetaddress2", "address2line"),
    "city": ("city", "town", "locality", "municipality", "cityname", "suburb", "suburbtown"),
    "state": ("state", "province", "region", "st", "statecode", "stateprovince"),
    "zip": ("zip", "zipcode", "postcode", "postalcode", "postal", "zip5", "zippostalcode"),
    "country": ("country", "countrycode", "nation", "countryname"),
    "dob": ("dob", "dateofbirth", "birthdate", "birthday", "born", "birthdt", "datebirth"),
    "identifier": ("identifier", "ssn", "socsecid", "socsec", "socialsecurity", "socialsecuritynumber", "socsecno",
                   "sin", "nino", "nationalid", "nationalidnumber", "idnumber", "idno", "personid", "personalid",
                   "customerid", "customernumber", "customerno", "clientid", "clientnumber", "clientno",
                   "memberid", "membernumber", "memberno", "membershipnumber", "membershipno", "accountnumber",
                   "accountno", "accountid", "patientid", "patientnumber", "studentid", "studentnumber",
                   "employeeid", "employeenumber", "patronid", "patronnumber", "librarycard", "librarycardnumber",
                   "cardnumber", "passportnumber", "passportno", "taxid", "taxnumber", "tin", "nhsnumber", "mrn"),
}
# a per-row key of the sheet itself, never a person's identifier: rec-1-org and rec-1-dup-0 are one person
_RECORD_KEYS = frozenset({"id", "recid", "recordid", "rowid", "row", "rownumber", "rowno", "index", "key", "uuid",
                          "guid", "entryid", "submissionid", "responseid", "requestid", "orderid", "line", "lineno"})
# header endings that mark an identifier column ('Loyalty card no', 'Member ID')
_IDENTIFIER_ENDINGS = ("id", "number", "no", "nr", "num", "code")
# ...unless the number belongs to a place, a phone or one request rather than to the person
_NOT_PERSON_NUMBERS = ("apt", "apartment", "unit", "suite", "flat", "room", "floor", "building", "house", "street",
                       "zip", "post", "phone", "tel", "fax", "mobile", "order", "invoice", "ticket", "request",
                       "line", "batch", "item", "product", "sku", "isbn", "book", "transaction", "receipt")
# substring hints for headers such as "Patron Phone Number" or "E-mail (work)"
_CONTAINS: tuple[tuple[str, str], ...] = (
    ("identifier", "ssn"), ("identifier", "socsec"), ("identifier", "socialsecurity"),
    ("house_number", "housenumber"), ("house_number", "streetnumber"), ("house_number", "houseno"),
    ("address_2", "address2"), ("address_2", "addressline2"), ("address_2", "line2"),
    ("email", "email"), ("dob", "birth"), ("phone", "phone"), ("phone", "mobile"),
    ("zip", "zip"), ("zip", "postcode"), ("zip", "postalcode"), ("first_name", "firstname"),
    ("last_name", "lastname"), ("last_name", "surname"), ("street", "street"), ("city", "city"),
    ("state", "state"), ("country", "country"), ("address", "address"), ("name", "name"),
)
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_RE = re.compile(r"^[\d\s().+\-/x#ext]*$", re.IGNORECASE)
_ZIP_RE = re.compile(r"^\d{5}(-\d{4})?$")
_DATE_RE = re.compile(r"^(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{1,2}-\d{1,2}-\d{4})$")
US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ "
    "NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP".split()
)


def normalise_header(header: str) -> str:
    """'E-mail Address ' → 'emailaddress': case, spaces and punctuation do not matter."""
    return re.sub(r"[^a-z0-9]", "", str(header).lower())


def guess_columns(df: pd.DataFrame) -> dict[str, str | None]:
    """Which column plays which role: header names and synonyms first, contents second."""
    mapping: dict[str, str | None] = {role: None for role in ROLES}
    normalised = {column: normalise_header(column) for column in df.columns}
    taken: set[str] = set()

    def assign(role: str, column: str) -> None:
        mapping[role] = column
        taken.add(column)

    for role, synonyms in _SYNONYMS.items():
        for column, key in normalised.items():
            if mapping[role] is None and column not in taken and key in synonyms:
                assign(role, column)
    for role, fragment in _CONTAINS:
        for column, key in normalised.items():
            if mapping[role] is None and column not in taken and fragment in key:
                assign(role, column)
    _sniff_contents(df, mapping, taken)
    _identifier_by_header(normalised, mapping, taken, df)
    return mapping


def _identifier_by_header(normalised: dict[str, str], mapping: dict[str, str | None], taken: set[str],
                          df: pd.DataFrame | None = None) -> None:
    """A leftover column named like 'Member ID' or 'Loyalty card no', or holding codes such as 'AB-204113', is a
    person's identifier; a row key of the sheet (id, rec_id, a running number) is not."""
    if mapping["identifier"] is not None:
        return
    candidates = [column for column, key in normalised.items()
                  if column not in taken and key not in _RECORD_KEYS and not key.startswith(("rec", "row"))
                  and not any(fragment in key for fragment in _NOT_PERSON_NUMBERS)]
    for column in candidates:
        key = normalised[column]
        if any(key.endswith(ending) and len(key) > len(ending) for ending in _IDENTIFIER_ENDINGS):
            mapping["identifier"] = column
            taken.add(column)
            return
    for column in candidates if df is not None else []:
        if _looks_like_identifiers([v for v in df[column].head(200).tolist() if isinstance(v, str) and v.strip()]):
            mapping["identifier"] = column
            taken.add(column)
            return


_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-/ ]{3,18}[A-Za-z0-9]$")


def _looks_like_identifiers(values: list[str]) -> bool:
    """Mostly distinct codes with 4+ digits (not dates, not a running row number)."""
    if len(values) < 5:
        return False
    codes = [v for v in values if _CODE_RE.match(v) and sum(ch.isdigit() for ch in v) >= 4 and not _DATE_RE.match(v)]
    if len(codes) < 0.8 * len(values) or len(set(values)) < 0.5 * len(values):
        return False
    numbers = [int(v) for v in values if v.isdigit()]
    running = len(numbers) == len(values) and all(b - a == 1 for a, b in zip(numbers, numbers[1:]))
    return not running


def _sniff_contents(df: pd.DataFrame, mapping: dict[str, str | None], taken: set[str]) -> None:
    """Fallback for headerless-looking columns: most sampled values match a pattern."""
    tests = (
        ("email", lambda v: bool(_EMAIL_RE.match(v))),
        ("phone", lambda v: bool(_PHONE_RE.match(v)) and 7 <= sum(ch.isdigit() for ch in v) <= 15 and not _DATE_RE.match(v)),
        ("zip", lambda v: bool(_ZIP_RE.match(v))),
        ("state", lambda v: v.upper() in US_STATES),
        ("dob", lambda v: bool(_DATE_RE.match(v))),
    )
    for role, test in tests:
        if mapping[role] is not None:
            continue
        for column in df.columns:
            if column in taken:
                continue
            values = [v for v in df[column].head(200).tolist() if isinstance(v, str) and v]
            if values and sum(1 for v in values if test(v)) / len(values) >= 0.8:
                mapping[role] = column
                taken.add(column)
                break


def split_name(name: str) -> tuple[str, str]:
    """'Smith, Jane' or 'Jane Q. Smith' → ('Jane', 'Smith'); a single word is a last name."""
    name = " ".join(name.split())
    if not name:
        return "", ""
    if "," in name:
        last, _, first = name.partition(",")
        return first.strip(), last.strip()
    parts = name.split(" ")
    if len(parts) == 1:
        return "", parts[0]
    return parts[0], parts[-1]


def normalise_records(df: pd.DataFrame, mapping: dict[str, str | None]) -> list[dict]:
    """One dict per row with every role key (unmapped → ''), plus `row`; name built from parts if needed."""
    for role, column in mapping.items():
        if column is not None and column not in df.columns:
            raise KeyError(f"column {column!r} chosen for {role} is not in the sheet")
    columns = {role: df[column].tolist() for role, column in mapping.items() if column is not None and role in ROLES}
    records = []
    for position, row in enumerate(sheet_rows(df)):
        record = {role: _text(columns[role][position]) if role in columns else "" for role in ROLES}
        if not record["name"] and (record["first_name"] or record["last_name"]):
            record["name"] = f"{record['first_name']} {record['last_name']}".strip()
        record["row"] = row
        records.append(record)
    return records


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()
