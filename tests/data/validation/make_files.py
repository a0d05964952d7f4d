"""Writes the upload fixtures in this folder (run once; the outputs are committed too).

    python tests/data/validation/make_files.py

Each file is a kind of upload users really send: Excel's CSV flavours
(UTF-8 with/without BOM, cp1252, UTF-16 tab-separated "Unicode Text"),
European semicolons, pipes, ragged rows, a 2-sheet workbook, and broken
files that must be refused with a clear message.
"""
from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import openpyxl

HERE = Path(__file__).resolve().parent

HEADER = ["Name", "Phone", "Email", "Street Address", "City", "State", "ZIP", "Date of Birth", "Book Title"]
ROWS = [
    ["José Álvarez", "(217) 544-1234", "jose.alvarez@gmail.com", "123 Main Street Apt 4", "Springfield", "IL", "62701", "1980-02-03", "Don Quixote"],
    ["Zoë Müller", "212-736-5000", "zoe.muller@yahoo.com", "350 Fifth Avenue", "New York", "NY", "10118", "1975-11-30", "Faust"],
    ["Bad Phone", "12345", "bad.phone@outlook.com", "1600 Pennsylvania Ave NW", "Washington", "DC", "20500", "1990-07-04", "Walden"],
    ["Bad Email", "+1 650 253 0000", "bad.email@", "1600 Amphitheatre Pkwy", "Mountain View", "CA", "94043", "1969-01-01", "Emma"],
    ["Wrong State", "617.253.1000", "wrong.state@gmail.com", "77 Massachusetts Ave", "Cambridge", "CA", "02139", "1985-05-05", "Moby-Dick"],
    ["Peña Niño", "2175441234", "pena.nino@aol.com", "PO Box 55", "Springfield", "IL", "62701", "03/04/1980", "Emma"],
]


def write_csv(name: str, rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> None:
    def cell(value: str) -> str:
        if any(ch in value for ch in (delimiter, '"', "\n")):
            return '"' + value.replace('"', '""') + '"'
        return value

    text = "\r\n".join(delimiter.join(cell(v) for v in row) for row in rows) + "\r\n"
    (HERE / name).write_bytes(text.encode(encoding))


def write_workbook(path: Path) -> None:
    workbook = openpyxl.Workbook()
    requests = workbook.active
    requests.title = "Requests"
    requests.append(HEADER)
    for row in ROWS:
        values: list[object] = list(row)
        values[7] = dt.datetime.strptime(row[7], "%Y-%m-%d") if "-" in row[7] else row[7]  # real Excel dates
        requests.append(values)
    requests.append([None] * len(HEADER))  # an empty row in the middle is dropped
    requests.append(["Number Zip", 2175441234, "num.zip@gmail.com", "1 Old State Capitol Plz", "Springfield", "IL", 62701, None, "Ulysses"])
    staff = workbook.create_sheet("Staff")
    staff.append(["Staff Name", "Extension"])
    staff.append(["Ann Librarian", 101])
    staff.append(["Bob Porter", 102])
    workbook.save(path)


def main() -> None:
    write_csv("good.csv", [HEADER, *ROWS])
    (HERE / "utf8_bom.csv").write_bytes(b"\xef\xbb\xbf" + (HERE / "good.csv").read_bytes())
    write_csv("latin1.csv", [HEADER, *ROWS], encoding="cp1252")
    write_csv("utf16.csv", [HEADER, *ROWS], delimiter="\t", encoding="utf-16")  # Excel "Unicode Text"
    write_csv("semicolon.csv", [HEADER, *ROWS], delimiter=";")
    write_csv("pipe.csv", [HEADER, *ROWS], delimiter="|")
    ragged = [
        ["Name", "Phone", "City", "State", "ZIP"],
        ["Ann Short", "(217) 544-1234", "Springfield", "IL", "62701"],
        ["", "", "", "", ""],
        [],
        ["Only Name"],
        ["Ben Middle", "212-736-5000", "New York"],
        [",,,,"],
        ["Cy Last", "617.253.1000", "Cambridge", "MA", "02139"],
    ]
    text = "\r\n".join(",".join(r) if r != [",,,,"] else ",,,," for r in ragged) + "\r\n\r\n"
    (HERE / "empty_rows_missing_columns.csv").write_text(text, encoding="utf-8", newline="")
    write_csv("header_only.csv", [HEADER])
    write_workbook(HERE / "two_sheets.xlsx")
    whole = (HERE / "two_sheets.xlsx").read_bytes()
    (HERE / "truncated.xlsx").write_bytes(whole[: len(whole) // 2])
    rng = random.Random(1234)
    (HERE / "garbage.csv").write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    (HERE / "empty.csv").write_bytes(b"")


if __name__ == "__main__":
    main()
