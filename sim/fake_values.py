"""Fake values for ``{{faker.METHOD:ARGS}}`` template placeholders.

Theory of operation: :func:`compile_fake` turns one ``METHOD`` plus its raw
``ARGS`` text into a *generator*, a function ``(random.Random) -> str``, and
rejects an unknown method or bad arguments with :class:`FakeSpecError` at load
time, so nothing is parsed per request. Every value is drawn from the
``random.Random`` the caller hands in, so a seeded request renders the same
text every time.

Cost: the Faker library composes values through weighted format strings and
rebuilds its weight tables on every call (30-90 µs for a name or an address).
The common methods (names, e-mail, words, sentences, job titles, states, zip
codes, numbers, dates, uuids, colours) are therefore drawn directly from
Faker's own en_US word lists, precomputed once per process, at about a
microsecond each; only ``phone``, ``city``, ``address`` and ``company`` go
through a Faker generator, which is pointed at the caller's ``Random`` for the
duration of the call.
"""

from __future__ import annotations

import datetime
import itertools
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

from faker import Factory, Generator
from faker.providers.address.en_US import Provider as AddressProvider
from faker.providers.job.en_US import Provider as JobProvider
from faker.providers.lorem.en_US import Provider as EnglishLorem
from faker.providers.lorem.la import Provider as LatinLorem
from faker.providers.person.en_US import Provider as PersonProvider

FakeGenerator = Callable[[random.Random], str]

DEFAULT_SENTENCE_WORDS = 8  # Bifrost's default for faker.sentence
DEFAULT_LOREM_WORDS = 10  # Bifrost's default for faker.lorem_ipsum
MAX_WORDS = 10_000
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
# A fixed window, not "before now", so that a seed renders the same date on any day.
_DATE_START = datetime.datetime(2000, 1, 1)
_DATE_SPAN_S = int((datetime.datetime(2030, 1, 1) - _DATE_START).total_seconds())


class FakeSpecError(ValueError):
    """A faker method name or its arguments are not valid; the message says why."""


@dataclass(frozen=True, slots=True)
class _Weighted:
    values: tuple[str, ...]
    cum_weights: tuple[float, ...]

    def draw(self, rand: random.Random) -> str:
        return rand.choices(self.values, cum_weights=self.cum_weights)[0]


def _weighted(table: Mapping[str, float]) -> _Weighted:
    return _Weighted(tuple(table), tuple(itertools.accumulate(table.values())))


@dataclass(frozen=True, slots=True)
class _WordLists:
    first_names: _Weighted
    last_names: _Weighted
    english: tuple[str, ...]
    latin: tuple[str, ...]
    jobs: tuple[str, ...]
    states: tuple[str, ...]


@cache
def _word_lists() -> _WordLists:
    # Built on first use, not at import, and shared: the lists are immutable.
    return _WordLists(
        first_names=_weighted(PersonProvider.first_names),
        last_names=_weighted(PersonProvider.last_names),
        english=tuple(EnglishLorem.word_list),
        latin=tuple(LatinLorem.word_list),
        jobs=tuple(JobProvider.jobs),
        states=tuple(AddressProvider.states),
    )


@cache
def _faker_generator() -> Generator:
    return Factory.create("en_US")


def _through_faker(method: str) -> FakeGenerator:
    generator = _faker_generator()
    produce: Callable[[], str] = getattr(generator, method)

    def fake(rand: random.Random) -> str:
        # Faker reads generator.random on each draw; pointing it at the caller's
        # Random makes the value a function of that Random's state alone.
        generator.random = rand
        return produce().replace("\n", ", ")

    return fake


def _parse_numbers(
    method: str, args: str | None, default: tuple[float, float], *, integers: bool
) -> tuple[float, float]:
    if args is None:
        return default
    kind = "integers" if integers else "numbers"
    pieces = args.split(",")
    if len(pieces) != 2:
        raise FakeSpecError(f"faker.{method} takes two {kind} 'low,high', got {args!r}")
    try:
        low, high = ((int(p) if integers else float(p)) for p in pieces)
    except ValueError:
        raise FakeSpecError(f"faker.{method} takes two {kind} 'low,high', got {args!r}") from None
    if high < low:
        raise FakeSpecError(f"faker.{method}: high {high} is below low {low}")
    return low, high


