"""The Audio page."""
from streamlit_app import widgets

widgets.page_header("Audio")
widgets.coming_soon("The Audio page")
