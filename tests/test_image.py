"""The Image analyser on real generated pictures: measures, EXIF, hashes, OCR and hostile files."""
from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from streamlit_app import image, media_charts, media_samples
from streamlit_app.media_errors import BadFileError

DATA = Path(__file__).parent / "data" / "media"
SAMPLES = dict(media_samples.sample_image_files())


def analyse(name: str, options: dict | None = None) -> dict:
    data = SAMPLES[name] if name in SAMPLES else (DATA / name).read_bytes()
    return image.analyse_image(name, data, options)


def thumbnail(row: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(row["thumbnail_png_b64"])))


@pytest.mark.parametrize("name", sorted(SAMPLES) + ["grey_16bit.png", "cmyk.jpg", "animated.gif", "tiny_2x2.png"])
def test_every_picture_gives_a_flat_json_row_with_a_small_thumbnail(name):
    row = analyse(name)
    json.dumps(row, allow_nan=False)
    assert all(not isinstance(value, (dict, list)) for value in row.values())
    assert 0.0 <= row["brightness"] <= 1.0 and row["contrast"] >= 0.0
    assert re.fullmatch(r"[0-9a-f]{16}", row["phash"]) and re.fullmatch(r"[0-9a-f]{16}", row["dhash"])
    assert all(re.fullmatch(r"#[0-9a-f]{6}", colour) for colour in row["dominant_colours"].split(", "))
    thumb = thumbnail(row)
    assert thumb.format == "PNG" and max(thumb.size) <= image.THUMBNAIL_SIZE


def test_size_mode_and_format_are_reported():
    row = analyse("sunset_camera.jpg")
    assert (row["format"], row["width"], row["height"], row["mode"]) == ("JPEG", 320, 240, "RGB")
    assert analyse("grey_16bit.png")["mode"] == "I;16"
    assert analyse("cmyk.jpg")["mode"] == "CMYK"
    assert analyse("animated.gif")["frames"] == 3


def test_exif_camera_date_and_orientation():
    row = analyse("photo_exif_rotated.jpg")
    assert (row["camera_make"], row["camera_model"]) == ("Acme", "Model X")
    assert row["date_taken"] == "2026:05:17 09:30:00"
    assert row["orientation"] == 6
    # Stored landscape, shown portrait: the preview is turned the way the camera meant.
    assert (row["width"], row["height"]) == (400, 300)
    assert thumbnail(row).height > thumbnail(row).width
    assert analyse("checkerboard.png")["camera_make"] == ""


def test_blur_score_ranks_sharp_above_blurred():
    sharp, photo, blurred = (analyse(n)["blur_score"] for n in ("checkerboard.png", "sunset_camera.jpg", "sunset_blurred.jpg"))
    assert sharp > photo > 10 * blurred


def test_brightness_and_contrast():
    sign, board = analyse("sign_spindle.png"), analyse("checkerboard.png")
    assert sign["brightness"] > 0.8  # mostly white paper
    assert board["brightness"] == pytest.approx(0.5, abs=0.01) and board["contrast"] == pytest.approx(0.5, abs=0.01)
    grey = analyse("grey_16bit.png")  # a 16-bit ramp is scaled, not clipped to white
    assert grey["brightness"] == pytest.approx(0.5, abs=0.02)


def test_dominant_colours_find_the_logo_red_on_white():
    colours = analyse("logo_transparent.png")["dominant_colours"].split(", ")
    assert colours[0] == "#ffffff"  # transparency is shown on white
    assert "#c81e3c" in colours


def test_thumbnail_can_be_left_out():
    assert "thumbnail_png_b64" not in analyse("checkerboard.png", {"thumbnail": False})
    assert image.NON_TABLE_KEYS == ("thumbnail_png_b64",)


BROKEN = media_samples.broken_files("image")


@pytest.mark.parametrize("name, data, reason", BROKEN, ids=[name for name, _, _ in BROKEN])
def test_broken_images_fail_with_a_clear_reason(name, data, reason):
    with pytest.raises(BadFileError) as caught:
        image.analyse_image(name, data)
    assert reason in str(caught.value) and caught.value.name == name


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bomb_just_over_the_limit_is_refused_too():
    # 72 MP: over MAX_PIXELS but under Pillow's hard error at twice the limit.
    with pytest.raises(BadFileError, match="decompression bomb: header declares 72,000,000 pixels"):
        image.analyse_image("big.png", media_samples.bomb_png(9000, 8000))
    with pytest.raises(BadFileError, match="decompression bomb"):
        image.ocr_image(media_samples.bomb_png(), "bomb.png")


