"""End-to-end NATS benchmark: JetStream in -> `rsigma engine daemon` -> JetStream out, source acked.

Why: this is the path a production deployment runs, and the target is >= 50,000 events/s on this
2-core machine with a light rule set. The stream is filled first; the clock runs from the daemon's
"daemon started" line until the consumer has no message left undelivered or unacknowledged, so the
figure includes pulling, decoding, evaluating, publishing every detection with its publish-ack, and
acking every source message. It also reports the CPU the daemon and the nats-server spent per event
(both share the two cores).

Events are Sysmon-shaped from benchmarks/events.py, cut down to the fields a shipper usually keeps
(~400 bytes); the rules are examples/rules (13 detection rules, 2 correlations); about 1% match.

    python benchmarks/nats_pipeline_bench.py [--events N] [--batch-size 256] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import events as sysmon
import nats
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from tests.support import DaemonProcess, NatsServer  # noqa: E402
from tests.support.processes import cpu_seconds  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

TARGET_EVENTS_PER_S = 50_000
KEPT_FIELDS = (
    "EventID", "Channel", "Computer", "UtcTime", "Image", "User", "CommandLine", "ParentImage",
    "ParentCommandLine", "TargetObject", "Details", "DestinationIp", "DestinationPort",
    "DestinationHostname", "TargetFilename", "ImageLoaded", "EventType", "ProcessId",
)  # fmt: skip


def payloads(n: int) -> list[bytes]:
    events = sysmon.generate(n, seed=1, attack_ratio=0.01)
    return [orjson.dumps({k: e[k] for k in KEPT_FIELDS if k in e}) for e in events]


async def fill(url: str, data: list[bytes]) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="rsigma-events", subjects=["events.>"])
        for i, payload in enumerate(data):
            await nc.publish("events.sysmon", payload)
            if i % 10_000 == 0:
                await nc.flush()
        await nc.flush()
        while (await js.stream_info("rsigma-events")).state.messages < len(data):
            await asyncio.sleep(0.05)
    finally:
        await nc.close()


def daemon(
    work: Path,
    url: str,
    rules: Path,
    batch_size: int,
    *flags: str,
    workers: int | None = None,
    python_args: list[str] | None = None,
) -> DaemonProcess:
    """JetStream `events.>` in, `detections` out: `engine daemon`, or `serve --workers N` with `workers`.
    Not started yet: use it as a context manager, so that it and its matchers are killed on the way out
    whatever happened (an error, Ctrl-C)."""
    args = ["-r", rules, "--input", f"{url}/events.>", "--output", f"{url}/detections"]
    return DaemonProcess(
        [*args, "--batch-size", str(batch_size), *flags],
        home=work,
        command="engine daemon" if workers is None else "serve",
        workers=workers,
        stdin="devnull",
        stdout="devnull",
        python_args=python_args or [],
    )


async def wait_done(url: str, daemon: DaemonProcess, poll_s: float = 0.1) -> int:
    """Poll (on one connection) until the daemon's consumer has nothing undelivered or unacked;
    returns the number of detections stored in the output stream. Fails if the daemon exits."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        while True:
            if not daemon.alive():
                raise SystemExit(f"the daemon exited with {daemon.returncode}:\n{daemon.stderr()[-3000:]}")
            info = await js.consumer_info("rsigma-events", "rsigma-daemon-events")
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await asyncio.sleep(poll_s)
        try:
            return (await js.stream_info("rsigma-detections")).state.messages
        except nats.js.errors.NotFoundError:
            return 0
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rules", type=Path, default=ROOT / "examples" / "rules")
    parser.add_argument("--profile", type=Path, help="write the daemon's cProfile stats here")
    args = parser.parse_args(argv)

    if args.events < 1:
        parser.error("--events must be at least 1")
    data = payloads(args.events)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        server = stack.enter_context(NatsServer(tmp / "nats"))
        asyncio.run(fill(server.url, data))
        profiling = ["-m", "cProfile", "-o", str(args.profile)] if args.profile else []
        d = stack.enter_context(
            daemon(tmp / "daemon", server.url, args.rules, args.batch_size, python_args=profiling)
        )
        d.start()
        started = time.perf_counter()
        daemon_cpu0 = cpu_seconds(d.pid)
        server_cpu0 = cpu_seconds(server.pid)
        detections = asyncio.run(wait_done(server.url, d))
        elapsed = time.perf_counter() - started
        daemon_cpu = cpu_seconds(d.pid) - daemon_cpu0
        server_cpu = cpu_seconds(server.pid) - server_cpu0
        d.terminate(timeout=30)  # SIGTERM: a clean exit, which writes the profile

    rate = args.events / elapsed
    size = sum(map(len, data)) / len(data)
    print("rsigma NATS pipeline benchmark (JetStream -> engine daemon -> JetStream, acked)")
    print(f"  rules             {args.rules}")
    print(f"  events            {args.events:,} ({size:.0f} bytes average), --batch-size {args.batch_size}")
    print(f"  detections        {detections:,} published with publish-acks ({detections / args.events:.2%})")
    print(f"  elapsed           {elapsed:.2f} s")
    verdict = "PASS" if rate >= TARGET_EVENTS_PER_S else "FAIL"
    print(f"  throughput        {rate:,.0f} events/s  target >= {TARGET_EVENTS_PER_S:,}  {verdict}")
    print(f"  daemon CPU        {daemon_cpu / args.events * 1e6:.1f} µs/event")
    print(f"  nats-server CPU   {server_cpu / args.events * 1e6:.1f} µs/event")
    print(json.dumps({"events_per_s": round(rate), "elapsed_s": round(elapsed, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
