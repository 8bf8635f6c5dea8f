"""Token log-probabilities for replies that ask for them (``logprobs``, ``top_logprobs``).

The numbers are plausible, not meaningful: the chosen token is likely (a
log-probability near 0), each alternative less likely than the one before. The
chosen token leads its own ``top_logprobs`` list, as the API reports it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def token_logprobs(
    pieces: Sequence[str], *, top: int, alternatives: Sequence[str], rand: random.Random
) -> list[dict[str, Any]]:
    """One ``ChatCompletionTokenLogprob`` per piece, with ``top`` alternatives each."""
    out = []
    for piece in pieces:
        logprob = round(-rand.expovariate(4.0), 6)
        entry = _entry(piece, logprob)
        ranked = [_entry(piece, logprob)] if top else []
        lower = logprob
        for word in rand.sample(alternatives, min(top - 1, len(alternatives))) if top > 1 else ():
            lower = round(lower - 0.5 - rand.expovariate(1.0), 6)
            ranked.append(_entry(word if piece.startswith(" ") else word.lstrip(), lower))
        entry["top_logprobs"] = ranked
        out.append(entry)
    return out
