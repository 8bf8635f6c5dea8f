"""The plugin pipeline: ordered pre-hooks, a provider, post-hooks in reverse.

Theory of operation (after Bifrost's plugin system): a request is a frozen
:class:`PluginRequest`. :func:`run_pre` hands it to each plugin's ``pre_hook``
in order; a hook returns the request (the same one or a changed copy, which the
later hooks and the provider then see) or a :class:`ShortCircuit` carrying a
response or an error, which skips the remaining pre-hooks and the provider.
:func:`run_pre` returns the plugins whose pre-hook completed; the worker calls
the provider (or not), then :func:`run_post` gives exactly those plugins their
``post_hook`` in reverse order (pipeline symmetry), each free to change the
response, turn it into an error, or recover from an error. The split keeps this
module synchronous and pure: the awaiting happens in the worker, between the two.

A hook that raises is a broken plugin, not a request the provider would refuse:
the exception is recorded on the :class:`Context` (for the caller to log),
counted in :class:`PipelineStats`, and becomes a 500 :class:`PluginError`. A
failed pre-hook stops the pre-hooks and does not count as run; a failed
post-hook replaces the outcome and the remaining post-hooks still run. A hook
that *raises a* :class:`PluginError` means it on purpose: in a pre-hook it is a
short circuit, in a post-hook the new error; neither is counted as a failure.

User plugins are built from configuration by :mod:`sim.plugin_loader`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from sim.errors import ApiError

#: Attributes an object needs to take part in the pipeline.
PLUGIN_ATTRIBUTES = ("name", "pre_hook", "post_hook")

#: Context key: the refusal (an ApiError: unknown route, wrong method, bad body) the
#: provider step will answer with. The request still runs the pipeline, so auth comes
#: first and every answer is counted, but the rules leave it alone.
REFUSAL = "request.refusal"

#: Context key: callables the host calls once the answer has left (however it ended), such as
#: the release of a concurrency slot, which a streamed answer holds until its last event.
AFTER_DELIVERY = "pipeline.after_delivery"

# The provider decides the error type a client expects for a 500.
_FAILURE_TYPES = {"openai": "server_error", "anthropic": "api_error"}


@dataclass(frozen=True, slots=True)
class PluginRequest:
    """A decoded request on its way to a provider; hooks change it with ``dataclasses.replace``."""

    provider: str  # "openai" | "anthropic"
    endpoint: str  # "/chat/completions", "/messages", ...
    model: str
    body: Mapping[str, Any]  # empty for a GET
    headers: Mapping[str, str]  # lower-case names
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class PluginResponse:
    """A finished answer: a body, or SSE ``events`` for a stream, plus extra headers."""

    status: int
    body: bytes = b""
    content_type: bytes = b"application/json"
    # A stream's events; a passthrough stream's arrive as an async iterator (with ``aclose``).
    events: Sequence[bytes] | AsyncIterator[bytes] | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    # (prompt, completion) tokens of a synthesised answer, for pacing, cost and stats; None if unknown.
    usage: tuple[int, int] | None = None


class PluginError(ApiError):
    """An error answer decided by a plugin (or by the pipeline for a broken one).

    It is an :class:`ApiError`, so the provider's own renderer gives it the
    provider's error shape. ``allow_fallbacks`` says whether the next upstream
    may be tried; it defaults to no, the safe choice for a refusal.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # the wire's name for it, shadowing the builtin here only
        code: str | None = None,
        param: str | None = None,
        allow_fallbacks: bool = False,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(status, message, error_type=type, param=param, code=code, headers=headers)
        self.allow_fallbacks = allow_fallbacks

    @property
    def type(self) -> str:
        return self.error_type

    @classmethod
    def from_api_error(cls, error: ApiError, *, allow_fallbacks: bool = False) -> PluginError:
        """The provider's refusal as a pipeline error, so post-hooks see one kind of error."""
        if isinstance(error, PluginError):
            return error
        return cls(
            error.status,
            error.message,
            type=error.error_type,
            code=error.code,
            param=error.param,
            allow_fallbacks=allow_fallbacks,
            headers=error.headers,
        )

    def __repr__(self) -> str:
        return f"PluginError({self.status}, {self.message!r}, type={self.error_type!r}, code={self.code!r})"


