"""Strings for JSON Schema ``string`` values: patterns, formats and realistic text.

Theory of operation: a string comes from the first of these that applies:

- ``pattern``: a random walk over the regular expression's parse tree (Python's
  own parser, the engine ``jsonschema`` matches with), repeats kept short,
  checked with ``re.search`` and drawn again with longer or shorter repeats
  until the length limits are met too;
- ``format``: built in the format's exact syntax (RFC 3339 dates and times,
  ISO 8601 durations, UUIDs, addresses, hosts, URIs, emails);
- the property's name: ``city`` gives a city name, ``email`` an address,
  ``description`` a sentence, ``id`` a UUID (first matching rule wins);
- otherwise a few lorem words.

Length limits are then met by cutting or padding with words. Limits beat
formats (a format only annotates unless a validator opts in), never patterns.

Faker is costly to create (a quarter second) and slow with its frequency
weighting, so one unweighted instance is made per process, on first use, and
reseeded from the caller's random stream before its first use in each value:
it carries nothing from one value to the next, so a value depends only on the
stream. This makes a writer unsafe to share between threads, which sim's
single-threaded workers never do.
"""

from __future__ import annotations

import base64
import datetime
import functools
import importlib
import ipaddress
import random
import re
import string
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from faker import Faker
from faker.providers.lorem.en_US import Provider as LoremProvider

from sim.schema_check import SchemaError, join

# The parser behind ``re``: its tree is exactly what ``re.search`` will match.
_parser: Any = importlib.import_module("re._parser")
_sre: Any = importlib.import_module("re._constants")

MAX_PATTERN_CHARS = 10_000
# Extra repeats drawn past a quantifier's minimum, per attempt: short first,
# then none (for maxLength), then ever longer (for minLength).
_SPREADS = (3, 3, 3, 1, 0, 0, 8, 16, 64, 256, 1024)
_LOREM = tuple(LoremProvider.word_list)
_NICE = string.ascii_letters + string.digits + " -_.@:/"
_ALNUM = string.ascii_letters + string.digits
_CATEGORY_TESTS = {
    "DIGIT": r"\d",
    "NOT_DIGIT": r"\D",
    "SPACE": r"\s",
    "NOT_SPACE": r"\S",
    "WORD": r"\w",
    "NOT_WORD": r"\W",
    "LINEBREAK": r"\n",
    "NOT_LINEBREAK": r".",
}
# Members of each class among printable ASCII, the nicest first.
_CATEGORIES = {
    getattr(_sre, f"CATEGORY_{name}"): "".join(
        char for char in dict.fromkeys(_NICE + string.printable) if re.fullmatch(test, char)
    )
    for name, test in _CATEGORY_TESTS.items()
}
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT)
_FIRST_DAY = datetime.date(2020, 1, 1).toordinal()
_LAST_DAY = datetime.date(2026, 12, 31).toordinal()

Maker = Callable[["StringWriter"], str]


@functools.cache
def _shared_faker() -> Faker:
    return Faker("en_US", use_weighting=False)


def name_words(name: str | None) -> frozenset[str]:
    """The lower-case words of a property name (``cityName`` → city, name, cityname), singulars added."""
    if not name:
        return frozenset()
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower().replace("-", " ").replace("_", " ").split()
    singular = [word[:-3] + "y" if word.endswith("ies") else word[:-1] for word in words if word.endswith("s")]
    return frozenset([*words, *singular, "".join(words)])


