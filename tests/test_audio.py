"""The Audio analyser on real generated clips: what users read in the results table."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from streamlit_app import audio, media_charts, media_samples
from streamlit_app.media_errors import BadFileError

DATA = Path(__file__).parent / "data" / "media"
SAMPLES = dict(media_samples.sample_audio_files())


def analyse(name: str, options: dict | None = None) -> dict:
    data = SAMPLES[name] if name in SAMPLES else (DATA / name).read_bytes()
    return audio.analyse_audio(name, data, options)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_gives_a_flat_json_row(name):
    row = analyse(name)
    assert row["name"] == name
    assert all(not isinstance(value, (dict, list)) for value in row.values())
    json.dumps(row, allow_nan=False)  # strict JSON: no NaN or infinity reaches the table
    assert row["duration_s"] > 0 and row["sample_rate"] > 0 and row["channels"] >= 1


@pytest.mark.parametrize(
    "name, container, subtype",
    [
        ("tone_440hz.wav", "WAV", "PCM_16"),
        ("tones_220_330hz_stereo.flac", "FLAC", "PCM_16"),
        ("chirp_100_4000hz.ogg", "OGG", "VORBIS"),
        ("tone_660hz.mp3", "MP3", "MPEG_LAYER_III"),
        ("tone_500hz_opus.ogg", "OGG", "OPUS"),
        ("tone_250hz.aiff", "AIFF", "PCM_16"),
        ("stereo_48k_24bit.wav", "WAV", "PCM_24"),
    ],
)
def test_common_formats_decode_without_ffmpeg(name, container, subtype):
    row = analyse(name)
    assert (row["format"], row["subtype"]) == (container, subtype)


@pytest.mark.parametrize(
    "name, hz",
    [
        ("tone_440hz.wav", 440),
        ("tone_660hz.mp3", 660),
        ("tone_500hz_opus.ogg", 500),
        ("tone_250hz.aiff", 250),
        ("tone_300hz_44k.mp3", 300),
    ],
)
def test_pitch_of_a_pure_tone_is_found(name, hz):
    assert analyse(name)["pitch_hz"] == pytest.approx(hz, rel=0.02)


def test_noise_has_no_pitch_but_a_high_centroid_and_crossing_rate():
    row = analyse("white_noise.wav")
    assert row["pitch_hz"] is None
    assert row["spectral_centroid_hz"] > 3000
    assert row["zero_crossing_rate"] > 0.3
    tone = analyse("tone_440hz.wav")
    assert tone["spectral_centroid_hz"] == pytest.approx(440, rel=0.05)
    assert tone["zero_crossing_rate"] < 0.1


def test_tempo_of_a_click_track():
    assert analyse("click_track_120bpm.wav")["tempo_bpm"] == pytest.approx(120, abs=3)
    assert analyse("tone_440hz.wav")["tempo_bpm"] is None


def test_levels_of_a_half_scale_tone():
    row = analyse("tone_440hz.wav")
    assert row["peak_dbfs"] == pytest.approx(-6.02, abs=0.1)
    assert row["rms_dbfs"] == pytest.approx(-9.03, abs=0.2)
    assert row["loudness_lufs"] == pytest.approx(-9.8, abs=1.0)
    assert row["clipping_ratio"] == 0.0 and row["silence_ratio"] == 0.0


def test_clipping_is_reported():
    row = analyse("clipped_tone.wav")
    assert row["clipping_ratio"] > 0.2
    assert row["peak_dbfs"] == pytest.approx(0.0, abs=0.01)


def test_silence_ratio_counts_the_quiet_parts():
    assert analyse("gaps_then_tone.wav")["silence_ratio"] == pytest.approx(2 / 3, abs=0.03)


def test_digital_silence_has_no_level_instead_of_minus_infinity():
    row = analyse("silence.flac")
    assert row["peak_dbfs"] is None and row["rms_dbfs"] is None and row["loudness_lufs"] is None
    assert row["silence_ratio"] == 1.0
    assert "silent" in row["loudness_note"]


def test_too_short_for_loudness_says_why():
    row = analyse("short_blip.wav")
    assert row["loudness_lufs"] is None
    assert "shorter than 0.4 s" in row["loudness_note"]
    assert row["peak_dbfs"] is not None


def test_stereo_keeps_its_channel_count():
    row = analyse("stereo_48k_24bit.wav")
    assert row["channels"] == 2 and row["sample_rate"] == 48000
    assert row["duration_s"] == pytest.approx(0.5)


def test_long_files_are_measured_on_their_start_but_report_full_duration():
    row = analyse("click_track_120bpm.wav", {"max_seconds": 2})
    assert row["duration_s"] == pytest.approx(6.0)
    assert row["analysed_s"] == pytest.approx(2.0)


def test_audio_under_another_audio_extension_is_read_by_content():
    row = audio.analyse_audio("really_flac.wav", SAMPLES["tones_220_330hz_stereo.flac"])
    assert row["format"] == "FLAC"


BROKEN = media_samples.broken_files("audio")


@pytest.mark.parametrize("name, data, reason", BROKEN, ids=[name for name, _, _ in BROKEN])
def test_broken_audio_fails_with_a_clear_reason(name, data, reason):
    with pytest.raises(BadFileError) as caught:
        audio.analyse_audio(name, data)
    assert reason in str(caught.value)
    assert caught.value.name == name and str(caught.value).startswith(name)


def test_speech_preview_runs_offline_and_is_labelled_rough():
    row = analyse("speech_espeak.flac", {"transcribe": True, "transcribe_seconds": 3})
    assert isinstance(row["transcript_preview"], str) and row["transcript_preview"]
    assert "rough" in row["transcript_note"].lower()
    assert "transcript_preview" not in analyse("speech_espeak.flac")


def test_waveform_and_spectrogram_stay_small():
    wave = media_charts.waveform_figure(SAMPLES["click_track_120bpm.wav"], "click_track_120bpm.wav")
    assert all(len(trace.x) <= media_charts.WAVEFORM_POINTS for trace in wave.data)
    spec = media_charts.spectrogram_figure(SAMPLES["chirp_100_4000hz.ogg"], "chirp_100_4000hz.ogg")
    z = spec.data[0].z
    assert len(z) == media_charts.SPECTROGRAM_BINS and len(z[0]) <= media_charts.SPECTROGRAM_FRAMES
    assert media_charts.spectrogram_figure(SAMPLES["short_blip.wav"], "short_blip.wav").data


def test_waveform_of_a_broken_file_raises_the_same_clear_error():
    with pytest.raises(BadFileError, match="empty file"):
        media_charts.waveform_figure(b"", "empty.wav")


def test_summary_figure_plots_one_dot_per_file_and_survives_empty_tables():
    rows = [analyse(name) for name in ("tone_440hz.wav", "short_blip.wav", "tone_660hz.mp3")]
    figure = media_charts.audio_summary_figure(pd.DataFrame(rows))
    assert sum(len(trace.x) for trace in figure.data) == 3  # the short clip falls back to RMS dBFS
    assert not media_charts.audio_summary_figure(pd.DataFrame()).data
