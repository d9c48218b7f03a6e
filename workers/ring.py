"""Shared-memory rings that carry batches of raw events between the supervisor and the matchers.

Why: the supervisor hands batches of raw event bytes to N matcher processes and gets results back.
Pickling every event, or pushing every event through a ``multiprocessing.Queue`` (a pipe, a feeder
thread and a lock per message), costs more than matching it. Here a batch is one frame of bytes copied
into a shared-memory ring, and the other side is woken by one byte on a pipe. Nothing is pickled on the
hot path, and a batch costs a 1-byte pipe write on each side ("data" from the writer, "space" from the
reader) whatever its size. ``benchmarks/ring_bench.py`` measures it against ``multiprocessing.Queue``.

The pieces:

- ``Ring``: a single-producer single-consumer ring of variable-size frames over
  ``multiprocessing.shared_memory``. Never blocks: ``try_write`` says False when full, ``read`` says
  None when empty.
- ``Doorbell``: a non-blocking pipe. ``ring()`` from the writer, ``wait()`` in a blocking child, or
  ``fileno()`` + ``drain()`` under ``loop.add_reader`` in the asyncio supervisor.
- ``Channel``: one direction = a ``Ring``, a "data" doorbell (frames were written) and a "space"
  doorbell (frames were consumed, a waiting writer may retry). ``Channel.create`` in the parent,
  ``channel.handle()`` passed as a ``Process`` argument, ``Channel.open(handle)`` in the child.

Layout of the shared segment (all integers native-endian, i.e. little-endian on x86-64)::

    [0:8]     magic            [8:16]   capacity (bytes of the data area)
    [64:72]   write position   (own cache line: only the producer stores it)
    [72:80]   pulse            (the producer's line too: a counter it bumps to show progress)
    [128:136] read position    (own cache line: only the consumer stores it)
    [192:]    data area, ``capacity`` bytes, a multiple of 8

Positions are byte counts that only grow (64 bits never wrap in practice); the offset in the data area
is ``position % capacity`` and ``write - read`` is the number of bytes in use. A frame is
``[u32 length][payload]`` padded to a multiple of 8, so every frame starts 8-aligned and a length word
always fits before the end of the data area. A frame that does not fit before the end is preceded by a
wrap marker (length ``0xFFFFFFFF``): the rest of the lap is skipped and the frame starts at offset 0.

Memory ordering (why plain Python stores are enough, on x86-64):

- The producer copies the payload and the length word into the segment, *then* publishes the new
  write position with one aligned 8-byte store (``memoryview.cast("Q")`` item assignment: CPython does
  a fixed-size 8-byte ``memcpy``, which compiles to a single ``mov``; aligned 8-byte accesses are atomic
  on x86-64, so the other side never sees a torn position).
- The consumer loads the write position (one 8-byte load), then reads the length and the payload, copies
  the payload out, and only then stores the new read position.
- x86-64 is TSO: stores become visible to other cores in program order (payload before position), loads
  are not reordered with older loads (position before payload), and loads are not reordered with later
  stores (the copy-out completes before the read position frees the bytes). The compiler cannot move
  the accesses across each other either: each one is a separate C call made by the interpreter.
- The doorbell's ``write(2)`` after each publish is a full barrier too, but it comes *after* the publish;
  it is there for the wake-up, not for ordering. On weakly ordered CPUs (aarch64) this ring would need
  real release/acquire fences, which Python cannot issue: it is written for x86-64 Linux.

Liveness: a frame says a request is done, but a long request says nothing while it runs. The producer
may bump the pulse counter (``Ring.pulse``) as it works (a matcher does before each event of a batch),
and the other side reads it (``Ring.pulses``) to tell a busy peer from a hung one. It is only ever
compared with an earlier reading of itself, so it needs no ordering with the frames.

Names: ``rsring_<pid namespace>_<pid>_<start time>_<random>``, the namespace, pid and start time (in
clock ticks since boot, from ``/proc/<pid>/stat``) being those of the creating process. Rings are
removed by their creator's ``close()``, or by Python's resource tracker once every process holding
them has exited. When neither happened (the creator and its tracker were SIGKILLed together),
``reclaim_orphans`` finds the segments whose creator is gone, or whose pid now belongs to another
process, and removes them; a segment of a live process (another daemon on the host) is never touched.
Segments of another pid namespace (a container sharing ``/dev/shm``) are left alone: their pids mean
nothing here.

Starting children: use the "spawn" or "forkserver" start method and pass ``channel.handle()`` as a
``Process`` argument. The doorbells are ``multiprocessing.Pipe`` connections, whose file descriptors
multiprocessing hands to the child as it starts it. The child attaches to the segment *without*
registering it with the resource tracker: spawned children share the parent's tracker, so
``resource_tracker.unregister`` in the child would drop the parent's own registration (the tracker then
prints a ``KeyError`` when the owner unlinks, and a crashed owner's segment would no longer be cleaned
up), and a child with a tracker of its own would unlink the segment when it exits.
"""

