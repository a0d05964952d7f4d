"""OCR on the Image page: each picture gets the clean-up it needs, and unsure text is flagged, not presented as read.

Pages are rendered here with Pillow (known truth), degraded the way real scans and photos are,
and read through the page's own entry point (image.analyse_image with OCR on).
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rapidfuzz.distance import Levenshtein

from streamlit_app import image, media_samples, ocr

LINES = ["Spindle reads the text of a scanned page", "even where a shadow falls across it."]


DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # fonts-dejavu-core, installed by make


def render(lines: list[str], size: int = 40, width: int = 1400, font_file: Path | None = None) -> Image.Image:
    return media_samples.text_page(lines, size, width, str(font_file) if font_file else None)


def png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def cer(truth: str, read: str) -> float:
    truth, read = " ".join(truth.split()), " ".join(read.split())
    return Levenshtein.distance(truth, read) / len(truth)


def read_page(picture: Image.Image, **options) -> dict:
    return image.analyse_image("page.png", png(picture), {"ocr": True, "thumbnail": False, **options})


def test_a_shadowed_scan_reads():
    page = np.asarray(render(LINES), dtype=np.float32)
    h, w = page.shape
    y, x = np.mgrid[0:h, 0:w]
    edge = 0.45 * w + 0.15 * w * np.sin(3 * y / h)  # a soft, curved shadow over the left half (plain Tesseract reads nothing)
    light = 1.0 - 0.6 / (1.0 + np.exp(-(edge - x) / 25.0))
    shadowed = Image.fromarray((page * light).astype(np.uint8), "L")
    row = read_page(shadowed)
    assert cer(" ".join(LINES), row["ocr_text"]) < 0.03, row["ocr_text"]
    assert "flatten background" in row["ocr_steps"]
    assert row["ocr_unsure"] is False and row["ocr_confidence"] > ocr.LOW_CONFIDENCE and row["ocr_note"] == ""


def test_small_print_is_enlarged_before_reading():
    row = read_page(render(LINES, size=13, width=500))
    assert "upscale" in row["ocr_steps"]
    assert cer(" ".join(LINES), row["ocr_text"]) < 0.05, row["ocr_text"]


def test_light_text_on_a_dark_ground_reads():
    row = read_page(Image.eval(render(LINES), lambda v: 255 - v))
    assert "invert" in row["ocr_steps"]
    assert cer(" ".join(LINES), row["ocr_text"]) < 0.03, row["ocr_text"]


def test_a_skewed_scan_is_straightened():
    turned = render(LINES).rotate(5, Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    binary = np.asarray(turned) < 128
    assert ocr.skew_angle(binary) == pytest.approx(5.0, abs=0.3)
    row = read_page(turned)
    assert "deskew" in row["ocr_steps"]
    assert cer(" ".join(LINES), row["ocr_text"]) < 0.03, row["ocr_text"]


def test_noise_is_measured_and_filtered():
    rng = np.random.default_rng(1)
    flat = np.full((200, 300), 128.0)
    assert ocr.noise_sigma(flat + rng.normal(0, 10, flat.shape)) == pytest.approx(10, rel=0.15)
    page = np.asarray(render(LINES), dtype=np.float32)
    noisy = np.clip(page + rng.normal(0, 45, page.shape), 0, 255).astype(np.uint8)
    row = read_page(Image.fromarray(noisy, "L"))
    assert "denoise" in row["ocr_steps"]
    assert cer(" ".join(LINES), row["ocr_text"]) < 0.05, row["ocr_text"]


def test_a_picture_without_text_is_flagged_not_presented_as_read():
    row = image.analyse_image("hills.png", png(media_samples.landscape(640, 480)), {"ocr": True, "thumbnail": False})
    assert row["ocr_unsure"] is True
    assert row["ocr_note"]  # "no text found" or "low confidence ...": the page shows it instead of the text
    if row["ocr_text"]:
        assert row["ocr_confidence"] < ocr.LOW_CONFIDENCE


def test_german_text_is_read_with_the_german_pack():
    assert "deu" in ocr.installed_languages(), "make system-deps installs tesseract-ocr-deu"
    lines = ["Größere Übungen für fünf Schüler", "werden täglich geprüft und gelöst."]
    row = read_page(render(lines, font_file=DEJAVU))  # Pillow's own font has no umlauts
    assert row["ocr_language"] == "deu"
    assert cer(" ".join(lines), row["ocr_text"]) < 0.05, row["ocr_text"]


def test_the_language_can_be_chosen_on_the_page():
    row = read_page(render(LINES), ocr_lang="eng")
    assert row["ocr_language"] == "eng" and "Spindle" in row["ocr_text"]


def test_result_fields_are_flat_and_say_how_sure():
    result = ocr.OcrResult("", 0.0, 0, "eng", 3)
    fields = ocr.row_fields(result)
    assert fields["ocr_unsure"] is True and fields["ocr_confidence"] is None and fields["ocr_note"] == "no text found"
    sure = ocr.row_fields(ocr.OcrResult("Hello", 91.5, 1, "eng", 3, ("upscale",)))
    assert (sure["ocr_unsure"], sure["ocr_confidence"], sure["ocr_steps"], sure["ocr_note"]) == (False, 91.5, "upscale", "")
    assert math.isclose(ocr.otsu_threshold(np.array([[10, 10, 200, 200]], dtype=np.uint8)), 10, abs_tol=1)


def test_another_script_is_read_with_its_pack():
    assert "rus" in ocr.installed_languages(), "make system-deps installs tesseract-ocr-rus"
    lines = ["Файл не найден на сервере, попробуйте", "ещё раз через несколько минут."]
    row = read_page(render(lines, font_file=DEJAVU))
    assert row["ocr_language"] == "rus+eng"
    assert cer(" ".join(lines), row["ocr_text"]) < 0.05, row["ocr_text"]
