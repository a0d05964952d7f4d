"""The Audio page: drop recordings, get levels, loudness, pitch and a rough transcript preview."""
import streamlit as st

from streamlit_app import audio, media_charts, media_samples, media_warm, widgets

widgets.page_header("Audio", "Levels, loudness, silence, clipping, pitch and tempo for a folder of recordings. "
                             "Decoded with libsndfile; nothing is sent anywhere.")
door = widgets.door()
who = widgets.current_identity()
media_warm.warm_media_workers(widgets.get_services().manager, "audio")  # workers ready before the upload
transcribe = st.toggle("Speech-to-text preview (pocketsphinx, English, rough; slower)", value=False)
job_id = widgets.file_batch_input("audio", "audio", "streamlit_app.audio:analyse_audio",
                                  {"transcribe": transcribe}, media_samples.sample_audio_files,
                                  "WAV, FLAC, OGG and MP3")  # analysed in the untrusted pool's capped processes
widgets.performance_settings_panel("untrusted", key="audio_perf")

ok = widgets.file_results("audio", job_id, "Drop some recordings above, or try the sample files, to see a table "
                          "of findings here.", media_charts.audio_summary_figure)
if ok is not None and not ok.empty:
    name = st.selectbox("Look closer at", ok["file"].tolist(), key="audio_detail")
    preview = door.file_details(who, job_id).get(name, {}).get("chart_preview")
    if preview:  # computed by the worker with the guarded decode: the page never decodes audio
        cols = st.columns(2)
        kept = st.session_state.setdefault("audio_figures", {})  # once per file of the job, not per rerun
        if kept.get("for") != (job_id, name):
            kept.update({"for": (job_id, name), "wave": media_charts.waveform_figure(preview, name),
                         "spec": media_charts.spectrogram_figure(preview, name)})
        cols[0].plotly_chart(kept["wave"], key="audio_wave")
        cols[1].plotly_chart(kept["spec"], key="audio_spec")
    data = door.file_bytes(who, job_id, name)
    if data is not None:
        st.audio(data)  # the browser decodes this, not the server
    if "transcript_preview" in ok.columns:
        st.caption(audio.TRANSCRIPT_NOTE)
