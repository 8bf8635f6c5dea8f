"""The assistant's reply text for a request, under the configured content mode.

Theory of operation: every endpoint that answers with text (chat, legacy
completions, Responses, Anthropic messages) asks one :class:`ReplyWriter` for a
:class:`ReplyText`. The writer picks the content policy for the request's model
(a per-model policy, else the default one) and produces the text in one of four
modes:

- ``generated``: English-like sentences from :class:`TextGenerator` of a
  natural length (log-normal, median 120 tokens) ending in a full stop (finish
  ``stop``), cut at ``max_tokens`` when longer (finish ``length``); with
  ``exact`` (vLLM's ``ignore_eos``, which load generators send) exactly
  ``max_tokens`` long;
- ``echo``: the last user message, verbatim;
- ``fixed``: one configured text;
- ``canned``: a configured list of texts, cycled in order (each writer keeps its
  own position: one per worker process).

Texts that are not generated are tokenized with the model's encoding, so their
token counts are exact too, and cut at ``max_tokens`` when longer. Stop
sequences then cut the text before the earliest match (finish ``stop``).

A request that carries a ``seed`` gets a random stream derived from the seed and
the request body (:func:`seeded_random`), so the same request gives the same
reply from any worker, as the provider's ``seed`` promises on a best-effort basis.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from sim.content import TextGenerator
from sim.tokens import encoding_for_model

Mode = Literal["generated", "echo", "fixed", "canned"]
Finish = Literal["stop", "length"]

# --big-payload: replies of about 10 KB (the Bifrost mock server's large payload),
# i.e. about 2,000 generated tokens of 5 bytes each.
BIG_PAYLOAD_TOKENS = 2048
# Request fields that do not change what is said, only how it is delivered.
_DELIVERY_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier"})


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """How replies are written for one model (or by default)."""

    mode: Mode = "generated"
    text: str = ""
    responses: tuple[str, ...] = ()
    big_payload: bool = False


@dataclass(frozen=True, slots=True)
class ReplyText:
    """A reply as the pieces a stream sends (about one token each) and its exact token count."""

    pieces: tuple[str, ...]
    tokens: int
    finish: Finish
    stop_sequence: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass(slots=True)
class ReplyWriter:
    """Writes reply texts; one per worker process (it keeps the canned-list positions)."""

    generator: TextGenerator
    default: ContentPolicy = field(default_factory=ContentPolicy)
    by_model: Mapping[str, ContentPolicy] = field(default_factory=dict)
    _positions: dict[str, int] = field(default_factory=dict)

    def policy_for(self, model: str) -> ContentPolicy:
        return self.by_model.get(model, self.default)

    def write(
        self,
        *,
        model: str,
        prompt: str,
        max_tokens: int | None,
        stop: Sequence[str] = (),
        rand: random.Random | None = None,
        exact: bool = False,
    ) -> ReplyText:
        """The reply to a request for ``model`` whose last user message is ``prompt``."""
        policy = self.policy_for(model)
        if policy.mode == "generated":
            reply = self.generated(max_tokens=max_tokens, big=policy.big_payload, rand=rand, exact=exact)
        else:
            reply = tokenized(self._configured_text(model, policy, prompt), model=model, max_tokens=max_tokens)
        return cut_at_stop(reply, stop, model=model) if stop else reply

    def generated(
        self, *, max_tokens: int | None, big: bool = False, rand: random.Random | None = None, exact: bool = False
    ) -> ReplyText:
        """Generated sentences of a natural length, cut at ``max_tokens`` (``exact``: of that length)."""
        if max_tokens is not None and exact:
            return ReplyText(tuple(self.generator.pieces(max_tokens, rand=rand)), max_tokens, "length")
        natural = BIG_PAYLOAD_TOKENS if big else self.generator.natural_length(rand)
        if max_tokens is not None and max_tokens < natural:
            pieces = self.generator.pieces(max_tokens, rand=rand)
            return ReplyText(tuple(pieces), max_tokens, "length")
        pieces = self.generator.pieces(natural, complete=True, rand=rand)
        return ReplyText(tuple(pieces), natural, "stop")

    def _configured_text(self, model: str, policy: ContentPolicy, prompt: str) -> str:
        if policy.mode == "echo":
            return prompt
        if policy.mode == "fixed":
            return policy.text
        key = model if model in self.by_model else ""
        position = self._positions.get(key, 0)
        self._positions[key] = position + 1
        return policy.responses[position % len(policy.responses)] if policy.responses else ""


def tokenized(text: str, *, model: str, max_tokens: int | None) -> ReplyText:
    """``text`` as stream pieces of whole characters, cut at ``max_tokens`` if longer."""
    encoding = encoding_for_model(model)
    ids = encoding.encode_ordinary(text)
    finish: Finish = "stop"
    if max_tokens is not None and len(ids) > max_tokens:
        ids, finish = ids[:max_tokens], "length"
    pieces: list[str] = []
    pending: list[bytes] = []
    for token in ids:
        pending.append(encoding.decode_single_token_bytes(token))
        try:
            pieces.append(b"".join(pending).decode())
        except UnicodeDecodeError:
            continue  # a character split over tokens: send it whole with the next one
        pending.clear()
    if pending:
        pieces.append(b"".join(pending).decode(errors="replace"))
    return ReplyText(tuple(pieces), len(ids), finish)


def cut_at_stop(reply: ReplyText, stop: Sequence[str], *, model: str) -> ReplyText:
    """The reply up to (not including) the earliest stop sequence in it, if any."""
    text = reply.text
    found = min(((text.find(s), s) for s in stop if s in text), default=None)
    if found is None:
        return reply
    end, sequence = found
    pieces: list[str] = []
    length = 0
    for piece in reply.pieces:
        if length + len(piece) >= end:
            if end > length:
                pieces.append(piece[: end - length])
            break
        pieces.append(piece)
        length += len(piece)
    tokens = len(encoding_for_model(model).encode_ordinary("".join(pieces)))
    return ReplyText(tuple(pieces), tokens, "stop", sequence)


def seeded_random(seed: int, body: Mapping[str, Any]) -> random.Random:
    """A random stream fixed by ``seed`` and what the request asks (not how it is delivered)."""
    asked = {key: value for key, value in body.items() if key not in _DELIVERY_FIELDS}
    digest = hashlib.blake2b(orjson.dumps(asked, option=orjson.OPT_SORT_KEYS), key=str(seed).encode()[:64]).digest()
    return random.Random(digest)


def request_random(body: Mapping[str, Any], fallback: random.Random) -> random.Random:
    """The request's own stream when it carries an integer ``seed``, else ``fallback``."""
    seed = body.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        return seeded_random(seed, body)
    return fallback
