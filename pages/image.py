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

if job_id is None:
    st.info("Drop some images above, or try the sample files, to see a table of findings here.")
else:
    widgets.job_progress(job_id)
    table = file_jobs.results_frame(services, job_id)
    if not table.empty:
        st.subheader("Results")
        widgets.result_table(table, "spindle-images", key="image_results")
        ok = table[table["status"] == "ok"]
        if not ok.empty:
            st.plotly_chart(media_charts.image_summary_figure(ok), key="image_summary")
        groups = file_jobs.near_duplicate_images(services, job_id)
        st.subheader("Look-alike images")
        if not groups:
            st.caption("No two images look alike (perceptual hashes differ by more than 8 bits).")
        for group in groups:
            cols = st.columns(len(group))
            for col, member in zip(cols, group):
                if member["thumbnail_png_b64"]:
                    col.image(base64.b64decode(member["thumbnail_png_b64"]), caption=member["name"])
                else:
                    col.caption(member["name"])