from __future__ import annotations

import mmap
import os
import re
import secrets
import select
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from types import TracebackType

__all__ = ["Channel", "ChannelHandle", "Doorbell", "Ring", "reclaim_orphans"]

_MAGIC = int.from_bytes(b"rsring01", "little")
_HEADER = 192  # three 64-byte cache lines: metadata, write position, read position
_Q_MAGIC, _Q_CAPACITY, _Q_WRITE, _Q_PULSE, _Q_READ = 0, 1, 8, 9, 16  # indexes into the buffer cast to u64
_LEN = 4  # the u32 length word in front of each payload
_WRAP = 0xFFFFFFFF  # length word of a wrap marker: skip to the next lap
_MAX_CAPACITY = 0xFFFFFFF8  # a payload length must fit in a u32 and differ from _WRAP
NAME_PREFIX = "rsring_"  # segment names, so leftovers in /dev/shm are recognisable
SHM_DIR = Path("/dev/shm")
_NAME = re.compile(re.escape(NAME_PREFIX) + r"(\d+)_(\d+)_(\d+)_[0-9a-f]+")

Part = bytes | bytearray | memoryview


def _align8(n: int) -> int:
    return (n + 7) & ~7


def _start_time(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (None: no such process)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _pid_namespace() -> int:
    """The inode of this process's pid namespace: pids in a ring name mean something only inside it."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _new_name() -> str:
    pid = os.getpid()
    return f"{NAME_PREFIX}{_pid_namespace()}_{pid}_{_start_time(pid) or 0}_{secrets.token_hex(6)}"


def reclaim_orphans(directory: Path = SHM_DIR) -> list[str]:
    """Remove the rings whose creating process is gone (see "Names" above); the names removed."""
    namespace = _pid_namespace()
    removed = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.fullmatch(entry.name)
        if match is None or int(match[1]) != namespace:
            continue
        pid, started = int(match[2]), int(match[3])
        if started == 0 or _start_time(pid) == started:
            continue  # its creator is alive, or could not tell when it started (no /proc)
        try:
            entry.unlink()
        except FileNotFoundError:
            continue  # its creator's tracker, or another starting pool, was faster
        removed.append(entry.name)
    return removed


def _open_existing(name: str) -> tuple[memoryview, Callable[[], None]]:
    """Map an existing segment without registering it with the resource tracker (see module docstring)."""
    if sys.version_info >= (3, 13):
        shm = SharedMemory(name=name, track=False)  # type: ignore[call-arg]
        return shm.buf, shm.close
    import _posixshmem  # what SharedMemory itself uses on POSIX; public `track=False` arrived in 3.13

    fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
    try:
        mapping = mmap.mmap(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    view = memoryview(mapping)

    def close() -> None:
        view.release()
        mapping.close()

    return view, close


class Ring:
    """Single-producer single-consumer ring of variable-size frames in a shared-memory segment.

    Exactly one process (or thread) writes and exactly one reads; neither ever blocks. Waiting is the
    caller's business (see ``Channel``). ``Ring.create`` makes the segment and owns it: its ``close()``
    also unlinks it. ``Ring.attach`` maps it in another process: its ``close()`` only unmaps.
    """

    def __init__(self, buf: memoryview, name: str, closer: Callable[[], None], owner: bool) -> None:
        self._buf = buf
        self._name = name
        self._closer: Callable[[], None] | None = closer
        self._owner = owner
        self._q = buf.cast("Q")  # positions and header words: single aligned 8-byte loads and stores
        self._u32 = buf.cast("I")  # frame length words (always 8-aligned, so index = byte offset // 4)
        if self._q[_Q_MAGIC] != _MAGIC:
            self.close()
            raise ValueError(f"shared memory segment {name!r} is not a ring")
        self._capacity = self._q[_Q_CAPACITY]
        if self._capacity + _HEADER > len(buf):
            self.close()
            raise ValueError(f"ring {name!r} claims {self._capacity} bytes but maps only {len(buf)}")

    @classmethod
    def create(cls, capacity: int) -> Ring:
        """A new ring with a data area of ``capacity`` bytes (rounded up to a multiple of 8)."""
        capacity = _align8(capacity)
        if not 16 <= capacity <= _MAX_CAPACITY:
            raise ValueError(f"ring capacity must be between 16 and {_MAX_CAPACITY} bytes, not {capacity}")
        shm = SharedMemory(name=_new_name(), create=True, size=_HEADER + capacity)
        q = shm.buf.cast("Q")
        q[_Q_CAPACITY] = capacity
        q[_Q_MAGIC] = _MAGIC
        q.release()

        def close() -> None:
            shm.close()
            shm.unlink()

        return cls(shm.buf, shm.name, close, owner=True)

    @classmethod
    def attach(cls, name: str) -> Ring:
        """Map the ring ``name`` made by ``Ring.create`` in another process; ``close()`` only unmaps."""
        buf, closer = _open_existing(name)
        return cls(buf, name, closer, owner=False)

    @property
    def name(self) -> str:
        """The segment name to pass to ``Ring.attach``."""
        return self._name

    @property
    def capacity(self) -> int:
        """Bytes in the data area; frames take ``4 + len(payload)`` rounded up to a multiple of 8."""
        return self._capacity

    @property
    def max_payload(self) -> int:
        """The largest payload a frame can carry (it then fills the whole ring)."""
        return self._capacity - _LEN

    def pulse(self, _: object = None) -> None:
        """Producer side: show progress without writing a frame (see "Liveness" above). The argument
        is ignored, so that it can be a per-item callback as it is (one call per event)."""
        self._q[_Q_PULSE] += 1

    @property
    def pulses(self) -> int:
        """How often the producer called ``pulse``."""
        return self._q[_Q_PULSE]

    @property
    def used(self) -> int:
        """Bytes written and not yet consumed (including padding and a pending wrap marker)."""
        return self._q[_Q_WRITE] - self._q[_Q_READ]

    @property
    def free(self) -> int:
        """Bytes available to the writer (a frame may also need the rest of the lap if it must wrap)."""
        return self._capacity - self.used

    @property
    def write_position(self) -> int:
        """Total bytes ever published by the writer (frames, padding and wrap markers)."""
        return self._q[_Q_WRITE]

    @property
    def read_position(self) -> int:
        """Total bytes ever released by the reader."""
        return self._q[_Q_READ]

    def try_write(self, parts: Iterable[Part]) -> bool:
        """Write one frame made of the concatenated ``parts``; False if there is no room yet.

        Each part is copied straight into the segment (no join in Python). The write position is
        published only once the length word and the payload are in place. A frame that must wrap first
        publishes a wrap marker; if the frame still does not fit at offset 0, this returns False with
        the marker published, and only the reader's next ``read()`` (which retires the marker) makes
        room: the caller must wake the reader then too (``Channel.send`` does, whenever the write
        position moved). Raises ValueError for a frame larger than the whole ring.
        """
        if not isinstance(parts, (list, tuple)):
            parts = tuple(parts)  # walked twice (sizes, then copies): a generator would write garbage
        size = 0
        for part in parts:
            size += part.nbytes if isinstance(part, memoryview) else len(part)
        need = _align8(_LEN + size)
        capacity = self._capacity
        if need > capacity:
            raise ValueError(
                f"frame of {size} bytes does not fit in a ring of {capacity} bytes "
                f"(largest payload: {capacity - _LEN} bytes); send smaller batches or make the ring larger"
            )
        q = self._q
        write = q[_Q_WRITE]
        free = capacity - (write - q[_Q_READ])
        offset = write % capacity
        tail = capacity - offset
        if need > tail:  # does not fit before the end: skip the rest of the lap
            if tail > free:
                return False
            self._u32[(_HEADER + offset) >> 2] = _WRAP
            write += tail
            free -= tail
            q[_Q_WRITE] = write
            offset = 0
        if need > free:
            return False
        start = _HEADER + offset + _LEN
        buf = self._buf
        for part in parts:
            if isinstance(part, memoryview):
                n = part.nbytes
                if part.format != "B" or part.ndim != 1:
                    part = part.cast("B")
            else:
                n = len(part)
            buf[start : start + n] = part
            start += n
        self._u32[(_HEADER + offset) >> 2] = size
        q[_Q_WRITE] = write + need  # publish: one aligned 8-byte store, after the payload
        return True

    def read(self) -> bytes | None:
        """The next frame's payload as a bytes copy, or None when the ring is empty.

        A copy, not a view into the segment: one ``memcpy`` per batch (about 6 µs for 240 KB) buys a
        result that stays valid after the slot is reused and never pins the mapping (a live view would
        make ``close()`` fail). The read position is released only after the copy.
        """
        q = self._q
        read = q[_Q_READ]
        write = q[_Q_WRITE]
        if read == write:
            return None
        capacity = self._capacity
        offset = read % capacity
        size = self._u32[(_HEADER + offset) >> 2]
        if size == _WRAP:
            read += capacity - offset
            q[_Q_READ] = read  # the skipped tail is free now, even if no frame follows yet
            if read == write:
                return None
            offset = 0
            size = self._u32[_HEADER >> 2]
        if _LEN + size > capacity - offset:
            raise RuntimeError(f"ring {self._name!r} is corrupt: frame of {size} bytes at offset {offset}")
        start = _HEADER + offset + _LEN
        data = self._buf[start : start + size].tobytes()
        q[_Q_READ] = read + _align8(_LEN + size)
        return data

    def close(self) -> None:
        """Unmap the segment (and unlink it, on the side that created it). Idempotent."""
        if self._closer is None:
            return
        self._q.release()
        self._u32.release()
        closer, self._closer = self._closer, None
        closer()

    @property
    def closed(self) -> bool:
        return self._closer is None

    def __enter__(self) -> Ring:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"used={self.used}"
        return f"<Ring {self._name} capacity={self._capacity} {state}{' owner' if self._owner else ''}>"


class Doorbell:
    """One-way wake-up over a non-blocking pipe: ``ring()`` on one side, ``wait()``/``drain()`` on the other.

    The pipe carries no data, only "look at the ring again". Bytes pile up harmlessly until the waiting
    side drains them; a full pipe just means a wake-up is already pending, so ``ring()`` never blocks.
    Both ends are ``multiprocessing.Pipe`` connections so the doorbell pickles into a spawned child
    (pass it, or a ``ChannelHandle`` holding it, as a ``Process`` argument).

    Waiting side protocol, to never miss a wake-up: drain first, then read the ring until it is empty,
    then wait. ``wait()`` drains itself when it returns True.
    """

    def __init__(self, reader: Connection, writer: Connection) -> None:
        self._reader = reader
        self._writer = writer
        self._rfd = reader.fileno()
        self._wfd = writer.fileno()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._poll: select.poll | None = None

    @classmethod
    def create(cls) -> Doorbell:
        reader, writer = Pipe(duplex=False)
        return cls(reader, writer)

    def ring(self) -> None:
        """Wake the waiting side. Cheap (one ``write(2)`` of one byte); never blocks."""
        try:  # noqa: SIM105 (contextlib.suppress costs a context manager per batch)
            os.write(self._wfd, b"\x01")
        except (BlockingIOError, BrokenPipeError):
            pass  # full: a wake-up is already pending; broken: nobody left to wake

    def fileno(self) -> int:
        """The read end, for ``select``/``poll`` or ``loop.add_reader(doorbell.fileno(), callback)``."""
        return self._rfd

    def drain(self) -> None:
        """Eat pending wake-ups; call it *before* reading the ring (first thing in an add_reader callback)."""
        try:
            while os.read(self._rfd, 65536):
                pass
        except BlockingIOError:
            pass

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until rung (True, wake-ups drained) or ``timeout`` s pass (False); can wake spuriously."""
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(self._rfd, select.POLLIN)
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))  # round up: no busy loop
        if not self._poll.poll(ms):
            return False
        self.drain()
        return True

    def close(self) -> None:
        """Close this process's copies of both ends. Idempotent; ``ring()`` afterwards raises OSError."""
        self._rfd = self._wfd = -1  # never write a wake-up byte into an fd number reused by someone else
        self._reader.close()
        self._writer.close()

    def __reduce__(self) -> tuple[type[Doorbell], tuple[Connection, Connection]]:
        return Doorbell, (self._reader, self._writer)

    def __repr__(self) -> str:
        return f"<Doorbell r={self._rfd} w={self._wfd}>"


