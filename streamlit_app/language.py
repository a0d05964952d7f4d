"""Which language a text is in: the writing system first, then py3langid among that script's languages.

Why both: a script settles many cases outright (Hangul is Korean, kana is Japanese, Han
without kana is Chinese, Thai is Thai), and where it does not, restricting the statistical
identifier to the languages written in that script stops cross-script mistakes such as
Chinese reported as Korean. py3langid (a maintained fork of langid.py) ships its model in
the wheel, so this works offline; its probabilities are calibrated across text lengths,
which lets us answer "unsure" instead of guessing when the text is too short to tell.

Close languages (Croatian, Bosnian and Serbian; Indonesian and Malay; Czech and Slovak...) are
where short texts go wrong: the evidence barely separates them, and the identifier's near-uniform
prior then hands a big language's text to its small neighbour. Within each such group, and only
there, the probability the group holds is shared out again by Bayes' rule with two more pieces of
evidence: a prior from how much of the web is written in each language (Common Crawl's published
language statistics) and a second, independent identifier (Lingua, built for short text) restricted
to the group. Between groups nothing changes, so no language is favoured over an unrelated one.
Members Lingua has no model for (Galician, Luxembourgish, Sanskrit...) are left as py3langid has
them: the web prior alone would drown a small language's own evidence (Galician text came out as
Spanish or Portuguese nine times in ten when we tried it).
"""
from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from lingua import LanguageDetector

LANGUAGE_CHARS = 10_000  # more text no longer changes the answer, only the cost
# Fewer letters than this (in an alphabet; a CJK character counts as three) is too short to tell.
MIN_LETTERS = 12
# Below this probability the best language is no likelier than all the others together.
MIN_CONFIDENCE = 0.5

Verdict = Literal["sure", "unsure", "none"]

# Languages of the identifier's model grouped by the script they are written in; every
# other language of the model is written in Latin letters.
_SCRIPT_LANGUAGES: dict[str, tuple[str, ...]] = {
    "Arabic": ("ar", "fa", "ur", "ps", "ug", "ku", "arz", "ary", "sdh", "uzs"),
    "Cyrillic": ("ru", "uk", "bg", "be", "mk", "sr", "kk", "ky", "mn", "tg", "tt", "ba"),
    "Devanagari": ("hi", "mr", "ne", "sa", "gom"),
    "Bengali": ("bn", "as"),
    "Greek": ("el", "grc"),
    "Hebrew": ("he", "hbo"),
}
# Written in Latin letters as well (Serbian, Kurmanji Kurdish).
_BOTH_SCRIPTS = {"sr", "ku"}
# Scripts that name their language outright (no identifier needed).
_SCRIPT_LANGUAGE = {
    "Hangul": "ko", "Kana": "ja", "Han": "zh", "Thai": "th", "Georgian": "ka", "Armenian": "hy",
    "Gurmukhi": "pa", "Gujarati": "gu", "Oriya": "or", "Tamil": "ta", "Telugu": "te", "Kannada": "kn",
    "Malayalam": "ml", "Sinhala": "si", "Lao": "lo", "Khmer": "km", "Myanmar": "my", "Ethiopic": "am",
}
# Varieties the model tells apart but ISO 639-1 files under one macrolanguage code.
_MACROLANGUAGE = {"wuu": "zh", "yue": "zh", "arz": "ar", "ary": "ar", "uzs": "uz", "sdh": "ku"}
# The first word of a letter's Unicode name, where it differs from the script's name.
_NAME_SCRIPT = {
    "CJK": "Han", "HIRAGANA": "Kana", "KATAKANA": "Kana", "KATAKANA-HIRAGANA": "Kana",
    "HANGUL": "Hangul", "ORIYA": "Oriya", "ETHIOPIC": "Ethiopic", "GEORGIAN": "Georgian",
}
_KNOWN_SCRIPTS = {"LATIN", "CYRILLIC", "GREEK", "ARABIC", "HEBREW", "DEVANAGARI", "BENGALI", "THAI",
                  "ARMENIAN", "GURMUKHI", "GUJARATI", "TAMIL", "TELUGU", "KANNADA", "MALAYALAM", "SINHALA",
                  "LAO", "KHMER", "MYANMAR", "TIBETAN"}
