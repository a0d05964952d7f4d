"""Real hostile files, made in memory: small on disk, enormous when decoded.

Each maker returns bytes; the matching `*_REASON` words are what the refusal must say
(the setting that names the limit), so tests and the browser walk check the same thing.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
import soundfile as sf


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def repeated_zlib(block: bytes, count: int) -> bytes:
    """zlib data for `block` repeated `count` times, compressed once: after a full flush a deflate
    piece depends on nothing before it, so the same piece can be repeated (fast, and ~1000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    checksum = 1
    for _ in range(count):
        checksum = zlib.adler32(block, checksum)
    return b"\x78\xda" + piece * count + packer.flush() + struct.pack(">I", checksum)


def png_bomb(width: int, height: int, depth: int = 16, colour: int = 0) -> bytes:
    """A valid PNG of all-zero pixels (colour 0 grey, 2 RGB) that zlib squeezes ~1000:1."""
    channels = {0: 1, 2: 3}[colour]
    row = b"\x00" * (1 + width * channels * depth // 8)
    rows_per_block = next(n for n in (100, 50, 40, 25, 20, 10, 8, 5, 4, 2, 1) if height % n == 0)
    body = repeated_zlib(row * rows_per_block, height // rows_per_block)
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def flac_bomb(rate: int = 655_350, channels: int = 8) -> bytes:
    """A real one-second FLAC whose STREAMINFO claims `channels` at `rate` Hz and 2^36 - 1 frames."""
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((22050, 1), np.float32), 22050, format="FLAC", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    packed = (rate << 44) | ((channels - 1) << 41) | (15 << 36) | ((1 << 36) - 1)
    data[18:26] = packed.to_bytes(8, "big")  # STREAMINFO: rate, channels, bits per sample, total frames
    return bytes(data)


def wav_channel_bomb(channels: int = 1000) -> bytes:
    """A WAV whose fmt chunk declares `channels` channels (and a streaming, open-ended data chunk)."""
    block = channels * 2
    fmt = struct.pack("<HHIIHH", 1, channels, 44100, 44100 * block, block, 16)
    data = b"\x00" * (block * 2)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _zip_with_part(original: bytes, part: str, size: int) -> bytes:
    """The package with `part` padded to `size` bytes by an XML comment (still a valid, readable part)."""
    out = io.BytesIO()
    with (zipfile.ZipFile(io.BytesIO(original)) as source,
          zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target):
        for info in source.infolist():
            if info.filename != part:
                target.writestr(info, source.read(info.filename))
        root = source.read(part).split(b"?>", 1)[-1]
        head = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<!--'
        left = size - len(head) - 4 - len(root)
        chunk = b" " * (1 << 20)
        info = zipfile.ZipInfo(part)
        info.compress_type = zipfile.ZIP_DEFLATED
        with target.open(info, "w", force_zip64=True) as stream:
            stream.write(head)
            while left > 0:
                stream.write(chunk[:left])
                left -= len(chunk)
            stream.write(b"-->\n" + root)
    return out.getvalue()


def docx_bomb(size: int = 70 * 1024 * 1024) -> bytes:
    """A DOCX whose word/document.xml unpacks to `size` bytes (~200 KB on disk)."""
    import docx

    document = docx.Document()
    document.add_paragraph("Hello")
    buffer = io.BytesIO()
    document.save(buffer)
    return _zip_with_part(buffer.getvalue(), "word/document.xml", size)


def xlsx_bomb(size: int = 70 * 1024 * 1024) -> bytes:
    """An XLSX whose first sheet's XML unpacks to `size` bytes."""
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.append(["Name", "Phone"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return _zip_with_part(buffer.getvalue(), "xl/worksheets/sheet1.xml", size)


def wide_csv(columns: int = 20_000) -> bytes:
    header = ",".join(f"col{i}" for i in range(columns))
    return (header + "\n" + ",".join("x" for _ in range(columns)) + "\n").encode()


def tall_csv(rows: int = 1_000_000) -> bytes:
    return b"Name,Phone\n" + b"Ann Lee,555-0100\n" * rows
