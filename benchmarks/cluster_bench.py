"""Cluster benchmark: one plain daemon against a `--cluster` of 1, 2 and 3 daemons (`--workers 0`) on
a correlation-heavy stream, JetStream in and out, every source acked.

Why: `--cluster` adds a hop to every correlation hit (published to the hits stream, read back by the
partition's owner, applied once the input's ack floor passes it). This measures what that hop costs
and what more daemons give, and feeds the 8-node projection in docs/cluster.md.

For each configuration, on a fresh nats-server:
- throughput: the daemons start and (cluster) split the partitions; then the events are published as
  fast as possible, and the clock runs from the first publish until every source is acked and every
  result (detections and correlation results: the plain daemon's count) is stored in the output
  stream;
- CPU: user + system time of the daemons and of the nats-server over that run, per event, and for a
  cluster per hit message stored in the hits stream, against the plain daemon's (the extra CPU is
  what the hits stream costs);
- latency: then events are published at a steady rate (`--rate`), and each correlation result's
  latency is its output message's JetStream timestamp minus that of the source event whose hit
  completed the window (found through the result's Nats-Msg-Id, `<stream>:<sequence>:...`; both
  stamped by the server), p50 and p99.

Rules: the four correlation types of the cluster tests (event_count, value_count, temporal,
temporal_ordered over three detections, tests/support/cluster.py); events: logons, failed logons and
process starts of `--users` users from `--addresses` addresses, nearly all correlation-relevant.

On this 2-core machine the daemons and the nats-server share the cores, so more daemons cannot add
CPU: the figures show the per-event and per-hit costs and the cluster's overhead, not scaling.

    python benchmarks/cluster_bench.py [--events 20000] [--daemons 1,2,3] [--rate 500] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
from pool_bench import stored_latencies

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from tests.support import DaemonProcess, NatsServer, wait_until  # noqa: E402
from tests.support.cluster import PROPERTY_RULES, split  # noqa: E402
from tests.support.processes import cpu_seconds, tree_cpu_seconds  # noqa: E402

CLUSTER = "bench"
OUTPUT = "results"
STARTUP_TIMEOUT_S = 120.0


@dataclass
class Run:
    label: str
    daemons: int
    events_per_s: float
    daemon_cpu_us: float  # per event, all daemons
    server_cpu_us: float  # per event
    hit_messages: int = 0
    results: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def cpu_us(self) -> float:
        return self.daemon_cpu_us + self.server_cpu_us


def stream(count: int, users: int, addresses: int, seed: int = 1) -> list[bytes]:
    """Failed logons, logons and process starts in time order, half a second apart."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        json.dumps(
            {
                "EventID": rng.choice([4625, 4625, 4625, 4624, 4624, 4688]),
                "User": f"user{rng.randrange(users)}",
                "SourceIp": f"10.{rng.randrange(addresses) // 256}.0.{rng.randrange(addresses) % 256}",
                "CommandLine": rng.choice(["whoami /all", "notepad.exe"]),
                "@timestamp": (start + timedelta(seconds=i / 2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
        ).encode()
        for i in range(count)
    ]


def start_daemons(work: Path, url: str, rules: Path, n: int, cluster: bool) -> list[DaemonProcess]:
    """`n` daemons (a cluster's members, or one plain daemon), started and, for a cluster, with the
    partitions split between them."""
    flags = ["--cluster", CLUSTER, "--cluster-member-id", "m{i}"] if cluster else []
    daemons = []
    for i in range(n):
        d = DaemonProcess(
            ["-r", rules, "--input", f"{url}/events", "--output", f"{url}/{OUTPUT}", "--batch-size", "256"]
            + [f.format(i=i) for f in flags],
            home=work / f"d{i}",
            stdin="devnull",
            stdout="devnull",
        )
        daemons.append(d.start(timeout=STARTUP_TIMEOUT_S))
    if cluster:
        wait_until(lambda: split(daemons), "the members split the partitions", timeout=STARTUP_TIMEOUT_S)
    return daemons


async def publish(url: str, data: list[bytes], rate: float | None = None) -> None:
    """Core publishes, paced at `rate` events/s when given; returns once the stream holds them all."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        try:
            before = (await js.stream_info("rsigma-events")).state.messages
        except nats.js.errors.NotFoundError:
            await js.add_stream(name="rsigma-events", subjects=["events"])
            before = 0
        start = time.perf_counter()
        for i, payload in enumerate(data):
            await nc.publish("events", payload)
            if rate is not None and (ahead := start + i / rate - time.perf_counter()) > 0:
                await nc.flush()
                await asyncio.sleep(ahead)
        await nc.flush()
        while (await js.stream_info("rsigma-events")).state.messages < before + len(data):
            await asyncio.sleep(0.02)
    finally:
        await nc.close()


async def settled(url: str, consumer: str, results: int | None) -> tuple[bool, int, int]:
    """(every source acked, results stored, hit messages stored)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.consumer_info("rsigma-events", consumer)
        acked = info.num_pending == 0 and info.num_ack_pending == 0
        stored = hits = 0
        with contextlib.suppress(nats.js.errors.NotFoundError):
            stored = (await js.stream_info(f"rsigma-{OUTPUT}")).state.messages
        with contextlib.suppress(nats.js.errors.NotFoundError):
            hits = (await js.stream_info(f"rsigma-hits-{CLUSTER}")).state.messages
        return acked and (results is None or stored >= results), stored, hits
    finally:
        await nc.close()


async def correlation_latencies(url: str, first_out: int) -> list[float]:
    """Milliseconds from each correlation result's completing source event to its output message."""
    nc = await nats.connect(url)
    try:
        keep = lambda data: b'"correlation_type"' in data  # noqa: E731  # not a detection
        return await stored_latencies(nc.jetstream(), OUTPUT, f"rsigma-{OUTPUT}", first_out, keep)
    finally:
        await nc.close()


def output_last_seq(url: str) -> int:
    async def go() -> int:
        nc = await nats.connect(url)
        try:
            return int((await nc.jetstream().stream_info(f"rsigma-{OUTPUT}")).state.last_seq)
        finally:
            await nc.close()

    return asyncio.run(go())


def measure(
    label: str, n: int, cluster: bool, data: list[bytes], paced: list[bytes], rate: float, results: int | None
) -> Run:
    """One configuration on a nats-server of its own; everything it started is stopped on the way out."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        server = stack.enter_context(NatsServer(tmp / "nats"))
        rules = tmp / "rules.yml"
        rules.write_text(PROPERTY_RULES)
        asyncio.run(publish(server.url, []))  # the input stream, before the daemons look for it
        daemons = start_daemons(tmp, server.url, rules, n, cluster)
        for d in daemons:
            stack.callback(d.close)
        consumer = CLUSTER if cluster else "rsigma-daemon-events"
        cpu0 = sum(tree_cpu_seconds(d.pid) for d in daemons), cpu_seconds(server.pid)
        started = time.perf_counter()
        asyncio.run(publish(server.url, data))
        while not (state := asyncio.run(settled(server.url, consumer, results)))[0]:
            if not all(d.alive() for d in daemons):
                raise SystemExit(
                    f"{label}: a daemon exited:\n{next(d for d in daemons if not d.alive()).stderr()}"
                )
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        daemon_cpu = sum(tree_cpu_seconds(d.pid) for d in daemons) - cpu0[0]
        server_cpu = cpu_seconds(server.pid) - cpu0[1]
        run = Run(
            label,
            n,
            len(data) / elapsed,
            daemon_cpu / len(data) * 1e6,
            server_cpu / len(data) * 1e6,
            hit_messages=state[2],
            results=state[1],
        )
        first_out = output_last_seq(server.url) + 1
        asyncio.run(publish(server.url, paced, rate))
        time.sleep(1.0)  # one apply round and a floor or two
        latencies = asyncio.run(correlation_latencies(server.url, first_out))
        if latencies:
            run.p50_ms = statistics.median(latencies)
            run.p99_ms = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]
        return run


def report(runs: list[Run], events: int, rate: float) -> None:
    plain = runs[0]
    print("rsigma cluster benchmark (JetStream -> daemons -> JetStream, correlation-heavy rules)")
    print(f"  events {events:,} (throughput), latency at {rate:,.0f} events/s")
    print(f"  {'configuration':<16}{'events/s':>10}{'ratio':>7}{'CPU µs/ev':>11}{'daemons':>9}{'server':>8}"
          f"{'hit msgs':>10}{'µs/hit':>8}{'p50 ms':>8}{'p99 ms':>8}")  # fmt: skip
    for r in runs:
        per_hit = (r.cpu_us - plain.cpu_us) * events / r.hit_messages if r.hit_messages else None
        print(
            f"  {r.label:<16}{r.events_per_s:>10,.0f}{r.events_per_s / plain.events_per_s:>7.2f}"
            f"{r.cpu_us:>11.1f}{r.daemon_cpu_us:>9.1f}{r.server_cpu_us:>8.1f}{r.hit_messages:>10,}"
            f"{'' if per_hit is None else f'{per_hit:.1f}':>8}"
            f"{'' if r.p50_ms is None else f'{r.p50_ms:.1f}':>8}"
            f"{'' if r.p99_ms is None else f'{r.p99_ms:.1f}':>8}"
        )
    print("  ratio: events/s over the plain daemon's; µs/hit: CPU above the plain daemon's per hit message")
    print(json.dumps([r.__dict__ for r in runs]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="events of the throughput run")
    parser.add_argument("--daemons", default="1,2,3", help="cluster sizes, comma-separated")
    parser.add_argument("--rate", type=float, default=500.0, help="events/s of the latency run")
    parser.add_argument("--latency-events", type=int, default=2_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--addresses", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="a short run (2,000 events, 1 and 2 daemons)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.daemons, args.latency_events = 2_000, "1,2", 300
    sizes = [int(n) for n in args.daemons.split(",")]
    if args.events < 1 or not sizes or min(sizes) < 1:
        parser.error("--events and every --daemons size must be at least 1")
    data = stream(args.events + args.latency_events, args.users, args.addresses)
    data, paced = data[: args.events], data[args.events :]
    plain = measure("plain daemon", 1, False, data, paced, args.rate, None)
    runs = [plain]
    for n in sizes:
        runs.append(measure(f"cluster of {n}", n, True, data, paced, args.rate, plain.results))
    report(runs, args.events, args.rate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
