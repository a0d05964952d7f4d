"""The Text page: language, sentiment, keywords, readability and look-alike texts."""
import streamlit as st

from streamlit_app import file_jobs, media_charts, media_samples, text, widgets

widgets.page_header("Text", "Language, sentiment (English), keywords, readability and length for a folder of "
                            "documents (.txt, .md, .csv, .docx, .pdf), with look-alike texts.")
st.caption(text.TRANSLATION_NOTE)
services = widgets.get_services()
column = st.text_input("Text column for CSV files", placeholder="Blank: the column with the longest text")
job_id = widgets.file_batch_input("text", "text", "streamlit_app.text:analyse_text",
                                  {"text_column": column.strip() or None}, media_samples.sample_text_files,
                                  ".txt, .md, .csv, .docx and .pdf")
widgets.performance_settings_panel("cpu", key="text_perf")

ok = widgets.file_results("text", job_id, "Drop some documents above, or try the sample files, to see a table "
                          "of findings here.", media_charts.text_summary_figure)
if ok is not None:
    if not ok.empty:
        name = st.selectbox("Read a preview", ok["file"].tolist(), key="text_detail")
        st.text(ok.set_index("file").loc[name].get("preview", ""))  # shown as text, never as HTML
    st.subheader("Look-alike texts")
    pairs = file_jobs.near_duplicate_text_pairs(services, job_id)
    if pairs.empty:
        st.caption("No two texts are 80 % alike or more (TF-IDF cosine similarity).")
    else:
        st.dataframe(pairs, hide_index=True, width="stretch")
