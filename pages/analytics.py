"""The Analytics page."""
from streamlit_app import widgets

widgets.page_header("Analytics")
widgets.coming_soon("The Analytics page")
