"""Language identification on the Text page: the script as a strong hint, py3langid within it, "unsure" when short."""
from __future__ import annotations

import pytest

from streamlit_app import language, text


@pytest.mark.parametrize(
    "sample, expected",
    [
        # Simplified Chinese: langdetect 1.0.9 calls the first three Korean.
        ("文件已成功上传", "zh"),
        ("欢迎使用本系统", "zh"),
        ("这个文件的格式不正确，请检查后重新上传。", "zh"),
        ("服务器暂时无法处理您的请求", "zh"),
        # Chinese quoting English product names is still Chinese.
        ("请使用Python和SQLite来保存数据", "zh"),
        ("このファイルの形式が正しくありません。", "ja"),
        ("東京大学の研究者が新しい方法を発表した", "ja"),  # kanji with a little kana
        ("파일 형식이 올바르지 않습니다. 다시 시도하세요.", "ko"),
        ("Το αρχείο δεν βρέθηκε στον διακομιστή", "el"),
        ("Άγνωστο toplevel sectioning για την κλάση", "el"),  # Greek with Latin technical words
        ("Файл не найден на сервере, попробуйте ещё раз.", "ru"),
        ("لم يتم العثور على الملف على الخادم", "ar"),
        ("הקובץ לא נמצא בשרת, נסו שוב מאוחר יותר", "he"),
        ("ไม่พบไฟล์บนเซิร์ฟเวอร์", "th"),
    ],
)
def test_the_script_names_or_narrows_the_language(sample, expected):
    guess = language.identify(sample)
    assert guess.verdict == "sure" and guess.language == expected, guess


@pytest.mark.parametrize(
    "sample",
    [
        # langdetect 1.0.9 calls the first two Afrikaans.
        "Gebruikers en groepen beheren",
        "Voeg een nieuwe gebruiker toe",
        "Het bestand kon niet worden gevonden op de server.",
        "Vul een geldig e-mailadres in en probeer het opnieuw.",
        "De gebruikersnaam of het wachtwoord is onjuist.",
    ],
)
def test_dutch_is_not_afrikaans(sample):
    guess = language.identify(sample)
    assert (guess.verdict, guess.language) == ("sure", "nl"), guess


@pytest.mark.parametrize("sample", ["Hello there", "Hotel Taxi Bar", "ok ok", "Danke", "上一页"])
def test_short_text_is_unsure_with_a_best_guess(sample):
    guess = language.identify(sample)
    assert guess.verdict == "unsure" and guess.language is None and guess.best is not None
    assert guess.label.startswith("unsure (")


def test_unsure_when_too_close_to_call_shows_the_confidence():
    guess = language.identify("Hotel Restaurant Pizza Taxi")  # long enough, but the same in many languages
    assert (guess.verdict, guess.too_short) == ("unsure", False)
    assert guess.confidence < language.MIN_CONFIDENCE and f"{guess.confidence:.0%}" in guess.label


def test_text_without_letters_has_no_language():
    guess = language.identify("12345 -- 67.89 %% 2026-11-30")
    assert (guess.verdict, guess.language, guess.best, guess.label) == ("none", None, None, "")


def test_addresses_and_placeholders_do_not_decide_the_language():
    sample = "Bitte besuchen Sie https://www.example.com/help/index.html oder schreiben Sie an hilfe@example.com."
    assert language.identify(sample).language == "de"


def test_identifying_is_deterministic_and_keeps_the_model_shared():
    sample = "Ceci est une phrase en français, assez longue pour être sûre."
    first = language.identify(sample)
    assert all(language.identify(sample) == first for _ in range(5))
    assert first.language == "fr" and first.confidence > 0.9


