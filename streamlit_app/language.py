"""Which language a text is in: the writing system first, then py3langid among that script's languages.

Why both: a script settles many cases outright (Hangul is Korean, kana is Japanese, Han
without kana is Chinese, Thai is Thai), and where it does not, restricting the statistical
identifier to the languages written in that script stops cross-script mistakes such as
Chinese reported as Korean. py3langid (a maintained fork of langid.py) ships its model in
the wheel, so this works offline; its probabilities are calibrated across text lengths,
which lets us answer "unsure" instead of guessing when the text is too short to tell.

Short texts are where a single identifier goes wrong, most of all between close languages
(Croatian, Bosnian and Serbian; Indonesian and Malay; Czech and Slovak...). Below 120 characters,
the range its author built it for, a second, independent identifier -- Lingua, high-accuracy mode --
is asked about the languages py3langid finds plausible, and the two are combined by Bayes' rule
(probabilities multiplied). Languages Lingua has no model for (Galician, Luxembourgish, Sanskrit...)
keep py3langid's probability. Then, inside the best language's close group only, a prior from how
much of the web is written in each language (Common Crawl's published language statistics) shares
the group's probability out again, so a big language's short text is not handed to its small
neighbour. Between groups nothing changes, so no language is favoured over an unrelated one.
The cost: Lingua loads the models of the languages it is asked about, on first need, in each
process: ~15-35 MB a language (~240 MB after warm_up, ~1.2 GB once texts in 35 languages were seen;
all 75 would be more), and a short text takes ~0.5 ms more. Its low-accuracy mode (trigrams only,
~80 MB for all languages) is too sure of itself on short text to be multiplied in.
"""
from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from lingua import Language, LanguageDetector

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
_GROUP_LOCK = threading.Lock()  # guards the cache of Lingua detectors in _build_detector
# Lingua's author: its high-accuracy mode (1- to 5-grams) pays off below 120 characters; on longer text
# n-gram identifiers agree, and Lingua's probabilities grow overconfident (a close neighbour at 0.998).
LINGUA_MAX_CHARS = 120
# Lingua is asked only about the languages py3langid gives this much of the probability to...
CANDIDATE_MASS = 0.999
MAX_ASKED = 5  # and at most this many: each one Lingua is asked about loads its models (15-35 MB)
# Lingua gives 0 to a language whose alphabet lacks a letter of the text; one stray letter (a name) must not veto it.
LINGUA_FLOOR = 1e-6


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


def rank(text: str, script: str, ensemble: bool = True, expected: frozenset[str] = frozenset()) -> list[tuple[str, float]]:
    """Languages of `script` by probability (renormalised over them), macrolanguages merged.

    `ensemble=False` is py3langid alone within the script (the benchmark's "before"). `expected`, when it
    names languages of this script, limits the answer to them (see `identify`).
    """
    allowed = candidates(script)
    if expected:
        wanted = frozenset(code for code in allowed if _MACROLANGUAGE.get(code, code) in expected)
        allowed = wanted or allowed  # text in a script none of them is written in: the script's languages
    scores: dict[str, float] = {}
    for code, probability in _identifier().rank(text):
        if code in allowed:
            merged = _MACROLANGUAGE.get(code, code)
            scores[merged] = scores.get(merged, 0.0) + probability
    total = sum(scores.values()) or 1.0
    scores = {code: p / total for code, p in scores.items()}
    if scores and ensemble:
        if len(text.strip()) < LINGUA_MAX_CHARS:
            scores = _with_second_identifier(text, script, scores)
        scores = _web_prior_in_close_group(script, scores)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def _lingua_knows(code: str, script: str) -> bool:
    """Whether Lingua has a model for `code` written in `script`."""
    return _lingua_language(code) is not None and _LINGUA_SCRIPT.get(code, script) == script


def _plausible(scores: dict[str, float], script: str) -> list[str]:
    """py3langid's best languages that Lingua models, until they hold CANDIDATE_MASS or number MAX_ASKED."""
    chosen: list[str] = []
    held = 0.0
    for code, probability in sorted(scores.items(), key=lambda pair: -pair[1]):
        if held >= CANDIDATE_MASS or len(chosen) == MAX_ASKED:
            break
        held += probability
        if _lingua_knows(code, script):
            chosen.append(code)
    return chosen


def _with_second_identifier(text: str, script: str, scores: dict[str, float]) -> dict[str, float]:
    """Combine py3langid with Lingua by Bayes' rule: each plausible language's share is the product of the two.

    Two identifiers built from different corpora make different mistakes, so where both model a
    language their probabilities multiply (independent evidence, uniform priors). The languages
    Lingua is asked about keep the probability py3langid gave them together and share it out by
    that product; the others (Galician, Luxembourgish... which Lingua has no model for) keep
    py3langid's probability, so the second identifier can neither drown nor favour them.
    """
    asked = _plausible(scores, script)
    second = _second_opinion(text, frozenset(asked)) if len(asked) >= 2 else {}
    asked = [code for code in asked if code in second]
    if len(asked) < 2:
        return scores
    weights = {code: scores[code] * max(second[code], LINGUA_FLOOR) for code in asked}
    total_weight = sum(weights.values())
    held = sum(scores[code] for code in asked)
    return {**scores, **{code: held * weight / total_weight for code, weight in weights.items()}}


