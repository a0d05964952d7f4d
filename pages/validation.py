"""The Validation page."""
from streamlit_app import widgets

widgets.page_header("Validation")
widgets.coming_soon("The Validation page")