def test_text_page_row_shows_unsure_and_the_confidence():
    short = text.analyse_text("note.txt", b"Hello there")
    assert short["language"] == "unsure" and short["language_guess"]
    assert 0 <= short["language_confidence"] < language.MIN_CONFIDENCE or "unsure" in short["text_note"]
    dutch = text.analyse_text("nl.txt", b"Het bestand kon niet worden gevonden op de server. Probeer het later opnieuw.")
    assert (dutch["language"], dutch["language_guess"]) == ("nl", "nl") and dutch["language_confidence"] > 0.5
    assert dutch["text_note"] == ""


# Close languages: short sentences of the kind an app shows, written for these tests. py3langid
# alone (Spindle before the second look inside close groups) names the small neighbour for many
# of them; within the group, web share and Lingua's second opinion settle them.
@pytest.mark.parametrize(
    "sample, expected",
    [
        ("Datoteka nije pronađena na poslužitelju.", "hr"),
        ("Molimo unesite ispravnu adresu e-pošte.", "hr"),
        ("Korisničko ime ili lozinka nisu ispravni.", "hr"),
        ("Berkas tidak ditemukan di server.", "id"),
        ("Silakan masukkan alamat surel yang valid.", "id"),
        ("Pengguna berhasil ditambahkan.", "id"),
        ("Soubor se nepodařilo nahrát na server.", "cs"),
        ("Zadejte prosím platnou e-mailovou adresu.", "cs"),
        ("El archivo no se pudo subir al servidor.", "es"),
        ("Filen kunne ikke findes på serveren.", "da"),
        ("Die Datei wurde nicht gefunden.", "de"),
        ("Spremi promjene i zatvori prozor.", "hr"),
        ("Nemate dozvolu za pristup ovoj stranici.", "hr"),
        ("Odaberite datoteku za prijenos.", "hr"),
        ("Lozinka mora sadržavati najmanje osam znakova.", "hr"),
        ("Simpan perubahan dan tutup jendela.", "id"),
        ("Anda tidak memiliki izin untuk mengakses halaman ini.", "id"),
        ("Kata sandi harus berisi minimal delapan karakter.", "id"),
        ("Pilih berkas untuk diunggah.", "id"),
        ("Uložit změny a zavřít okno.", "cs"),
        ("Nemáte oprávnění k přístupu na tuto stránku.", "cs"),
        ("Heslo musí obsahovat alespoň osm znaků.", "cs"),
        ("Guardar los cambios y cerrar la ventana.", "es"),
        ("No tiene permiso para acceder a esta página.", "es"),
        ("Seleccione un archivo para subir.", "es"),
        ("Gem ændringerne og luk vinduet.", "da"),
        ("Du har ikke adgang til denne side.", "da"),
        ("Adgangskoden skal indeholde mindst otte tegn.", "da"),
    ],
)
def test_a_big_language_is_not_named_as_its_close_neighbour(sample, expected):
    guess = language.identify(sample)
    assert guess.best == expected, guess


@pytest.mark.parametrize(
    "sample, expected",
    [
        ("Súbor sa nepodarilo nahrať na server.", "sk"),  # Slovak is not made Czech by the web share
        ("Datoteke ni bilo mogoče najti na strežniku.", "sl"),  # Slovene is in no group: untouched
        ("O arquivo não foi encontrado no servidor.", "pt"),
        ("Filen kunde inte hittas på servern.", "sv"),
    ],
)
def test_the_smaller_close_language_still_wins_on_its_own_evidence(sample, expected):
    assert language.identify(sample).best == expected


def test_galician_is_not_drowned_by_its_big_neighbours():
    # Lingua has no Galician model, so the web share (Spanish ~120x Galician) must not decide alone.
    sample = "Non se puido atopar o ficheiro no servidor. Por favor, téntao de novo máis tarde."
    assert language.identify(sample).best == "gl"


def test_serbian_in_latin_letters_is_not_ruled_out():
    # Lingua's Serbian knows Cyrillic only: its zero for Latin text must not count against Serbian.
    before = dict(language.rank("Molimo vas da unesete ispravnu adresu.", "Latin", ensemble=False))
    after = dict(language.rank("Molimo vas da unesete ispravnu adresu.", "Latin"))
    assert after["sr"] == pytest.approx(before["sr"])