class StringWriter:
    """Strings drawn from one random stream; make one per generated value."""

    __slots__ = ("_budget", "_faker", "_rand")

    def __init__(self, rand: random.Random) -> None:
        self._rand = rand
        self._faker: Faker | None = None
        self._budget = 0  # characters a pattern walk may still write

    @property
    def rand(self) -> random.Random:
        return self._rand

    @property
    def faker(self) -> Faker:
        if self._faker is None:
            self._faker = _shared_faker()
            self._faker.seed_instance(self._rand.getrandbits(64))
        return self._faker

    def string(self, schema: Mapping[str, Any], path: str, name: str | None) -> str:
        """A string for a ``string`` schema; ``name`` is the property's (or ``None``)."""
        low = int(schema.get("minLength", 0))
        high = int(schema["maxLength"]) if "maxLength" in schema else None
        if high is not None and low > high:  # only after allOf merged them: check_schema sees each alone
            raise SchemaError(join(path, "minLength"), f"minLength {low} is greater than maxLength {high}")
        if "pattern" in schema:
            return self.matching(schema["pattern"], join(path, "pattern"), low, high)
        maker = _FORMATS.get(schema.get("format")) if isinstance(schema.get("format"), str) else None
        if maker is None:
            words = name_words(name or (schema.get("title") if isinstance(schema.get("title"), str) else None))
            maker = next((make for keys, make in _BY_NAME if keys & words), _some_words)
        text = maker(self)
        for _ in range(2):
            if low <= len(text) <= (high if high is not None else len(text)):
                return text
            text = maker(self)
        return self.fit(text, low, high)

    def fit(self, text: str, low: int, high: int | None) -> str:
        """``text`` padded with words to ``low`` characters and cut to ``high``."""
        while len(text) < low:
            text = f"{text} {self.rand.choice(_LOREM)}" if text else self.rand.choice(_LOREM)
        if high is not None and len(text) > high:
            cut = text[:high]
            text = cut.rstrip() if len(cut.rstrip()) >= low else cut
        return text

    def words(self, count: int) -> str:
        return " ".join(self.rand.choice(_LOREM) for _ in range(count))

    def sentence(self) -> str:
        return self.words(self.rand.randint(5, 12)).capitalize() + "."

    def matching(self, pattern: str | list[str], path: str, low: int = 0, high: int | None = None) -> str:
        """A string ``re.search`` finds ``pattern`` (each of a list: allOf's) in, of ``low`` to ``high`` characters."""
        patterns = [pattern] if isinstance(pattern, str) else pattern
        compiled = [re.compile(each) for each in patterns]
        tree = _parsed(patterns[0])
        fits = range(low, (high if high is not None else MAX_PATTERN_CHARS) + 1)
        for spread in _SPREADS:
            parts: list[str] = []
            self._budget = MAX_PATTERN_CHARS
            self._walk(tree, parts, {}, spread)
            text = "".join(parts)
            # A search matches anywhere, so unanchored patterns take padding.
            padding = "".join(self.rand.choice(string.ascii_lowercase) for _ in range(max(0, low - len(text))))
            for candidate in (text, text + padding, padding + text):
                if len(candidate) in fits and all(each.search(candidate) for each in compiled) and _utf8(candidate):
                    return candidate
        limits = f" of {low} to {high if high is not None else 'any number of'} characters" if low or high else ""
        shown = " and ".join(map(repr, patterns))
        raise SchemaError(path, f"could not make a string{limits} that matches {shown}")

    def _walk(self, tree: Any, out: list[str], groups: dict[int, str], spread: int) -> None:
        for op, arg in tree:
            if self._budget <= 0:
                return
            self._budget -= 1
            if op is _sre.LITERAL:
                out.append(chr(arg))
            elif op is _sre.NOT_LITERAL:
                out.append(self.rand.choice([char for char in _NICE if ord(char) != arg]))
            elif op is _sre.ANY:
                out.append(self.rand.choice(_ALNUM))
            elif op is _sre.IN:
                out.append(self._member(arg))
            elif op is _sre.BRANCH:
                self._walk(self.rand.choice(arg[1]), out, groups, spread)
            elif op is _sre.SUBPATTERN or op is _sre.ATOMIC_GROUP:
                inner: list[str] = []
                self._walk(arg[-1] if op is _sre.SUBPATTERN else arg, inner, groups, spread)
                out.append("".join(inner))
                if op is _sre.SUBPATTERN and arg[0] is not None:
                    groups[arg[0]] = out[-1]
            elif op in _REPEATS:
                least, most, inner_tree = arg
                for _ in range(self.rand.randint(least, min(most, least + spread))):
                    if self._budget <= 0:
                        break
                    self._walk(inner_tree, out, groups, spread)
            elif op is _sre.GROUPREF:
                out.append(groups.get(arg, ""))
                self._budget -= len(out[-1])
            elif op is _sre.GROUPREF_EXISTS:
                branch = arg[1] if arg[0] in groups else arg[2]
                self._walk(branch or [], out, groups, spread)
            # AT (anchors), ASSERT and ASSERT_NOT match no characters: re.search judges them.

    def _member(self, items: list[tuple[Any, Any]]) -> str:
        """A character of a ``[...]`` class, printable ASCII where the class has any."""
        negated = bool(items) and items[0][0] is _sre.NEGATE
        for chars in (_NICE, string.printable):
            pool = [char for char in chars if _in_class(char, items) != negated]
            if pool:
                return self.rand.choice(pool)
        if negated:
            return "\u00e9"
        op, arg = self.rand.choice(items)
        low, high = (arg, arg) if op is _sre.LITERAL else arg if op is _sre.RANGE else (0xE9, 0xE9)
        code = self.rand.randint(low, high)
        return chr(low if 0xD800 <= code <= 0xDFFF else code)


@functools.lru_cache(maxsize=256)
def _parsed(pattern: str) -> Any:
    return _parser.parse(pattern)


