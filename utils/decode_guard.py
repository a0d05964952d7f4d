"""Decoded-size checks that run before a decoder touches untrusted bytes.

A 0.4 MB PNG can declare 8000 x 8000 16-bit pixels, a 1.6 MB FLAC 8 channels at
655 kHz, a 215 KB DOCX a 1 GB XML part. Every check here reads only headers (or a
zip's central directory) and compares what decoding would cost with a setting, so a
hostile file is refused in microseconds with a sentence that names the limit.
Pure functions, no I/O beyond the bytes given: safe in any worker thread or process.
"""
from __future__ import annotations

import functools
import io
import struct
import zipfile
from dataclasses import dataclass

from config.settings import Settings, load_settings

# The manager's process pool whose workers run under an address-space cap (RLIMIT_AS from
# MAX_MEMORY_PER_TASK_MB): untrusted bytes are decoded only there, so a blow-up costs one item.
UNTRUSTED_POOL = "untrusted"
MIB = 1024 * 1024
# Parts smaller than this are never refused for their compression ratio: tiny XML compresses well.
RATIO_FLOOR_BYTES = MIB
FLOAT32_BYTES = 4  # the analysers decode audio to float32
MIN_AUDIO_SECONDS = 10.0  # a recording whose first 10 s cannot be decoded within the limit is refused

# Bytes per pixel Pillow holds in memory for each mode ("1" and "P" take a byte per pixel).
_MODE_BYTES = {
    "1": 1, "L": 1, "P": 1, "LA": 2, "La": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3,
    "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I": 4, "F": 4,
    "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2, "BGR;15": 2, "BGR;16": 2, "BGR;24": 3,
}
# PNG colour type -> samples per pixel.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


class LimitExceeded(ValueError):
    """What decoding would cost is over a setting; the message names the setting."""


@dataclass(frozen=True)
class DecodeLimits:
    """The limits one untrusted item is checked against (from config.settings)."""

    max_decoded_bytes: int = 128 * MIB
    max_image_pixels: int = 44_739_242
    max_image_frames: int = 1000
    max_audio_channels: int = 32
    max_zip_part_bytes: int = 64 * MIB
    max_zip_ratio: int = 100
    max_zip_entries: int = 10_000
    max_text_chars: int = 33_554_432
    max_pdf_pages: int = 5000
    max_sheet_bytes: int = 50 * MIB
    max_sheet_rows: int = 250_000
    max_sheet_columns: int = 500
    max_sheet_cells: int = 2_500_000

    @classmethod
    def from_settings(cls, settings: Settings) -> DecodeLimits:
        return cls(
            max_decoded_bytes=settings.max_decoded_mb * MIB,
            max_image_pixels=settings.max_image_pixels,
            max_image_frames=settings.max_image_frames,
            max_audio_channels=settings.max_audio_channels,
            max_zip_part_bytes=settings.max_zip_part_mb * MIB,
            max_zip_ratio=settings.max_zip_ratio,
            max_zip_entries=settings.max_zip_entries,
            max_text_chars=settings.max_text_chars,
            max_pdf_pages=settings.max_pdf_pages,
            max_sheet_bytes=settings.max_sheet_mb * MIB,
            max_sheet_rows=settings.max_sheet_rows,
            max_sheet_columns=settings.max_sheet_columns,
            max_sheet_cells=settings.max_sheet_cells,
        )


@functools.lru_cache(maxsize=1)
def current_limits() -> DecodeLimits:
    """This process's limits, read once from the settings (a worker process reads its own)."""
    return DecodeLimits.from_settings(load_settings())


def megabytes(count: int) -> str:
    """'384 MB', '2.5 MB' or '210 KB' (binary units, like the MAX_*_MB settings)."""
    value = count / MIB
    if value < 1:
        return f"{count / 1024:,.0f} KB"
    return f"{value:,.0f} MB" if value >= 10 else f"{value:,.1f} MB"


# ---------------------------------------------------------------- images


