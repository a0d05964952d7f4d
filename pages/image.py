"""The Image page: size, EXIF, quality measures, colours, look-alikes and optional OCR."""
import base64

import streamlit as st

from streamlit_app import file_jobs, media_charts, media_samples, widgets

widgets.page_header("Image", "Format, size, EXIF, brightness, contrast, blur and dominant colours for a folder "
                             "of images, with look-alike groups and optional OCR.")
services = widgets.get_services()
ocr = st.toggle("Read text in images (OCR with Tesseract; slower)", value=False)
job_id = widgets.file_batch_input("image", "image", "streamlit_app.image:analyse_image", {"ocr": ocr},
                                  media_samples.sample_image_files, "JPEG, PNG, GIF, WebP, TIFF and BMP",
                                  exec_kind="thread" if ocr else "auto")
widgets.performance_settings_panel("default", key="image_perf")

ok = widgets.file_results("image", job_id, "Drop some images above, or try the sample files, to see a table of "
                          "findings here.", media_charts.image_summary_figure)
if ok is not None:
    st.subheader("Look-alike images")
    groups = file_jobs.near_duplicate_images(services, job_id)
    if not groups:
        st.caption("No two images look alike (perceptual hashes differ by more than 8 bits).")
    for group in groups:
        for col, member in zip(st.columns(len(group)), group):
            if member["thumbnail_png_b64"]:
                col.image(base64.b64decode(member["thumbnail_png_b64"]), caption=member["name"])
            else:
                col.caption(member["name"])
