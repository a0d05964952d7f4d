"""The Image page."""
from streamlit_app import widgets

widgets.page_header("Image")
widgets.coming_soon("The Image page")
