"""Shared-memory rings, doorbells and channels (workers/ring.py), in process and across spawned children.

In process: every frame size at every 8-aligned offset (0 bytes, 1 byte, around the wrap point, a frame
filling the whole ring), 100k random frames wrapping many times, back-pressure and the oversize error.
Across processes (the "spawn" start method the pool uses): a child echoes every frame with its CRC in
front, driven by blocking loops or by asyncio (``loop.add_reader`` on the doorbells); a SIGKILLed child
is detected through its sentinel instead of hanging the parent; segments never outlive ``close()``;
attaching in a child does not confuse the resource tracker the parent and its children share.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import select
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing import resource_tracker
from multiprocessing.process import BaseProcess
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import pytest

from workers.ring import Channel, ChannelHandle, Doorbell, Ring, reclaim_orphans

SHM = Path("/dev/shm")
SPAWN = multiprocessing.get_context("spawn")
CHILD_TIMEOUT = 10.0  # a child gives up (and exits) after this long without traffic


def crc(payload: bytes) -> bytes:
    return struct.pack("<I", zlib.crc32(payload))


def echo_child(inbound: ChannelHandle, outbound: ChannelHandle, count: int) -> None:
    """Child: echo `count` frames as CRC + frame (two parts), with the blocking loops; exit 3 on timeout."""
    with Channel.open(inbound) as rx, Channel.open(outbound) as tx:
        for _ in range(count):
            frame = rx.recv_wait(CHILD_TIMEOUT)
            if frame is None or not tx.send_wait([crc(frame), frame], CHILD_TIMEOUT):
                raise SystemExit(3)


class Frames:
    """Deterministic payloads of random sizes, mostly small and a few near `largest`, sliced from one blob."""

    def __init__(self, count: int, largest: int, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.blob = rng.randbytes(largest + 4096)
        self.spans = []
        for _ in range(count):
            size = rng.randrange(largest - 64, largest + 1) if rng.random() < 0.01 else rng.randrange(0, 1200)
            start = rng.randrange(0, len(self.blob) - size + 1)
            self.spans.append((start, size))

    def __len__(self) -> int:
        return len(self.spans)

    def __getitem__(self, i: int) -> bytes:
        start, size = self.spans[i]
        return self.blob[start : start + size]


@pytest.fixture
def make_channel() -> Iterator[Callable[[int], Channel]]:
    """Channel.create that closes every channel at teardown and checks its segment left /dev/shm."""
    made: list[Channel] = []

    def make(capacity: int) -> Channel:
        channel = Channel.create(capacity)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        channel.close()
        assert not (SHM / channel.name).exists()


@pytest.fixture
def spawn() -> Iterator[Callable[..., BaseProcess]]:
    """Start a spawned child; any child still running at teardown is killed and reaped."""
    started: list[BaseProcess] = []

    def start(target: Callable[..., None], *args: object) -> BaseProcess:
        process = SPAWN.Process(target=target, args=args, daemon=True)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.is_alive():
            process.kill()
        process.join(5)
        process.close()


# -- in process ------------------------------------------------------------------------------------------


def put(ring: Ring, payload: bytes) -> None:
    """Write into an otherwise drained ring: at most one False, when only a wrap marker could be placed."""
    if not ring.try_write([payload]):
        assert ring.read() is None  # retires the wrap marker and frees the whole ring
        assert ring.try_write([payload])


def frame_bytes(size: int) -> int:
    return (4 + size + 7) // 8 * 8  # length word + payload, 8-aligned


def move_to(ring: Ring, offset: int) -> None:
    """Bring an empty ring's write (and read) position to `offset` with filler frames."""
    here = ring.write_position % ring.capacity
    fillers = [ring.capacity - here, offset] if here > offset else [offset - here]
    for filler in fillers:
        if filler:
            put(ring, b"f" * (filler - 4))
            assert ring.read() == b"f" * (filler - 4)
    assert ring.write_position % ring.capacity == offset and ring.used == 0


def test_every_size_at_every_offset_round_trips() -> None:
    with Ring.create(256) as ring:
        capacity = ring.capacity
        assert ring.max_payload == capacity - 4
        for offset in range(0, capacity, 8):
            tail = capacity - offset
            sizes = {0, 1, 3, 4, 5, 8, tail - 5, tail - 4, tail - 3, tail + 4, capacity - 5, capacity - 4}
            for size in sorted(s for s in sizes if 0 <= s <= capacity - 4):
                move_to(ring, offset)
                payload = random.Random(size).randbytes(size)
                put(ring, payload)
                wrapped = frame_bytes(size) > tail  # a wrap marker skipped the rest of the lap
                start = 0 if wrapped else offset
                marker_pending = wrapped and tail + frame_bytes(size) <= capacity  # else put() retired it
                assert ring.used == frame_bytes(size) + (tail if marker_pending else 0)
                assert ring.write_position % capacity == (start + frame_bytes(size)) % capacity
                assert ring.read() == payload
                assert ring.read() is None and ring.used == 0 and ring.free == capacity