def png_declared_pixel_bytes(data: bytes) -> int | None:
    """Bytes per pixel a PNG's IHDR declares (16-bit RGB: 6), or None when the bytes are not a PNG."""
    if len(data) < 29 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    depth, colour = data[24], data[25]
    channels = _PNG_CHANNELS.get(colour)
    if channels is None or depth not in (1, 2, 4, 8, 16):
        return None
    return max(1, channels * depth // 8)


def image_pixel_bytes(mode: str, data: bytes = b"") -> int:
    """Bytes a decoded pixel takes: the larger of what Pillow holds and what the header declares."""
    held = _MODE_BYTES.get(mode, 4)
    declared = png_declared_pixel_bytes(data) or 0
    return max(held, declared)


def check_image(width: int, height: int, pixel_bytes: int, frames: int = 1,
                limits: DecodeLimits | None = None) -> None:
    """Refuse a picture whose pixels, decoded size or frame count is over its limit."""
    limits = limits or current_limits()
    pixels = width * height
    if pixels > limits.max_image_pixels:
        raise LimitExceeded(
            f"decompression bomb: header declares {pixels:,} pixels ({width:,} x {height:,}), over the limit of "
            f"{limits.max_image_pixels:,} (MAX_IMAGE_PIXELS)")
    decoded = pixels * pixel_bytes
    if decoded > limits.max_decoded_bytes:
        raise LimitExceeded(
            f"decompression bomb: decoding needs {megabytes(decoded)} ({width:,} x {height:,} pixels x "
            f"{pixel_bytes} bytes), over the {megabytes(limits.max_decoded_bytes)} limit (MAX_DECODED_MB)")
    if frames > limits.max_image_frames:
        raise LimitExceeded(
            f"too many frames: the file holds {frames:,}, over the limit of {limits.max_image_frames:,} "
            "(MAX_IMAGE_FRAMES)")


def png_animation_frames(data: bytes) -> int:
    """Frames an APNG's acTL chunk declares (1 for a still PNG); reads chunk headers only."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"acTL" and pos + 12 <= len(data):
            return max(1, struct.unpack(">I", data[pos + 8:pos + 12])[0])
        if kind in (b"IDAT", b"IEND"):
            return 1  # acTL must come before the image data
        pos += 12 + length
    return 1


def gif_frames(data: bytes, stop_after: int) -> int:
    """Count a GIF's image descriptors by walking its blocks, without decoding any (stops past stop_after)."""
    if len(data) < 13 or data[:3] != b"GIF":
        return 1
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames = 0
    while pos < len(data) and frames <= stop_after:
        marker = data[pos]
        if marker == 0x3B:  # trailer
            break
        if marker == 0x21:  # extension: label, then sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif marker == 0x2C:  # image descriptor, optional local colour table, LZW size, sub-blocks
            frames += 1
            if pos + 10 > len(data):
                break
            local = data[pos + 9]
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)
        else:
            break  # damaged: Pillow will say so when it decodes
    return max(1, frames)


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    while pos < len(data):
        size = data[pos]
        pos += 1 + size
        if size == 0:
            break
    return pos


def declared_frames(data: bytes, limits: DecodeLimits | None = None) -> int | None:
    """Frames a GIF or APNG declares, read from its structure; None for other formats (ask the decoder)."""
    limits = limits or current_limits()
    if data[:3] == b"GIF":
        return gif_frames(data, limits.max_image_frames)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return png_animation_frames(data)
    return None


# ---------------------------------------------------------------- audio


def check_audio(frames: int, channels: int, sample_rate: int, max_seconds: float | None = None,
                limits: DecodeLimits | None = None) -> int:
    """How many frames may be decoded (frames x channels x 4 bytes within MAX_DECODED_MB); refuses a
    header whose channels are over their limit, or whose first MIN_AUDIO_SECONDS would not fit.

    Only the frames the analyser reads count: with max_seconds, at most max_seconds x sample_rate. A long
    hi-res recording is measured on as much of its start as fits (the row says how much); a header that
    claims a rate or channel count no real recording has cannot fit even its first seconds and is refused.
    """
    limits = limits or current_limits()
    if channels > limits.max_audio_channels:
        raise LimitExceeded(
            f"header declares {channels:,} channels, over the limit of {limits.max_audio_channels} "
            "(MAX_AUDIO_CHANNELS)")
    cap = int(max_seconds * sample_rate) if max_seconds is not None and sample_rate > 0 else None
    wanted = max(0, frames) if cap is None else min(max(0, frames), cap)
    frame_bytes = max(1, channels) * FLOAT32_BYTES
    fitting = limits.max_decoded_bytes // frame_bytes
    if wanted <= fitting:
        return fitting if cap is None else min(cap, fitting)  # a read limit: the header may undercount
    least = min(wanted, int(MIN_AUDIO_SECONDS * max(1, sample_rate)))
    if least > fitting:
        raise LimitExceeded(
            f"decoding needs {megabytes(least * frame_bytes)} for its first {least / max(1, sample_rate):,.0f} s "
            f"({sample_rate:,} Hz x {channels} channels x {FLOAT32_BYTES} bytes), over the "
            f"{megabytes(limits.max_decoded_bytes)} limit (MAX_DECODED_MB)")
    return fitting


