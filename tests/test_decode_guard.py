"""The decoded-size checks: refuse from headers alone, name the setting, let ordinary files through."""
from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from config.settings import load_settings
from streamlit_app import media_samples
from tests import hostile_files
from utils import decode_guard
from utils.decode_guard import DecodeLimits, LimitExceeded

LIMITS = DecodeLimits()


def test_defaults_follow_the_memory_per_task_and_keep_one_item_under_it():
    settings = load_settings({})
    assert settings.max_memory_per_task_mb == 512 and settings.max_decoded_mb == 128
    small = load_settings({"MAX_MEMORY_PER_TASK_MB": "256"})
    assert small.max_decoded_mb == 64 and small.max_zip_part_mb == 32
    assert small.max_image_pixels * 3 <= small.max_decoded_mb * decode_guard.MIB  # 8-bit RGB copy fits
    override = load_settings({"MAX_DECODED_MB": "300", "MAX_SHEET_ROWS": "10"})
    assert DecodeLimits.from_settings(override).max_decoded_bytes == 300 * decode_guard.MIB
    assert DecodeLimits.from_settings(override).max_sheet_rows == 10


def test_a_bad_limit_value_warns_and_keeps_the_default():
    with pytest.warns(UserWarning, match="MAX_SHEET_COLUMNS"):
        assert load_settings({"MAX_SHEET_COLUMNS": "lots"}).max_sheet_columns == 500


@pytest.mark.parametrize("width, height, pixel_bytes, setting", [
    (100_000, 100_000, 1, "MAX_IMAGE_PIXELS"),
    (6000, 6000, 6, "MAX_DECODED_MB"),  # 16-bit RGB: 216 MB although only 36 megapixels
])
def test_images_are_refused_on_pixels_or_decoded_bytes(width, height, pixel_bytes, setting):
    with pytest.raises(LimitExceeded, match=setting):
        decode_guard.check_image(width, height, pixel_bytes, 1, LIMITS)


def test_an_ordinary_photo_passes_and_too_many_frames_do_not():
    decode_guard.check_image(6000, 4000, 3, 1, LIMITS)  # a 24-megapixel camera
    with pytest.raises(LimitExceeded, match="MAX_IMAGE_FRAMES"):
        decode_guard.check_image(10, 10, 1, 5000, LIMITS)


def test_png_bit_depth_is_read_from_the_header():
    assert decode_guard.png_declared_pixel_bytes(hostile_files.png_bomb(4, 4, 16, 2)) == 6
    assert decode_guard.png_declared_pixel_bytes(hostile_files.png_bomb(4, 4, 16, 0)) == 2
    assert decode_guard.png_declared_pixel_bytes(b"GIF89a...") is None
    assert decode_guard.image_pixel_bytes("RGB", hostile_files.png_bomb(4, 4, 16, 2)) == 6


def _gif(frames: int) -> bytes:
    images = [Image.new("RGB", (4, 4), (i * 8 % 256, 255 - i * 8 % 256, 0)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=10, disposal=2)
    return buffer.getvalue()


def _apng(frames: int) -> bytes:
    images = [Image.new("RGB", (4, 4), (i * 40 % 255, 0, 0)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "PNG", save_all=True, append_images=images[1:], duration=10)
    return buffer.getvalue()


def test_animation_frames_are_counted_from_structure_not_by_decoding():
    assert decode_guard.declared_frames(_gif(12), LIMITS) == Image.open(io.BytesIO(_gif(12))).n_frames == 12
    assert decode_guard.declared_frames(_apng(5), LIMITS) == 5
    assert decode_guard.declared_frames(hostile_files.png_bomb(4, 4, 8, 0), LIMITS) == 1
    assert decode_guard.gif_frames(_gif(30), stop_after=10) == 11  # stops counting past the limit


def test_audio_reads_what_fits_and_refuses_headers_no_recording_has():
    hour_stereo = 3600 * 44100
    assert decode_guard.check_audio(hour_stereo, 2, 44100, max_seconds=300, limits=LIMITS) == 300 * 44100
    # Unbounded or hi-res: as much of the start as fits MAX_DECODED_MB (float32), never the whole hour.
    fits = LIMITS.max_decoded_bytes // (2 * 4)
    assert decode_guard.check_audio(hour_stereo, 2, 44100, max_seconds=None, limits=LIMITS) == fits
    assert decode_guard.check_audio(300 * 192_000, 2, 192_000, max_seconds=300, limits=LIMITS) == fits
    with pytest.raises(LimitExceeded, match=r"first 10 s .*MAX_DECODED_MB"):
        decode_guard.check_audio((1 << 36) - 1, 8, 655_350, max_seconds=300, limits=LIMITS)
    with pytest.raises(LimitExceeded, match="MAX_AUDIO_CHANNELS"):
        decode_guard.check_audio(100, 1000, 44100, limits=LIMITS)


def _zip(parts: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in parts.items():
            package.writestr(name, data)
    return buffer.getvalue()


def test_zip_parts_are_checked_for_size_ratio_and_count():
    ordinary = _zip({"a.xml": b"<a>hello</a>" * 1000, "b.xml": bytes(range(256)) * 100})
    assert len(decode_guard.check_zip(ordinary, LIMITS)) == 2
    with pytest.raises(LimitExceeded, match="MAX_ZIP_RATIO"):
        decode_guard.check_zip(_zip({"big.xml": b" " * (8 * decode_guard.MIB)}), LIMITS)
    with pytest.raises(LimitExceeded, match="MAX_ZIP_PART_MB"):
        decode_guard.check_zip(hostile_files.docx_bomb(80 * decode_guard.MIB), LIMITS)
    with pytest.raises(LimitExceeded, match="MAX_ZIP_ENTRIES"):
        decode_guard.check_zip(_zip({f"{i}.xml": b"x" for i in range(30)}), DecodeLimits(max_zip_entries=20))
    with pytest.raises(zipfile.BadZipFile):
        decode_guard.check_zip(b"PK\x03\x04 not really a zip", LIMITS)


def test_text_characters_are_bounded_before_decoding():
    assert decode_guard.text_char_bound("héllo".encode("utf-16")) == 6  # BOM + 5 characters
    assert decode_guard.text_char_bound(b"hello") == 5
    with pytest.raises(LimitExceeded, match="MAX_TEXT_CHARS"):
        decode_guard.check_text_chars(11, DecodeLimits(max_text_chars=10))
    with pytest.raises(LimitExceeded, match="MAX_PDF_PAGES"):
        decode_guard.check_pdf_pages(6000, LIMITS)


def test_the_sample_files_all_pass_their_guards():
    for _name, data, *_ in media_samples.sample_image_files():
        image = Image.open(io.BytesIO(data))
        frames = decode_guard.declared_frames(data, LIMITS) or getattr(image, "n_frames", 1)
        decode_guard.check_image(image.width, image.height, decode_guard.image_pixel_bytes(image.mode, data),
                                 frames, LIMITS)
