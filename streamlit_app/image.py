"""Image analysis for one file: Pillow for decoding and EXIF, numpy for the measures, imagehash for duplicates.

Pure functions of (name, bytes, options) so they run in worker threads or processes.
Measures are taken on a copy at most ANALYSIS_SIZE pixels on its long side (JPEGs are
decoded straight at reduced scale), which keeps a 24-megapixel photo as cheap as a
small one. OCR runs the tesseract program in a subprocess, so threads scale for it.
"""
from __future__ import annotations

import base64
import io
import re
from typing import Any

import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from streamlit_app import ocr
from streamlit_app.media_errors import (
    BadFileError,
    check_extension,
    check_not_empty,
    describe_content,
)
from utils.decode_guard import LimitExceeded, check_image, current_limits, declared_frames, image_pixel_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
# Pillow's own guard, a backstop behind utils.decode_guard (MAX_IMAGE_PIXELS, MAX_DECODED_MB):
# it warns above this and refuses above twice this.
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ANALYSIS_SIZE = 1024
THUMBNAIL_SIZE = 128
DOMINANT_COLOURS = 5
DEFAULT_OCR_TIMEOUT = 60.0
# Columns too big for a results table; pages show them as pictures or drop them.
NON_TABLE_KEYS = ("thumbnail_png_b64",)
BLUR_SCORE_NOTE = (
    "Blur score is the variance of the Laplacian at up to 1024 px: higher is sharper; "
    "below about 100 usually looks blurry."
)

_EXIF_MAKE, _EXIF_MODEL, _EXIF_DATETIME, _EXIF_ORIENTATION = 0x010F, 0x0110, 0x0132, 0x0112
_EXIF_IFD, _EXIF_DATETIME_ORIGINAL = 0x8769, 0x9003
_FORMAT_LABELS = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}


# ---------------------------------------------------------------- opening


def _bomb(name: str, pixels: int) -> BadFileError:
    limit = min(MAX_PIXELS, current_limits().max_image_pixels)
    return BadFileError(
        name, f"decompression bomb: header declares {pixels:,} pixels, over the limit of {limit:,} (MAX_IMAGE_PIXELS)"
    )


def open_image(name: str, data: bytes, reduced: bool = False) -> Image.Image:
    """Open (header only) with the checks that keep broken and hostile files from costing memory.

    Pixels, decoded size (pixels x bytes per pixel, the header's bit depth included) and frames are
    checked before anything is decoded. reduced=True: the caller decodes JPEGs at reduced scale
    (draft), so a 50-megapixel photo costs little, and checks the draft's size with guard_decoded_size.
    """
    check_not_empty(name, data)
    ext = check_extension(name, IMAGE_EXTENSIONS, "images")
    label = _FORMAT_LABELS.get(ext, ext.lstrip(".").upper())
    actual = describe_content(data)
    if actual is not None and "image" not in actual:
        raise BadFileError(name, f"not a {label} file: content looks like {actual}")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _bomb(name, int(found.group(1)) if found else 2 * MAX_PIXELS + 1) from exc
    except UnidentifiedImageError as exc:
        raise BadFileError(name, f"not a recognised image: Pillow cannot identify the content of this {label} file") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadFileError(name, f"truncated or corrupt {label}: {exc}") from exc
    if reduced and image.format == "JPEG":
        return image  # decoded at reduced scale: the caller checks the draft's size (guard_decoded_size)
    try:
        check_image(image.width, image.height, image_pixel_bytes(image.mode, data), frame_count(image, data))
    except LimitExceeded as exc:
        raise BadFileError(name, str(exc)) from exc
    return image


def frame_count(image: Image.Image, data: bytes) -> int:
    """Frames of an animation or pages of a TIFF; GIF and APNG counted from their structure, not by decoding."""
    declared = declared_frames(data)
    if declared is not None:
        return declared
    return int(getattr(image, "n_frames", 1))


def guard_decoded_size(name: str, image: Image.Image, data: bytes) -> None:
    """Check the size the next load() decodes (after a JPEG draft it is the reduced one)."""
    try:
        check_image(image.width, image.height, image_pixel_bytes(image.mode, data), 1)
    except LimitExceeded as exc:
        raise BadFileError(name, str(exc)) from exc