def _utf8(text: str) -> bool:
    """Whether ``text`` can go into JSON: a pattern may spell out a lone surrogate (``\\ud800``)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _in_class(char: str, items: list[tuple[Any, Any]]) -> bool:
    code = ord(char)
    for op, arg in items:
        if op is _sre.LITERAL and code == arg:
            return True
        if op is _sre.RANGE and arg[0] <= code <= arg[1]:
            return True
        if op is _sre.CATEGORY and char in _CATEGORIES.get(arg, ""):
            return True
    return False


def _date(writer: StringWriter) -> datetime.date:
    return datetime.date.fromordinal(writer.rand.randint(_FIRST_DAY, _LAST_DAY))


def _time(writer: StringWriter) -> str:
    rand = writer.rand
    return f"{rand.randint(0, 23):02}:{rand.randint(0, 59):02}:{rand.randint(0, 59):02}"


def _duration(writer: StringWriter) -> str:
    rand = writer.rand
    days, hours, minutes = rand.randint(0, 30), rand.randint(0, 23), rand.randint(1, 59)
    return f"P{days}DT{hours}H{minutes}M" if days else f"PT{hours}H{minutes}M"


def _uuid(writer: StringWriter) -> str:
    return str(uuid.UUID(int=writer.rand.getrandbits(128), version=4))


def _ipv4(writer: StringWriter) -> str:
    rand = writer.rand
    return f"{rand.randint(1, 223)}.{rand.randint(0, 255)}.{rand.randint(0, 255)}.{rand.randint(1, 254)}"


def _person(writer: StringWriter) -> str:
    return f"{writer.faker.first_name()} {writer.faker.last_name()}"


def _some_words(writer: StringWriter) -> str:
    return writer.words(writer.rand.randint(1, 3))


_FORMATS: dict[object, Maker] = {
    "date-time": lambda w: f"{_date(w).isoformat()}T{_time(w)}Z",
    "date": lambda w: _date(w).isoformat(),
    "time": lambda w: _time(w) + "Z",
    "duration": _duration,
    "email": lambda w: w.faker.email(),
    "idn-email": lambda w: w.faker.email(),
    "uri": lambda w: w.faker.url() + w.faker.uri_path(),
    "url": lambda w: w.faker.url() + w.faker.uri_path(),
    "iri": lambda w: w.faker.url() + w.faker.uri_path(),
    "uri-reference": lambda w: "/" + w.faker.uri_path(),
    "iri-reference": lambda w: "/" + w.faker.uri_path(),
    "uri-template": lambda w: w.faker.url() + "{id}",
    "uuid": _uuid,
    "ipv4": _ipv4,
    "ipv6": lambda w: str(ipaddress.IPv6Address(w.rand.getrandbits(128))),
    "hostname": lambda w: w.faker.hostname(),
    "idn-hostname": lambda w: w.faker.hostname(),
    "json-pointer": lambda w: "/" + w.words(2).replace(" ", "/"),
    "relative-json-pointer": lambda w: f"{w.rand.randint(0, 3)}/{w.words(1)}",
    "regex": lambda w: "^[a-z]+$",
    "byte": lambda w: base64.b64encode(w.rand.randbytes(w.rand.randint(3, 24))).decode(),
}

# Property-name rules, the more specific first (``email_address`` is an email).
_BY_NAME: tuple[tuple[frozenset[str], Maker], ...] = tuple(
    (frozenset(keys.split()), make)
    for keys, make in (
        ("email mail emailaddress", lambda w: w.faker.email()),
        ("phone telephone mobile tel phonenumber", lambda w: w.faker.phone_number()),
        ("url uri link website homepage href", lambda w: w.faker.url()),
        ("ip ipaddress ipv4", _ipv4),
        ("host hostname domain", lambda w: w.faker.hostname()),
        ("location place destination origin", lambda w: f"{w.faker.city()}, {w.faker.state_abbr()}"),
        ("city town", lambda w: w.faker.city()),
        ("countrycode", lambda w: w.faker.country_code()),
        ("country nation", lambda w: w.faker.country()),
        ("zip zipcode postcode postal postalcode", lambda w: w.faker.postcode()),
        ("state province region", lambda w: w.faker.state()),
        ("address street", lambda w: w.faker.street_address()),
        ("company organization organisation employer business", lambda w: w.faker.company()),
        ("username login handle", lambda w: w.faker.user_name()),
        ("firstname givenname forename", lambda w: w.faker.first_name()),
        ("lastname surname familyname", lambda w: w.faker.last_name()),
        ("title headline subject", lambda w: w.words(w.rand.randint(2, 5)).title()),
        (
            "description summary text content message body comment note reason explanation details "
            "instructions instruction prompt answer question feedback review bio",
            StringWriter.sentence,
        ),
        ("query search keyword topic term q", lambda w: w.words(w.rand.randint(1, 3))),
        ("id uuid guid identifier", _uuid),
        ("unit", lambda w: w.rand.choice(("celsius", "fahrenheit", "metric", "imperial"))),
        ("language lang locale", lambda w: w.faker.language_name()),
        ("currency", lambda w: w.faker.currency_code()),
        ("color colour", lambda w: w.faker.color_name()),
        ("timezone tz", lambda w: w.faker.timezone()),
        ("datetime timestamp createdat updatedat", _FORMATS["date-time"]),
        ("date day birthday dob", lambda w: _date(w).isoformat()),
        ("time", lambda w: _time(w)[:5]),
        ("job occupation role position", lambda w: w.faker.job()),
        ("file filename path", lambda w: w.faker.file_name()),
        ("tag category label kind", lambda w: w.rand.choice(_LOREM)),
        ("name author customer person fullname owner contact user", _person),
    )
)
