"""Hostile websocket clients (docs/realtime.md): whatever a client sends, the
consumer answers each frame with an error frame (or a pong), keeps the connection open and keeps
serving it; nothing a client sends crashes the consumer or the server.

WebsocketCommunicator surfaces an exception raised inside the consumer when the test next reads
from it, so "every read succeeded" also means "the consumer never crashed". Text frames are
Python str here: on the wire the server (daphne) refuses text frames that are not UTF-8 before
they reach the consumer.
"""

import json

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_user, token_for
from tests.contractors.factories import ContractorFactory, RegionFactory
from tests.realtime.conftest import assert_error

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

MAX_FRAME_BYTES = 4096  # docs/realtime.md: frame_too_large over 4 KiB


@pytest.fixture
def paths(transactional_db) -> dict[str, str]:
    RegionFactory(slug="north")
    dispatcher = make_user("ada", role="dispatcher")
    contractor = make_user("own", role="contractor", contractor=ContractorFactory())
    return {
        "/ws/dispatch/": f"/ws/dispatch/?token={token_for(dispatcher)}",
        "/ws/contractor/": f"/ws/contractor/?token={token_for(contractor)}",
    }


async def send_text(stream, text: str) -> None:
    """A text frame as daphne hands it over, the empty one too (the communicator's send_to
    refuses "")."""
    await stream.communicator.send_input({"type": "websocket.receive", "text": text})


async def assert_still_serving(streams, path: str, stream) -> None:
    """The connection that took the abuse still answers, and so does a fresh one."""
    assert await stream.ping() == {"kind": "pong"}
    fresh = await streams.open(path)
    assert await fresh.ping() == {"kind": "pong"}


STREAMS = pytest.mark.parametrize("stream_path", ["/ws/dispatch/", "/ws/contractor/"])


HOSTILE_TEXT_FRAMES = [
    pytest.param("x" * 100_000, "frame_too_large", id="100-KB"),
    pytest.param(json.dumps({"kind": "ping", "pad": "x" * 5000}), "frame_too_large", id="5-KB"),
    pytest.param("é" * 2100, "frame_too_large", id="under-4096-chars-over-4096-bytes"),
    pytest.param("{not json", "malformed", id="invalid-json"),
    pytest.param("", "malformed", id="empty"),
    pytest.param("\x00\x01\x02", "malformed", id="control-chars"),
    pytest.param("NaN", "malformed", id="bare-NaN"),
    pytest.param('"ping"', "malformed", id="json-string"),
    pytest.param("[]", "malformed", id="json-array"),
    pytest.param("null", "malformed", id="json-null"),
    pytest.param("{}", "malformed", id="no-kind"),
    pytest.param('{"kind": 5}', "malformed", id="kind-not-a-string"),
    pytest.param('{"kind": null}', "malformed", id="kind-null"),
    pytest.param('{"kind": ["ping"]}', "malformed", id="kind-a-list"),
    pytest.param('{"kind": "subscribe"}', "unknown_kind", id="unknown-kind"),
    pytest.param('{"kind": "PING"}', "unknown_kind", id="kind-case"),
    pytest.param('{"kind": ""}', "unknown_kind", id="kind-empty"),
    pytest.param('{"kind": "ping\\u0000"}', "unknown_kind", id="kind-nul"),
    pytest.param('{"kind": "\\ud800"}', "unknown_kind", id="kind-lone-surrogate-escape"),
    # Attribute names of the consumer must not be reachable as kinds.
    pytest.param('{"kind": "_ping"}', "unknown_kind", id="kind-private"),
    pytest.param('{"kind": "ping.__class__"}', "unknown_kind", id="kind-dunder"),
    pytest.param('{"kind": "' + "k" * 3000 + '"}', "unknown_kind", id="kind-3000-chars"),
    pytest.param("[" * 2000 + "]" * 2000, "malformed", id="nested-2000-arrays"),
    pytest.param('{"a":' * 600 + "1" + "}" * 600, "malformed", id="nested-600-objects"),
    pytest.param(
        '{"kind": "ping", "x": ' + "[" * 2000 + "]" * 2000 + "}",
        "malformed",
        id="ping-with-nested-2000-arrays",
    ),
]
BINARY_FRAMES = [b"", b"\x00", b"\xff\xfe\xfd", b'{"kind": "ping"}', bytes(100_000)]


