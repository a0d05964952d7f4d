"""Sample and broken files for the media pages, the shared error type, and offline operation."""
from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streamlit_app import audio, image, media_samples, text
from streamlit_app.media_errors import BadFileError, describe_content

ROOT = Path(__file__).resolve().parent.parent
GENERATORS = {
    "audio": (media_samples.sample_audio_files, audio.analyse_audio),
    "image": (media_samples.sample_image_files, image.analyse_image),
    "text": (media_samples.sample_text_files, text.analyse_text),
}


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_samples_are_repeatable_byte_for_byte(kind):
    make, _ = GENERATORS[kind]
    assert make() == make()


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_samples_are_small_uniquely_named_and_all_analyse(kind):
    make, analyse = GENERATORS[kind]
    files = make()
    assert len(files) >= 5
    assert len({name for name, _ in files}) == len(files)
    assert sum(len(data) for _, data in files) < 1_000_000
    for name, data in files:
        assert analyse(name, data)["name"] == name


def test_samples_cover_the_promised_variety():
    audio_names = {name.rsplit(".", 1)[1] for name, _ in media_samples.sample_audio_files()}
    assert {"wav", "flac", "ogg", "mp3"} <= audio_names
    text_names = [name for name, _ in media_samples.sample_text_files()]
    assert any(name.endswith(".md") for name in text_names) and any(name.endswith(".csv") for name in text_names)
    languages = {text.analyse_text(n, d)["language"] for n, d in media_samples.sample_text_files()}
    assert {"en", "fr", "de", "es"} <= languages


@pytest.mark.parametrize("kind", ["audio", "image", "text"])
def test_broken_corpus_is_repeatable_and_covers_the_usual_failures(kind):
    broken = media_samples.broken_files(kind)
    assert broken == media_samples.broken_files(kind)
    reasons = " | ".join(reason for _, _, reason in broken)
    assert "empty file" in reasons and "unsupported file type" in reasons
    assert any(data == b"" for _, data, _ in broken)


def test_broken_files_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown kind 'video'"):
        media_samples.broken_files("video")


def test_bad_file_error_names_the_file_and_survives_a_process_boundary():
    error = BadFileError("clip.wav", "truncated WAV: header says 44100 frames, file holds 310")
    assert isinstance(error, ValueError)
    assert str(error) == "clip.wav: truncated WAV: header says 44100 frames, file holds 310"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.name, copy.reason, str(copy)) == (BadFileError, error.name, error.reason, str(error))


def test_content_sniffing_names_what_a_file_really_is():
    assert describe_content(media_samples.sample_image_files()[0][1]) == "a PNG image"
    assert describe_content(media_samples.sample_audio_files()[0][1]) == "WAV audio"
    assert describe_content(b"%PDF-1.4 ...") == "a PDF document"
    assert describe_content(b"plain words") is None


def test_all_three_analysers_work_with_the_network_switched_off():
    """No model, dictionary or profile is fetched at run time (textstat 0.7.9+ would try), even from cold threads."""
    script = textwrap.dedent(
        """
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network used")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from streamlit_app import audio, image, text, media_samples
        clip = dict(media_samples.sample_audio_files())["speech_like.wav"]
        row = audio.analyse_audio("speech_like.wav", clip, {"transcribe": True, "transcribe_seconds": 1})
        assert isinstance(row["transcript_preview"], str)
        picture = dict(media_samples.sample_image_files())["sunset_camera.jpg"]
        assert image.analyse_image("sunset_camera.jpg", picture)["phash"]
        # Cold process, four threads at once: lazy loads must not be seen half-done.
        from concurrent.futures import ThreadPoolExecutor
        files = media_samples.sample_text_files()
        with ThreadPoolExecutor(4) as pool:
            rows = list(pool.map(lambda item: text.analyse_text(*item), files))
        assert all(row["flesch_reading_ease"] is not None for row in rows)
        languages = {row["name"]: row["language"] for row in rows}
        assert languages["bibliotheque_fr.txt"] == "fr" and languages["bibliothek_de.txt"] == "de", languages
        assert languages["biblioteca_es.txt"] == "es" and languages["library_en.txt"] == "en", languages
        print("offline ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "offline ok" in result.stdout
