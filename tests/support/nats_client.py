"""Small synchronous JetStream helpers for test code: each call opens a connection, does one thing and
closes it (`asyncio.run`). `options` are `nats.connect` options (credentials, TLS) where the server wants
them. Also the rule and the event the NATS tests run the daemon with."""

from __future__ import annotations

import asyncio
from typing import Any

import nats

#: The rule the NATS tests' daemons run (tests/nats/conftest.py writes it), and an event it detects.
WHOAMI_RULE = r"""
title: Whoami
id: 0b5a7c1e-2f0c-4c6e-9f1e-2d3c4b5a6978
level: low
logsource: {product: windows, category: process_creation}
detection:
    selection:
        Image|endswith: '\whoami.exe'
    condition: selection
"""
WHOAMI = {"Image": "C:\\Windows\\System32\\whoami.exe"}


def publish(url: str, subject: str, payloads: list[bytes], **options: Any) -> None:
    """JetStream publishes, each awaiting its ack."""

    async def go() -> None:
        nc = await nats.connect(url, **options)
        try:
            js = nc.jetstream()
            for p in payloads:
                await js.publish(subject, p)
        finally:
            await nc.close()

    asyncio.run(go())


def publish_many(url: str, subject: str, stream: str, payloads: list[bytes]) -> None:
    """Core publishes (no per-message ack round trip), then wait until the stream holds them all."""

    async def go() -> None:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            before = (await js.stream_info(stream)).state.messages
            for payload in payloads:
                await nc.publish(subject, payload)
            await nc.flush()
            while (await js.stream_info(stream)).state.messages < before + len(payloads):
                await asyncio.sleep(0.05)
        finally:
            await nc.close()

    asyncio.run(go())


def add_stream(url: str, name: str, subjects: list[str], **options: Any) -> None:
    async def go() -> None:
        nc = await nats.connect(url, **options)
        try:
            await nc.jetstream().add_stream(name=name, subjects=subjects)
        finally:
            await nc.close()

    asyncio.run(go())


def delete_stream(url: str, stream: str) -> None:
    async def go() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()

    asyncio.run(go())


def consumer_pending(url: str, stream: str, consumer: str, **options: Any) -> tuple[int, int]:
    """(messages not yet delivered, delivered but not acknowledged); `options` go to nats.connect."""

    async def go() -> tuple[int, int]:
        nc = await nats.connect(url, **options)
        try:
            info = await nc.jetstream().consumer_info(stream, consumer)
            return info.num_pending, info.num_ack_pending
        finally:
            await nc.close()

    return asyncio.run(go())


def ack_floor(url: str, stream: str, consumer: str) -> int:
    """The stream sequence at and below which every message is acknowledged."""

    async def go() -> int:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().consumer_info(stream, consumer)
            return int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
        finally:
            await nc.close()

    return asyncio.run(go())


def stored(url: str, stream: str, **options: Any) -> list[tuple[bytes, dict[str, str]]]:
    """Every message of the stream with its headers (one get per sequence: for small streams)."""

    async def fetch() -> list[tuple[bytes, dict[str, str]]]:
        nc = await nats.connect(url, **options)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            messages = [await js.get_msg(stream, seq) for seq in range(1, info.state.last_seq + 1)]
            return [(m.data or b"", dict(m.headers or {})) for m in messages]
        finally:
            await nc.close()

    return asyncio.run(fetch())


def stream_messages(url: str, stream: str, **options: Any) -> list[bytes]:
    return [data for data, _ in stored(url, stream, **options)]
