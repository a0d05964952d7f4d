"""Reading text in images with Tesseract, after the clean-up each image needs, with a confidence to show.

Tesseract reads best dark text on an even light page with letters ~20-30 px tall. Photos
and scans break that: small print, shadows and uneven light, sensor noise, skew. So each
image is measured first and gets only the steps it needs:

- upscale when letters are small (Tesseract's accuracy falls off fast below ~20 px);
- divide by the estimated background (a large grey closing that wipes out the text) when
  the light is uneven, which turns shadows and gradients back into white paper;
- a Gaussian blur when the noise level (Immerkaer's estimate) is high;
- deskew by the angle whose row profile is sharpest (a projection-profile search).

Binarising is left to Tesseract (Otsu's threshold), which fits once the ground is flat.

Tesseract then reads in page-segmentation mode 3 (automatic layout). When its mean word
confidence is low, a second pass (a single uniform block of text, mode 6, or the
language the first pass's text is in) is tried and the better of the two by Tesseract's
own confidence is kept. Text with a low confidence is flagged, not presented as read.
The tesseract program runs in a subprocess, so threads scale for it.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter

# Target height of a lower-case letter (x-height) in pixels for Tesseract.
TARGET_X_HEIGHT = 22.0
MAX_UPSCALE = 4.0
MAX_OCR_PIXELS = 12_000_000  # upscaling stops here: Tesseract's time grows with pixels
# What counts as text: at least MIN_LETTERS blobs MIN_LETTER_PX or taller whose heights
# interquartile range is within MAX_HEIGHT_SPREAD of their median.
MIN_LETTERS = 10
MIN_LETTER_PX = 6
MAX_HEIGHT_SPREAD = 0.75
NOISE_SIGMA = 6.0  # above this (grey levels) the image is smoothed
UNEVEN_LIGHT = 0.12  # background brighter in one place than another by this share: divide it out
MIN_SKEW_DEGREES = 0.4
MAX_SKEW_DEGREES = 10.0
# Mean word confidence (0-100) below which a second pass is tried and the text is flagged.
SECOND_PASS_BELOW = 80.0
LOW_CONFIDENCE = 60.0
DEFAULT_TIMEOUT = 60.0
# Tesseract packs for the languages streamlit_app.language names (ISO 639-1 -> Tesseract).
TESSERACT_LANGUAGE = {
    "en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por", "nl": "nld", "ru": "rus",
    "zh": "chi_sim", "ja": "jpn", "ko": "kor", "ar": "ara",
}

# Tesseract's script detection (OSD) names -> the pack that reads that script.
SCRIPT_PACK = {"Cyrillic": "rus", "Han": "chi_sim", "Japanese": "jpn", "Katakana": "jpn", "Hiragana": "jpn",
               "Hangul": "kor", "Korean": "kor", "Arabic": "ara"}
# What the Image page offers; only installed packs are shown (language_choices).
LANGUAGE_NAMES = {
    "eng": "English", "deu": "German", "fra": "French", "spa": "Spanish", "ita": "Italian", "por": "Portuguese",
    "nld": "Dutch", "rus": "Russian", "chi_sim": "Chinese (simplified)", "jpn": "Japanese", "kor": "Korean",
    "ara": "Arabic",
}

Step = Literal["invert", "upscale", "downscale", "denoise", "flatten background", "deskew"]


@dataclass(frozen=True)
class OcrResult:
    """What Tesseract read, how sure it is (mean word confidence, 0-100) and what was done to the image."""

    text: str
    confidence: float  # mean word confidence; 0 when no words were found
    words: int
    language: str  # the Tesseract language(s) used, e.g. "eng" or "deu+eng"
    psm: int
    steps: tuple[str, ...] = ()
    passes: int = 1
    seconds: float = 0.0
    low_confidence: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "low_confidence", self.words == 0 or self.confidence < LOW_CONFIDENCE)


# ---------------------------------------------------------------- measuring the image


def noise_sigma(grey: np.ndarray) -> float:
    """Standard deviation of the image noise by Immerkaer's method (1996): a Laplacian-difference mask
    that cancels smooth shading and edges' first order, leaving the noise."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    g = grey.astype(np.float32)
    mask = (g[:-2, :-2] - 2 * g[:-2, 1:-1] + g[:-2, 2:] - 2 * g[1:-1, :-2] + 4 * g[1:-1, 1:-1]
            - 2 * g[1:-1, 2:] + g[2:, :-2] - 2 * g[2:, 1:-1] + g[2:, 2:])
    return float(math.sqrt(math.pi / 2) * np.abs(mask).mean() / 6.0)


