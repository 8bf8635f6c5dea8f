"""Example plugins as a user would write them, loaded through ``factory: "module:create"``.

Configuration::

    plugins:
      - name: tag
        factory: tests.plugins.example_plugins:create_tagger
        config: {header: x-team, value: search}
      - name: deny
        factory: tests.plugins.example_plugins:create_denier
        config: {models: [gpt-4o]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sim.pipeline import BasePlugin, Context, PluginError, PluginRequest, PluginResponse, ShortCircuit


class HeaderTagger(BasePlugin):
    """Adds one header to every successful response; counts the requests it saw via the context."""

    name = "tag"

    def __init__(self, header: str, value: str) -> None:
        self.header = header.lower().encode()
        self.value = value.encode()

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit:
        ctx["tag.model"] = request.model
        return request

    def post_hook(
        self, ctx: Context, response: PluginResponse | None, error: PluginError | None
    ) -> tuple[PluginResponse | None, PluginError | None]:
        if response is None:
            return response, error
        extra = ((self.header, self.value), (b"x-tag-model", str(ctx.get("tag.model", "")).encode()))
        return PluginResponse(
            response.status, response.body, response.content_type, response.events, response.headers + extra
        ), None


class ModelDenier(BasePlugin):
    """Refuses listed models with a 403 before the provider is asked."""

    name = "deny"

    def __init__(self, models: frozenset[str], *, allow_fallbacks: bool) -> None:
        self.models = models
        self.allow_fallbacks = allow_fallbacks

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit:
        if request.model in self.models:
            return ShortCircuit(
                error=PluginError(
                    403,
                    f"model {request.model!r} is not allowed here",
                    type="permission_error",
                    code="model_denied",
                    allow_fallbacks=self.allow_fallbacks,
                )
            )
        return request


class Exploding(BasePlugin):
    """Raises in the hook named by ``where`` ("pre" or "post"): a broken plugin."""

    name = "explode"

    def __init__(self, where: str) -> None:
        self.where = where

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit:
        if self.where == "pre":
            raise RuntimeError("boom in pre_hook")
        return request

    def post_hook(
        self, ctx: Context, response: PluginResponse | None, error: PluginError | None
    ) -> tuple[PluginResponse | None, PluginError | None]:
        if self.where == "post":
            raise RuntimeError("boom in post_hook")
        return response, error


def create_tagger(config: Mapping[str, Any]) -> HeaderTagger:
    return HeaderTagger(str(config.get("header", "x-understudy-tag")), str(config.get("value", "1")))


def create_denier(config: Mapping[str, Any]) -> ModelDenier:
    models = config.get("models", [])
    if not isinstance(models, list) or not all(isinstance(model, str) for model in models):
        raise ValueError("config.models must be a list of model names")
    return ModelDenier(frozenset(models), allow_fallbacks=bool(config.get("allow_fallbacks", False)))


def create_exploding(config: Mapping[str, Any]) -> Exploding:
    return Exploding(str(config.get("where", "pre")))


def create_not_a_plugin(config: Mapping[str, Any]) -> object:
    """A factory that returns something without hooks, for the loader's error path."""
    return object()


not_callable = 42
