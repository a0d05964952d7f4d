"""Validation page processing: read sheets, check records, find duplicates, geocode, export.

Plain functions only (no Streamlit), safe to run in worker threads/processes.
Geocoding is not re-exported: it imports googlemaps/requests, which only the
geocoding step needs (import streamlit_app.validation.geocoding).
"""
from streamlit_app.validation.addresses import check_address
from streamlit_app.validation.duplicates import DEFAULT_THRESHOLD, cluster_pairs, find_duplicates
from streamlit_app.validation.emails import check_email
from streamlit_app.validation.export import problems_report, to_csv_bytes, to_excel_bytes
from streamlit_app.validation.phones import check_phone
from streamlit_app.validation.record_check import validate_record
from streamlit_app.validation.records import (
    ROLES,
    SheetError,
    guess_columns,
    list_sheets,
    normalise_records,
    read_sheet,
)
from streamlit_app.validation.sample_data import labelled_duplicate_set, sample_sheet

__all__ = [
    "DEFAULT_THRESHOLD", "ROLES", "SheetError", "check_address", "check_email", "check_phone",
    "cluster_pairs", "find_duplicates", "guess_columns", "labelled_duplicate_set", "list_sheets",
    "normalise_records", "problems_report", "read_sheet", "sample_sheet", "to_csv_bytes",
    "to_excel_bytes", "validate_record",
]
