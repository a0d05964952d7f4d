"""The Text page: language, sentiment, keywords, readability and look-alike texts."""
import streamlit as st

from streamlit_app import language, media_charts, media_samples, media_warm, text, widgets

widgets.page_header("Text", "Language, sentiment (English), keywords, readability and length for a folder of "
                            "documents (.txt, .md, .csv, .docx, .pdf), with look-alike texts.")
st.caption(text.TRANSLATION_NOTE)
door = widgets.door()
who = widgets.current_identity()
media_warm.warm_media_workers(widgets.get_services().manager, "text")  # workers ready before the upload
column = st.text_input("Text column for CSV files", placeholder="Blank: the column with the longest text")
names = dict(language.choices())
expected = st.multiselect("Languages to expect (optional)", list(names),
                          format_func=lambda code: f"{names[code]} ({code})",
                          help="Answers are then limited to these languages where the text's script allows. Use it "
                               "for a language with a much bigger neighbour: Malay beside Indonesian, Afrikaans "
                               "beside Dutch, Bosnian beside Croatian, Nynorsk beside Bokmål.")
job_id = widgets.file_batch_input("text", "text", "streamlit_app.text:analyse_text",
                                  {"text_column": column.strip() or None, "languages": expected},
                                  media_samples.sample_text_files,
                                  ".txt, .md, .csv, .docx and .pdf")
widgets.performance_settings_panel("untrusted", key="text_perf")

st.caption("Language: an ISO 639-1 code, or “unsure” when the text is too short or too close to call "
           "(language_guess is then the likeliest; language_confidence says how sure, 0 to 1).")
ok = widgets.file_results("text", job_id, "Drop some documents above, or try the sample files, to see a table "
                          "of findings here.", media_charts.text_summary_figure)
if ok is not None:
    if not ok.empty:
        name = st.selectbox("Read a preview", ok["file"].tolist(), key="text_detail")
        chosen = ok.set_index("file").loc[name]
        st.text(language.describe(chosen.get("language"), chosen.get("language_guess"),
                                  chosen.get("language_confidence")))
        st.text(chosen.get("preview", ""))  # shown as text, never as HTML
    st.subheader("Look-alike texts")
    pairs = door.similar_texts(who, job_id)
    if pairs.empty:
        st.caption("No two texts are 80 % alike or more (TF-IDF cosine similarity).")
    else:
        st.dataframe(pairs, hide_index=True, width="stretch")
