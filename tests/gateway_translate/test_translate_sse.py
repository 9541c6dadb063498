"""SSE and NDJSON framing: the WHATWG rules, and one result however the bytes are split."""

from __future__ import annotations

import itertools

import pytest

from dayzero.gateway.translate import (
    SSE_DONE,
    NDJSONDecoder,
    SSEDecoder,
    SSEEvent,
    TranslationError,
    encode_ndjson,
    encode_sse,
    parse_ndjson,
    parse_sse,
)


def decode_split(data: bytes, *cuts: int) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    bounds = [0, *cuts, len(data)]
    for start, end in itertools.pairwise(bounds):
        events.extend(decoder.feed(data[start:end]))
    return events + decoder.finish()


STREAM = (
    ": keep-alive comment\r\n"
    "event: message_start\r\n"
    'data: {"type":"message_start","text":"h\u00e9llo \u2603 \U0001f600"}\r\n'
    "\r\n"
    "event: ping\n"
    'data: {"type": "ping"}\n'
    "\n"
    "data: first line\r"
    "data: second line\r"
    "\r"
    "id: 7\n"
    "retry: 1500\n"
    "data:no-space\n"
    "\n"
    "data: [DONE]\n\n"
).encode()


def test_sse_parses_events_fields_and_line_endings() -> None:
    events = decode_split(STREAM)
    assert [e.event for e in events] == ["message_start", "ping", None, None, None]
    assert events[0].json() == {"type": "message_start", "text": "h\u00e9llo \u2603 \U0001f600"}
    assert events[2].data == "first line\nsecond line"
    assert events[3] == SSEEvent("no-space", id="7", retry=1500)
    assert events[4].is_done
    assert not events[0].is_done


def test_sse_same_events_for_every_split_point() -> None:
    whole = decode_split(STREAM)
    for cut in range(len(STREAM) + 1):
        assert decode_split(STREAM, cut) == whole, cut


def test_sse_same_events_for_every_pair_of_split_points() -> None:
    whole = decode_split(STREAM)
    for a in range(0, len(STREAM), 3):
        for b in range(a, len(STREAM), 7):
            assert decode_split(STREAM, a, b) == whole, (a, b)


def test_sse_byte_at_a_time() -> None:
    decoder = SSEDecoder()
    events = [e for i in range(len(STREAM)) for e in decoder.feed(STREAM[i : i + 1])]
    assert events + decoder.finish() == decode_split(STREAM)


def test_sse_bom_is_stripped_and_dataless_events_are_not_dispatched() -> None:
    assert decode_split(b"\xef\xbb\xbfdata: x\n\nevent: lonely\n\n") == [SSEEvent("x")]


def test_sse_last_event_without_blank_line_is_flushed_at_finish() -> None:
    assert decode_split(b"data: tail") == [SSEEvent("tail")]


def test_sse_cr_at_chunk_end_is_not_a_double_newline() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [SSEEvent("a\nb")]


def test_sse_rejects_invalid_utf8_and_non_object_json() -> None:
    with pytest.raises(TranslationError, match="stream: not UTF-8"):
        decode_split(b"data: \xff\xfe\n\n")
    with pytest.raises(TranslationError) as err:
        SSEEvent("[1, 2]").json()
    assert err.value.field == "sse.data"
    with pytest.raises(TranslationError, match="not JSON"):
        SSEEvent("{oops").json()


def test_parse_sse_from_lines() -> None:
    lines = ["event: e", 'data: {"a":1}', "", "data: [DONE]", ""]
    events = list(parse_sse(lines))
    assert events[0] == SSEEvent('{"a":1}', event="e")
    assert events[1].is_done


def test_encode_sse_round_trips() -> None:
    obj = {"text": "line\nbreak \u00e9", "n": 1}
    encoded = encode_sse(obj, event="content_block_delta")
    assert (
        encoded
        == 'event: content_block_delta\ndata: {"text":"line\\nbreak \u00e9","n":1}\n\n'.encode()
    )
    assert decode_split(encoded)[0].json() == obj
    assert encode_sse("a\nb") == b"data: a\ndata: b\n\n"
    assert decode_split(encode_sse("a\nb"))[0].data == "a\nb"
    assert decode_split(SSE_DONE)[0].is_done


NDJSON = '{"a":1}\n\n{"b":"\u00e9\U0001f600"}\r\n{"c":[1,2]}'.encode()


def ndjson_split(data: bytes, cut: int) -> list[dict[str, object]]:
    decoder = NDJSONDecoder()
    return decoder.feed(data[:cut]) + decoder.feed(data[cut:]) + decoder.finish()


def test_ndjson_same_objects_for_every_split_point() -> None:
    expected = [{"a": 1}, {"b": "\u00e9\U0001f600"}, {"c": [1, 2]}]
    for cut in range(len(NDJSON) + 1):
        assert ndjson_split(NDJSON, cut) == expected, cut


def test_ndjson_lines_and_encoding() -> None:
    assert list(parse_ndjson(['{"a":1}', b'{"b":2}', ""])) == [{"a": 1}, {"b": 2}]
    assert encode_ndjson({"x": "\u00e9"}) == '{"x":"\u00e9"}\n'.encode()
    assert list(parse_ndjson([encode_ndjson({"x": 1}).decode().strip()])) == [{"x": 1}]


def test_ndjson_malformed_line_names_its_position() -> None:
    decoder = NDJSONDecoder()
    decoder.feed(b'{"ok":true}\n')
    with pytest.raises(TranslationError) as err:
        decoder.feed(b"{not json}\n")
    assert err.value.field == "ndjson[1]"
    with pytest.raises(TranslationError, match="expected a JSON object"):
        list(parse_ndjson(["[1]"]))