@dataclass(frozen=True, slots=True, eq=False)
class ShortCircuit:
    """A pre-hook's answer that skips the provider: exactly one of ``response`` and ``error``."""

    response: PluginResponse | None = None
    error: PluginError | None = None

    def __post_init__(self) -> None:
        if (self.response is None) == (self.error is None):
            raise ValueError("a ShortCircuit carries exactly one of response and error")


@dataclass(frozen=True, slots=True, eq=False)
class Suspend:
    """A pre-hook's answer that needs something only the host can get first (a lease from the coordinator).

    ``need`` says what, as a value the host knows how to resolve; the host then
    calls ``resume`` with what it got (None if it could not), which answers as
    the pre-hook would have. This keeps the hooks synchronous and pure.
    """

    need: object
    resume: Callable[[object], PluginRequest | ShortCircuit | Suspend]  # may suspend again


@dataclass(frozen=True, slots=True)
class HookFailure:
    """A hook that raised (or returned something unusable), kept for the caller to log."""

    plugin: str
    hook: str  # "pre_hook" | "post_hook"
    exception: Exception


class Context(dict[str, Any]):
    """Per-request scratch space plugins share between their pre- and post-hooks.

    A plain ``dict`` (keys are best prefixed with the plugin's name) with the
    request's identity alongside, read-only, and the hook failures collected
    for the caller to log.
    """

    __slots__ = ("_provider", "_request_id", "_worker_id", "failures")

    def __init__(self, *, request_id: str, worker_id: str, provider: str) -> None:
        super().__init__()
        self._request_id = request_id
        self._worker_id = worker_id
        self._provider = provider
        self.failures: list[HookFailure] = []

    @property
    def request_id(self) -> str:
        return self._request_id

    @property
    def worker_id(self) -> str:
        return self._worker_id

    @property
    def provider(self) -> str:
        return self._provider


class Plugin(Protocol):
    """What the pipeline calls; subclass :class:`BasePlugin` to write only the hooks you need."""

    @property
    def name(self) -> str: ...

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit | Suspend: ...

    def post_hook(
        self, ctx: Context, response: PluginResponse | None, error: PluginError | None
    ) -> tuple[PluginResponse | None, PluginError | None]: ...


class BasePlugin:
    """A plugin that lets everything through; override ``name`` and the hooks you need."""

    name: str = "base"

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit | Suspend:
        return request

    def post_hook(
        self, ctx: Context, response: PluginResponse | None, error: PluginError | None
    ) -> tuple[PluginResponse | None, PluginError | None]:
        return response, error


@dataclass(frozen=True, slots=True)
class PluginCounts:
    """How often one plugin's hooks were called, and how often they failed."""

    calls: int
    failures: int


class PipelineStats:
    """Hook calls and failures per plugin name, for one worker; cumulative, never reset."""

    __slots__ = ("_calls", "_failures")

    def __init__(self) -> None:
        self._calls: dict[str, int] = {}
        self._failures: dict[str, int] = {}

    def snapshot(self) -> dict[str, PluginCounts]:
        """A copy, detached from later counting."""
        return {name: PluginCounts(calls, self._failures.get(name, 0)) for name, calls in self._calls.items()}


class PreResult(NamedTuple):
    """What :func:`run_pre` decided: the request for the provider, who ran, and any short circuit.

    ``suspended`` is set when a pre-hook asked the host for something first: the
    host gets it and calls :func:`resume_pre`.
    """

    request: PluginRequest
    ran: tuple[Plugin, ...]
    short: ShortCircuit | None
    suspended: Suspend | None = None
    at: int = 0  # the index of the suspended plugin


def _failure(ctx: Context, plugin: Plugin, hook: str, exc: Exception, stats: PipelineStats | None) -> PluginError:
    name = str(getattr(plugin, "name", "?"))
    ctx.failures.append(HookFailure(name, hook, exc))
    if stats is not None:
        stats._failures[name] = stats._failures.get(name, 0) + 1
    error = PluginError(
        500,
        f"plugin {name!r} failed in {hook}",
        type=_FAILURE_TYPES.get(ctx.provider, "server_error"),
        code="plugin_failed",
    )
    error.__cause__ = exc
    return error