def _parse_count(method: str, args: str | None, default: int) -> int:
    if args is None:
        return default
    try:
        count = int(args)
    except ValueError:
        raise FakeSpecError(f"faker.{method} takes a word count, got {args!r}") from None
    if not 1 <= count <= MAX_WORDS:
        raise FakeSpecError(f"faker.{method}: word count must be between 1 and {MAX_WORDS}, got {count}")
    return count


def _sentence(words: tuple[str, ...], count: int) -> FakeGenerator:
    def fake(rand: random.Random) -> str:
        text = " ".join(rand.choices(words, k=count))
        return text[0].upper() + text[1:] + "."

    return fake


def _no_args(method: str, args: str | None, generator: FakeGenerator) -> FakeGenerator:
    if args is not None:
        raise FakeSpecError(f"faker.{method} takes no arguments, got {args!r}")
    return generator


def _simple_generators() -> dict[str, FakeGenerator]:
    lists = _word_lists()
    first, last = lists.first_names.draw, lists.last_names.draw

    def email(rand: random.Random) -> str:
        return f"{first(rand).lower()}.{last(rand).lower()}@{rand.choice(_EMAIL_DOMAINS)}"

    def date(rand: random.Random) -> str:
        return (_DATE_START + datetime.timedelta(seconds=rand.randrange(_DATE_SPAN_S))).strftime("%Y-%m-%d")

    def date_time(rand: random.Random) -> str:
        return (_DATE_START + datetime.timedelta(seconds=rand.randrange(_DATE_SPAN_S))).strftime("%Y-%m-%d %H:%M:%S")

    return {
        "name": lambda rand: f"{first(rand)} {last(rand)}",
        "first_name": first,
        "last_name": last,
        "email": email,
        "phone": _through_faker("phone_number"),
        "address": _through_faker("address"),
        "city": _through_faker("city"),
        "state": lambda rand: rand.choice(lists.states),
        "zip_code": lambda rand: f"{rand.randrange(100_000):05d}",
        "company": _through_faker("company"),
        "job_title": lambda rand: rand.choice(lists.jobs),
        "word": lambda rand: rand.choice(lists.english),
        "uuid": lambda rand: str(uuid.UUID(int=rand.getrandbits(128), version=4)),
        "hex_color": lambda rand: f"#{rand.getrandbits(24):06x}",
        "boolean": lambda rand: "true" if rand.random() < 0.5 else "false",
        "date": date,
        "datetime": date_time,
    }


FAKE_METHODS = (
    "name first_name last_name email phone address city state zip_code company job_title word sentence "
    "lorem_ipsum uuid hex_color integer float boolean date datetime"
).split()


def compile_fake(method: str, args: str | None) -> FakeGenerator:
    """Return the generator for ``faker.METHOD[:ARGS]``; raise :class:`FakeSpecError` if it cannot be built."""
    if method == "sentence":
        return _sentence(_word_lists().english, _parse_count(method, args, DEFAULT_SENTENCE_WORDS))
    if method == "lorem_ipsum":
        return _sentence(_word_lists().latin, _parse_count(method, args, DEFAULT_LOREM_WORDS))
    if method == "integer":
        int_low, int_high = _parse_numbers(method, args, (1, 100), integers=True)
        low_i, high_i = int(int_low), int(int_high)
        return lambda rand: str(rand.randint(low_i, high_i))
    if method == "float":
        low, high = _parse_numbers(method, args, (0.0, 100.0), integers=False)
        return lambda rand: f"{rand.uniform(low, high):.2f}"
    if method not in FAKE_METHODS:
        raise FakeSpecError(f"unknown faker method {method!r}; known: {', '.join(FAKE_METHODS)}")
    return _no_args(method, args, _simple_generators()[method])
