"""Spindle: the entry point. Navigation over the pages, and the sidebar; nothing else."""
import streamlit as st

from streamlit_app import widgets


def main() -> None:
    st.set_page_config(page_title="Spindle", page_icon=":material/cyclone:", layout="wide")
    pages = [
        st.Page("pages/validation.py", title="Validation", icon=":material/fact_check:", url_path="validation",
                default=True),
        st.Page("pages/audio.py", title="Audio", icon=":material/graphic_eq:", url_path="audio"),
        st.Page("pages/image.py", title="Image", icon=":material/image:", url_path="image"),
        st.Page("pages/text.py", title="Text", icon=":material/article:", url_path="text"),
        st.Page("pages/analytics.py", title="Analytics", icon=":material/monitoring:", url_path="analytics"),
        st.Page("pages/performance.py", title="Performance", icon=":material/speed:", url_path="performance"),
    ]
    navigation = st.navigation(pages)
    widgets.sidebar()
    navigation.run()


if __name__ == "__main__":
    main()
