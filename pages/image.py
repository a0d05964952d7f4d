"""The Image page: size, EXIF, quality measures, colours, look-alikes and optional OCR."""
import pandas as pd
import streamlit as st

from streamlit_app import image, media_charts, media_samples, media_warm, widgets
from streamlit_app import ocr as ocr_reader

widgets.page_header("Image", "Format, size, EXIF, brightness, contrast, blur and dominant colours for a folder "
                             "of images, with look-alike groups and optional OCR.")
door = widgets.door()
who = widgets.current_identity()
media_warm.warm_media_workers(widgets.get_services().manager, "image")  # workers ready before the upload
ocr = st.toggle("Read text in images (OCR with Tesseract; slower)", value=False)
ocr_lang = "auto"
if ocr:
    choices = ocr_reader.language_choices()
    ocr_lang = choices[st.selectbox("Language of the text in the images", list(choices), key="image_ocr_lang")]
job_id = widgets.file_batch_input("image", "image", "streamlit_app.image:analyse_image",
                                  {"ocr": ocr, "ocr_lang": ocr_lang},
                                  media_samples.sample_image_files, "JPEG, PNG, GIF, WebP, TIFF and BMP")
# Analysed (OCR included) in the untrusted pool's memory-capped worker processes.
widgets.performance_settings_panel("untrusted", key="image_perf")

ok = widgets.file_results("image", job_id, "Drop some images above, or try the sample files, to see a table of "
                          "findings here.", media_charts.image_summary_figure)
if ok is not None and not ok.empty and "ocr_text" in ok:
    st.subheader("Text read in the images")
    name = st.selectbox("Image", ok["file"].tolist(), key="image_ocr_detail")
    found = ok.set_index("file").loc[name].to_dict()
    st.text(ocr_reader.describe(found))
    if found.get("ocr_unsure") is True or found.get("ocr_unsure") == 1:
        st.warning(found.get("ocr_note") or "Low confidence: check this text against the image.")
        with st.expander("Unverified text (low confidence)"):
            st.text(found.get("ocr_text") or "")
    else:
        st.text(found.get("ocr_text") or "")  # shown as text, never as markdown
if ok is not None:
    st.subheader("Look-alike images")
    groups = door.similar_images(who, job_id)
    if not groups:
        st.caption("No two images look alike (perceptual hashes differ by more than 8 bits).")
    else:  # one table of groups and one picture strip: a picture element per file made reruns slow at 200 files
        st.caption(f"{len(groups):,} groups of images that look alike (perceptual hashes within 8 bits), "
                   f"{sum(len(group) for group in groups):,} files in all.")
        st.dataframe(pd.DataFrame(image.lookalike_table(groups)), hide_index=True, width="stretch",
                     key="image_lookalikes")
        number = st.selectbox("Pictures of group", range(1, len(groups) + 1), key="image_lookalike_group")
        pictures = image.lookalike_pictures(groups[number - 1])
        if pictures:
            st.image(pictures)  # in the order of the names above
