"""NATS JetStream client benchmark: nats-py's JetStream helpers against `rsigma.nats.core`.

Why: the daemon must sustain >= 50,000 events/s end to end on two cores, and nats-py's per-message
JetStream helpers alone cost ~23 µs of client CPU per consumed and acked message ((a) below). This measures
client CPU per message (`time.process_time()` of this process; the nats-server it starts is
another process) and wall rate, under uvloop, for:

    (a) js.pull_subscribe + fetch(batch) + `await msg.ack()` per message
    (b) PullConsumer.batches() + ack() per message            target: <= 5 µs CPU/msg
    (c) `await js.publish()` per message (with a Nats-Msg-Id)
    (d) AsyncPublisher.publish_many() in batches of 256 (with Nats-Msg-Ids)

The stream is pre-filled with N small JSON messages (~300 bytes); every consuming measurement uses
a fresh durable consumer and checks afterwards that nothing is left unacknowledged.

What profiling (b) taught (`--profile`): with nats-py's callback subscription, the queue hop
(an asyncio.Queue plus a task awaiting a callback coroutine per message) cost ~1.8 µs, a third of
the total; `rsigma.nats.core` takes messages straight from the parser instead (`_MessageSink`),
which brought (b) from ~6 to ~4.5 µs. Of what remains, about 70% is nats-py itself: the regex
protocol parser (`Parser.parse`), `Client._process_msg` (a coroutine per message, awaiting
`_process_headers`) and the `Msg` dataclass built per message. rsigma's share (~25%) is the
JsMessage wrapper, the credit count and the ack write. Garbage collection and system time are
negligible (gc.disable() changes nothing; ~0.2 µs is kernel time). Going further would need a
different protocol parser. Publishing (d) is dominated the same way by parsing the publish-acks.

    python benchmarks/nats_bench.py [--messages N] [--publish N] [--batch 512] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import uvloop
from nats.js.api import AckPolicy, ConsumerConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from rsigma.nats.core import AsyncPublisher, PullConsumer  # noqa: E402
from tests.support import NatsServer  # noqa: E402

TARGET_CONSUME_US = 5.0
STREAM = "BENCH"
SUBJECT = "bench.in"
OUT_STREAM = "BENCHOUT"
OUT_SUBJECT = "bench.out"
PUBLISH_BATCH = 256


def event(i: int) -> bytes:
    """A ~300-byte JSON event, like a small Sysmon process creation."""
    return json.dumps(
        {
            "EventID": 1,
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": f"host-{i % 97:03d}.corp.example.com",
            "Image": "C:\\Windows\\System32\\whoami.exe",
            "CommandLine": f"whoami /all -- run {i}",
            "ParentImage": "C:\\Windows\\System32\\cmd.exe",
            "User": "CORP\\alice",
            "ProcessId": 4000 + i % 1000,
            "UtcTime": "2024-05-01 12:00:00.000",
        },
        separators=(",", ":"),
    ).encode()


class Result:
    def __init__(self, name: str, count: int, cpu_s: float, wall_s: float) -> None:
        self.name = name
        self.us_per_msg = cpu_s / count * 1e6
        self.rate = count / wall_s


async def measure(name: str, count: int, run: Callable[[], Awaitable[None]], profile: bool = False) -> Result:
    profiler = cProfile.Profile() if profile else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    await run()
    if profiler:
        profiler.disable()
    result = Result(name, count, time.process_time() - cpu0, time.perf_counter() - wall0)
    if profiler:
        print(f"\n--- profile of {name} (tottime) ---")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return result


async def fresh_consumer(js, name: str) -> None:  # type: ignore[no-untyped-def]
    config = ConsumerConfig(
        durable_name=name, ack_policy=AckPolicy.EXPLICIT, ack_wait=60, max_ack_pending=20_000
    )
    await js.add_consumer(STREAM, config)


async def check_all_acked(js, name: str, count: int) -> None:  # type: ignore[no-untyped-def]
    for _ in range(50):
        info = await js.consumer_info(STREAM, name)
        if info.num_ack_pending == 0 and info.delivered.stream_seq >= count:
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"consumer {name}: {info.num_ack_pending} unacked, {info.num_pending} pending")


async def bench(args: argparse.Namespace, url: str) -> list[Result]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    n, batch = args.messages, args.batch
    try:
        await js.add_stream(name=STREAM, subjects=[SUBJECT])
        await js.add_stream(name=OUT_STREAM, subjects=[OUT_SUBJECT])
        payloads = [event(i) for i in range(max(n, args.publish))]
        print(f"pre-publishing {n:,} messages of ~{len(payloads[0])} bytes ...", flush=True)
        for p in payloads[:n]:
            await nc.publish(SUBJECT, p)  # core publish: JetStream stores it, no ack round trip
        await nc.flush()
        while (await js.stream_info(STREAM)).state.messages < n:
            await asyncio.sleep(0.05)

        results = []

        await fresh_consumer(js, "a")
        sub = await js.pull_subscribe(SUBJECT, durable="a", stream=STREAM)

        async def nats_py_consume() -> None:
            got = 0
            while got < n:
                for msg in await sub.fetch(batch, timeout=5):
                    await msg.ack()
                    got += 1
            await nc.flush()

        results.append(await measure("(a) nats-py fetch + await ack", n, nats_py_consume))
        await sub.unsubscribe()
        await check_all_acked(js, "a", n)

        await fresh_consumer(js, "b")
        consumer = PullConsumer(nc, STREAM, "b", batch=batch)

        async def core_consume() -> None:
            got = 0
            async for msgs in consumer.batches():
                for msg in msgs:
                    consumer.ack(msg.reply)
                got += len(msgs)
                if got >= n:
                    break
            await consumer.flush()

        results.append(await measure("(b) PullConsumer.batches + ack", n, core_consume, args.profile))
        await consumer.stop()
        await check_all_acked(js, "b", n)

        m = args.publish

        async def nats_py_publish() -> None:
            for i in range(m):
                await js.publish(OUT_SUBJECT, payloads[i], headers={"Nats-Msg-Id": f"c-{i}"})

        results.append(await measure("(c) await js.publish", m, nats_py_publish))

        publisher = AsyncPublisher(nc)

        async def core_publish() -> None:
            for start in range(0, m, PUBLISH_BATCH):
                items = [(payloads[i], f"d-{i}") for i in range(start, min(m, start + PUBLISH_BATCH))]
                await publisher.publish_many(OUT_SUBJECT, items)

        results.append(
            await measure(f"(d) AsyncPublisher.publish_many({PUBLISH_BATCH})", m, core_publish, args.profile)
        )
        await publisher.close()
        stored = (await js.stream_info(OUT_STREAM)).state.messages
        if stored != 2 * m:
            raise SystemExit(f"{OUT_STREAM} holds {stored} messages, expected {2 * m}")
        return results
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000, help="messages consumed per measurement")
    parser.add_argument("--publish", type=int, default=50_000, help="messages published per measurement")
    parser.add_argument("--batch", type=int, default=512, help="pull batch size for (a) and (b)")
    parser.add_argument("--profile", action="store_true", help="cProfile (b) and (d)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rsigma-nats-bench-") as tmp, NatsServer(Path(tmp)) as server:
        a, b, c, d = uvloop.run(bench(args, server.url))
    print(f"\n{'path':<42} {'µs CPU/msg':>11} {'msgs/s':>10}")
    for r in (a, b, c, d):
        print(f"{r.name:<42} {r.us_per_msg:>11.2f} {r.rate:>10,.0f}")
    print(f"{'consume: (a) / (b) CPU per message':<42} {a.us_per_msg / b.us_per_msg:>10.1f}x")
    print(f"{'publish: (c) / (d) CPU per message':<42} {c.us_per_msg / d.us_per_msg:>10.1f}x")
    met = b.us_per_msg <= TARGET_CONSUME_US
    print(f"target (b) <= {TARGET_CONSUME_US:g} µs CPU/msg: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
