"""Message templates: ``{{provider}}``, ``{{model}}``, ``{{request.last_user_message}}``, ``{{faker.*}}``.

Theory of operation: :func:`compile_template` splits a template once, at load,
into a tuple of parts, each either literal text or a small function of the
request and a ``random.Random``. Rendering joins the parts; no regular
expression or parsing runs per request. A placeholder that names nothing we
know, or a faker method with bad arguments, raises :class:`TemplateError` at
load, so a typo in a config file is reported instead of being sent to clients.
Whitespace inside the braces is ignored (``{{ model }}`` works).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sim.fake_values import FakeSpecError, compile_fake


class TemplateFacts(Protocol):
    """What a template may read from a request."""

    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def last_user_message(self) -> str: ...


Part = Callable[[TemplateFacts, random.Random], str]

_OPEN, _CLOSE = "{{", "}}"

_REQUEST_FIELDS: dict[str, Part] = {
    "provider": lambda facts, _rand: facts.provider,
    "model": lambda facts, _rand: facts.model,
    "request.last_user_message": lambda facts, _rand: facts.last_user_message,
}


class TemplateError(ValueError):
    """A template cannot be compiled; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template; ``static`` is set when it has no placeholders, so rendering costs nothing."""

    source: str
    parts: tuple[str | Part, ...]
    static: str | None

    def render(self, facts: TemplateFacts, rand: random.Random) -> str:
        if self.static is not None:
            return self.static
        return "".join(part if isinstance(part, str) else part(facts, rand) for part in self.parts)


def _compile_placeholder(name: str) -> Part:
    if name in _REQUEST_FIELDS:
        return _REQUEST_FIELDS[name]
    if name.startswith("faker."):
        method, sep, args = name[len("faker.") :].partition(":")
        try:
            fake = compile_fake(method.strip(), args.strip() if sep else None)
        except FakeSpecError as exc:
            raise TemplateError(str(exc)) from None
        return lambda _facts, rand: fake(rand)
    known = ", ".join(f"{{{{{field}}}}}" for field in _REQUEST_FIELDS)
    raise TemplateError(f"unknown placeholder {{{{{name}}}}}; known: {known}, {{{{faker.METHOD}}}}")


def compile_template(source: str) -> Template:
    """Compile ``source``; raise :class:`TemplateError` naming the first bad placeholder."""
    parts: list[str | Part] = []
    position = 0
    while True:
        start = source.find(_OPEN, position)
        if start < 0:
            break
        end = source.find(_CLOSE, start + len(_OPEN))
        if end < 0:
            raise TemplateError(f"unclosed {_OPEN} at offset {start}")
        if start > position:
            parts.append(source[position:start])
        parts.append(_compile_placeholder(source[start + len(_OPEN) : end].strip()))
        position = end + len(_CLOSE)
    if position < len(source):
        parts.append(source[position:])
    static = source if all(isinstance(part, str) for part in parts) else None
    return Template(source=source, parts=tuple(parts), static=static)