_CJK = ("Han", "Kana", "Hangul")
CJK_WEIGHT = 3  # a CJK character carries about as much as three letters (and is three bytes of UTF-8)
# A non-Latin script with this share of the (weighted) letters is the text's script.
NATIVE_SHARE = 0.2
# Kana in at least this share of the CJK characters marks Japanese (Chinese has none).
_KANA_SHARE = 0.05
# Things in text that are no language's words: web and mail addresses, placeholders, markup.
_NOT_WORDS = re.compile(
    r"https?://\S+|www\.\S+|\S+@\S+\.\w+|%\(\w+\)[sdif]|%[sdif]|\{[\w.:]*\}|<[^<>]{0,200}>|&\w+;"
)
_LOCK = threading.Lock()  # guards the one-time model load in _identifier

# Groups of mutually intelligible written languages (dialect continua and sister standards) that
# a character-n-gram identifier cannot reliably tell apart in a short text.
CLOSE_GROUPS: tuple[frozenset[str], ...] = tuple(frozenset(group) for group in (
    ("bs", "hr", "sr"), ("id", "ms"), ("cs", "sk"), ("da", "no", "nn", "sv"), ("es", "gl", "pt", "an"),
    ("ca", "oc"), ("de", "lb"), ("nl", "af"), ("bg", "mk", "sr"), ("hi", "mr", "ne", "sa"),
))
# Lingua's code where it differs: its Norwegian is Bokmål, the written standard of ~90 % of Norwegians.
_LINGUA_CODE = {"no": "nb"}
# Lingua's models that know one script only: elsewhere its opinion of them says nothing.
_LINGUA_SCRIPT = {"sr": "Cyrillic"}
# Share of web pages by primary language, in percent: Common Crawl CC-MAIN-2024-42 (the
# cc-crawl-statistics languages table). Used only to weigh languages inside one close group.
WEB_SHARE: dict[str, float] = {
    "af": 0.0103, "an": 0.0001, "bg": 0.2992, "bs": 0.0523, "ca": 0.2085, "cs": 1.0630, "da": 0.4640,
    "de": 5.3038, "es": 4.5387, "gl": 0.0365, "hi": 0.2089, "hr": 0.2149, "id": 1.1235, "lb": 0.0040,
    "mk": 0.0383, "mr": 0.0258, "ms": 0.0787, "ne": 0.0493, "nl": 1.8145, "nn": 0.0130, "no": 0.3060,
    "oc": 0.0034, "pt": 2.3146, "sa": 0.0034, "sk": 0.3705, "sr": 0.2161, "sv": 0.6649,
}
_WEB_SHARE_FLOOR = 0.0001  # the table's resolution (Aragonese is below it)
_GROUP_LOCK = threading.Lock()  # guards the lazy build of the per-group Lingua detectors


@dataclass(frozen=True)
class LanguageGuess:
    """The answer for one text: `language` is set only when sure; `best` is the top candidate anyway."""

    language: str | None
    best: str | None
    confidence: float  # probability of `best` among the candidates of its script, 0..1
    script: str  # the dominant writing system ("Latin", "Han", ...), "" when no letters
    verdict: Verdict  # "none" when the text has no letters
    too_short: bool = False  # unsure because there are fewer than MIN_LETTERS letters

    @property
    def label(self) -> str:
        """What a page shows: 'nl', 'unsure (nl? 41%)', 'unsure (too short: nl?)' or ''."""
        if self.verdict == "sure":
            return self.language or ""
        if self.verdict == "unsure" and self.best:
            return f"unsure (too short: {self.best}?)" if self.too_short else f"unsure ({self.best}? {self.confidence:.0%})"
        return "unsure" if self.verdict == "unsure" else ""


def describe(language: str | None, best: str | None, confidence: float | None) -> str:
    """One line for a page from a result row's language, language_guess and language_confidence."""
    if not isinstance(confidence, (int, float)) or confidence != confidence or not isinstance(best, str):  # NaN
        return "language: none (no letters)"
    if language and language != "unsure":
        return f"language: {language} (confidence {confidence:.0%})"
    return f"language: unsure, perhaps {best} (confidence {confidence:.0%}): too short or too close to call"


