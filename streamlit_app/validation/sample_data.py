"""Seeded, realistic sample data: a demo sheet of US book requests and labelled duplicate sets.

Why: the Validation page needs a "try it with sample data" button whose
results show every kind of problem, and the duplicate finder needs data with
known true pairs to measure precision and recall (and so choose its default
threshold). Everything is deterministic for a given seed and package versions:
real ZIP/city/state/area-code combinations come from the zipcodes package.
"""
from __future__ import annotations

import datetime as dt
import functools
import random

import pandas as pd

FIRST_NAMES = (
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard Susan "
    "Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty Anthony Margaret "
    "Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua Michelle Kenneth Carol Kevin "
    "Amanda Brian Dorothy George Melissa Timothy Deborah Ronald Stephanie Edward Rebecca Jason Sharon "
    "Jeffrey Laura Ryan Cynthia Jacob Kathleen Gary Amy Nicholas Angela Eric Shirley Jonathan Anna Stephen "
    "Brenda Larry Pamela Justin Emma Scott Nicole Brandon Helen Benjamin Samantha Samuel Katherine Gregory "
    "Christine Alexander Debra Frank Rachel Patrick Carolyn Raymond Janet Jack Catherine Dennis Maria Jerry "
    "Heather Tyler Diane Aaron Ruth Jose Julie Adam Olivia Nathan Joyce Henry Virginia Douglas Victoria "
    "Zachary Kelly Peter Lauren Kyle Christina Ethan Joan Walter Evelyn Noah Judith Jeremy Megan Christian "
    "Andrea Keith Cheryl Roger Hannah Terry Jacqueline Gerald Martha Harold Gloria Sean Teresa Austin Ann "
    "Carl Sara Arthur Madison Lawrence Frances Dylan Kathryn Jesse Janice Jordan Jean Bryan Abigail Billy "
    "Alice Joe Judy Bruce Sophia Gabriel Grace Logan Denise Albert Amber Willie Doris Alan Marilyn Juan "
    "Danielle Wayne Beverly Elijah Isabella Randy Theresa Roy Diana Vincent Natalie Ralph Brittany Eugene "
    "Charlotte Russell Marie Bobby Kayla Mason Alexis Philip Lori"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz "
    "Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson "
    "Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray "
    "Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins "
    "Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero "
    "Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant "
    "Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison Fernandez "
    "McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman Burns Crawford "
    "Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz Hunt Hicks Holmes Palmer "
    "Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice Schmidt Garza Daniels "
    "Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley Spencer Hawkins Arnold "
    "Pierce Vazquez Hansen Peters Santos Hart Bradley Knight Elliott Cunningham Duncan Armstrong Hudson "
    "Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman Johnston Matthews Pena Richards "
    "Contreras Willis Carpenter Lawrence Sandoval Guerrero George Chapman Rios Estrada Ortega Watkins "
    "Greene Nunez Wheeler Valdez Harper Burke Larson Santiago Maldonado Morrison Franklin Carlson Austin "
    "Dominguez Carr Lawson Jacobs Obrien Lynch Singh Vega Bishop Montgomery Oliver Jensen Harvey Williamson "
    "Gilbert Dean Sims Espinoza Howell Li Wong Reid Hanson Le McCoy Garrett Burton Fuller Wang Weber Welch "
    "Rojas Lucas Marquez Fields Park Yang Little Banks Padilla Day Walsh Bowman Schultz Luna Fowler Mejia "
    "Davidson Acosta Brewer May Holland Juarez Newman Pearson Curtis Cortez Douglas Schneider Joseph Barrett "
    "Navarro Figueroa Keller Avila Wade Molina Stanley Hopkins Campos Barnett Bates Chambers Caldwell Beck "
    "Lambert Miranda Byrd Craig Ayala Lowe Frazier Powers Neal Leonard Gregory Carrillo Sutton Fleming "
    "Rhodes Shelton Schwartz Norris Jennings Watts Duran Walters Cohen McDaniel Moran Parks Steele Vaughn"
).split()
STREET_NAMES = (
    "Main Oak Maple Cedar Pine Elm Washington Lake Hill Park Walnut Sunset Lincoln Jackson Church River "
    "Highland Spring Chestnut Forest Willow Meadow Ridge Valley Franklin Madison Jefferson Adams Center "
    "Mill Union Cherry Hickory Dogwood Birch Poplar Spruce Laurel Magnolia Lakeview Railroad Broad Front "
    "Water Market School Academy College Prospect Pleasant Orchard Summit Woodland Fairview Greenwood "
    "Riverside Bridge Canal Harbor Bay Shore Grove Garden Heritage Liberty Victory Independence"
).split()
STREET_TYPES = (("Street", "St"), ("Avenue", "Ave"), ("Road", "Rd"), ("Drive", "Dr"), ("Lane", "Ln"),
                ("Court", "Ct"), ("Boulevard", "Blvd"), ("Place", "Pl"), ("Way", "Way"), ("Terrace", "Ter"))
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "aol.com", "icloud.com", "comcast.net", "verizon.net")
BOOK_TITLES = (
    "Pride and Prejudice", "Moby-Dick", "The Adventures of Huckleberry Finn", "Little Women", "Frankenstein",
    "Jane Eyre", "Great Expectations", "The Scarlet Letter", "Dracula", "Wuthering Heights", "Emma",
    "The Count of Monte Cristo", "A Tale of Two Cities", "Walden", "Leaves of Grass", "The Odyssey",
    "Treasure Island", "The Call of the Wild", "Alice's Adventures in Wonderland", "The Time Machine",
    "Anne of Green Gables", "The Secret Garden", "Heart of Darkness", "Middlemarch", "Persuasion",
    "Sense and Sensibility", "The Picture of Dorian Gray", "Les Miserables", "War and Peace", "Don Quixote",
)
PHONE_FORMATS = ("({a}) {e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "{a}{e}{l}", "+1 {a} {e} {l}", "1-{a}-{e}-{l}")
_EXCLUDED_STATES = {"PR", "VI", "GU", "AS", "MP", "AA", "AE", "AP"}


@functools.lru_cache(maxsize=1)
def _places() -> tuple[tuple[str, str, str, str], ...]:
    """(zip, city, state, area code) for active standard US ZIPs, sorted for determinism."""
    import zipcodes

    places = [
        (z["zip_code"], z["city"], z["state"], z["area_codes"][0])
        for z in zipcodes.list_all()
        if z["zip_code_type"] == "STANDARD" and z["active"] and z["area_codes"] and z["state"] not in _EXCLUDED_STATES
    ]
    return tuple(sorted(places))


def _weights(count: int) -> list[float]:
    """Common names are common: roughly Zipf, like the US census lists these come from."""
    return [1.0 / (rank + 8) for rank in range(count)]


class _PersonMaker:
    """Draws distinct people; phones and e-mails are unique across everyone it makes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.places = _places()
        self.first_cum = _cumulative(_weights(len(FIRST_NAMES)))
        self.last_cum = _cumulative(_weights(len(LAST_NAMES)))
        self.phones: set[str] = set()
        self.emails: set[str] = set()

    def phone_digits(self, area: str) -> str:
        rng = self.rng
        while True:
            digits = f"{area}{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(1, 9)}{rng.randint(0, 9999):04d}"
            if digits not in self.phones:
                self.phones.add(digits)
                return digits

    def email(self, first: str, last: str, birth_year: int) -> str:
        rng = self.rng
        f, l = first.lower(), last.lower()
        patterns = (f"{f}.{l}", f"{f[0]}{l}", f"{f}{l}", f"{f}_{l}", f"{l}.{f}", f"{f}{str(birth_year)[2:]}")
        for attempt in range(20):
            local = rng.choice(patterns)
            if attempt or rng.random() < 0.5:
                local += str(rng.randint(1, 999))
            address = f"{local}@{rng.choice(DOMAINS)}"
            if address not in self.emails:
                self.emails.add(address)
                return address
        raise RuntimeError("could not draw a unique e-mail address")  # pragma: no cover

    def street(self) -> str:
        rng = self.rng
        long_type, short_type = rng.choice(STREET_TYPES)
        street = f"{rng.randint(1, 9999)} {rng.choice(STREET_NAMES)} {long_type if rng.random() < 0.5 else short_type}"
        if rng.random() < 0.15:
            street += f" Apt {rng.randint(1, 40)}{rng.choice(['', 'A', 'B', 'C'])}"
        return street

    def person(self) -> dict:
        rng = self.rng
        zip_code, city, state, area = rng.choice(self.places)
        first = FIRST_NAMES[_pick(rng, self.first_cum)]
        last = LAST_NAMES[_pick(rng, self.last_cum)]
        dob = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randint(0, 25000))
        digits = self.phone_digits(area)
        return {
            "first_name": first, "last_name": last,
            "phone": _format_phone(digits, rng.choice(PHONE_FORMATS)),
            "email": self.email(first, last, dob.year),
            "street": self.street(), "city": city, "state": state, "zip": zip_code,
            "dob": dob.isoformat(),
        }

    def household_member(self, person: dict) -> dict:
        """Same surname, address and landline, different first name, birthday and e-mail: not a duplicate."""
        rng = self.rng
        first = person["first_name"]
        while first == person["first_name"]:
            first = FIRST_NAMES[_pick(rng, self.first_cum)]
        dob = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randint(0, 25000))
        member = dict(person, first_name=first, dob=dob.isoformat(), email=self.email(first, person["last_name"], dob.year))
        if rng.random() < 0.5:
            member["phone"] = _format_phone(self.phone_digits(_digits(person["phone"])[-10:-7]), rng.choice(PHONE_FORMATS))
        return member


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def _pick(rng: random.Random, cumulative: list[float]) -> int:
    import bisect

    return bisect.bisect_left(cumulative, rng.random() * cumulative[-1])


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _format_phone(digits: str, pattern: str) -> str:
    return pattern.format(a=digits[:3], e=digits[3:6], l=digits[6:10])


# --------------------------------------------------------------------------- perturbations

def _typo(rng: random.Random, word: str) -> str:
    """One keyboard slip: drop, double, swap neighbours or replace a letter (never the first)."""
    if len(word) < 4:
        return word + word[-1]
    i = rng.randint(1, len(word) - 2)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1:]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    if kind == 2:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    letter = rng.choice("aeioulnrst".replace(word[i].lower(), ""))
    return word[:i] + letter + word[i + 1:]


_ABBREVIATIONS = {long.lower(): short for long, short in STREET_TYPES}
_EXPANSIONS = {short.lower(): long for long, short in STREET_TYPES}


def _restyle_street(rng: random.Random, street: str) -> str:
    words = street.split()
    out = []
    for word in words:
        lower = word.lower()
        if lower in _ABBREVIATIONS and rng.random() < 0.7:
            word = _ABBREVIATIONS[lower] + ("." if rng.random() < 0.3 else "")
        elif lower in _EXPANSIONS and rng.random() < 0.7:
            word = _EXPANSIONS[lower]
        elif lower == "apt" and rng.random() < 0.5:
            word = rng.choice(["#", "Unit", "Apartment"])
        out.append(word)
    text = " ".join(out).replace("# ", "#")
    return text.upper() if rng.random() < 0.3 else text


def _duplicate_of(rng: random.Random, person: dict) -> dict:
    """The same person entered again: reformatted fields plus one or two real mistakes."""
    dup = dict(person)
    dup["phone"] = _format_phone(_digits(person["phone"])[-10:], rng.choice(PHONE_FORMATS))
    dup["street"] = _restyle_street(rng, person["street"])
    if rng.random() < 0.3:
        dup["email"] = person["email"].upper() if rng.random() < 0.5 else person["email"].capitalize()
    if rng.random() < 0.3:
        year, month, day = person["dob"].split("-")
        dup["dob"] = f"{month}/{day}/{year}"
    if rng.random() < 0.2:
        dup["zip"] = f"{person['zip']}-{rng.randint(1, 9999):04d}"
    mistakes = rng.sample(
        ["first_typo", "last_typo", "swap", "no_phone", "no_email", "new_email", "street_typo", "moved", "phone_typo"],
        k=rng.choice([1, 1, 2]),
    )
    for mistake in mistakes:
        if mistake == "first_typo":
            dup["first_name"] = _typo(rng, dup["first_name"])
        elif mistake == "last_typo":
            dup["last_name"] = _typo(rng, dup["last_name"])
        elif mistake == "swap":
            dup["first_name"], dup["last_name"] = dup["last_name"], dup["first_name"]
        elif mistake == "no_phone":
            dup["phone"] = ""
        elif mistake == "no_email":
            dup["email"] = ""
        elif mistake == "new_email":
            dup["email"] = f"{person['first_name'].lower()}{rng.randint(1000, 9999)}@{rng.choice(DOMAINS)}"
        elif mistake == "street_typo":
            parts = dup["street"].split(" ", 2)
            if len(parts) >= 2:
                parts[1] = _typo(rng, parts[1])
                dup["street"] = " ".join(parts)
        elif mistake == "moved":  # new address, same phone and e-mail
            fresh = _PersonMaker(rng)
            zip_code, city, state, _area = rng.choice(fresh.places)
            dup.update(street=fresh.street(), city=city, state=state, zip=zip_code)
        elif mistake == "phone_typo":
            digits = list(_digits(dup["phone"])[-10:] or _digits(person["phone"])[-10:])
            position = rng.randint(6, 9)  # the line number: the exchange must stay valid
            digits[position] = str((int(digits[position]) + rng.randint(1, 8)) % 10)
            dup["phone"] = _format_phone("".join(digits), rng.choice(PHONE_FORMATS))
    return dup


# --------------------------------------------------------------------------- public generators

LABELLED_COLUMNS = ("first_name", "last_name", "phone", "email", "street", "city", "state", "zip", "dob")


def labelled_duplicate_set(n: int = 2000, dup_rate: float = 0.1, seed: int = 7,
                           household_rate: float = 0.05) -> tuple[pd.DataFrame, set[tuple[int, int]]]:
    """n records of which ~dup_rate are re-entries of another record; returns (df, true pairs of row numbers).

    Rows are numbered like a sheet (index 'row', first record = 2). Hard
    negatives are planted too: household members share surname, address and
    often the landline, and common names recur across different people.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    if not 0 <= dup_rate < 1:
        raise ValueError(f"dup_rate must be in [0, 1), got {dup_rate}")
    rng = random.Random(seed)
    maker = _PersonMaker(rng)
    n_dups = int(round(n * dup_rate))
    records: list[dict] = []
    person_of: list[int] = []
    while len(records) < n - n_dups:
        person = maker.person()
        records.append(person)
        person_of.append(len(person_of))
        if rng.random() < household_rate and len(records) < n - n_dups:
            records.append(maker.household_member(person))
            person_of.append(len(person_of))
    originals = len(records)
    for _ in range(n_dups):
        source = rng.randrange(originals)
        records.append(_duplicate_of(rng, records[source]))
        person_of.append(person_of[source])
    order = list(range(len(records)))
    rng.shuffle(order)
    df = pd.DataFrame([records[i] for i in order], columns=list(LABELLED_COLUMNS), dtype=str)
    df.index = pd.RangeIndex(2, len(df) + 2, name="row")
    members: dict[int, list[int]] = {}
    for position, original in enumerate(order):
        members.setdefault(person_of[original], []).append(position + 2)
    pairs = {
        (a, b) if a < b else (b, a)
        for rows in members.values() if len(rows) > 1
        for i, a in enumerate(rows) for b in rows[i + 1:]
    }
    return df, pairs


SAMPLE_COLUMNS = ("Name", "Phone", "Email", "Street Address", "City", "State", "ZIP", "Date of Birth", "Book Title")


def sample_sheet(n: int = 200, seed: int = 2024) -> pd.DataFrame:
    """A demo sheet of book requests with planted problems; `df.attrs['planted']` lists them by row."""
    if n < 20:
        raise ValueError(f"the sample needs at least 20 rows to plant every kind of problem, got {n}")
    rng = random.Random(seed)
    maker = _PersonMaker(rng)
    n_dups = max(2, n // 20)
    people = [maker.person() for _ in range(n - n_dups)]
    dup_sources = rng.sample(range(len(people)), n_dups)
    rows = people + [_duplicate_of(rng, people[i]) for i in dup_sources]
    order = list(range(len(rows)))
    rng.shuffle(order)
    position_of = {original: position for position, original in enumerate(order)}
    sheet_row = lambda original: position_of[original] + 2  # noqa: E731
    records = [dict(rows[i]) for i in order]
    planted = {
        "duplicates": sorted(tuple(sorted((sheet_row(src), sheet_row(len(people) + k)))) for k, src in enumerate(dup_sources)),
        "phone": [], "email": [], "address": [],
    }
    dup_rows = {row for pair in planted["duplicates"] for row in pair}
    free = [p for p in range(len(records)) if p + 2 not in dup_rows]
    rng.shuffle(free)
    bad_phones = ["12345", "(123) 456-7890", "call after 5pm", "555-0199", "+1 212 555 01999"]
    bad_emails = ["jane.doe@", "bob at gmail.com", "mary..smith@gmail.com", "kim@gmail", "tom@@yahoo.com"]
    for value in bad_phones:
        position = free.pop()
        records[position]["phone"] = value
        planted["phone"].append(position + 2)
    for value in bad_emails:
        position = free.pop()
        records[position]["email"] = value
        planted["email"].append(position + 2)
    for kind in ("wrong_state", "no_zip", "no_house_number", "unknown_zip", "name_in_street"):
        position = free.pop()
        record = records[position]
        if kind == "wrong_state":
            record["state"] = "CA" if record["state"] != "CA" else "NY"
        elif kind == "no_zip":
            record["zip"] = ""
        elif kind == "no_house_number":
            record["street"] = record["street"].split(" ", 1)[1]
        elif kind == "unknown_zip":
            record["zip"] = "00000"
        else:
            record["street"] = f"c/o {record['first_name']} {record['last_name']}, {record['street']}"
        planted["address"].append(position + 2)
    position = free.pop()  # a PO box is a fine mailing address: planted as valid
    records[position]["street"] = f"PO Box {rng.randint(1, 9999)}"
    planted["po_box"] = [position + 2]
    table = pd.DataFrame(
        {
            "Name": [f"{r['first_name']} {r['last_name']}" for r in records],
            "Phone": [r["phone"] for r in records],
            "Email": [r["email"] for r in records],
            "Street Address": [r["street"] for r in records],
            "City": [r["city"] for r in records],
            "State": [r["state"] for r in records],
            "ZIP": [r["zip"] for r in records],
            "Date of Birth": [r["dob"] for r in records],
            "Book Title": [rng.choice(BOOK_TITLES) for _ in records],
        },
        dtype=str,
    )
    table.index = pd.RangeIndex(2, len(table) + 2, name="row")
    for key in ("phone", "email", "address"):
        planted[key].sort()
    table.attrs["planted"] = planted
    return table


def sample_phone_numbers(n: int, seed: int = 11, invalid_rate: float = 0.05) -> list[str]:
    """n US phone numbers in mixed formats, some invalid: the parallel phone benchmark's input."""
    rng = random.Random(seed)
    maker = _PersonMaker(rng)
    invalid = ["12345", "(123) 456-7890", "not a number", "555-0199", "+1 999 999 99999"]
    out = []
    for _ in range(n):
        if rng.random() < invalid_rate:
            out.append(rng.choice(invalid))
        else:
            _zip, _city, _state, area = rng.choice(maker.places)
            out.append(_format_phone(maker.phone_digits(area), rng.choice(PHONE_FORMATS)))
    return out