def test_ocr_reads_rendered_words():
    assert "INVOICE" in image.ocr_image((DATA / "words_ocr.png").read_bytes(), "words_ocr.png")
    row = analyse("sign_spindle.png", {"ocr": True})
    assert "SPINDLE" in row["ocr_text"] and row["ocr_note"] == ""
    assert "ocr_text" not in analyse("sign_spindle.png")


def test_near_duplicates_are_grouped_and_distinct_pictures_are_not():
    hashes = {name: analyse(name)["phash"] for name in SAMPLES}
    groups = image.near_duplicate_groups(hashes)
    sunset = next(group for group in groups if "sunset_camera.jpg" in group)
    assert "sunset_copy_small.jpg" in sunset
    assert all("checkerboard.png" not in group and "sign_spindle.png" not in group for group in groups)


def test_near_duplicate_matching_follows_exif_rotation():
    hashes = {name: analyse(name)["phash"] for name in ("photo_exif_rotated.jpg", "photo_edited_copy.jpg", "words_ocr.png")}
    assert image.near_duplicate_groups(hashes) == [["photo_exif_rotated.jpg", "photo_edited_copy.jpg"]]


def test_near_duplicate_grouping_rules():
    hashes = {"a": "0000000000000000", "b": "000000000000000f", "c": "00000000000000ff", "d": "ffffffffffffffff", "failed": ""}
    assert image.near_duplicate_groups(hashes, max_distance=4) == [["a", "b", "c"]]  # a-b-c chain joins up
    assert image.near_duplicate_groups(hashes, max_distance=0) == []
    assert image.near_duplicate_groups({}) == []
    with pytest.raises(ValueError, match="x: hash 'zz' is not hexadecimal"):
        image.near_duplicate_groups({"a": "00", "x": "zz"})


def test_summary_figure():
    rows = [analyse(name) for name in SAMPLES]
    figure = media_charts.image_summary_figure(pd.DataFrame(rows))
    assert len(figure.data[0].x) == len(SAMPLES)
    assert not media_charts.image_summary_figure(pd.DataFrame()).data


def photo_jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    media_samples.landscape(1600, 1200, seed=seed).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def test_a_photos_thumbnail_stays_a_few_kilobytes():
    # The results table carries every thumbnail to the browser on each rerun: 200 of them must stay light.
    row = image.analyse_image("photo.jpg", photo_jpeg(3))
    assert len(row["thumbnail_png_b64"]) <= 6_000
    thumb = thumbnail(row)
    assert thumb.format == "PNG" and max(thumb.size) == image.THUMBNAIL_SIZE
    assert len(thumb.convert("RGB").getcolors(maxcolors=4096) or []) > 16  # still a picture, not a few flat colours


def test_the_streamed_table_leaves_thumbnails_out_until_the_job_is_finished(tmp_path):
    from types import SimpleNamespace

    from streamlit_app import file_jobs
    from utils.store.sqlite_store import SQLiteStore

    store = SQLiteStore(tmp_path / "spindle.db")
    services = SimpleNamespace(store=store)
    store.create_job({"id": "img", "owner": "someone", "kind": "image", "total": 2, "status": "running", "params": {}})
    store.add_items("img", [(i, {"name": f"photo_{i}.jpg"}) for i in range(2)])
    rows = [image.analyse_image(f"photo_{i}.jpg", photo_jpeg(i)) for i in range(2)]
    store.save_results("img", [{"idx": 0, "status": "completed", "result": rows[0]}])
    running = file_jobs.results_frame(services, "img")
    assert list(running["status"]) == ["ok", "pending"] and "thumbnail" not in running.columns
    store.save_results("img", [{"idx": 1, "status": "completed", "result": rows[1]}])
    store.update_job("img", status="completed", done=2, failed=0, finished_at=1.0)
    finished = file_jobs.results_frame(services, "img")
    assert list(finished["status"]) == ["ok", "ok"]
    assert all(cell.startswith("data:image/png;base64,") for cell in finished["thumbnail"])
    store.close()