def _web_prior_in_close_group(script: str, scores: dict[str, float]) -> dict[str, float]:
    """Share the probability of the best language's close group out again by web share (Bayes' rule with a prior).

    Only inside the group, and only among the members Lingua models: between groups nothing changes,
    and a language without a second identifier's evidence (Galician, Luxembourgish...) is left as
    py3langid has it, as the web share alone would drown it (Spanish is ~120x Galician on the web).
    """
    best = max(scores, key=scores.__getitem__)
    # Serbian is in two groups: its Latin and its Cyrillic neighbours; the script decides which is here.
    group = next((g for g in CLOSE_GROUPS if best in g and len(g & scores.keys()) >= 2), frozenset())
    members = [code for code in sorted(group) if code in scores and _lingua_knows(code, script)]
    if len(members) < 2:
        return scores
    weights = {code: scores[code] * WEB_SHARE.get(code, _WEB_SHARE_FLOOR) for code in members}
    total_weight = sum(weights.values())
    if not total_weight:
        return scores
    held = sum(scores[code] for code in members)
    return {**scores, **{code: held * weight / total_weight for code, weight in weights.items()}}


def _second_opinion(text: str, members: frozenset[str]) -> dict[str, float]:
    """Lingua's probabilities (high-accuracy mode) over `members`, all of which it has a model for."""
    detector = _detector(members)
    values = {value.language.iso_code_639_1.name.lower(): value.value
              for value in detector.compute_language_confidence_values(text)}
    return {code: values[_LINGUA_CODE.get(code, code)] for code in members if _LINGUA_CODE.get(code, code) in values}


def _detector(members: frozenset[str]) -> LanguageDetector:
    """A Lingua detector for these languages; cheap to build, as Lingua shares its loaded models process-wide."""
    with _GROUP_LOCK:
        return _build_detector(members)


@functools.lru_cache(maxsize=256)  # keys: sets of plausible languages; a detector is a few hundred bytes
def _build_detector(members: frozenset[str]) -> LanguageDetector:
    from lingua import LanguageDetectorBuilder

    languages = [language for language in map(_lingua_language, sorted(members)) if language is not None]
    return LanguageDetectorBuilder.from_languages(*languages).build()


@functools.cache  # keys: the model's language codes
def _lingua_language(code: str) -> Language | None:
    """Lingua's language for an ISO 639-1 code, None when it has no model for it."""
    from lingua import IsoCode639_1, Language

    iso = getattr(IsoCode639_1, _LINGUA_CODE.get(code, code).upper(), None)
    if iso is None:
        return None
    try:
        return Language.from_iso_code_639_1(iso)
    except ValueError:  # an ISO code Lingua has no model for
        return None


def identify(text: str, ensemble: bool = True, expected: Collection[str] = ()) -> LanguageGuess:
    """The language of `text`, or "unsure" with the best guess when it is too short or too close to call.

    `expected`: ISO 639-1 codes the person expects (a page option). The answer is then one of them
    whenever the text's script allows it: this is how a small language beside a big neighbour (Malay
    beside Indonesian, Afrikaans beside Dutch, Bosnian beside Croatian) is told apart reliably, as
    the web-share prior inside a close group otherwise favours the big one on short text.
    """
    expected = frozenset(code.strip().lower() for code in expected if code and code.strip())
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
        ranked = rank(sample, script, ensemble, expected)
        if not ranked:  # a script the model has no language for
            return LanguageGuess(None, None, 0.0, script, "unsure")
        best, confidence = ranked[0]
    confidence = round(float(confidence), 4)
    too_short = letters < MIN_LETTERS
    sure = not too_short and confidence >= MIN_CONFIDENCE
    return LanguageGuess(best if sure else None, best, confidence, script, "sure" if sure else "unsure", too_short)


@functools.cache
def choices() -> list[tuple[str, str]]:
    """(code, name) of every language an answer can be, by name: what a page offers as "languages to expect"."""
    from lingua import Language

    named = []
    for code in (code for code in _reported() if len(code) == 2):
        language = _lingua_language(code)
        named.append((code, language.name.title() if isinstance(language, Language) else _OTHER_NAMES.get(code, code)))
    return sorted(named, key=lambda pair: pair[1])


# ISO 639-1 names of the identifier's languages that Lingua (our source of names) does not know.
_OTHER_NAMES = {
    "am": "Amharic", "an": "Aragonese", "as": "Assamese", "ba": "Bashkir", "br": "Breton", "dz": "Dzongkha",
    "fo": "Faroese", "fy": "Western Frisian", "gd": "Scottish Gaelic", "gl": "Galician", "ha": "Hausa",
    "ht": "Haitian Creole", "ig": "Igbo", "jv": "Javanese", "km": "Khmer", "kn": "Kannada", "ku": "Kurdish",
    "ky": "Kyrgyz", "lb": "Luxembourgish", "ln": "Lingala", "lo": "Lao", "mg": "Malagasy", "ml": "Malayalam",
    "mt": "Maltese", "my": "Burmese", "ne": "Nepali", "oc": "Occitan", "om": "Oromo", "or": "Odia", "ps": "Pashto",
    "qu": "Quechua", "rw": "Kinyarwanda", "sa": "Sanskrit", "se": "Northern Sami", "si": "Sinhala", "tg": "Tajik",
    "tk": "Turkmen", "tt": "Tatar", "ug": "Uyghur", "uz": "Uzbek", "vo": "Volapük", "wa": "Walloon",
}


def warm_up() -> None:
    """Load py3langid before timing or serving (a process-pool initializer).

    Lingua's models are left to load on need, per language (0.3-1 s and 15-35 MB each): warming them
    would add ~200 MB to every worker of the shared untrusted pool, whether or not it ever sees text.
    """
    identify("Warm up the language model with a text long enough that only the first identifier reads it, "
             "as Lingua is asked about short texts only.")
