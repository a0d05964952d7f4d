"""The Text page."""
from streamlit_app import widgets

widgets.page_header("Text")
widgets.coming_soon("The Text page")