@pytest.mark.parametrize(
    "sample, code",
    [
        ("Non se puido atopar o ficheiro.", "gl"),
        ("Datei konnt net fonnt ginn.", "lb"),
        ("No s'a puesto trobar o fichero.", "an"),
    ],
)
def test_languages_lingua_has_no_model_for_keep_py3langids_probability(sample, code):
    # Neither drowned by the web prior nor pushed about by a second identifier that cannot see them.
    before = dict(language.rank(sample, "Latin", ensemble=False))
    after = dict(language.rank(sample, "Latin"))
    assert language._lingua_language(code) is None
    assert after[code] == pytest.approx(before[code])


@pytest.mark.parametrize(
    "sample, expected",
    [
        ("Изтрий избрания потребител", "bg"),  # py3langid alone: Russian
        ("Ogiltigt filnamn angivet", "sv"),  # py3langid alone: unsure
        ("Spremi promjene i zatvori", "hr"),  # py3langid alone: unsure
        ("Ungültiger Dateiname", "de"),
    ],
)
def test_a_second_identifier_settles_short_texts_one_alone_gets_wrong_or_unsure(sample, expected):
    alone = language.identify(sample, ensemble=False)
    assert (alone.verdict, alone.language) != ("sure", expected) or alone.confidence < 0.6
    both = language.identify(sample)
    assert (both.verdict, both.language) == ("sure", expected) and both.confidence > alone.confidence


def test_long_text_is_left_to_py3langid_and_the_web_prior():
    # Past LINGUA_MAX_CHARS Lingua is not asked: its probabilities there are overconfident.
    sample = ("Datoteka nije pronađena na poslužitelju. Molimo provjerite naziv datoteke i pokušajte ponovno. "
              "Ako se problem ponovi, obratite se administratoru sustava koji vam može pomoći.")
    assert len(sample) >= language.LINGUA_MAX_CHARS
    alone = dict(language.rank(sample, "Latin", ensemble=False))
    expected = language._web_prior_in_close_group("Latin", alone)
    after = dict(language.rank(sample, "Latin"))
    assert after == pytest.approx(expected)
    assert language.identify(sample).language == "hr"


def test_the_web_prior_is_confined_to_the_close_group():
    scores = {"hr": 0.3, "bs": 0.35, "sr": 0.05, "sl": 0.2, "en": 0.1}
    after = language._web_prior_in_close_group("Latin", scores)
    group = {"bs", "hr"}  # the members Lingua models in Latin letters (its Serbian is Cyrillic)
    assert sum(after[c] for c in group) == pytest.approx(sum(scores[c] for c in group))
    assert all(after[c] == pytest.approx(scores[c]) for c in scores if c not in group)
    assert after["hr"] > after["bs"]  # Croatian is ~4x Bosnian on the web


def test_languages_the_person_expects_settle_a_small_language_beside_a_big_one():
    # Malay, Afrikaans and Nynorsk lose to Indonesian, Dutch and Danish/Bokmål on short text without a hint.
    assert language.identify("Saya tidak tahu di mana dia tinggal sekarang", expected=["ms"]).best == "ms"
    assert language.identify("Hy het gesê dat hy more sal kom.", expected=["af", "en"]).best == "af"
    assert language.identify("Jeg veit ikkje kvar ho bur no.", expected=["nn"]).best == "nn"


def test_an_expectation_the_script_rules_out_is_set_aside():
    # Cyrillic text when only German is expected: the answer comes from the script's own languages.
    assert language.identify("Привет, как дела у тебя сегодня вечером?", expected=["de"]).language == "ru"


def test_the_page_offers_every_language_by_name():
    names = dict(language.choices())
    assert names["ms"] == "Malay" and names["gl"] == "Galician" and names["nl"] == "Dutch"
    assert all(len(code) == 2 for code in names)