def run_pre(
    plugins: Sequence[Plugin],
    ctx: Context,
    request: PluginRequest,
    *,
    stats: PipelineStats | None = None,
    start: int = 0,
    ran: tuple[Plugin, ...] = (),
) -> PreResult:
    """Run the pre-hooks in order (from ``start``) until one short-circuits, suspends or fails.

    Never raises for a plugin's sake: a failing hook becomes a 500 short circuit.
    """
    calls = None if stats is None else stats._calls
    for index in range(start, len(plugins)):
        plugin = plugins[index]
        if calls is not None:
            calls[plugin.name] = calls.get(plugin.name, 0) + 1
        try:
            result = plugin.pre_hook(ctx, request)
        except PluginError as error:
            return PreResult(request, (*ran, plugin), ShortCircuit(error=error))
        # A plugin is user code: whatever it raises is its failure, not the worker's.
        except Exception as exc:
            return PreResult(request, ran, ShortCircuit(error=_failure(ctx, plugin, "pre_hook", exc, stats)))
        if isinstance(result, Suspend):
            return PreResult(request, ran, None, result, index)
        outcome = _accept(plugin, ctx, request, ran, result, stats)
        if isinstance(outcome, PreResult):
            return outcome
        request, ran = outcome
    return PreResult(request, ran, None)


def resume_pre(
    plugins: Sequence[Plugin], ctx: Context, pre: PreResult, outcome: object, *, stats: PipelineStats | None = None
) -> PreResult:
    """Carry on after the host got what a suspended pre-hook needed (``outcome``; None if it could not)."""
    assert pre.suspended is not None
    plugin = plugins[pre.at]
    try:
        result = pre.suspended.resume(outcome)
    except PluginError as error:
        return PreResult(pre.request, (*pre.ran, plugin), ShortCircuit(error=error))
    except Exception as exc:
        return PreResult(pre.request, pre.ran, ShortCircuit(error=_failure(ctx, plugin, "pre_hook", exc, stats)))
    if isinstance(result, Suspend):
        return pre._replace(suspended=result)
    accepted = _accept(plugin, ctx, pre.request, pre.ran, result, stats)
    if isinstance(accepted, PreResult):
        return accepted
    request, ran = accepted
    return run_pre(plugins, ctx, request, stats=stats, start=pre.at + 1, ran=ran)


def _accept(
    plugin: Plugin,
    ctx: Context,
    request: PluginRequest,
    ran: tuple[Plugin, ...],
    result: object,
    stats: PipelineStats | None,
) -> tuple[PluginRequest, tuple[Plugin, ...]] | PreResult:
    """A pre-hook's result: the request to carry on with (and who ran), or the pipeline's end."""
    if isinstance(result, PluginRequest):
        return result, (*ran, plugin)
    if isinstance(result, ShortCircuit):
        return PreResult(request, (*ran, plugin), result)
    bad = TypeError(f"pre_hook returned {type(result).__name__}, not a PluginRequest or ShortCircuit")
    return PreResult(request, ran, ShortCircuit(error=_failure(ctx, plugin, "pre_hook", bad, stats)))


def run_post(
    ran: Sequence[Plugin],
    ctx: Context,
    response: PluginResponse | None,
    error: PluginError | None,
    *,
    stats: PipelineStats | None = None,
) -> tuple[PluginResponse | None, PluginError | None]:
    """Run the post-hooks of ``ran`` in reverse order; exactly one of the two results is set.

    A failing hook replaces the outcome with a 500 error and the others still run.
    """
    if (response is None) == (error is None):
        raise ValueError("run_post needs exactly one of response and error")
    calls = None if stats is None else stats._calls
    for plugin in reversed(ran):
        if calls is not None:
            calls[plugin.name] = calls.get(plugin.name, 0) + 1
        try:
            new_response, new_error = plugin.post_hook(ctx, response, error)
        except PluginError as raised:
            response, error = None, raised
            continue
        # A plugin is user code: whatever it raises is its failure, not the worker's.
        except Exception as exc:
            response, error = None, _failure(ctx, plugin, "post_hook", exc, stats)
            continue
        if new_error is None and isinstance(new_response, PluginResponse):
            response, error = new_response, None
        elif new_response is None and isinstance(new_error, PluginError):
            response, error = None, new_error
        else:
            bad = TypeError(
                f"post_hook returned ({type(new_response).__name__}, {type(new_error).__name__}),"
                " not exactly one of a PluginResponse and a PluginError"
            )
            response, error = None, _failure(ctx, plugin, "post_hook", bad, stats)
    return response, error
