"""The Audio page: drop recordings, get levels, loudness, pitch and a rough transcript preview."""
import streamlit as st

from streamlit_app import audio, file_jobs, media_charts, media_samples, widgets

widgets.page_header("Audio", "Levels, loudness, silence, clipping, pitch and tempo for a folder of recordings. "
                             "Decoded with libsndfile; nothing is sent anywhere.")
services = widgets.get_services()
transcribe = st.toggle("Speech-to-text preview (pocketsphinx, English, rough; slower)", value=False)
job_id = widgets.file_batch_input("audio", "audio", "streamlit_app.audio:analyse_audio",
                                  {"transcribe": transcribe}, media_samples.sample_audio_files,
                                  "WAV, FLAC, OGG and MP3", exec_kind="process" if transcribe else "auto")
widgets.performance_settings_panel("cpu", key="audio_perf")

ok = widgets.file_results("audio", job_id, "Drop some recordings above, or try the sample files, to see a table "
                          "of findings here.", media_charts.audio_summary_figure)
if ok is not None and not ok.empty:
    name = st.selectbox("Look closer at", ok["file"].tolist(), key="audio_detail")
    data = file_jobs.stored_file_bytes(services, job_id, name)
    if data is not None:
        cols = st.columns(2)
        cols[0].plotly_chart(media_charts.waveform_figure(data, name), key="audio_wave")
        cols[1].plotly_chart(media_charts.spectrogram_figure(data, name), key="audio_spec")
        st.audio(data)
    if "transcript_preview" in ok.columns:
        st.caption(audio.TRANSCRIPT_NOTE)
