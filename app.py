"""Spindle: the entry point. Navigation over the pages, and the sidebar; nothing else."""
import streamlit as st

from streamlit_app import rerun_log, widgets

# (script, title, icon, url path). Validation is the home page: served at "/" and, for links people share, at
# "/validation" too (Streamlit serves a default page only at "/", so a hidden twin answers the deep link).
PAGES = (
    ("pages/validation.py", "Validation", ":material/fact_check:", "validation"),
    ("pages/audio.py", "Audio", ":material/graphic_eq:", "audio"),
    ("pages/image.py", "Image", ":material/image:", "image"),
    ("pages/text.py", "Text", ":material/article:", "text"),
    ("pages/analytics.py", "Analytics", ":material/monitoring:", "analytics"),
    ("pages/performance.py", "Performance", ":material/speed:", "performance"),
)
HOME_URL_PATH = "home"  # the default page's internal name; its public address is "/"


def navigation_pages() -> tuple[list[st.Page], list[st.Page]]:
    """(every page st.navigation knows, the pages the sidebar lists)."""
    listed = []
    for position, (script, title, icon, url_path) in enumerate(PAGES):
        home = position == 0
        listed.append(st.Page(script, title=title, icon=icon, url_path=HOME_URL_PATH if home else url_path,
                              default=home))
    script, title, icon, url_path = PAGES[0]
    twin = st.Page(script, title=title, icon=icon, url_path=url_path, visibility="hidden")
    return [*listed, twin], listed


def main() -> None:
    st.set_page_config(page_title="Spindle", page_icon=":material/cyclone:", layout="wide")
    # With SPINDLE_RERUN_LOG set, the whole script run's server time goes to that file (benchmarks read it).
    with rerun_log.timed(widgets.rerun_log_path(), "?", "full") as timing:
        # .streamlit/config.toml sets client.showSidebarNavigation = false: Streamlit's own list (which, with a
        # pages/ folder, starts as the legacy "app, analytics, …" list) never shows; the sidebar lists ours.
        every, listed = navigation_pages()
        navigation = st.navigation(every, position="hidden")
        if timing is not None:
            timing.page = navigation.title
        with st.sidebar:
            for page in listed:
                st.page_link(page)
        # The error boundary: a failure shows a short message and an error id; the traceback goes to the log.
        with widgets.error_boundary(f"page {navigation.title}"):
            widgets.sidebar()
            with widgets.app_navigation_ran():
                try:
                    navigation.run()
                finally:  # st.stop and st.rerun end a run by raising
                    widgets.freeze_what_imports_made()


if __name__ == "__main__":
    main()
