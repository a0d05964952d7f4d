"""Oversized and pathological sheets stop early with a message that names the limit; reading runs as a job."""
from __future__ import annotations

import dataclasses
import io
from concurrent.futures import Future

import openpyxl
import pytest

from config.threading_config import load_threading_config
from streamlit_app.validation import records
from streamlit_app.validation.records import SheetError, read_sheet, read_upload, start_sheet_read
from tests import hostile_files
from utils.decode_guard import DecodeLimits
from utils.threading_manager import ThreadingManager


def _xlsx(rows: list[list]) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("maker, setting", [
    (lambda: hostile_files.wide_csv(20_000), "MAX_SHEET_COLUMNS"),
    (lambda: hostile_files.tall_csv(1_000_000), "MAX_SHEET_ROWS"),
], ids=["20000-columns", "million-rows"])
def test_pathological_csvs_name_the_limit(maker, setting, tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_bytes(maker())
    with pytest.raises(SheetError, match=setting) as caught:
        read_sheet(path.read_bytes(), "sheet.csv")
    assert str(caught.value).startswith("sheet.csv: ")


def test_a_sheet_over_the_byte_limit_is_refused_before_it_is_decoded():
    limits = DecodeLimits(max_sheet_bytes=1024 * 1024)
    data = hostile_files.tall_csv(100_000)  # 1.7 MB
    with pytest.raises(SheetError, match=r"over the 1\.0 MB limit for a sheet \(MAX_SHEET_MB\)"):
        read_sheet(data, "big.csv", limits=limits)
    with pytest.raises(SheetError, match="MAX_SHEET_MB"):
        records.list_sheets(_xlsx([["a"]]) + b"\0" * 2_000_000, "big.xlsx", limits=limits)


def test_cells_are_counted_while_reading():
    data = ("a,b,c,d\n" + "1,2,3,4\n" * 300).encode()
    with pytest.raises(SheetError, match=r"more than 1,000 cells \(MAX_SHEET_CELLS\)"):
        read_sheet(data, "cells.csv", limits=DecodeLimits(max_sheet_cells=1000))
    assert len(read_sheet(data, "cells.csv", limits=DecodeLimits(max_sheet_cells=2000))) == 300


def test_an_xlsx_zip_bomb_is_refused_before_openpyxl_touches_it(monkeypatch):
    bomb = hostile_files.xlsx_bomb()

    def never(*_args, **_kwargs):
        raise AssertionError("openpyxl was asked to open a zip bomb")

    monkeypatch.setattr(openpyxl, "load_workbook", never)
    for reader in (records.list_sheets, read_sheet):
        with pytest.raises(SheetError, match="MAX_ZIP_PART_MB"):
            reader(bomb, "bomb.xlsx")


def test_an_xlsx_row_past_the_column_limit_stops_the_read():
    wide = _xlsx([["Name", "Phone"], ["Ann", "1"] + ["x"] * 600])
    with pytest.raises(SheetError, match="602 columns.*MAX_SHEET_COLUMNS"):
        read_sheet(wide, "wide.xlsx")
    tall = _xlsx([["Name"]] + [[f"n{i}"] for i in range(50)])
    with pytest.raises(SheetError, match="MAX_SHEET_ROWS"):
        read_sheet(tall, "tall.xlsx", limits=DecodeLimits(max_sheet_rows=20))


def test_ordinary_workbooks_still_read_with_their_sheets():
    workbook = openpyxl.Workbook()
    workbook.active.title = "People"
    workbook.active.append(["Name", "Phone"])
    workbook.active.append(["Ann", "555-0100"])
    other = workbook.create_sheet("Other")
    other.append(["x", "y"])
    other.append(["1", "2"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    read = read_upload(buffer.getvalue(), "book.xlsx")
    assert read.sheets == ["People", "Other"] and read.sheet == "People"
    assert read.table().loc[2, "Name"] == "Ann"
    assert read_upload(buffer.getvalue(), "book.xlsx", "Other").sheet == "Other"


@pytest.fixture(scope="module")
def manager():
    made = ThreadingManager(dataclasses.replace(load_threading_config(), max_workers_per_user=4))
    yield made
    made.shutdown(cancel_futures=True)


def test_sheets_are_read_as_a_job_in_the_untrusted_pool_and_refusals_come_back(manager):
    ok = start_sheet_read(manager, b"Name,Phone\nAnn,1\nBob,2\n", "people.csv")
    refused = start_sheet_read(manager, hostile_files.wide_csv(20_000), "wide.csv")
    assert isinstance(ok, Future)  # the page keeps the Future and polls it from a fragment
    read = ok.result(60)
    assert list(read.table()["Name"]) == ["Ann", "Bob"] and read.sheets == []
    with pytest.raises(SheetError, match="MAX_SHEET_COLUMNS"):
        refused.result(60).table()
    oversized = start_sheet_read(manager, b"a,b\n" + b"1,2\n" * (13 * 2**20), "huge.csv")  # 52 MB
    assert oversized.done()  # refused at once: 52 MB are never shipped to a worker
    with pytest.raises(SheetError, match="MAX_SHEET_MB"):
        oversized.result().table()
