"""Errors for files the media analysers cannot read, and content sniffing for their messages.

A broken file must fail alone with a sentence a user understands ("truncated WAV:
header says 44100 frames, file holds 310"), while the rest of the batch goes on.
Sniffing the first bytes lets a message say what a file really is when its name lies.
"""
from __future__ import annotations

from pathlib import PurePath

# Magic numbers of formats people are likely to drop on the wrong page.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "a PNG image"),
    (b"\xff\xd8\xff", 0, "a JPEG image"),
    (b"GIF87a", 0, "a GIF image"),
    (b"GIF89a", 0, "a GIF image"),
    (b"BM", 0, "a BMP image"),
    (b"II*\x00", 0, "a TIFF image"),
    (b"MM\x00*", 0, "a TIFF image"),
    (b"fLaC", 0, "FLAC audio"),
    (b"OggS", 0, "OGG audio"),
    (b"ID3", 0, "MP3 audio"),
    (b"FORM", 0, "AIFF audio"),
    (b"%PDF-", 0, "a PDF document"),
    (b"PK\x03\x04", 0, "a ZIP archive (or DOCX/XLSX)"),
    (b"\x7fELF", 0, "a Linux program"),
    (b"MZ", 0, "a Windows program"),
    (b"\x1f\x8b", 0, "a gzip archive"),
)


class BadFileError(ValueError):
    """A file that cannot be analysed; the message names the file and says why in plain words."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")

    def __reduce__(self):
        # Keeps the two-argument form when the error crosses a process boundary.
        return (type(self), (self.name, self.reason))


def describe_content(data: bytes) -> str | None:
    """Say what the bytes look like ("a PNG image"), or None when no known signature matches."""
    head = bytes(data[:16])
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV audio"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WEBP image"
    if _is_mpeg_audio_header(head):
        return "MP3 audio"
    for magic, offset, label in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return label
    return None


def _is_mpeg_audio_header(head: bytes) -> bool:
    """True when the bytes open with a plausible MPEG audio frame header (MP3 without an ID3 tag)."""
    if len(head) < 4 or head[0] != 0xFF or (head[1] & 0xE0) != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 0x3, (head[1] >> 1) & 0x3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0x3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def extension_of(name: str) -> str:
    """Lower-case extension with its dot ('.wav'), or '' when the name has none."""
    return PurePath(name).suffix.lower()


def check_extension(name: str, allowed: tuple[str, ...], kind: str) -> str:
    """Return the file's extension, or raise when this page cannot read files of that type."""
    ext = extension_of(name)
    if ext not in allowed:
        shown = f"'{ext}'" if ext else "with no extension"
        raise BadFileError(
            name,
            f"unsupported file type {shown} for {kind}: expected one of {', '.join(allowed)}",
        )
    return ext


def check_not_empty(name: str, data: bytes) -> None:
    """Raise for a zero-byte upload, the commonest broken file."""
    if not data:
        raise BadFileError(name, "empty file (0 bytes)")