def test_parts_are_concatenated_into_one_frame() -> None:
    words = array("I", [1, 2, 3])
    parts = [b"ab", bytearray(b"cd"), memoryview(b"xefx")[1:3], memoryview(words), b""]
    with Ring.create(128) as ring:
        assert ring.try_write(parts)
        assert ring.try_write([])
        assert ring.try_write(part for part in (b"g", b"h"))  # any iterable (made a tuple once)
        assert ring.read() == b"abcdef" + words.tobytes()
        assert ring.read() == b""
        assert ring.read() == b"gh"
        assert ring.read() is None


def test_many_laps_of_random_frames_keep_order_and_content() -> None:
    rng = random.Random(1)
    frames = Frames(100_000, largest=3000)
    pending: deque[bytes] = deque()
    with Ring.create(4096) as ring:
        for i in range(len(frames)):
            payload = frames[i]
            while not ring.try_write([payload]):
                for _ in range(rng.randrange(1, 8)):  # read a few, then retry
                    got = ring.read()
                    if got is not None:
                        assert got == pending.popleft()
            pending.append(payload)
        while (got := ring.read()) is not None:
            assert got == pending.popleft()
        assert not pending and ring.used == 0
        assert ring.write_position > 50 * ring.capacity  # many laps


def test_try_write_says_false_when_full_and_succeeds_after_a_read() -> None:
    with Ring.create(256) as ring:
        written = 0
        while ring.try_write([written.to_bytes(28, "little")]):  # 32 bytes a frame
            written += 1
        assert written == 8 and ring.used == 256 and ring.free == 0
        assert not ring.try_write([b""])
        assert ring.read() == (0).to_bytes(28, "little")
        assert ring.free == 32
        assert not ring.try_write([bytes(29)])  # 40 bytes: still no room
        assert ring.try_write([bytes(28)])
        assert [ring.read() for _ in range(9)][-1] is None


def test_a_frame_larger_than_the_ring_raises_value_error() -> None:
    with Ring.create(256) as ring:
        with pytest.raises(ValueError, match=r"frame of 253 bytes does not fit in a ring of 256 bytes"):
            ring.try_write([bytes(253)])
        with pytest.raises(ValueError, match="largest payload: 252 bytes"):
            ring.try_write([bytes(200), bytes(53)])
        assert ring.used == 0
        assert ring.try_write([bytes(252)]) and ring.used == 256


def test_bad_capacity_and_foreign_segment_are_rejected() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Ring.create(8)
    foreign = SharedMemory(create=True, size=4096)
    try:
        with pytest.raises(ValueError, match="not a ring"):
            Ring.attach(foreign.name)
    finally:
        foreign.close()
        foreign.unlink()


def test_attach_shares_frames_does_not_track_and_only_the_owner_unlinks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered: list[tuple[str, str]] = []
    real_register = resource_tracker.register
    monkeypatch.setattr(resource_tracker, "register", lambda name, rtype: registered.append((name, rtype)))
    owner = Ring.create(1024)
    try:
        assert registered == [("/" + owner.name, "shared_memory")]  # the owner is tracked, crash cleanup
        real_register("/" + owner.name, "shared_memory")  # what the stub swallowed (unlink unregisters)
        attached = Ring.attach(owner.name)
        assert len(registered) == 1  # attaching registers nothing
        assert attached.capacity == owner.capacity and attached.name == owner.name
        assert owner.try_write([b"hello"])
        assert attached.used == owner.used > 0
        assert attached.read() == b"hello" and owner.used == 0
        attached.close()
        attached.close()
        assert (SHM / owner.name).exists()
    finally:
        owner.close()
    assert not (SHM / owner.name).exists()
    owner.close()


def test_doorbell_ring_never_blocks_and_wait_drains() -> None:
    bell = Doorbell.create()
    try:
        assert not bell.wait(0)
        for _ in range(200_000):  # far more than a pipe holds
            bell.ring()
        assert bell.wait(0)
        assert not bell.wait(0)  # drained
        started = time.monotonic()
        assert not bell.wait(0.05)
        assert time.monotonic() - started >= 0.04
        bell.ring()
        bell.drain()
        assert not bell.wait(0)
    finally:
        bell.close()
    bell.close()
    with pytest.raises(OSError):
        bell.ring()