def _script_of(char: str) -> str | None:
    """The writing system of one letter, from its Unicode name; None for unknown ones."""
    try:
        words = unicodedata.name(char).split()
    except ValueError:
        return None
    first = words[1] if words[0] in ("FULLWIDTH", "HALFWIDTH") and len(words) > 1 else words[0]
    if first in _NAME_SCRIPT:
        return _NAME_SCRIPT[first]
    return first.title() if first in _KNOWN_SCRIPTS else None


def script_counts(text: str) -> Counter[str]:
    """Letters per writing system, e.g. Counter({'Latin': 40, 'Han': 3})."""
    counts: Counter[str] = Counter()
    for char in text:
        if char.isalpha():
            script = _script_of(char)
            if script is not None:
                counts[script] += 1
    return counts


def dominant_script(counts: Counter[str]) -> tuple[str, float]:
    """The script the text is written in and its share of the letters.

    Latin words (names, code, technical terms) turn up inside text in every script, while
    other scripts rarely turn up inside Latin text: so a non-Latin script holding at least
    NATIVE_SHARE of the letters wins over Latin. A CJK character stands for a syllable or a
    word, so it weighs as CJK_WEIGHT letters; Han, kana and Hangul count as one group (Japanese mixes Han
    with kana, Korean may mix in Han), inside which Hangul, then kana, then Han decide.
    """
    weighted = Counter({script: n * (CJK_WEIGHT if script in _CJK else 1) for script, n in counts.items()})
    total = sum(weighted.values())
    if not total:
        return "", 0.0
    groups = Counter({script: n for script, n in weighted.items() if script not in _CJK})
    cjk = sum(weighted[script] for script in _CJK)
    if cjk:
        groups["CJK"] = cjk
    native = [(n, script) for script, n in groups.items() if script != "Latin"]
    top_count, top = max(native) if native else (0, "")
    if not top or (top_count < NATIVE_SHARE * total and groups["Latin"] > top_count):
        top, top_count = "Latin", groups["Latin"]
    if top == "CJK":
        if counts["Hangul"] >= counts["Han"] + counts["Kana"]:
            top = "Hangul"
        elif counts["Kana"] >= max(1.0, _KANA_SHARE * (counts["Han"] + counts["Kana"])):
            top = "Kana"
        else:
            top = "Han"
    return top, top_count / total


@functools.lru_cache(maxsize=1)
def _load_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _identifier():
    """The model, loaded once per process (~0.6 s); rank() does not change it, so threads share it."""
    with _LOCK:
        return _load_identifier()


@functools.cache  # keys: the handful of scripts
def candidates(script: str) -> frozenset[str]:
    """The model's languages written in `script` (Latin: all not listed under another script)."""
    if script in _SCRIPT_LANGUAGES:
        return frozenset(_SCRIPT_LANGUAGES[script]) & _reported()
    if script != "Latin":
        return frozenset()
    elsewhere = {code for codes in _SCRIPT_LANGUAGES.values() for code in codes} | set(_SCRIPT_LANGUAGE.values())
    elsewhere |= {"wuu", "yue", "zxx"}  # Chinese varieties (Han script); "no linguistic content"
    return frozenset(set(_identifier().labels) - (elsewhere - _BOTH_SCRIPTS)) & _reported()


def _reported() -> frozenset[str]:
    """Languages with an ISO 639-1 code, and varieties merged into one.

    The model also knows ~40 regional and historical varieties without such a code (Ligurian,
    Guadeloupean Creole, Biblical Hebrew...); few users have text in them, and on short or
    mixed text they soak up the probability that belongs to the big languages.
    """
    return frozenset(code for code in _identifier().labels if len(code) == 2 or code in _MACROLANGUAGE)