# ---------------------------------------------------------------- zip packages (xlsx, docx)


def check_zip(data: bytes, limits: DecodeLimits | None = None) -> list[zipfile.ZipInfo]:
    """Refuse a zip package (xlsx, docx) with too many parts, an oversized part or a bomb-like ratio.

    Reads only the central directory. Python's zipfile stops each part at its declared size,
    so a part that lies about its size cannot inflate past this check. Raises zipfile.BadZipFile
    for bytes that are not a zip at all.
    """
    limits = limits or current_limits()
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        parts = package.infolist()
    if len(parts) > limits.max_zip_entries:
        raise LimitExceeded(
            f"zip bomb: the package holds {len(parts):,} parts, over the limit of {limits.max_zip_entries:,} "
            "(MAX_ZIP_ENTRIES)")
    for part in parts:
        if part.file_size > limits.max_zip_part_bytes:
            raise LimitExceeded(
                f"zip bomb: part {part.filename!r} unpacks to {megabytes(part.file_size)}, over the "
                f"{megabytes(limits.max_zip_part_bytes)} limit per part (MAX_ZIP_PART_MB)")
        ratio = part.file_size / max(1, part.compress_size)
        if part.file_size > RATIO_FLOOR_BYTES and ratio > limits.max_zip_ratio:
            raise LimitExceeded(
                f"zip bomb: part {part.filename!r} unpacks {ratio:,.0f} times its packed size "
                f"({megabytes(part.compress_size)} to {megabytes(part.file_size)}), over the limit of "
                f"{limits.max_zip_ratio} (MAX_ZIP_RATIO)")
    return parts


# ---------------------------------------------------------------- text and PDF


def text_char_bound(data: bytes) -> int:
    """At most how many characters the bytes decode to (UTF-16 and UTF-32 take 2 or 4 bytes a character)."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return len(data) // 4
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return len(data) // 2
    return len(data)


def check_text_chars(chars: int, limits: DecodeLimits | None = None) -> None:
    """Refuse text longer than MAX_TEXT_CHARS (each character costs up to ~16 bytes while analysed)."""
    limits = limits or current_limits()
    if chars > limits.max_text_chars:
        raise LimitExceeded(
            f"text too long: {chars:,} characters, over the limit of {limits.max_text_chars:,} (MAX_TEXT_CHARS)")


def check_pdf_pages(pages: int, limits: DecodeLimits | None = None) -> None:
    limits = limits or current_limits()
    if pages > limits.max_pdf_pages:
        raise LimitExceeded(
            f"too many pages: the PDF holds {pages:,}, over the limit of {limits.max_pdf_pages:,} (MAX_PDF_PAGES)")


# ---------------------------------------------------------------- sheets


def check_sheet_bytes(size: int, limits: DecodeLimits | None = None) -> None:
    limits = limits or current_limits()
    if size > limits.max_sheet_bytes:
        raise LimitExceeded(
            f"the file is {megabytes(size)}, over the {megabytes(limits.max_sheet_bytes)} limit for a sheet "
            "(MAX_SHEET_MB)")


def check_sheet_columns(columns: int, limits: DecodeLimits | None = None) -> None:
    limits = limits or current_limits()
    if columns > limits.max_sheet_columns:
        raise LimitExceeded(
            f"the sheet has {columns:,} columns, over the limit of {limits.max_sheet_columns:,} (MAX_SHEET_COLUMNS)")


def check_sheet_rows(rows: int, cells: int, limits: DecodeLimits | None = None) -> None:
    """Called while reading: stops at the first row past MAX_SHEET_ROWS or MAX_SHEET_CELLS."""
    limits = limits or current_limits()
    if rows > limits.max_sheet_rows:
        raise LimitExceeded(
            f"the sheet has more than {limits.max_sheet_rows:,} rows (MAX_SHEET_ROWS); split it into smaller files")
    if cells > limits.max_sheet_cells:
        raise LimitExceeded(
            f"the sheet has more than {limits.max_sheet_cells:,} cells (MAX_SHEET_CELLS) by row {rows:,}; "
            "split it into smaller files or drop unused columns")
