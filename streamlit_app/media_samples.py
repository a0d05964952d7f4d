"""Deterministic sample files for "try it with sample files", and a corpus of broken ones.

Everything is made here with numpy, soundfile, Pillow and python-docx (no espeak, no
downloads), so the pages work on any machine and the same call always returns the
same bytes. broken_files() pairs each bad file with the words its error must contain,
so tests and the page's demo show users what a clear failure looks like.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SampleFile = tuple[str, bytes]
BrokenFile = tuple[str, bytes, str]

_FIXED_ZIP_TIME = (2026, 1, 1, 0, 0, 0)
_OGG_SERIAL = 0x5350494E  # "SPIN": libsndfile picks a random stream serial each run

# ---------------------------------------------------------------- audio


def _encode(samples: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    data = buffer.getvalue()
    return _fix_ogg_serial(data) if fmt == "OGG" else data


def _ogg_crc(page: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, unreflected, initial 0."""
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
            crc &= 0xFFFFFFFF
    return crc


def _fix_ogg_serial(data: bytes) -> bytes:
    """Give every Ogg page the same stream serial (and a fresh checksum) so output is repeatable."""
    out = bytearray(data)
    pos = 0
    while pos + 27 <= len(out) and out[pos:pos + 4] == b"OggS":
        segments = out[pos + 26]
        body = sum(out[pos + 27:pos + 27 + segments])
        end = pos + 27 + segments + body
        out[pos + 14:pos + 18] = struct.pack("<I", _OGG_SERIAL)
        out[pos + 22:pos + 26] = b"\x00\x00\x00\x00"
        out[pos + 22:pos + 26] = struct.pack("<I", _ogg_crc(bytes(out[pos:end])))
        pos = end
    return bytes(out)