@STREAMS
async def test_each_hostile_text_frame_gets_an_error_and_the_connection_stays_open(
    streams, paths, stream_path
):
    """One connection takes every frame in turn: each gets its error, then the same
    connection still answers a ping (so no frame's effect is hidden by the next one's)."""
    stream = await streams.open(paths[stream_path])

    for case in HOSTILE_TEXT_FRAMES:
        frame, code = case.values
        await send_text(stream, frame)

        assert_error(await stream.frame(), code, case.id)
        assert await stream.ping() == {"kind": "pong"}, case.id
    await assert_still_serving(streams, paths[stream_path], stream)


@STREAMS
async def test_each_binary_frame_gets_an_error_and_the_connection_stays_open(
    streams, paths, stream_path
):
    stream = await streams.open(paths[stream_path])

    for data in BINARY_FRAMES:
        await stream.communicator.send_input({"type": "websocket.receive", "bytes": data})

        assert_error(await stream.frame(), "binary_not_supported", f"{len(data)} bytes")
        assert await stream.ping() == {"kind": "pong"}, f"{len(data)} bytes"
    await assert_still_serving(streams, paths[stream_path], stream)


async def test_a_ping_nested_within_the_limits_still_gets_a_pong(streams, paths):
    stream = await streams.open(paths["/ws/dispatch/"])

    await stream.send('{"kind": "ping", "x": ' + "[" * 500 + "]" * 500 + "}")

    assert await stream.frame() == {"kind": "pong"}


async def test_a_burst_of_2000_pings_gets_2000_pongs(streams, paths):
    stream = await streams.open(paths["/ws/dispatch/"])

    for _ in range(2000):
        await stream.send('{"kind": "ping"}')
    answers = [await stream.frame() for _ in range(2000)]

    assert answers == [{"kind": "pong"}] * 2000
    await send_text(stream, "{not json")  # a marker: its error must be the next frame
    assert_error(await stream.frame(), "malformed")  # so no 2001st pong was on its way
    await assert_still_serving(streams, paths["/ws/dispatch/"], stream)


async def test_a_burst_of_mixed_garbage_answers_each_frame_in_order(streams, paths):
    stream = await streams.open(paths["/ws/dispatch/"])
    burst = ["{bad", '{"kind": "ping"}', "x" * 10_000, '{"kind": "nope"}'] * 250

    for frame in burst:
        await stream.send(frame)
    answers = [await stream.frame() for _ in burst]

    expected = [
        ("error", "malformed"), ("pong", None), ("error", "frame_too_large"),
        ("error", "unknown_kind"),
    ] * 250  # fmt: skip
    assert [(a["kind"], a.get("code")) for a in answers] == expected
    await assert_still_serving(streams, paths["/ws/dispatch/"], stream)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
KINDS = st.sampled_from(["ping", "pong", "event", "error", "replayed", "", "Ping"]) | st.text(
    max_size=30
)
FRAMES = st.one_of(
    st.text(max_size=300),  # any Unicode (no lone surrogates: not encodable as UTF-8)
    JSON_VALUES.map(json.dumps),
    st.builds(
        lambda kind, extra: json.dumps({**extra, "kind": kind}),
        KINDS,
        st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3),
    ),
    st.integers(min_value=4000, max_value=6000).map(
        lambda n: '{"kind": "ping", "p": "%s"}' % ("x" * n)
    ),
)


@pytest_asyncio.fixture
async def dispatch_stream(streams, paths):
    return await streams.open(paths["/ws/dispatch/"])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=st.lists(FRAMES, min_size=1, max_size=6))
async def test_every_random_text_frame_gets_exactly_one_pong_or_error(dispatch_stream, frames):
    """One connection takes every example: it must survive them all."""
    for frame in frames:
        await send_text(dispatch_stream, frame)
    await dispatch_stream.send('{"kind": "ping"}')  # a marker: its pong is the last answer

    answers = [await dispatch_stream.frame() for _ in range(len(frames) + 1)]

    assert all(isinstance(a, dict) and a.get("kind") in {"pong", "error"} for a in answers)
    for frame, answer in zip(frames, answers, strict=False):
        if answer["kind"] == "error":
            assert answer.keys() == {"kind", "code", "message"}
            assert answer["code"] in {"malformed", "unknown_kind", "frame_too_large"}
        else:
            assert answer == {"kind": "pong"}
            assert json.loads(frame)["kind"] == "ping"
    assert answers[-1] == {"kind": "pong"}