def _load(name: str, image: Image.Image) -> None:
    """Decode the pixels, naming truncation plainly (Pillow only reads lazily)."""
    label = image.format or "image"
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadFileError(name, f"truncated or corrupt {label}: {exc}") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB version for measuring (the image itself when already RGB).

    Transparency goes onto white; 16-bit and float greys are scaled to 8 bits rather than clipped.
    """
    if image.mode.startswith("I;16"):
        # floor(v * 255 / 65535) == v // 257, in place: 3 bytes a pixel, not float64's 24 with temporaries
        values = np.array(image, dtype=np.uint16)
        np.floor_divide(values, 257, out=values)
        return Image.fromarray(values.astype(np.uint8), "L").convert("RGB")
    if image.mode in ("I", "F"):
        values = np.array(image, dtype=np.float32)
        top = 65535.0 if values.max() > 255 else 255.0
        values *= 255.0 / top
        np.clip(values, 0, 255, out=values)
        return Image.fromarray(values.astype(np.uint8), "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


# ---------------------------------------------------------------- measures


def _exif_text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).replace("\x00", "").strip() if value is not None else ""


def exif_summary(image: Image.Image) -> dict[str, Any]:
    """Camera make and model, date taken and orientation (1-8), empty when the file has no EXIF."""
    try:
        exif = image.getexif()
        taken = exif.get_ifd(_EXIF_IFD).get(_EXIF_DATETIME_ORIGINAL) or exif.get(_EXIF_DATETIME)
    except Exception:  # noqa: BLE001 - malformed EXIF must not sink the picture itself
        return {"camera_make": "", "camera_model": "", "date_taken": "", "orientation": None}
    orientation = exif.get(_EXIF_ORIENTATION)
    return {
        "camera_make": _exif_text(exif.get(_EXIF_MAKE)),
        "camera_model": _exif_text(exif.get(_EXIF_MODEL)),
        "date_taken": _exif_text(taken),
        "orientation": int(orientation) if isinstance(orientation, int) else None,
    }


def blur_score(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: edges make it large, blur makes it small."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    laplacian = (
        grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * grey[1:-1, 1:-1]
    )
    return round(float(laplacian.var()), 2)


def dominant_colours(rgb: Image.Image, count: int = DOMINANT_COLOURS) -> list[str]:
    """Hex codes of the main colours, commonest first (median cut on a 64 px copy, near-twins merged)."""
    small = rgb.resize((64, 64), Image.Resampling.BILINEAR)
    quantised = small.quantize(colors=2 * count, method=Image.Quantize.MEDIANCUT)
    palette = quantised.getpalette() or []
    chosen: list[tuple[int, int, int]] = []
    for _, index in sorted(quantised.getcolors() or [], reverse=True):
        colour = tuple(palette[3 * index:3 * index + 3])
        if all(sum((a - b) ** 2 for a, b in zip(colour, seen)) > 24**2 for seen in chosen):
            chosen.append(colour)
    return ["#{:02x}{:02x}{:02x}".format(*colour) for colour in chosen[:count]]


def thumbnail_png_b64(rgb: Image.Image, size: int = THUMBNAIL_SIZE) -> str:
    """A small PNG preview as base64 text (JSON-safe), at most size pixels on its long side.

    A 256-colour palette: ~2.6 KB instead of ~14 KB for a photo. The results table carries every thumbnail
    (ImageColumn) to the browser on each rerun, so 200 full-colour ones made a rerun send ~3 MB."""
    thumb = rgb.copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    # optimize=True would triple the cost of the whole analysis; the palette costs ~1 ms at this size
    thumb.quantize(256, method=Image.Quantize.FASTOCTREE).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# ---------------------------------------------------------------- OCR


def ocr_result(data: bytes, name: str = "image", lang: str = "auto", timeout: float = DEFAULT_OCR_TIMEOUT) -> ocr.OcrResult:
    """Text tesseract reads in the picture (full resolution, upright per EXIF), with its confidence.

    The image is cleaned up first as it needs (streamlit_app.ocr); lang "auto" picks the
    Tesseract pack of the language the text is in.
    """
    image = open_image(name, data)
    _load(name, image)
    upright = to_rgb(ImageOps.exif_transpose(image))
    return ocr.read_text(upright, lang=lang, timeout=timeout)


def ocr_image(data: bytes, name: str = "image", lang: str = "auto", timeout: float = DEFAULT_OCR_TIMEOUT) -> str:
    """Text tesseract reads in the picture; '' when it finds none."""
    return ocr_result(data, name, lang, timeout).text


# ---------------------------------------------------------------- per-item entry point


def analyse_image(name: str, data: bytes, options: dict | None = None) -> dict[str, Any]:
    """Measure one image into a flat, JSON-serialisable row; BadFileError when it cannot be read.

    Options: ocr (bool, default False), ocr_lang ("auto", or Tesseract's code such as "deu"), ocr_timeout (60 s),
    thumbnail (bool, default True).
    """
    options = options or {}
    image = open_image(name, data, reduced=True)
    width, height, mode, fmt = image.width, image.height, image.mode, image.format
    frames = frame_count(image, data)
    exif = exif_summary(image)
    # JPEG: decode straight at 1/2..1/8 scale while the long side stays >= ANALYSIS_SIZE.
    shrink = ANALYSIS_SIZE / max(width, height)
    if shrink < 1:
        image.draft("RGB", (max(1, int(width * shrink)), max(1, int(height * shrink))))
    if fmt == "JPEG":
        guard_decoded_size(name, image, data)
    _load(name, image)
    if exif["orientation"] not in (None, 1):
        image = ImageOps.exif_transpose(image)  # measure the picture the way viewers see it
    rgb = to_rgb(image)
    rgb.thumbnail((ANALYSIS_SIZE, ANALYSIS_SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    grey = np.asarray(rgb.convert("L"), dtype=np.float64)
    # Hashes, colours and the preview need little detail: take them from a 256 px copy.
    small = rgb.copy()
    small.thumbnail((256, 256), Image.Resampling.BILINEAR, reducing_gap=2.0)
    row: dict[str, Any] = {
        "name": name,
        "format": fmt or "",
        "width": width,
        "height": height,
        "megapixels": round(width * height / 1e6, 3),
        "mode": mode,
        "frames": frames,
        **exif,
        "brightness": round(float(grey.mean()) / 255.0, 4),
        "contrast": round(float(grey.std()) / 255.0, 4),
        "blur_score": blur_score(grey),
        "dominant_colours": ", ".join(dominant_colours(small)),
        "phash": str(imagehash.phash(small)),
        "dhash": str(imagehash.dhash(small)),
        "size_bytes": len(data),
    }
    if options.get("thumbnail", True):
        row["thumbnail_png_b64"] = thumbnail_png_b64(small)
    if options.get("ocr"):
        try:
            read = ocr_result(
                data,
                name,
                lang=options.get("ocr_lang") or "auto",
                timeout=float(options.get("ocr_timeout", DEFAULT_OCR_TIMEOUT)),
            )
            row.update(ocr.row_fields(read))
        except RuntimeError as exc:  # pytesseract's timeout; a missing tesseract is an OSError and propagates
            row.update(ocr_text="", ocr_confidence=None, ocr_unsure=True, ocr_language="", ocr_steps="")
            row["ocr_note"] = f"OCR stopped: {exc}"
    return row


def analyse_image_item(item: tuple) -> dict[str, Any]:
    """One-argument form for the threading manager's map: item is (name, data) or (name, data, options)."""
    name, data, *rest = item
    return analyse_image(name, data, rest[0] if rest else None)


# ---------------------------------------------------------------- duplicates


def hamming_distance(hash_a: str, hash_b: str) -> int:
    """Number of differing bits between two equal-length hex hashes."""
    return bin(int(hash_a, 16) ^ int(hash_b, 16)).count("1")


def near_duplicate_groups(hashes: dict[str, str], max_distance: int = 8) -> list[list[str]]:
    """Groups of names whose perceptual hashes differ in at most max_distance bits (chains join up).

    Empty hashes (files that failed) are ignored. Groups keep input order; only groups of two or more.
    """
    names = [name for name, value in hashes.items() if value]
    if len(names) < 2:
        return []
    rows = []
    for name in names:
        try:
            rows.append(bytes.fromhex(hashes[name]))
        except ValueError as exc:
            raise ValueError(f"{name}: hash {hashes[name]!r} is not hexadecimal") from exc
        if len(rows[-1]) != len(rows[0]):
            raise ValueError(f"{name}: hash length differs from {names[0]}'s; compare hashes of one kind")
    bits = np.unpackbits(np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(names), -1), axis=1)
    parent = list(range(len(names)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(names) - 1):
        distances = np.count_nonzero(bits[i + 1:] != bits[i], axis=1)
        for j in np.nonzero(distances <= max_distance)[0]:
            a, b = root(i), root(i + 1 + int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[str]] = {}
    for index, name in enumerate(names):
        groups.setdefault(root(index), []).append(name)
    return [members for _, members in sorted(groups.items()) if len(members) > 1]


LOOKALIKE_PICTURES = 24  # thumbnails the Image page shows for the chosen look-alike group


def lookalike_table(groups: list[list[dict]]) -> list[dict[str, Any]]:
    """One row per look-alike group (number, file count, names), for a results table: names stay text cells."""
    return [{"group": number, "files": len(group), "names": ", ".join(member["name"] for member in group)}
            for number, group in enumerate(groups, start=1)]


def lookalike_pictures(group: list[dict]) -> list[bytes]:
    """The group's thumbnails (PNG bytes), in the order of its names, at most LOOKALIKE_PICTURES."""
    shown = [member for member in group if member["thumbnail_png_b64"]][:LOOKALIKE_PICTURES]
    return [base64.b64decode(member["thumbnail_png_b64"]) for member in shown]


def warm_up() -> None:
    """Pay the one-off costs (scipy's DCT for phash) before timing or serving; a process-pool initializer."""
    imagehash.phash(Image.new("RGB", (64, 64), "white"))
