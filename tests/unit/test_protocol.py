import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim import protocol
from sim.errors import ProtocolError

EXAMPLES: list[protocol.Message] = [
    protocol.Hello("w0", "123-ab", 123, "host"),
    protocol.Welcome("w0", "123-ab", 12.5, 1, {"models": ["gpt-4o"]}),
    protocol.Heartbeat("coordinator", "", 3.25),
    protocol.StatsReport("w0", "123-ab", 123, 7, {"total_requests": 3, "rule_hits": {"r": 1}}, 2),
    protocol.StatsReset(3),
    protocol.StatsQuery(9),
    protocol.StatsReply(9, {"total_requests": 3}),
    protocol.AdminRequest(10, "put_rules", {"document": {"rules": []}}),
    protocol.AdminReply(10, {"ok": False, "errors": ["mocker.rules[0].name: required"]}),
    protocol.ConfigSnapshot(2, {"models": []}),
    protocol.Goodbye("w0", "123-ab"),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.TAG)
def test_every_message_round_trips(message: protocol.Message) -> None:
    assert protocol.decode(protocol.encode(message)) == message


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",
        msgpack.packb({"tag": "hello"}),
        msgpack.packb([protocol.PROTOCOL_VERSION + 1, "hello", "w0", "i", 1, "h"]),
        msgpack.packb([protocol.PROTOCOL_VERSION, "launch_missiles"]),
        msgpack.packb([protocol.PROTOCOL_VERSION, "hello", "w0"]),
        msgpack.packb([protocol.PROTOCOL_VERSION, "hello", "w0", "i", "not a pid", "h"]),
        msgpack.packb([protocol.PROTOCOL_VERSION, "stats_query", True]),
    ],
)
def test_bad_frames_raise_protocol_error(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode(frame)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_raise_anything_else(frame: bytes) -> None:
    try:
        protocol.decode(frame)
    except ProtocolError:
        pass