def tone(freq: float, seconds: float, rate: int = 22050, amplitude: float = 0.5) -> np.ndarray:
    """A sine tone with 10 ms fades (no clicks at the ends)."""
    t = np.arange(int(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    fade = min(len(wave) // 2, int(0.01 * rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
    return wave


def chirp(f0: float, f1: float, seconds: float, rate: int = 22050) -> np.ndarray:
    """A linear frequency sweep, the classic test of spectral measures."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
    return 0.4 * np.sin(phase)


def noise(seconds: float, rate: int = 22050, amplitude: float = 0.2, seed: int = 7) -> np.ndarray:
    """White noise from a fixed seed."""
    return amplitude * np.random.default_rng(seed).uniform(-1.0, 1.0, int(seconds * rate))


def click_track(bpm: float, seconds: float, rate: int = 22050) -> np.ndarray:
    """Short decaying 1 kHz clicks on every beat: a steady tempo to measure."""
    out = np.zeros(int(seconds * rate))
    click = tone(1000.0, 0.03, rate, 0.8) * np.exp(-np.arange(int(0.03 * rate)) / (0.006 * rate))
    step = 60.0 / bpm
    for start in np.arange(0.0, seconds - 0.05, step):
        i = int(start * rate)
        out[i:i + len(click)] += click[: len(out) - i]
    return out


# Formant frequencies (Hz) of a few vowels, enough to sound voice-like.
_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410))


def speech_like(seconds: float = 3.0, rate: int = 16000, seed: int = 3) -> np.ndarray:
    """Voiced syllables: a gliding 110-150 Hz buzz shaped by vowel formants, with pauses.

    Built as a sum of harmonics whose amplitudes follow the formant envelope, so it is
    pure numpy, fast and repeatable; it is not real speech, just speech-shaped sound.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 130 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    syllable = 0.25  # seconds
    index = np.minimum((t / syllable).astype(int), int(seconds / syllable))
    order = rng.integers(0, len(_VOWELS), index.max() + 1)
    formants = np.array(_VOWELS, dtype=float)[order][index]  # (n, 3)
    envelope = np.sin(np.pi * (t % syllable) / syllable) ** 2
    envelope *= rng.random(index.max() + 1)[index] > 0.2  # some syllables become pauses
    out = np.zeros(n)
    for k in range(1, 30):
        harmonic = k * f0
        gain = sum(np.exp(-0.5 * ((harmonic - formants[:, j]) / 90.0) ** 2) for j in range(3)) / k**0.5
        out += gain * np.sin(k * phase) * (harmonic < rate / 2)
    return 0.6 * out * envelope / np.max(np.abs(out))


def sample_audio_files() -> list[SampleFile]:
    """A handful of small clips in WAV, FLAC, OGG and MP3 with known pitch, tempo and level."""
    rate = 22050
    stereo = np.stack([tone(220.0, 2.0, rate), tone(330.0, 2.0, rate, 0.3)], axis=1)
    clipped = np.clip(tone(200.0, 1.5, rate, 1.6), -1.0, 1.0)
    return [
        ("tone_440hz.wav", _encode(tone(440.0, 2.0, rate), rate, "WAV", "PCM_16")),
        ("tones_220_330hz_stereo.flac", _encode(stereo, rate, "FLAC", "PCM_16")),
        ("chirp_100_4000hz.ogg", _encode(chirp(100.0, 4000.0, 3.0, rate), rate, "OGG", "VORBIS")),
        ("tone_660hz.mp3", _encode(tone(660.0, 2.0, rate), rate, "MP3", "MPEG_LAYER_III")),
        ("white_noise.wav", _encode(noise(2.0, rate), rate, "WAV", "PCM_16")),
        ("click_track_120bpm.wav", _encode(click_track(120.0, 6.0, rate), rate, "WAV", "PCM_16")),
        ("speech_like.wav", _encode(speech_like(3.0, 16000), 16000, "WAV", "PCM_16")),
        ("clipped_tone.wav", _encode(clipped, rate, "WAV", "PCM_16")),
        ("short_blip.wav", _encode(tone(880.0, 0.2, rate), rate, "WAV", "PCM_16")),
        ("silence.flac", _encode(np.zeros(rate), rate, "FLAC", "PCM_16")),
    ]


# ---------------------------------------------------------------- images


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg(image: Image.Image, exif: Image.Exif | None = None, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    if exif is None:
        image.save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, "JPEG", quality=quality, exif=exif)
    return buffer.getvalue()


def text_image(text: str, size: tuple[int, int] = (480, 120), font_size: int = 56) -> Image.Image:
    """Black text on white with Pillow's bundled font: something OCR can read."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=font_size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    position = ((size[0] - (right - left)) // 2 - left, (size[1] - (bottom - top)) // 2 - top)
    draw.text(position, text, font=font, fill="black")
    return image


def text_page(lines: list[str], size: int = 40, width: int = 1400, font_file: str | None = None) -> Image.Image:
    """Dark text on a white page (greyscale), wrapped to width, letters size px tall: a clean scan with known text.

    font_file: a TrueType font (e.g. DejaVu for accents and Cyrillic); default Pillow's bundled one.
    """
    font = ImageFont.truetype(font_file, size) if font_file else ImageFont.load_default(size=size)
    wrapped: list[str] = []
    for line in lines:
        current = ""
        for word in line.split():
            candidate = f"{current} {word}".strip()
            if font.getlength(candidate) > width - 2 * size and current:
                wrapped.append(current)
                current = word
            else:
                current = candidate
        wrapped.append(current)
    step = int(size * 1.5)
    page = Image.new("L", (width, 2 * size + step * len(wrapped)), 255)
    draw = ImageDraw.Draw(page)
    for row, line in enumerate(wrapped):
        draw.text((size, size + row * step), line, font=font, fill=20)
    return page


def landscape(width: int = 320, height: int = 240, seed: int = 11) -> Image.Image:
    """A photo-like scene: sky gradient, sun, hills and a little sensor noise."""
    y = np.linspace(0.0, 1.0, height)[:, None]
    x = np.linspace(0.0, 1.0, width)[None, :]
    shape = (height, width)
    channels = [255 * (0.95 - 0.3 * y), 140 + 60 * (1 - y), 90 + 120 * y]
    sky = np.stack([np.broadcast_to(c, shape) for c in channels], axis=2).astype(float)
    hills = y > 0.65 + 0.08 * np.sin(6 * x)
    sky[hills] = (40, 110, 50)
    sun = (x - 0.7) ** 2 + (y - 0.3) ** 2 < 0.01
    sky[sun] = (255, 230, 120)
    sky += np.random.default_rng(seed).normal(0.0, 6.0, sky.shape)
    return Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8), "RGB")


def camera_exif(make: str = "Spindle", model: str = "SampleCam 1", orientation: int = 1) -> Image.Exif:
    """EXIF block with camera make/model, date taken and orientation."""
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    exif[0x0132] = "2026:05:17 09:30:00"
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x9003] = "2026:05:17 09:30:00"
    return exif


def checkerboard(size: int = 256, square: int = 16) -> Image.Image:
    """Hard black/white edges: the sharpest possible picture for the blur score."""
    index = np.arange(size) // square
    board = ((index[:, None] + index[None, :]) % 2 * 255).astype(np.uint8)
    return Image.fromarray(board, "L")


def sample_image_files() -> list[SampleFile]:
    """Text to OCR, photo-like scenes with EXIF, a near-duplicate pair, blur, alpha and palette images."""
    scene = landscape()
    near_copy = scene.resize((240, 180), Image.Resampling.LANCZOS).point(lambda v: min(255, v + 6))
    logo = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(logo).ellipse((20, 20, 140, 140), fill=(200, 30, 60, 255))
    gif_buffer = io.BytesIO()
    scene.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(gif_buffer, "GIF")
    return [
        ("sign_spindle.png", _png(text_image("SPINDLE 2026"))),
        ("sunset_camera.jpg", _jpeg(scene, camera_exif())),
        ("sunset_copy_small.jpg", _jpeg(near_copy, quality=70)),
        ("sunset_blurred.jpg", _jpeg(scene.filter(ImageFilter.GaussianBlur(4)))),
        ("checkerboard.png", _png(checkerboard())),
        ("logo_transparent.png", _png(logo)),
        ("sunset_palette.gif", gif_buffer.getvalue()),
    ]


# ---------------------------------------------------------------- text

TEXTS = {
    "en": (
        "The new library opened on Saturday and the whole town came to see it. "
        "Children loved the bright reading room, and the staff were friendly and helpful. "
        "Everyone agreed it was a wonderful place to spend a quiet afternoon."
    ),
    "en_negative": (
        "The delivery was late again and the box arrived damaged. "
        "Customer service never answered my emails, which was frustrating and rude. "
        "I am disappointed and will not order from this shop again."
    ),
    "fr": (
        "La nouvelle bibliothèque a ouvert ses portes samedi et toute la ville est venue la voir. "
        "Les enfants ont adoré la salle de lecture lumineuse, et le personnel était aimable. "
        "Tout le monde a trouvé que c'était un endroit merveilleux pour passer un après-midi calme."
    ),
    "de": (
        "Die neue Bibliothek wurde am Samstag eröffnet, und die ganze Stadt kam, um sie zu sehen. "
        "Die Kinder liebten den hellen Lesesaal, und die Mitarbeiter waren freundlich und hilfsbereit. "
        "Alle waren sich einig, dass es ein wunderbarer Ort für einen ruhigen Nachmittag ist."
    ),
    "es": (
        "La nueva biblioteca abrió el sábado y todo el pueblo vino a verla. "
        "A los niños les encantó la luminosa sala de lectura, y el personal fue amable y atento. "
        "Todos estuvieron de acuerdo en que era un lugar maravilloso para pasar una tarde tranquila."
    ),
}

_MARKDOWN = """# Release notes

Spindle now **processes batches in parallel** on every page.

- Audio files are measured for loudness, pitch and silence.
- Images get perceptual hashes, so near-duplicate photos are grouped.
- Text files are checked for language, sentiment and readability.

Thanks to everyone who tested the early builds and reported problems.
"""

_CSV = """id,review,rating
1,"Great coffee and friendly staff, I will come back soon.",5
2,"The soup was cold and the waiter ignored us for twenty minutes.",1
3,"Decent sandwiches, nothing special, fair prices.",3
4,"Absolutely loved the cakes, the best bakery in town!",5
"""


def _stable_zip(data: bytes) -> bytes:
    """Rewrite a ZIP with fixed timestamps so a generated DOCX is byte-for-byte repeatable."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=_FIXED_ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, source.read(info.filename))
    return out.getvalue()


def make_docx(title: str, paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    """A Word document with a heading, paragraphs and an optional table."""
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return _stable_zip(buffer.getvalue())


def _pdf_escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal text PDF (Helvetica, one line per string, ASCII) written by hand: no PDF library needed."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for pid, lines in zip(page_ids, pages):
        body = "BT /F1 12 Tf 16 TL 72 720 Td " + " ".join(f"({_pdf_escape(line)}) Tj T*" for line in lines) + " ET"
        stream = body.encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {pid + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def sample_text_files() -> list[SampleFile]:
    """Short texts in English, French, German and Spanish in several encodings, plus .md, .csv, .docx, .pdf."""
    near_copy = TEXTS["en"].replace("Saturday", "Sunday").replace("wonderful", "lovely")
    return [
        ("library_en.txt", TEXTS["en"].encode("utf-8")),
        ("library_en_copy.txt", near_copy.encode("utf-8")),
        ("complaint_en.txt", TEXTS["en_negative"].encode("utf-8")),
        ("bibliotheque_fr.txt", TEXTS["fr"].encode("latin-1")),
        ("bibliothek_de.txt", TEXTS["de"].encode("utf-8-sig")),
        ("biblioteca_es.txt", TEXTS["es"].encode("utf-16")),
        ("release_notes.md", _MARKDOWN.encode("utf-8")),
        ("reviews.csv", _CSV.encode("utf-8")),
        (
            "meeting_minutes.docx",
            make_docx(
                "Meeting minutes",
                [
                    "The team reviewed the quarterly budget and agreed to hire two engineers.",
                    "Marketing will present the new campaign next week.",
                ],
                [["Action", "Owner"], ["Hire engineers", "Dana"], ["Campaign draft", "Lee"]],
            ),
        ),
        (
            "annual_report.pdf",
            make_pdf(
                [
                    ["Annual report", "Sales grew by twelve percent this year.", "Our customers are happy."],
                    ["Outlook", "We expect steady growth and plan to open two new offices."],
                ]
            ),
        ),
    ]


# ---------------------------------------------------------------- broken files


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares width x height pixels: opening it naively would eat memory."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _random_bytes(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def broken_files(kind: str) -> list[BrokenFile]:
    """Bad files for one page ("audio", "image" or "text") with the words each error must contain."""
    if kind == "audio":
        wav = _encode(tone(440.0, 1.0), 22050, "WAV", "PCM_16")
        flac = _encode(tone(440.0, 2.0), 22050, "FLAC", "PCM_16")
        mp3 = _encode(tone(440.0, 2.0), 22050, "MP3", "MPEG_LAYER_III")
        return [
            ("empty.wav", b"", "empty file"),
            ("truncated.wav", wav[:2000], "truncated WAV: header says 22050 frames"),
            ("truncated.flac", flac[: len(flac) // 3], "cannot decode FLAC"),
            ("truncated.mp3", mp3[: len(mp3) // 3], "truncated MP3"),
            ("header_only.wav", wav[:44], "truncated WAV"),
            ("notes.txt", b"these are my notes, not a sound", "unsupported file type '.txt'"),
            ("picture.wav", _png(text_image("hi", (64, 32), 20)), "not a WAV file: content looks like a PNG image"),
            ("noise.flac", _random_bytes(4096, 5), "not a FLAC file: content is not a recognised audio format"),
        ]
    if kind == "image":
        png = _png(landscape())
        jpeg = _jpeg(landscape())
        return [
            ("empty.png", b"", "empty file"),
            ("truncated.png", png[: len(png) // 2], "truncated or corrupt PNG"),
            ("truncated.jpg", jpeg[: len(jpeg) // 2], "truncated or corrupt JPEG"),
            ("photo.txt", png, "unsupported file type '.txt'"),
            ("sound.png", _encode(tone(440.0, 0.1), 22050, "WAV", "PCM_16"), "content looks like WAV audio"),
            ("noise.jpg", _random_bytes(4096, 2), "not a recognised image"),
            ("bomb.png", bomb_png(), "decompression bomb"),
        ]
    if kind == "text":
        docx_bytes = make_docx("x", ["y"])
        pdf = make_pdf([["hello"]])
        return [
            ("empty.txt", b"", "empty file"),
            ("binary.txt", _random_bytes(2048, 3), "binary data, not text"),
            ("picture.txt", _png(text_image("hi", (64, 32), 20)), "binary data, not text: content looks like a PNG image"),
            ("program.exe", b"MZ\x90\x00" + _random_bytes(256, 4), "unsupported file type '.exe'"),
            ("truncated.pdf", pdf[:60], "cannot read PDF"),
            ("truncated.docx", docx_bytes[: len(docx_bytes) // 2], "not a valid DOCX"),
            ("notes.docx", TEXTS["en"].encode("utf-8"), "not a valid DOCX"),
            ("numbers.csv", b"a,b\n1,2\n3,4\n", "no text column"),
        ]
    raise ValueError(f"unknown kind {kind!r}: expected 'audio', 'image' or 'text'")