def test_channel_send_and_recv_ring_the_doorbells(make_channel: Callable[[int], Channel]) -> None:
    channel = make_channel(64)
    assert channel.recv_wait(0.01) is None
    assert channel.send([b"x" * 20])
    assert channel.data.wait(0) and not channel.space.wait(0)
    assert channel.send([b"y" * 20])
    assert not channel.send([b"z" * 20])  # 3 x 24 > 64
    assert not channel.send_wait([b"z" * 20], timeout=0.01)
    assert channel.recv() == b"x" * 20
    assert channel.space.wait(0)
    assert channel.send_wait([b"z" * 20], timeout=0.01)
    assert [channel.recv_wait(0) for _ in range(3)] == [b"y" * 20, b"z" * 20, None]


def test_a_wrap_marker_alone_wakes_the_reader_and_retiring_it_wakes_the_writer(
    make_channel: Callable[[int], Channel],
) -> None:
    channel = make_channel(64)
    assert channel.send([b"a" * 12]) and channel.recv() == b"a" * 12  # write and read at offset 16 now
    channel.data.drain()
    channel.space.drain()
    assert not channel.send([b"b" * 60])  # needs the whole ring: only the wrap marker could be placed
    assert channel.data.wait(0)  # ... and a sleeping reader must hear about it
    assert channel.recv() is None  # retires the marker
    assert channel.space.wait(0)
    assert channel.send([b"b" * 60]) and channel.recv() == b"b" * 60


# -- across processes --------------------------------------------------------------------------------------


class ChildDied(Exception):
    pass


def pump(tx: Channel, rx: Channel, process: BaseProcess, frames: Frames, timeout: float = 15.0) -> int:
    """Blocking parent: send every frame with back-pressure while checking the echoes in order."""
    poller = select.poll()
    for fd in (rx.data.fileno(), tx.space.fileno(), process.sentinel):
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    sent = received = waits = 0
    while received < len(frames):
        progress = False
        while sent < len(frames) and tx.send([frames[sent]]):
            sent += 1
            progress = True
        while (echo := rx.recv()) is not None:
            expected = frames[received]
            assert echo == crc(expected) + expected, f"frame {received}"
            received += 1
            progress = True
        if not progress:
            ready = {fd for fd, _ in poller.poll(max(0.0, deadline - time.monotonic()) * 1000)}
            if not ready:
                raise TimeoutError(f"sent {sent}, received {received}")
            if process.sentinel in ready:
                raise ChildDied(f"exit code {process.exitcode}, sent {sent}, received {received}")
            rx.data.drain()  # then loop: read and write again before the next wait
            tx.space.drain()
            waits += 1
    return waits


def test_spawned_child_echoes_50k_frames_in_order_with_back_pressure(
    make_channel: Callable[[int], Channel], spawn: Callable[..., BaseProcess]
) -> None:
    to_child, from_child = make_channel(16384), make_channel(16384)
    frames = Frames(50_000, largest=16384 - 8)  # the echo adds 4 bytes: up to a ring-filling frame
    child = spawn(echo_child, to_child.handle(), from_child.handle(), len(frames))
    waits = pump(to_child, from_child, child, frames)
    child.join(5)
    assert child.exitcode == 0
    assert waits > 0  # the parent really did wait on full or empty rings
    assert to_child.ring.used == 0 and from_child.ring.used == 0


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_asyncio_parent_drives_a_spawned_child_with_add_reader(
    loop_kind: str, make_channel: Callable[[int], Channel], spawn: Callable[..., BaseProcess]
) -> None:
    to_child, from_child = make_channel(8192), make_channel(8192)
    frames = Frames(20_000, largest=8192 - 8, seed=11)
    child = spawn(echo_child, to_child.handle(), from_child.handle(), len(frames))

    async def drive() -> int:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        space = asyncio.Event()
        received = 0

        def on_data() -> None:
            nonlocal received
            from_child.data.drain()  # before reading, so a frame written meanwhile rings again
            while (echo := from_child.recv()) is not None:
                expected = frames[received]
                if echo != crc(expected) + expected and not done.done():
                    done.set_exception(AssertionError(f"frame {received} differs"))
                received += 1
            if received == len(frames) and not done.done():
                done.set_result(None)

        def on_space() -> None:
            to_child.space.drain()
            space.set()

        def on_exit() -> None:
            loop.remove_reader(child.sentinel)
            if not done.done():
                done.set_exception(ChildDied(f"exit code {child.exitcode}"))

        loop.add_reader(from_child.data.fileno(), on_data)
        loop.add_reader(to_child.space.fileno(), on_space)
        loop.add_reader(child.sentinel, on_exit)
        full = 0
        try:
            for i in range(len(frames)):
                while not to_child.send([frames[i]]):
                    space.clear()
                    if to_child.send([frames[i]]):  # room freed before clear(): no wake-up coming
                        break
                    full += 1
                    await asyncio.wait_for(space.wait(), CHILD_TIMEOUT)
            await asyncio.wait_for(done, CHILD_TIMEOUT)
        finally:
            loop.remove_reader(from_child.data.fileno())
            loop.remove_reader(to_child.space.fileno())
            loop.remove_reader(child.sentinel)
        return full

    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    else:
        runner = asyncio.Runner()
    with runner:
        full = runner.run(drive())
    child.join(5)
    assert child.exitcode == 0
    assert full > 0


