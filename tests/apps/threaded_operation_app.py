"""A one-widget app for the threaded-operation test (guarded: worker processes re-import __main__)."""
import streamlit as st

from streamlit_app import widgets


def answer() -> int:
    return 6 * 7


def broken() -> int:
    raise ValueError("the sheet has no phone column")


if __name__ == "__main__":
    st.write(f"result={widgets.streamlit_threaded_operation(answer, 'Thinking…', 'Answered.')}")
    st.write(f"failed={widgets.streamlit_threaded_operation(broken, 'Trying…', 'Never shown.')}")