def otsu_threshold(grey: np.ndarray) -> float:
    """Otsu's threshold: the grey level t for which "<= t" and "> t" best separate the histogram in two."""
    hist = np.bincount(np.clip(grey, 0, 255).astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    weight = np.cumsum(hist)
    total = weight[-1]
    mean = np.cumsum(hist * np.arange(256))
    w0, w1 = weight, total - weight
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean[-1] * w0 - mean * total) ** 2 / (w0 * w1)
    return float(np.nanargmax(between[:-1]))


def background(grey: np.ndarray, text_height: float) -> np.ndarray:
    """The paper's brightness everywhere: a grey closing wider than any letter wipes the dark text out.

    Computed on a copy shrunk so the closing is ~15 px wide, smoothed, then scaled back up.
    """
    from scipy import ndimage

    span = max(15.0, 2.5 * text_height)  # wider than a letter and its strokes
    shrink = max(1, int(span // 15))
    small = np.asarray(Image.fromarray(grey).reduce(shrink)) if shrink > 1 else grey
    size = max(3, int(round(span / shrink)) | 1)
    closed = ndimage.grey_closing(small, size=(size, size))
    smooth = ndimage.uniform_filter(closed.astype(np.float32), size=size)
    if shrink > 1:
        smooth = np.asarray(Image.fromarray(smooth).resize((grey.shape[1], grey.shape[0]), Image.Resampling.BILINEAR))
    return np.maximum(smooth, 1.0)


def letter_height(binary: np.ndarray) -> float | None:
    """Median height of the dark blobs that look like letters; None when the image does not look like text.

    Text gives many blobs of about one height (letters); a photo gives specks and shapes of
    every size, and enlarging or binarising it would only cost time.
    """
    from scipy import ndimage

    labels, count = ndimage.label(binary)
    if count < MIN_LETTERS:
        return None
    slices = [s for s in ndimage.find_objects(labels) if s is not None]
    heights = np.array([s[0].stop - s[0].start for s in slices])
    widths = np.array([s[1].stop - s[1].start for s in slices])
    # Letters: not specks, not lines or whole blocks.
    keep = (heights >= MIN_LETTER_PX) & (heights <= binary.shape[0] / 3) & (widths <= 3 * heights)
    if keep.sum() < MIN_LETTERS:
        return None
    low, median, high = np.percentile(heights[keep], [25, 50, 75])
    if (high - low) > MAX_HEIGHT_SPREAD * median:
        return None
    return float(median)


def skew_angle(binary: np.ndarray) -> float:
    """Degrees the text lines are turned (counter-clockwise positive): the shear whose row profile is sharpest."""
    ys, xs = np.nonzero(binary)
    if len(ys) < 200:
        return 0.0
    if len(ys) > 200_000:  # a sample is as good and keeps this quick
        pick = np.random.default_rng(0).choice(len(ys), 200_000, replace=False)
        ys, xs = ys[pick], xs[pick]
    xs = xs - xs.mean()

    def sharpness(angle: float) -> float:
        rows = np.round(ys + xs * math.tan(math.radians(angle))).astype(np.int64)
        counts = np.bincount(rows - rows.min())
        return float((counts.astype(np.float64) ** 2).sum())

    coarse = max(np.arange(-MAX_SKEW_DEGREES, MAX_SKEW_DEGREES + 0.01, 1.0), key=sharpness)
    fine = max(np.arange(coarse - 1.0, coarse + 1.01, 0.1), key=sharpness)
    return float(fine)


# ---------------------------------------------------------------- preparing the image


def light_on_dark(grey: np.ndarray) -> bool:
    """True for light text on a dark ground: pixels stray from their neighbourhood's median (the ground,
    since text covers less than half of any area) more often towards light than towards dark.

    Local, unlike comparing with the median grey of the whole page, so a shadow over half the page
    does not flip it.
    """
    block = max(16, min(grey.shape) // 8)  # medians of blocks: cheap, and blocks are mostly ground
    rows, cols = grey.shape[0] // block, grey.shape[1] // block
    if not rows or not cols:
        return False
    small = grey[:rows * block, :cols * block].astype(np.int16)
    tiles = small.reshape(rows, block, cols, block).swapaxes(1, 2).reshape(rows, cols, -1)
    ground = np.repeat(np.repeat(np.median(tiles, axis=2), block, axis=0), block, axis=1)
    darker = np.clip(ground - small, 0, None).sum()
    lighter = np.clip(small - ground, 0, None).sum()
    return float(lighter) > 1.5 * float(darker)


def prepare(image: Image.Image, skip: frozenset[str] = frozenset()) -> tuple[Image.Image, tuple[str, ...], float]:
    """The image made easy for Tesseract, the steps it took and the letter height found (px, 0 if none).

    skip: steps not to take even when the image needs them (the benchmark measures what each buys).
    """
    grey = np.asarray(image.convert("L"))
    steps: list[Step] = []
    sigma = noise_sigma(grey)
    if sigma > NOISE_SIGMA and "denoise" not in skip:
        # A Gaussian blur: as good as a median filter on sensor noise here, and 10-20x faster on big photos.
        radius = 1.5 if sigma > 3 * NOISE_SIGMA else 1.0
        grey = np.asarray(Image.fromarray(grey).filter(ImageFilter.GaussianBlur(radius)))
        steps.append("denoise")
    if "invert" not in skip and light_on_dark(grey):
        grey = 255 - grey
        steps.append("invert")
    # Letter size, measured on a roughly flattened copy so shadows do not pass for letters.
    generic = max(2.5 * TARGET_X_HEIGHT, min(grey.shape) / 20)
    rough = grey.astype(np.float32) / background(grey, generic / 2.5) * 255.0
    height = letter_height(rough <= otsu_threshold(rough)) or 0.0
    # Letter blobs are mostly x-height letters; Tesseract wants them ~TARGET_X_HEIGHT px.
    scale = 1.0
    if 0 < height < 0.8 * TARGET_X_HEIGHT:
        limit = math.sqrt(MAX_OCR_PIXELS / grey.size)
        scale = min(MAX_UPSCALE, TARGET_X_HEIGHT / height, max(1.0, limit))
    elif height > 4 * TARGET_X_HEIGHT:
        scale = 2 * TARGET_X_HEIGHT / height
    if abs(scale - 1.0) > 0.15 and not ({"upscale", "downscale"} & skip):
        resized = Image.fromarray(grey).resize(
            (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale))), Image.Resampling.BICUBIC)
        grey = np.asarray(resized)
        steps.append("upscale" if scale > 1 else "downscale")
        height *= scale
    paper = background(grey, height or TARGET_X_HEIGHT)
    low, high = np.percentile(paper, [2, 98])
    if high > 0 and (high - low) / high > UNEVEN_LIGHT and "flatten background" not in skip:
        grey = np.clip(grey.astype(np.float32) / paper * 255.0, 0, 255).astype(np.uint8)
        steps.append("flatten background")
    angle = skew_angle(grey <= otsu_threshold(grey)) if height else 0.0  # no letters, no lines to square up
    if abs(angle) >= MIN_SKEW_DEGREES and "deskew" not in skip:
        grey = np.asarray(Image.fromarray(grey).rotate(-angle, Image.Resampling.BICUBIC, expand=True, fillcolor=255))
        steps.append("deskew")
    # Left grey: Tesseract's own Otsu threshold does as well once the ground is flat (measured in
    # benchmarks/bench_quality.py: binarising here cost 0.5 points of CER).
    return Image.fromarray(grey), tuple(steps), height


# ---------------------------------------------------------------- reading


@functools.lru_cache(maxsize=1)
def installed_languages() -> frozenset[str]:
    """Tesseract language packs on this machine (e.g. {'eng', 'deu', 'osd'})."""
    import pytesseract

    try:
        return frozenset(pytesseract.get_languages(config=""))
    except (OSError, RuntimeError, pytesseract.TesseractError):
        return frozenset()


def language_choices() -> dict[str, str]:
    """Page labels -> Tesseract codes: automatic first, then every installed pack we have a name for."""
    installed = installed_languages()
    choices = {"Automatic (English, or the pack of the language found)": "auto"}
    choices.update({name: code for code, name in LANGUAGE_NAMES.items() if code in installed})
    return choices


def describe(row: dict) -> str:
    """One line for a page: how sure Tesseract was, in which language, after which clean-up."""
    confidence = row.get("ocr_confidence")
    found = isinstance(confidence, (int, float)) and not math.isnan(confidence)  # a table holds NaN for none
    sure = f"confidence {confidence:.0f} of 100" if found else "no text found"
    steps = row.get("ocr_steps") or "none needed"
    return f"{sure} · language {row.get('ocr_language') or '?'} · clean-up: {steps}"


def _read(image: Image.Image, lang: str, psm: int, timeout: float) -> tuple[str, float, int]:
    """Text (lines as Tesseract found them), mean word confidence and word count for one pass."""
    import pytesseract

    data = pytesseract.image_to_data(image, lang=lang, config=f"--psm {psm}", timeout=timeout,
                                     output_type=pytesseract.Output.DICT)
    lines: dict[tuple[int, int, int], list[str]] = {}
    confidences: list[float] = []
    for word, conf, block, par, line in zip(data["text"], data["conf"], data["block_num"], data["par_num"],
                                            data["line_num"]):
        if word.strip() and float(conf) >= 0:
            lines.setdefault((block, par, line), []).append(word.strip())
            confidences.append(float(conf))
    text = "\n".join(" ".join(words) for _, words in sorted(lines.items()))
    mean = round(float(np.mean(confidences)), 1) if confidences else 0.0
    return text, mean, len(confidences)


def _script_pack(image: Image.Image, timeout: float) -> str | None:
    """The installed pack for the script Tesseract's orientation-and-script detection sees, if not Latin."""
    import pytesseract

    if "osd" not in installed_languages():
        return None
    try:
        found = pytesseract.image_to_osd(image, config="--psm 0", timeout=timeout, output_type=pytesseract.Output.DICT)
    except (pytesseract.TesseractError, RuntimeError):  # too few characters to tell, or out of time
        return None
    pack = SCRIPT_PACK.get(str(found.get("script", "")))
    return pack if pack in installed_languages() else None


def _language_pack(text: str, current: str) -> str | None:
    """The Tesseract pack for the language the text is in, when installed and not the one used."""
    from streamlit_app import language

    guess = language.identify(text)
    pack = TESSERACT_LANGUAGE.get(guess.language or "")
    if pack and pack not in current.split("+") and pack in installed_languages():
        return pack
    return None


def read_text(image: Image.Image, lang: str = "auto", timeout: float = DEFAULT_TIMEOUT,
              skip: frozenset[str] = frozenset()) -> OcrResult:
    """Read an upright image: prepare it, one pass, and a second when the first is unsure; the better one wins.

    timeout (seconds) bounds both passes together; skip names clean-up steps or "second pass" to leave out.

    lang: a Tesseract language ("eng", "deu+eng") or "auto": English first, then the pack of
    the language the first pass's text is in, or of the script Tesseract sees when English
    reads poorly, when that pack is installed.
    """
    start = time.perf_counter()
    prepared, steps, _ = prepare(image, skip)
    first_lang = "eng" if lang == "auto" else lang
    text, confidence, words = _read(prepared, first_lang, 3, timeout)
    best = (confidence, text, words, first_lang, 3)
    passes = 1
    second: tuple[str, int] | None = None
    # The pack of the language or script found is the right model whatever its confidence says
    # (confidences of different language models do not compare); it is kept unless unsure.
    right_model = False
    if lang == "auto" and words and (pack := _language_pack(text, first_lang)):
        second, right_model = (pack, 3), True  # Latin letters, but not English: read again with its pack
    elif lang == "auto" and confidence < SECOND_PASS_BELOW and (pack := _script_pack(prepared, timeout)):
        # Another script: English saw only shapes. With +eng for the Latin words such text quotes.
        second, right_model = (f"{pack}+eng", 3), True
    elif LOW_CONFIDENCE / 2 <= confidence < SECOND_PASS_BELOW and words >= 3:
        second = (first_lang, 6)  # words, but unsure ones: maybe the layout analysis split the text wrongly
    remaining = timeout - (time.perf_counter() - start)
    if second is not None and remaining > 1 and "second pass" not in skip:
        text2, confidence2, words2 = _read(prepared, second[0], second[1], remaining)
        passes = 2
        better = confidence2 >= LOW_CONFIDENCE if right_model else confidence2 > confidence
        if words2 and (better or not words):
            best = (confidence2, text2, words2, second[0], second[1])
    confidence, text, words, used, psm = best
    return OcrResult(text, confidence, words, used, psm, steps, passes, round(time.perf_counter() - start, 3))


def row_fields(result: OcrResult) -> dict[str, object]:
    """The columns a results table shows for one image's OCR (flat, JSON-safe)."""
    note = "" if not result.low_confidence else (
        "no text found" if not result.words else
        f"low confidence ({result.confidence:.0f} of 100): check this text against the image before using it")
    return {
        "ocr_text": result.text,
        "ocr_confidence": result.confidence if result.words else None,
        "ocr_unsure": result.low_confidence,
        "ocr_language": result.language,
        "ocr_steps": ", ".join(result.steps),
        "ocr_note": note,
    }


def plain_text(image: Image.Image, lang: str = "eng", timeout: float = DEFAULT_TIMEOUT) -> str:
    """Plain `pytesseract.image_to_string` on the image as it is: the baseline the benchmark compares with."""
    import pytesseract

    return pytesseract.image_to_string(image.convert("L"), lang=lang, timeout=timeout).strip()