def test_a_sigkilled_child_is_detected_and_closing_unlinks(spawn: Callable[..., BaseProcess]) -> None:
    to_child, from_child = Channel.create(4096), Channel.create(4096)
    names = [to_child.name, from_child.name]
    try:
        child = spawn(echo_child, to_child.handle(), from_child.handle(), 10**9)
        frames = Frames(50, largest=1000)
        assert pump(to_child, from_child, child, frames) >= 0  # alive and echoing
        os.kill(child.pid, signal.SIGKILL)
        # ChildDied, not pump's TimeoutError: the death was seen on the sentinel, before the deadline.
        with pytest.raises(ChildDied, match=f"exit code {-signal.SIGKILL}"):
            pump(to_child, from_child, child, Frames(100_000, largest=1000), timeout=CHILD_TIMEOUT)
        assert to_child.ring.used > 0  # the parent stopped on the dead child, not on an empty ring
    finally:
        to_child.close()
        from_child.close()
    assert not [name for name in names if (SHM / name).exists()]


def test_spawned_children_leave_the_resource_tracker_quiet(tmp_path: Path) -> None:
    """A whole program: a spawned child attaches, echoes and exits (or dies); the parent closes.

    Nothing may reach stderr: no "leaked shared_memory" warning from the tracker at exit (the parent
    unlinked everything) and no KeyError from the tracker (the child never unregistered the parent's
    segments); nothing may remain in /dev/shm.
    """
    script = tmp_path / "ring_program.py"
    script.write_text(
        textwrap.dedent(
            """
            import multiprocessing, os, sys
            from workers.ring import Channel

            def child(inbound, outbound, die):
                with Channel.open(inbound) as rx, Channel.open(outbound) as tx:
                    frame = rx.recv_wait(10)
                    tx.send_wait([frame.upper()], 10)
                if die:
                    os._exit(1)  # no cleanup at all in the child

            if __name__ == "__main__":
                ctx = multiprocessing.get_context(sys.argv[1])
                names = []
                for die in (False, True):
                    with Channel.create(4096) as down, Channel.create(4096) as up:
                        names += [down.name, up.name]
                        p = ctx.Process(target=child, args=(down.handle(), up.handle(), die))
                        p.start()
                        down.send_wait([b"ping"], 10)
                        assert up.recv_wait(10) == b"PING"
                        p.join(10)
                        assert p.exitcode == int(die), p.exitcode
                print(" ".join(names))
            """
        )
    )
    for method in ("spawn", "forkserver"):
        done = subprocess.run(
            [sys.executable, "-W", "error", str(script), method],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        names = done.stdout.split()
        assert len(names) == 4 and not [name for name in names if (SHM / name).exists()]


# -- leftovers of creators that are gone -------------------------------------------------------------


def test_a_ring_is_named_for_its_creator_and_pulses() -> None:
    with Ring.create(64) as ring:
        namespace = os.stat("/proc/self/ns/pid").st_ino
        assert ring.name.startswith(f"rsring_{namespace}_{os.getpid()}_")
        assert ring.pulses == 0
        ring.pulse()
        ring.pulse()
        assert ring.pulses == 2 and ring.used == 0  # a pulse is no frame


def test_reclaim_orphans_removes_only_rings_whose_creator_is_gone() -> None:
    namespace = os.stat("/proc/self/ns/pid").st_ino
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(gone.stdout)
    started = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    tag = os.urandom(4).hex()
    names = {
        "dead creator": f"rsring_{namespace}_{dead_pid}_1_{tag}01",
        "pid reused by another process": f"rsring_{namespace}_{os.getpid()}_{started + 1}_{tag}02",
        "live creator": f"rsring_{namespace}_{os.getpid()}_{started}_{tag}03",
        "another pid namespace": f"rsring_{namespace + 1}_{dead_pid}_1_{tag}04",
        "creator's start time unknown": f"rsring_{namespace}_{dead_pid}_0_{tag}06",
        "old name (no creator)": f"rsring_{tag}0000000005",
    }
    try:
        for name in names.values():
            (SHM / name).write_bytes(b"")
        removed = set(reclaim_orphans())
        assert {names["dead creator"], names["pid reused by another process"]} <= removed
        left = {what for what, name in names.items() if (SHM / name).exists()}
        assert left == {
            "live creator",
            "another pid namespace",
            "old name (no creator)",
            "creator's start time unknown",
        }
    finally:
        for name in names.values():
            (SHM / name).unlink(missing_ok=True)
