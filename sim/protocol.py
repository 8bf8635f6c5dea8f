"""The messages between workers and the coordinator, and their msgpack frames.

Theory of operation: every message is a frozen, slotted dataclass with a
one-byte-ish ``TAG``. On the wire a message is one msgpack array:
``[PROTOCOL_VERSION, TAG, field1, field2, ...]`` in field order. Decoding checks
the version, the tag, the arity and each field's type, and raises
:class:`ProtocolError` for anything else, so a bad frame becomes a counted error
in the receiving process, never a crash.

Counters travel cumulative (since the worker's incarnation began), so a lost or
repeated report does no harm: the coordinator keeps the latest per
(worker, incarnation).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import msgpack

from sim.errors import ProtocolError
from sim.ratelimit import KINDS, Ask, Granted, LeaseAnswer

PROTOCOL_VERSION = 1
COORDINATOR = "coordinator"


@dataclasses.dataclass(frozen=True, slots=True)
class Hello:
    """Worker → coordinator: I am ``worker_id`` in my ``incarnation``; send me the cluster."""

    TAG: ClassVar[str] = "hello"
    worker_id: str
    incarnation: str
    pid: int
    host: str


@dataclasses.dataclass(frozen=True, slots=True)
class Welcome:
    """Coordinator → worker: you are registered; here is the cluster's clock and config.

    ``cluster_elapsed_s`` is the cluster's age when this was sent: a worker
    anchors it to its own monotonic clock (no wall clocks compared across hosts).
    """

    TAG: ClassVar[str] = "welcome"
    worker_id: str
    incarnation: str
    cluster_elapsed_s: float
    config_version: int
    config: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Heartbeat:
    """Either way: the sender is alive (``sender`` is a worker id or ``coordinator``)."""

    TAG: ClassVar[str] = "heartbeat"
    sender: str
    incarnation: str
    sent_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class StatsReport:
    """Worker → coordinator: cumulative counters of one incarnation; ``seq`` grows.

    ``reset_epoch`` is the latest :class:`StatsReset` the worker had applied when
    it counted these (0 for none).
    """

    TAG: ClassVar[str] = "stats"
    worker_id: str
    incarnation: str
    pid: int
    seq: int
    counters: dict[str, Any]
    reset_epoch: int


@dataclasses.dataclass(frozen=True, slots=True)
class StatsReset:
    """Coordinator → worker: a stats reset happened; report your counters now, tagged ``epoch``.

    Those counters are the worker's exact baseline for the reset: what it answered
    before it heard of the reset is not counted after it, however late its
    periodic report would have arrived.
    """

    TAG: ClassVar[str] = "stats_reset"
    epoch: int


@dataclasses.dataclass(frozen=True, slots=True)
class StatsQuery:
    """Worker → coordinator: send me the cluster-wide aggregate (for ``/admin/stats``)."""

    TAG: ClassVar[str] = "stats_query"
    query_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class StatsReply:
    TAG: ClassVar[str] = "stats_reply"
    query_id: int
    stats: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class AdminRequest:
    """Worker → coordinator: an ``/admin`` action on cluster state (``reset_stats``,
    ``get_rules``, ``put_rules`` with ``payload["document"]``)."""

    TAG: ClassVar[str] = "admin"
    query_id: int
    action: str
    payload: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class AdminReply:
    TAG: ClassVar[str] = "admin_reply"
    query_id: int
    result: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """Coordinator → worker: the whole config document at ``version``."""

    TAG: ClassVar[str] = "config"
    version: int
    config: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Goodbye:
    """Worker → coordinator: I am stopping on purpose (not dead)."""

    TAG: ClassVar[str] = "goodbye"
    worker_id: str
    incarnation: str


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseRequest:
    """Worker → coordinator: lease these tokens, all or none (``asks``: ``[name, kind, capacity, need]`` each)."""

    TAG: ClassVar[str] = "lease"
    query_id: int
    asks: list[Any]


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseReply:
    """Coordinator → worker: the lease's answer (``parts``: ``[name, granted, level, capacity, retry_after_s]``
    each, ``retry_after_s`` -1 for never), and how many workers are alive."""

    TAG: ClassVar[str] = "lease_reply"
    query_id: int
    ok: int
    parts: list[Any]
    workers: int


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseReturn:
    """Worker → coordinator: tokens handed back (``returns``: ``[name, amount]`` each)."""

    TAG: ClassVar[str] = "lease_return"
    returns: list[Any]


Message = (
    Hello
    | Welcome
    | Heartbeat
    | StatsReport
    | StatsReset
    | StatsQuery
    | StatsReply
    | AdminRequest
    | AdminReply
    | ConfigSnapshot
    | Goodbye
    | LeaseRequest
    | LeaseReply
    | LeaseReturn
)

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "dict[str, Any]": (dict,),
    "list[Any]": (list,),
}


def _schema(cls: type) -> tuple[tuple[str, tuple[type, ...]], ...]:
    return tuple((field.name, _PY_TYPES[str(field.type)]) for field in dataclasses.fields(cls))


_MESSAGES: dict[str, tuple[type, tuple[tuple[str, tuple[type, ...]], ...]]] = {
    cls.TAG: (cls, _schema(cls))
    for cls in (
        Hello,
        Welcome,
        Heartbeat,
        StatsReport,
        StatsReset,
        StatsQuery,
        StatsReply,
        AdminRequest,
        AdminReply,
        ConfigSnapshot,
        Goodbye,
        LeaseRequest,
        LeaseReply,
        LeaseReturn,
    )
}


def encode(message: Message) -> bytes:
    """One msgpack frame for ``message``."""
    values = [getattr(message, name) for name, _ in _MESSAGES[message.TAG][1]]
    return msgpack.packb([PROTOCOL_VERSION, message.TAG, *values], use_bin_type=True)


def decode(frame: bytes) -> Message:
    """The message in ``frame``; :class:`ProtocolError` if it is not one of ours."""
    try:
        data = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception as error:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(f"undecodable frame: {error}") from error
    if not isinstance(data, list) or len(data) < 2:
        raise ProtocolError("frame is not a [version, tag, ...] array")
    version, tag, *values = data
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r}, expected {PROTOCOL_VERSION}")
    entry = _MESSAGES.get(tag) if isinstance(tag, str) else None
    if entry is None:
        raise ProtocolError(f"unknown message tag {tag!r}")
    cls, schema = entry
    if len(values) != len(schema):
        raise ProtocolError(f"{tag}: {len(values)} fields, expected {len(schema)}")
    for (name, types), value in zip(schema, values, strict=True):
        if isinstance(value, bool) or not isinstance(value, types):
            raise ProtocolError(f"{tag}.{name}: unexpected {type(value).__name__}")
    message: Message = cls(*values)
    return message


# Leases: the rate-limit arithmetic's values on the wire


def lease_request(query_id: int, asks: Sequence[Ask]) -> LeaseRequest:
    return LeaseRequest(query_id, [[ask.name, ask.kind, ask.capacity, ask.need] for ask in asks])


def asks_of(message: LeaseRequest) -> tuple[Ask, ...]:
    """The asks in a lease request; :class:`ProtocolError` for a malformed one."""
    asks = []
    for item in message.asks:
        if not (isinstance(item, list) and len(item) == 4):
            raise ProtocolError("lease.asks: each ask is [name, kind, capacity, need]")
        name, kind, capacity, need = item
        if not (isinstance(name, str) and kind in KINDS and _whole(capacity) and _amount(need)):
            raise ProtocolError(f"lease.asks: bad ask {item!r}")
        asks.append(Ask(name, kind, capacity, float(need)))
    return tuple(asks)


def lease_reply(query_id: int, answer: LeaseAnswer) -> LeaseReply:
    parts = [
        [part.name, part.granted, part.level, part.capacity, -1.0 if part.retry_after_s is None else part.retry_after_s]
        for part in answer.parts
    ]
    return LeaseReply(query_id, int(answer.ok), parts, answer.workers)


def answer_of(message: LeaseReply) -> LeaseAnswer:
    """The lease answer in a reply; :class:`ProtocolError` for a malformed one."""
    parts = []
    for item in message.parts:
        if not (isinstance(item, list) and len(item) == 5):
            raise ProtocolError("lease_reply.parts: each part is [name, granted, level, capacity, retry_after_s]")
        name, granted, level, capacity, retry = item
        numbers = (granted, level, retry)
        if not (isinstance(name, str) and _whole(capacity) and all(_number(value) for value in numbers)):
            raise ProtocolError(f"lease_reply.parts: bad part {item!r}")
        parts.append(Granted(name, float(granted), float(level), capacity, None if retry < 0 else float(retry)))
    return LeaseAnswer(bool(message.ok), tuple(parts), max(1, message.workers))


def returns_of(message: LeaseReturn) -> tuple[tuple[str, float], ...]:
    returns = []
    for item in message.returns:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and _amount(item[1])):
            raise ProtocolError(f"lease_return.returns: bad entry {item!r}")
        returns.append((item[0], float(item[1])))
    return tuple(returns)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _amount(value: object) -> bool:
    return _number(value) and value >= 0  # type: ignore[operator]


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
