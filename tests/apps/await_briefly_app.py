"""A one-wait app for the await_briefly test: the work is a Future kept in session state, finished by the test."""
from concurrent.futures import Future

import streamlit as st

from streamlit_app import widgets

if __name__ == "__main__":
    work = st.session_state.setdefault("work", Future())
    if widgets.await_briefly(work, 0.05, lambda: "Comparing 10 records for duplicates…"):
        st.write(f"pairs={work.result()}")
