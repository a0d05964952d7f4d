"""The Text analyser on real generated files: decoding, language, sentiment, keywords, readability, duplicates."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from streamlit_app import media_charts, media_samples, text
from streamlit_app.media_errors import BadFileError

DATA = Path(__file__).parent / "data" / "media"
SAMPLES = dict(media_samples.sample_text_files())


def analyse(name: str, options: dict | None = None) -> dict:
    data = SAMPLES[name] if name in SAMPLES else (DATA / name).read_bytes()
    return text.analyse_text(name, data, options)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_gives_a_flat_json_row(name):
    row = analyse(name)
    json.dumps(row, allow_nan=False)
    assert all(not isinstance(value, (dict, list)) for value in row.values())
    assert row["words"] > 0 and row["language"] is not None
    assert len(row["keywords"].split(", ")) <= 5
    assert isinstance(row["preview"], str) and len(row["preview"]) <= text.PREVIEW_CHARS


@pytest.mark.parametrize(
    "name, language, encoding",
    [
        ("library_en.txt", "en", "utf-8"),
        ("bibliotheque_fr.txt", "fr", "latin-1"),
        ("bibliothek_de.txt", "de", "utf-8-sig"),
        ("biblioteca_es.txt", "es", "utf-16"),
        ("utf16le_nobom.txt", "de", "utf-16-le"),
        ("windows_quotes.txt", "en", "cp1252"),
        ("semicolon_latin1.csv", "fr", "latin-1"),
    ],
)
def test_encoding_and_language_are_detected(name, language, encoding):
    row = analyse(name)
    assert (row["language"], row["encoding"]) == (language, encoding)


def test_decoding_keeps_accents_and_smart_quotes():
    assert "bibliothèque" in analyse("bibliotheque_fr.txt")["preview"]
    assert analyse("windows_quotes.txt")["preview"].startswith("\u201cCaf\u00e9")
    assert not analyse("bibliothek_de.txt")["preview"].startswith("\ufeff")  # the BOM is not text


def test_language_detection_is_deterministic():
    ambiguous = "Hotel Taxi Restaurant Bar Pizza"
    first = text.detect_language(ambiguous)
    assert all(text.detect_language(ambiguous) == first for _ in range(5))
    assert analyse("library_en.txt") == analyse("library_en.txt")


def test_sentiment_for_english_only():
    happy, angry = analyse("library_en.txt"), analyse("complaint_en.txt")
    assert happy["sentiment_compound"] > 0.3 > -0.3 > angry["sentiment_compound"]
    french = analyse("bibliotheque_fr.txt")
    assert "sentiment_compound" not in french
    assert "English only" in french["sentiment_note"]


def test_keywords_and_readability():
    row = analyse("library_en.txt")
    assert "library" in row["keywords"].lower()
    assert 40 < row["flesch_reading_ease"] < 100 and 0 < row["flesch_kincaid_grade"] < 12
    assert analyse("bibliothek_de.txt")["flesch_reading_ease"] is not None


def test_length_stats_of_a_known_text():
    row = text.analyse_text("count.txt", b"One two three. Four five!\nSix?")
    assert (row["chars"], row["words"], row["sentences"], row["lines"]) == (30, 6, 3, 2)
    assert row["avg_word_length"] == pytest.approx(22 / 6, abs=0.01)


def test_csv_uses_the_longest_text_column_unless_told_otherwise():
    data = SAMPLES["reviews.csv"]
    assert text.csv_text_columns(data) == ["review"]
    row = analyse("reviews.csv")
    assert (row["text_column"], row["rows"]) == ("review", 4)
    assert "Great coffee" in row["preview"]
    assert analyse("semicolon_latin1.csv")["text_column"] == "commentaire"
    assert text.csv_text_columns((DATA / "semicolon_latin1.csv").read_bytes())[0] == "commentaire"
    with pytest.raises(BadFileError, match="column 'comment' not in CSV \\(columns: id, review, rating\\)"):
        text.analyse_text("reviews.csv", data, {"text_column": "comment"})


def test_word_and_pdf_documents():
    minutes = analyse("meeting_minutes.docx")
    assert "quarterly budget" in minutes["preview"] and "Hire engineers" in minutes["preview"]
    assert "Chairs" in analyse("table_only.docx")["preview"]  # text that lives only in a table
    report = analyse("two_pages.pdf")
    assert report["pages"] == 2 and "Supply costs" in report["preview"]


def test_pdf_without_text_says_so_instead_of_failing():
    row = analyse("blank_scan.pdf")
    assert row["words"] == 0 and row["language"] is None
    assert "no extractable text" in row["text_note"]


def test_whole_text_is_kept_for_similarity_but_can_be_dropped():
    assert analyse("field_notes.md")["text"].startswith("# Field notes")
    assert "text" not in analyse("field_notes.md", {"keep_text_chars": 0})
    assert text.NON_TABLE_KEYS == ("text",)


BROKEN = media_samples.broken_files("text")


@pytest.mark.parametrize("name, data, reason", BROKEN, ids=[name for name, _, _ in BROKEN])
def test_broken_text_fails_with_a_clear_reason(name, data, reason):
    with pytest.raises(BadFileError) as caught:
        text.analyse_text(name, data)
    assert reason in str(caught.value) and caught.value.name == name


def test_near_duplicate_texts():
    texts = {name: analyse(name)["text"] for name in SAMPLES}
    pairs = text.near_duplicate_texts(texts)
    assert [(a, b) for a, b, _ in pairs] == [("library_en.txt", "library_en_copy.txt")]
    assert 0.8 <= pairs[0][2] < 1.0
    assert text.near_duplicate_texts({"a": "same words here", "b": "same words here"}) == [("a", "b", 1.0)]
    assert text.near_duplicate_texts({"a": "", "b": "  "}) == []
    strict = text.near_duplicate_texts(texts, threshold=0.99)
    assert strict == []


def test_translation_is_not_offered_and_says_so():
    assert "not offered" in text.TRANSLATION_NOTE


def test_summary_figure_counts_languages():
    rows = [analyse(name) for name in SAMPLES]
    figure = media_charts.text_summary_figure(pd.DataFrame(rows))
    bars = figure.data[0]
    assert dict(zip(bars.x, bars.y))["en"] == 7
    assert not media_charts.text_summary_figure(pd.DataFrame()).data


def test_opening_the_text_page_loads_the_look_alike_library_in_the_background(monkeypatch):
    # The finished page's look-alike texts need scikit-learn; its ~1.5 s import must not land in that render.
    import threading

    from streamlit_app import media_warm, warm_workers

    imported: list[str] = []
    monkeypatch.setattr(warm_workers.importlib, "import_module", imported.append)
    monkeypatch.setattr(warm_workers, "_warmed", {})

    class Pool:
        def warm(self, _pool: str) -> None:
            pass

        def pool_settings(self, _pool: str) -> dict:
            return {"workers": 2}

        def map(self, *_args, **_kwargs) -> None:
            pass

    assert media_warm.warm_media_workers(Pool(), "text")
    for thread in threading.enumerate():
        if thread.name == "spindle-warm-text":
            thread.join(10)
    assert imported == ["sklearn.feature_extraction.text"]
    assert not media_warm.warm_media_workers(Pool(), "text")  # once per server, not on every rerun


def test_the_languages_to_expect_option_reaches_the_answer():
    malay = b"Saya tidak tahu di mana dia tinggal sekarang"
    assert text.analyse_text("nota.txt", malay, {"languages": ["ms"]})["language_guess"] == "ms"
    assert text.analyse_text("nota.txt", malay, {})["language_guess"] == "id"
