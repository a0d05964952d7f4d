"""Reading real upload files the way spreadsheet programs save them, and mapping their columns."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from streamlit_app.validation.records import (
    ROLES,
    SheetError,
    guess_columns,
    list_sheets,
    normalise_records,
    read_sheet,
    sniff_delimiter,
)
from streamlit_app.validation.sample_data import sample_sheet

DATA = Path(__file__).resolve().parent / "data" / "validation"
FIRST_ROW = ["José Álvarez", "(217) 544-1234", "jose.alvarez@gmail.com", "123 Main Street Apt 4",
             "Springfield", "IL", "62701", "1980-02-03", "Don Quixote"]


def _read(name: str, sheet: str | None = None) -> pd.DataFrame:
    return read_sheet((DATA / name).read_bytes(), name, sheet)


@pytest.mark.parametrize("name", ["good.csv", "utf8_bom.csv", "latin1.csv", "utf16.csv", "semicolon.csv", "pipe.csv"])
def test_every_csv_flavour_reads_to_the_same_table(name):
    df = _read(name)
    assert list(df.columns) == ["Name", "Phone", "Email", "Street Address", "City", "State", "ZIP", "Date of Birth", "Book Title"]
    assert df.iloc[0].tolist() == FIRST_ROW  # accents survive every encoding; no BOM in the first header
    assert len(df) == 6
    assert df.loc[3, "Name"] == "Zoë Müller"
    assert df.loc[6, "ZIP"] == "02139"  # ZIPs stay text: the leading zero is kept


def test_rows_are_numbered_as_in_the_sheet_and_empty_rows_dropped():
    df = _read("empty_rows_missing_columns.csv")
    assert list(df.index) == [2, 5, 6, 8]  # lines 3, 4 and 7 were empty
    assert df.index.name == "row"
    assert df.loc[5].tolist() == ["Only Name", "", "", "", ""]  # short rows padded with ''
    assert df.loc[6, "City"] == "New York" and df.loc[6, "ZIP"] == ""


def test_workbook_lists_its_sheets_and_reads_the_chosen_one():
    data = (DATA / "two_sheets.xlsx").read_bytes()
    assert list_sheets(data, "two_sheets.xlsx") == ["Requests", "Staff"]
    requests = read_sheet(data, "two_sheets.xlsx")
    assert requests.iloc[0].tolist() == FIRST_ROW  # a real Excel date comes back as 1980-02-03
    assert list(requests.index) == [2, 3, 4, 5, 6, 7, 9]  # row 8 is empty in Excel
    assert requests.loc[9, "Phone"] == "2175441234" and requests.loc[9, "ZIP"] == "62701"  # numbers, not 62701.0
    staff = read_sheet(data, "two_sheets.xlsx", sheet="Staff")
    assert staff.to_dict("list") == {"Staff Name": ["Ann Librarian", "Bob Porter"], "Extension": ["101", "102"]}


def test_asking_for_a_missing_sheet_names_the_sheets_there_are():
    with pytest.raises(SheetError, match="no sheet named 'Orders'.*Requests, Staff"):
        _read("two_sheets.xlsx", sheet="Orders")


def test_csv_has_no_sheets():
    assert list_sheets((DATA / "good.csv").read_bytes(), "good.csv") == []


def test_a_workbook_renamed_to_csv_still_opens():
    data = (DATA / "two_sheets.xlsx").read_bytes()
    assert len(read_sheet(data, "requests.csv")) == 7


@pytest.mark.parametrize("name, message", [
    ("empty.csv", "the file is empty"),
    ("garbage.csv", "binary file"),
    ("truncated.xlsx", "damaged or truncated"),
    ("header_only.csv", "header but no data rows"),
])
def test_unreadable_uploads_are_refused_with_a_plain_message_naming_the_file(name, message):
    with pytest.raises(SheetError, match=message) as caught:
        _read(name)
    assert name in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("content, message", [
    (b'{"name": "Ann", "phone": "1"}', "looks like JSON"),
    (b"<html><body>hi</body></html>", "looks like HTML"),
    (b"\n\n  \n", "no text|no non-empty rows"),
    (b"D\xcf\x11\xe0" + b"\x00" * 100, "binary"),
    (b"\xd0\xcf\x11\xe0" + b"\x00" * 100, "old Excel .xls"),
])
def test_things_that_are_not_tables_are_refused(content, message):
    with pytest.raises(SheetError, match=message):
        read_sheet(content, "upload.csv")


def test_xlsx_name_on_text_bytes_is_refused():
    with pytest.raises(SheetError, match="not a readable Excel file"):
        read_sheet(b"Name,Phone\nAnn,1\n", "upload.xlsx")


def test_delimiter_sniffing_respects_quotes():
    text = 'Name;Address;Phone\n"Smith, Ann";"12 Main St, Apt 4";555\n"Lee, Bo";"3 Elm";556\n'
    assert sniff_delimiter(text) == ";"
    df = read_sheet(text.encode(), "x.csv")
    assert df.loc[2, "Name"] == "Smith, Ann"


def test_duplicate_and_blank_headers_get_unique_names():
    df = read_sheet(b"Phone,Phone,,Email\n1,2,3,a@b.co\n", "x.csv")
    assert list(df.columns) == ["Phone", "Phone_2", "column_3", "Email"]


def test_guess_columns_from_headers_and_synonyms():
    df = pd.DataFrame(columns=["Patron First Name", "Surname", "Mobile", "E-mail Address", "Address Line 1",
                               "Town", "Province", "Postcode", "Birthdate", "Country", "Notes"])
    mapping = guess_columns(df)
    assert set(mapping) == set(ROLES)
    assert mapping == {
        "name": None, "first_name": "Patron First Name", "last_name": "Surname", "phone": "Mobile",
        "email": "E-mail Address", "address": None, "street": "Address Line 1", "city": "Town",
        "state": "Province", "zip": "Postcode", "country": "Country", "dob": "Birthdate",
        "house_number": None, "address_2": None, "identifier": None,
    }


def test_guess_columns_of_the_sample_files():
    mapping = guess_columns(_read("good.csv"))
    assert mapping["name"] == "Name" and mapping["street"] == "Street Address" and mapping["dob"] == "Date of Birth"
    assert mapping["zip"] == "ZIP" and mapping["phone"] == "Phone" and mapping["email"] == "Email"


def test_guess_columns_sniffs_contents_when_headers_say_nothing():
    df = pd.DataFrame({
        "col1": ["Ann Lee", "Bo Park", "Cy Diaz"],
        "col2": ["ann@x.com", "bo@y.org", "cy@z.net"],
        "col3": ["(217) 544-1234", "212-736-5000", "617.253.1000"],
        "col4": ["62701", "10118", "02139"],
        "col5": ["IL", "NY", "MA"],
        "col6": ["1980-02-03", "1975-11-30", "1985-05-05"],
    })
    mapping = guess_columns(df)
    assert (mapping["email"], mapping["phone"], mapping["zip"], mapping["state"], mapping["dob"]) == (
        "col2", "col3", "col4", "col5", "col6")
    assert mapping["name"] is None  # no guessing of free text


def test_normalise_records_gives_every_role_and_the_sheet_row():
    df = _read("empty_rows_missing_columns.csv")
    records = normalise_records(df, guess_columns(df))
    assert [r["row"] for r in records] == [2, 5, 6, 8]
    first = records[0]
    assert set(first) == set(ROLES) | {"row"}
    assert (first["name"], first["phone"], first["zip"], first["email"]) == ("Ann Short", "(217) 544-1234", "62701", "")


def test_normalise_records_builds_the_name_from_parts_and_rejects_unknown_columns():
    df = pd.DataFrame({"First": ["Ann"], "Last": ["Lee"]})
    records = normalise_records(df, {"first_name": "First", "last_name": "Last"})
    assert records[0]["name"] == "Ann Lee" and records[0]["row"] == 2
    with pytest.raises(KeyError, match="'Phone' chosen for phone"):
        normalise_records(df, {"phone": "Phone"})


def test_reading_a_sheet_under_an_address_space_cap_maps_little_more_than_it_uses(tmp_path):
    """The untrusted pool caps a worker's address space, and pandas keeps text in pyarrow, whose default allocator
    maps 1 GiB at its first allocation: a 10,000-row sheet (20 MB in use) then took a worker past its cap and was
    refused as over the memory limit. Under a cap, reading a 50,000-row sheet maps under 300 MB more."""
    import subprocess
    import sys

    sheet = tmp_path / "people.csv"
    sample_sheet(n=50_000, seed=4).to_csv(sheet, index=False)
    script = f"""
import resource
from streamlit_app.validation.records import read_upload
def mapped():
    return int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
data = open({str(sheet)!r}, "rb").read()
before = mapped()
resource.setrlimit(resource.RLIMIT_AS, (before + 4 * 2**30, resource.RLIM_INFINITY))
read = read_upload(data, "people.csv")
print(read.error or read.frame.shape[0], (mapped() - before) // 2**20)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    rows, grown_mb = done.stdout.split()
    assert rows == "50000"
    assert int(grown_mb) < 300
