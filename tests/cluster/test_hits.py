"""The hit message format and the hits stream (rsigma.cluster.hits); the stream against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import nats
import pytest

from rsigma.cluster.hits import (
    FORMAT,
    HitMessage,
    decode_hit_message,
    encode_hit_message,
    ensure_hits_stream,
    hit_messages,
    hits_stream,
    hits_subject,
    message_id,
)
from rsigma.correlation.sharding import shard_of
from rsigma.errors import ConfigError
from tests.support import NatsServer

KEYS = ["brute-force", "spray"]
HITS = [
    (0, ("alice",), None, 1704067200.0, 0, (0, 0), None, None),
    (1, ("10.0.0.1",), ("alice",), 1704067200.0, 0, (0, 1), {"User": "alice"}, ("ev-1", b"\x81\xa1a\x01")),
    (0, ("bob",), None, 1704067200.0, 2, (0, 2), None, None),
]


def test_one_message_per_partition_keeps_everything_a_hit_carries():
    messages = hit_messages("rsigma-events", 42, HITS, KEYS, 8)
    assert [m.partition for m in messages] == sorted({shard_of(KEYS[h[0]], h[1], 8) for h in HITS})
    for m in messages:
        assert (m.format, m.stream, m.sequence) == (FORMAT, "rsigma-events", 42)
        assert all(shard_of(h.correlation, h.group, 8) == m.partition for h in m.hits)
    back = [decode_hit_message(encode_hit_message(m)) for m in messages]
    assert back == messages
    carried = sorted(
        (
            (KEYS.index(h.correlation), h.group, h.value, h.ts, h.event, h.order, h.context, h.evidence)
            for m in back
            for h in m.hits
        ),
        key=lambda h: h[5],
    )
    assert carried == [tuple(h) for h in HITS]


def test_names_and_ids():
    assert hits_stream("prod") == "rsigma-hits-prod"
    assert hits_subject("prod", 17) == "rsigma.hits.prod.17"
    assert message_id("rsigma-events", 42, 17) == "rsigma-events:42:17"


def test_a_message_of_another_format_or_no_message_at_all_is_refused_by_name():
    future = msgspec.msgpack.encode(HitMessage(FORMAT + 1, "s", 1, 0, []))
    with pytest.raises(ValueError, match=f"format {FORMAT + 1}; this daemon reads format {FORMAT}"):
        decode_hit_message(future)
    with pytest.raises(ValueError, match="not a hit message"):
        decode_hit_message(b"{}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path) as s:
        yield s


def run(server: NatsServer, work) -> object:
    async def go() -> object:
        nc = await nats.connect(server.url)
        try:
            return await work(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(go())


def test_the_stream_is_created_with_file_storage_and_a_wide_enough_duplicate_window(server):
    async def work(js):
        await ensure_hits_stream(js, "prod", 150.0)
        first = await js.stream_info("rsigma-hits-prod")
        await ensure_hits_stream(js, "prod", 600.0)  # a later member with a longer ack wait widens it
        return first.config, (await js.stream_info("rsigma-hits-prod")).config

    first, widened = run(server, work)
    assert first.subjects == ["rsigma.hits.prod.*"]
    assert first.storage == "file"
    assert first.duplicate_window == 150.0
    assert widened.duplicate_window == 600.0


def test_a_stream_of_that_name_on_other_subjects_is_a_startup_error(server):
    async def work(js):
        await js.add_stream(name="rsigma-hits-prod", subjects=["elsewhere.>"])
        await ensure_hits_stream(js, "prod", 150.0)

    with pytest.raises(ConfigError, match=r"stream 'rsigma-hits-prod' has subjects \['elsewhere.>'\]"):
        run(server, work)