@dataclass(frozen=True)
class ChannelHandle:
    """What a child needs to open a channel: the segment name and both doorbells. Pickles across spawn."""

    ring_name: str
    data: Doorbell
    space: Doorbell


class Channel:
    """One direction between two processes: a ``Ring``, a "data" doorbell and a "space" doorbell.

    The producer calls ``send`` (it rings "data" after a successful write), the consumer ``recv`` (it
    rings "space" whenever it released bytes, so a producer waiting on a full ring can retry).
    ``send_wait``/``recv_wait`` are the blocking loops for a child process; the asyncio supervisor
    instead watches ``channel.data.fileno()`` / ``channel.space.fileno()`` with ``loop.add_reader``.
    Doorbells do not tell when the peer died: watch the ``Process.sentinel`` for that.
    """

    def __init__(self, ring: Ring, data: Doorbell, space: Doorbell) -> None:
        self._ring = ring
        self._data = data
        self._space = space

    @classmethod
    def create(cls, capacity: int) -> Channel:
        """A new channel (in the parent) whose ring holds ``capacity`` bytes; ``close()`` unlinks it."""
        ring = Ring.create(capacity)
        return cls(ring, Doorbell.create(), Doorbell.create())

    @classmethod
    def open(cls, handle: ChannelHandle) -> Channel:
        """The other end of a channel, from ``handle()`` passed to this (child) process."""
        return cls(Ring.attach(handle.ring_name), handle.data, handle.space)

    def handle(self) -> ChannelHandle:
        """A picklable description for ``Channel.open``: pass it as a ``Process`` argument."""
        return ChannelHandle(self._ring.name, self._data, self._space)

    @property
    def name(self) -> str:
        return self._ring.name

    @property
    def ring(self) -> Ring:
        return self._ring

    @property
    def data(self) -> Doorbell:
        """Rung by the producer after each frame: the consumer waits on it."""
        return self._data

    @property
    def space(self) -> Doorbell:
        """Rung by the consumer after it released bytes: a producer facing a full ring waits on it."""
        return self._space

    def send(self, parts: Iterable[Part]) -> bool:
        """Write one frame made of ``parts`` and wake the consumer; False if the ring is full for now."""
        ring = self._ring
        before = ring.write_position
        ok = ring.try_write(parts)
        if ok or ring.write_position != before:  # a wrap marker alone also needs the reader to retire it
            self._data.ring()
        return ok

    def recv(self) -> bytes | None:
        """The next frame, or None when there is none; wakes the producer if bytes were released."""
        ring = self._ring
        before = ring.read_position
        frame = ring.read()
        if ring.read_position != before:
            self._space.ring()
        return frame

    def send_wait(self, parts: Iterable[Part], timeout: float | None = None) -> bool:
        """``send``, waiting for room up to ``timeout`` seconds (None: forever); False on timeout."""
        if not isinstance(parts, (list, tuple)):
            parts = tuple(parts)  # retried: must not be a one-shot iterator
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.send(parts):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._space.wait(remaining)
        return True

    def recv_wait(self, timeout: float | None = None) -> bytes | None:
        """``recv``, waiting for a frame up to ``timeout`` seconds (None: forever); None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (frame := self.recv()) is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._data.wait(remaining)
        return frame

    def close(self) -> None:
        """Unmap the ring (unlinking it if this side created it) and close this side's pipe ends."""
        self._ring.close()
        self._data.close()
        self._space.close()

    def __enter__(self) -> Channel:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Channel {self._ring!r}>"