def rank(text: str, script: str, close_groups: bool = True) -> list[tuple[str, float]]:
    """Languages of `script` by probability (renormalised over them), macrolanguages merged.

    `close_groups=False` skips the second look inside close groups (the benchmark's "before").
    """
    allowed = candidates(script)
    scores: dict[str, float] = {}
    for code, probability in _identifier().rank(text):
        if code in allowed:
            merged = _MACROLANGUAGE.get(code, code)
            scores[merged] = scores.get(merged, 0.0) + probability
    total = sum(scores.values()) or 1.0
    scores = {code: p / total for code, p in scores.items()}
    if scores and close_groups:
        scores = _within_close_group(text, script, scores)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def _within_close_group(text: str, script: str, scores: dict[str, float]) -> dict[str, float]:
    """Share the probability of the best language's close group out again, by web share and Lingua.

    The members Lingua knows keep the probability py3langid gave them together; among them, each
    one's share is py3langid's probability times its web share times Lingua's probability (Bayes'
    rule with two more independent pieces of evidence). Everything else keeps its probability.
    """
    best = max(scores, key=scores.__getitem__)
    # Serbian is in two groups: its Latin and its Cyrillic neighbours; the script decides which is here.
    group = next((g for g in CLOSE_GROUPS if best in g and len(g & scores.keys()) >= 2), frozenset())
    members = sorted(code for code in group if code in scores)
    members = [code for code in members if _LINGUA_SCRIPT.get(code, script) == script]
    second = _second_opinion(text, frozenset(members)) if len(members) >= 2 else {}
    members = [code for code in members if code in second]  # no second opinion, no re-weighing
    if len(members) < 2:
        return scores
    weights = {code: scores[code] * WEB_SHARE.get(code, _WEB_SHARE_FLOOR) * second[code] for code in members}
    total_weight = sum(weights.values())
    if not total_weight:
        return scores
    held = sum(scores[code] for code in members)
    return {**scores, **{code: held * weight / total_weight for code, weight in weights.items()}}


def _second_opinion(text: str, members: frozenset[str]) -> dict[str, float]:
    """Lingua's probabilities over the members it has a model for ({} when fewer than two)."""
    detector = _group_detector(members)
    if detector is None:
        return {}
    values = {value.language.iso_code_639_1.name.lower(): value.value
              for value in detector.compute_language_confidence_values(text)}
    return {code: values[_LINGUA_CODE.get(code, code)] for code in members if _LINGUA_CODE.get(code, code) in values}


def _group_detector(members: frozenset[str]) -> LanguageDetector | None:
    """A Lingua detector for the group's languages, built once per process on first need (lazy, small)."""
    with _GROUP_LOCK:
        return _build_group_detector(members)


@functools.cache  # keys: the few close groups
def _build_group_detector(members: frozenset[str]) -> LanguageDetector | None:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    languages = []
    for code in sorted(members):
        iso = getattr(IsoCode639_1, _LINGUA_CODE.get(code, code).upper(), None)
        if iso is not None:
            try:
                languages.append(Language.from_iso_code_639_1(iso))
            except ValueError:  # an ISO code Lingua has no model for
                continue
    return LanguageDetectorBuilder.from_languages(*languages).build() if len(languages) >= 2 else None


def identify(text: str, close_groups: bool = True) -> LanguageGuess:
    """The language of `text`, or "unsure" with the best guess when it is too short or too close to call."""
    sample = _NOT_WORDS.sub(" ", text[:LANGUAGE_CHARS])
    counts = script_counts(sample)
    script, _ = dominant_script(counts)
    if not script:
        return LanguageGuess(None, None, 0.0, "", "none")
    letters = sum(counts[s] for s in _CJK) * CJK_WEIGHT if script in _CJK else counts[script]
    if script in _SCRIPT_LANGUAGE:
        # Sure of the script, so as sure of the language as the script is unmixed (Latin words aside).
        native = sum(n for s, n in counts.items() if s != "Latin")
        own = sum(counts[s] for s in _CJK) if script in _CJK else counts[script]
        best, confidence = _SCRIPT_LANGUAGE[script], own / native
    else:
        ranked = rank(sample, script, close_groups)
        if not ranked:  # a script the model has no language for
            return LanguageGuess(None, None, 0.0, script, "unsure")
        best, confidence = ranked[0]
    confidence = round(float(confidence), 4)
    too_short = letters < MIN_LETTERS
    sure = not too_short and confidence >= MIN_CONFIDENCE
    return LanguageGuess(best if sure else None, best, confidence, script, "sure" if sure else "unsure", too_short)


def warm_up() -> None:
    """Load the model before timing or serving (a process-pool initializer); Lingua's group models load on need."""
    identify("warm up the language model")
