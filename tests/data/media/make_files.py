"""Regenerate the small committed media test files in this folder.

Run from the repository root: `.venv/bin/python tests/data/media/make_files.py`.
The speech clip needs espeak-ng (Debian package `espeak-ng`), which is why the outputs
are committed rather than made during tests; everything else is numpy/Pillow/soundfile.
Keep the folder under ~2 MB.
"""
from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from streamlit_app import media_samples as ms  # noqa: E402

SPEECH = "Hello world. This is a short test of the speech preview."


def write(name: str, data: bytes) -> None:
    (HERE / name).write_bytes(data)
    print(f"{name}: {len(data):,} bytes")


def audio_bytes(samples: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def speech_clip() -> bytes:
    """Real synthetic speech from espeak-ng, resampled to 16 kHz mono FLAC."""
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), SPEECH], check=True)
        samples, rate = sf.read(wav, dtype="float64")
    size = int(len(samples) * 16000 / rate)
    speech = np.fft.irfft(np.fft.rfft(samples)[: size // 2 + 1], size) * (size / len(samples))
    return audio_bytes(np.clip(speech, -1, 1), 16000, "FLAC", "PCM_16")


def make_audio() -> None:
    write("speech_espeak.flac", speech_clip())
    stereo = np.stack([ms.tone(440.0, 0.5, 48000), ms.tone(440.0, 0.5, 48000, 0.25)], axis=1)
    write("stereo_48k_24bit.wav", audio_bytes(stereo, 48000, "WAV", "PCM_24"))
    write("tone_300hz_44k.mp3", audio_bytes(ms.tone(300.0, 1.5, 44100), 44100, "MP3", "MPEG_LAYER_III"))
    write("tone_500hz_opus.ogg", ms._fix_ogg_serial(audio_bytes(ms.tone(500.0, 1.0, 48000), 48000, "OGG", "OPUS")))
    write("tone_250hz.aiff", audio_bytes(ms.tone(250.0, 0.5, 16000), 16000, "AIFF", "PCM_16"))
    quiet = np.concatenate([np.zeros(16000), ms.tone(400.0, 1.0, 16000, 0.3), np.zeros(16000)])
    write("gaps_then_tone.wav", audio_bytes(quiet, 16000, "WAV", "PCM_16"))


def make_images() -> None:
    scene = ms.landscape(400, 300, seed=5)
    buffer = io.BytesIO()
    scene.save(buffer, "JPEG", quality=85, exif=ms.camera_exif("Acme", "Model X", orientation=6))
    write("photo_exif_rotated.jpg", buffer.getvalue())

    # The copy is made from the picture as viewers see it (EXIF 6 = turn 90 degrees clockwise).
    upright = scene.transpose(Image.Transpose.ROTATE_270)
    edited = upright.crop((3, 4, 297, 396)).resize((225, 300)).point(lambda v: min(255, int(v * 1.05)))
    buffer = io.BytesIO()
    edited.save(buffer, "JPEG", quality=60)
    write("photo_edited_copy.jpg", buffer.getvalue())

    write("words_ocr.png", ms._png(ms.text_image("INVOICE 4711", (520, 120), 56)))

    ramp = np.tile(np.linspace(0, 65535, 128).astype(np.uint16), (64, 1))
    grey16 = Image.fromarray(ramp)  # uint16 gives mode I;16
    write("grey_16bit.png", ms._png(grey16))

    buffer = io.BytesIO()
    ms.landscape(120, 90, seed=9).convert("CMYK").save(buffer, "JPEG", quality=80)
    write("cmyk.jpg", buffer.getvalue())

    frames = []
    for step in range(3):
        frame = Image.new("P", (48, 48), 0)
        frame.putpalette([255, 255, 255, 0, 0, 0, 200, 30, 30] + [0] * 759)
        ImageDraw.Draw(frame).rectangle((8 + 10 * step, 16, 20 + 10 * step, 28), fill=2)
        frames.append(frame)
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    write("animated.gif", buffer.getvalue())

    write("tiny_2x2.png", ms._png(Image.new("RGB", (2, 2), (10, 200, 30))))


def make_texts() -> None:
    write("windows_quotes.txt", "\u201cCaf\u00e9 prices rose \u2013 again,\u201d she said. Nobody was surprised.".encode("cp1252"))
    write("utf16le_nobom.txt", ms.TEXTS["de"].encode("utf-16-le"))
    long_md = "# Field notes\n\n" + "\n\n".join(
        f"## Day {day}\n\nWe walked along the river and counted birds. The weather was mild and the team was cheerful. "
        f"On day {day} we saw herons, ducks and a kingfisher near the old bridge."
        for day in range(1, 21)
    )
    write("field_notes.md", long_md.encode("utf-8"))
    reviews = "nom;commentaire;note\nAnne;Très bon café, service rapide;5\nLuc;Trop cher pour la qualité;2\n"
    write("semicolon_latin1.csv", reviews.encode("latin-1"))
    write(
        "two_pages.pdf",
        ms.make_pdf([["Quarterly update", "Revenue increased in every region."], ["Risks", "Supply costs remain high."]]),
    )
    write("blank_scan.pdf", ms.make_pdf([[]]))
    write("table_only.docx", ms.make_docx("Inventory", [], [["Item", "Count"], ["Chairs", "12"], ["Desks", "4"]]))


if __name__ == "__main__":
    make_audio()
    make_images()
    make_texts()
    total = sum(path.stat().st_size for path in HERE.iterdir() if path.is_file())
    print(f"folder total: {total:,} bytes")
