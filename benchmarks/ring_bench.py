"""Ring benchmark: batches of raw events parent -> spawned child -> parent, over shared-memory channels.

Why: the worker pool moves every event from the supervisor to a matcher process, so the per-event cost of
that hop is paid on top of matching; the supervisor (one process, one core) is the part that does not
scale with N. This measures that hop with the shapes the pool uses: batches of 512 shipper-shaped events
of ~470 bytes (from ``benchmarks/events.py``), one frame per batch, echoed back by a spawned child over a
second channel, with a window of batches in flight. The same batches then go through a pair of
``multiprocessing.Queue`` as pickled lists of bytes, the obvious alternative.

Three ways to send a batch over the ring:

- ``ring join``: ``[lengths header, b"".join(events)]``: the join is one C call, then one copy into
  shared memory;
- ``ring parts``: ``[lengths header, *events]``: no join, but one Python-level slice assignment per
  event (513 parts);
- ``queue``: ``Queue.put(list_of_bytes)``: pickled by the feeder thread, written through a pipe,
  unpickled by the child, and the same again on the way back.

The child decodes every batch into its events (what a matcher must do) and echoes the frame.

What it showed (2-core x86-64 VM shared with other work, Python 3.11, default arguments; wall-clock
figures moved by up to ±50% between runs, CPU per event much less; run it for current numbers):

                 MB/s        batches/s   wall µs/ev   parent CPU µs/ev   child CPU µs/ev
    ring join    1000-1600   4200-6500   0.30-0.46    0.16-0.19          0.28-0.30
    ring parts    650-1400   2700-5600   0.35-0.73    0.35-0.42          0.29-0.32
    queue         180-270     750-1100   1.75-2.6     1.1-1.5            1.0-1.25

- The ring is 5-6x the queue's throughput, for ~7x less supervisor CPU per event. With ``join`` the
  parent spends ~0.17 µs per event for the whole round trip, and most of that is building the batch
  (the lengths header ~16 µs and the join ~9 µs per 240 KB batch), not the ring: ``try_write`` of
  ``[header, body]`` is ~11 µs a batch (one ``memcpy``), ``read()`` ~6 µs (the copy out is cheap
  enough that a zero-copy view API is not worth its lifetime rules), a doorbell ``ring()`` ~0.6 µs.
- ``parts`` is *slower* for small events: one Python-level slice assignment per part (~0.2 µs each)
  costs more than ``b"".join`` copying the same bytes in C. Pass few, large parts (a header plus an
  already joined body, a big result blob); "no join" only pays off when the parts are big.
- The queue's cost is pickling (~170 µs to pickle a list of 512 events, ~25 µs to unpickle), the feeder
  thread and the pipe (every byte goes through the kernel twice), and the same again on the way back.
- The child's ~0.3 µs per event is mostly ``decode`` (~0.12 µs per event to slice the batch into events
  in Python): the matcher pays it once per event, whatever the transport.
- Per-batch overheads (doorbell syscalls, wake-ups) vanish at 512 events per batch; at 16 events per
  batch the ring still beats the queue ~2.6x, but the parent's cost triples to ~0.6 µs per event.
  The window (batches in flight) hardly matters once it is at least 1: the ring's own capacity already
  lets both processes run at the same time.

It is a report, not a gate: it exits 0 whatever the numbers are.

    python benchmarks/ring_bench.py [--batches N] [--batch-size N] [--window N] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import events as sysmon
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from workers.ring import Channel, ChannelHandle  # noqa: E402

SPAWN = multiprocessing.get_context("spawn")
DISTINCT_BATCHES = 16  # distinct batches generated, then cycled (generating events is slow)
KEPT_FIELDS = (
    "EventID",
    "Channel",
    "Computer",
    "UtcTime",
    "Image",
    "User",
    "CommandLine",
    "ParentImage",
    "ParentCommandLine",
    "TargetObject",
    "Details",
    "DestinationIp",
    "DestinationPort",
    "DestinationHostname",
    "TargetFilename",
    "ImageLoaded",
    "EventType",
    "ProcessId",
)  # fmt: skip  (the fields a shipper usually keeps, as in nats_pipeline_bench.py: ~470-byte events)


def make_batches(batch_size: int) -> list[list[bytes]]:
    events = sysmon.generate(batch_size * DISTINCT_BATCHES, seed=1, attack_ratio=0.01)
    payloads = [orjson.dumps({k: e[k] for k in KEPT_FIELDS if k in e}) for e in events]
    return [payloads[i : i + batch_size] for i in range(0, len(payloads), batch_size)]


def header(events: list[bytes]) -> bytes:
    """Batch frame header: u32 count, then one u32 length per event (native order; same machine)."""
    return array("I", [len(events), *map(len, events)]).tobytes()


def decode(frame: bytes) -> list[bytes]:
    """A frame back into its events: what a matcher does with each batch."""
    count = int.from_bytes(frame[:4], sys.byteorder)
    lengths = memoryview(frame)[4 : 4 + 4 * count].cast("I")
    pos = 4 + 4 * count
    events = []
    for length in lengths:
        events.append(frame[pos : pos + length])
        pos += length
    lengths.release()
    return events


# -- children --------------------------------------------------------------------------------------------


def ring_child(inbound: ChannelHandle, outbound: ChannelHandle, batches: int) -> None:
    """Echo a warm-up batch, then `batches` batches, then one frame with the CPU seconds they took."""
    with Channel.open(inbound) as rx, Channel.open(outbound) as tx:
        cpu = 0.0
        for i in range(batches + 1):
            frame = rx.recv_wait(30)
            if frame is None:
                raise SystemExit("parent went quiet")
            decode(frame)
            if not tx.send_wait([frame], 30):
                raise SystemExit("parent stopped reading")
            if i == 0:
                cpu = time.process_time()
        tx.send_wait([repr(time.process_time() - cpu).encode()], 30)


def queue_child(inbound: Any, outbound: Any, batches: int) -> None:
    """The same over queues: the child gets lists of events, puts them back, then its CPU seconds."""
    cpu = 0.0
    for i in range(batches + 1):
        outbound.put(inbound.get(timeout=30))
        if i == 0:
            cpu = time.process_time()
    outbound.put(time.process_time() - cpu)


# -- parent ----------------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    batches: int
    events: int
    payload_bytes: int
    wall_s: float
    parent_cpu_s: float
    child_cpu_s: float

    @property
    def mb_per_s(self) -> float:  # payload bytes one way
        return self.payload_bytes / self.wall_s / 1e6

    @property
    def batches_per_s(self) -> float:
        return self.batches / self.wall_s

    @property
    def wall_us_per_event(self) -> float:
        return self.wall_s / self.events * 1e6

    @property
    def parent_cpu_us_per_event(self) -> float:
        return self.parent_cpu_s / self.events * 1e6

    @property
    def child_cpu_us_per_event(self) -> float:
        return self.child_cpu_s / self.events * 1e6


def windowed(send: Callable[[int], None], receive: Callable[[], None], batches: int, window: int) -> None:
    """Keep `window` batches in flight: send until the window is full, then take one echo back."""
    sent = received = 0
    while received < batches:
        while sent < batches and sent - received < window:
            send(sent)
            sent += 1
        receive()
        received += 1


def run_ring(name: str, batches: list[list[bytes]], count: int, window: int, join: bool) -> Result:
    largest = max(len(header(b)) + sum(map(len, b)) for b in batches)
    capacity = (largest + 64) * (window + 1)
    with Channel.create(capacity) as down, Channel.create(capacity) as up:
        child = SPAWN.Process(target=ring_child, args=(down.handle(), up.handle(), count))
        child.start()
        try:
            assert down.send_wait([header(batches[0]), b"".join(batches[0])], 30)  # warm-up, child started
            assert up.recv_wait(30) is not None
            cpu, wall = time.process_time(), time.perf_counter()
            payload_bytes = 0
            if join:

                def send(i: int) -> None:
                    events = batches[i % len(batches)]
                    if not down.send_wait([header(events), b"".join(events)], 30):
                        raise RuntimeError("child stopped reading")
            else:

                def send(i: int) -> None:
                    events = batches[i % len(batches)]
                    if not down.send_wait([header(events), *events], 30):
                        raise RuntimeError("child stopped reading")

            def receive() -> None:
                nonlocal payload_bytes
                frame = up.recv_wait(30)
                if frame is None:
                    raise RuntimeError("child went quiet")
                payload_bytes += len(frame)

            windowed(send, receive, count, window)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            child_cpu = float(up.recv_wait(30) or b"nan")
            child.join(30)
        finally:
            if child.is_alive():
                child.kill()
                child.join()
    events = sum(len(batches[i % len(batches)]) for i in range(count))
    return Result(name, count, events, payload_bytes, wall, cpu, child_cpu)


def run_queue(batches: list[list[bytes]], count: int, window: int) -> Result:
    down, up = SPAWN.Queue(), SPAWN.Queue()
    child = SPAWN.Process(target=queue_child, args=(down, up, count))
    child.start()
    try:
        down.put(batches[0])
        up.get(timeout=30)
        cpu, wall = time.process_time(), time.perf_counter()
        payload_bytes = 0

        def send(i: int) -> None:
            down.put(batches[i % len(batches)])

        def receive() -> None:
            nonlocal payload_bytes
            payload_bytes += sum(map(len, up.get(timeout=30)))

        windowed(send, receive, count, window)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        child_cpu = up.get(timeout=30)
        child.join(30)
    finally:
        if child.is_alive():
            child.kill()
            child.join()
        for queue in (down, up):
            queue.close()
            queue.join_thread()
    events = sum(len(batches[i % len(batches)]) for i in range(count))
    return Result("queue", count, events, payload_bytes, wall, cpu, child_cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=2000, help="batches per run (default 2000)")
    parser.add_argument("--batch-size", type=int, default=512, help="events per batch (default 512)")
    parser.add_argument("--window", type=int, default=8, help="batches in flight (default 8)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    batches = make_batches(args.batch_size)
    sizes = [len(e) for b in batches for e in b]
    print(
        f"{args.batches} batches of {args.batch_size} events (mean {sum(sizes) / len(sizes):.0f} bytes, "
        f"~{sum(sizes) / len(batches) / 1024:.0f} KiB a batch), window {args.window}, "
        f"parent -> spawned child -> parent"
    )
    results = [
        run_ring("ring join", batches, args.batches, args.window, join=True),
        run_ring("ring parts", batches, args.batches, args.window, join=False),
        run_queue(batches, args.batches, args.window),
    ]
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return 0
    print(
        f"{'':12} {'MB/s':>8} {'batches/s':>10} {'wall µs/ev':>11} {'parent CPU µs/ev':>17} "
        f"{'child CPU µs/ev':>16}"
    )
    for r in results:
        print(
            f"{r.name:12} {r.mb_per_s:8.0f} {r.batches_per_s:10.0f} {r.wall_us_per_event:11.3f} "
            f"{r.parent_cpu_us_per_event:17.3f} {r.child_cpu_us_per_event:16.3f}"
        )
    ring, queue = results[0], results[2]
    print(
        f"ring join vs queue: {queue.wall_s / ring.wall_s:.1f}x the throughput, "
        f"{queue.parent_cpu_s / ring.parent_cpu_s:.1f}x less parent CPU per event, "
        f"{queue.child_cpu_s / ring.child_cpu_s:.1f}x less child CPU per event"
    )
    print("(MB/s: event bytes one way; CPU: time.process_time in each process, threads included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
