"""The HTTP API under hostile or careless clients: huge ingest bodies, browser requests from other
origins, missing tokens, clients that send too slowly, and shutdown with such a client connected.

The requests go over real sockets: `http.client` for streamed (chunked) bodies, raw sockets for
clients that trickle bytes.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import processes

NDJSON = {"Content-Type": "application/x-ndjson"}


def address(d: Any) -> tuple[str, int]:
    host, _, port = d.api.rpartition(":")
    return host, int(port)


def post_stream(d: Any, chunks: Iterator[bytes], headers: dict[str, str], timeout: float = 120.0) -> Any:
    """POST a body generated on the fly (chunked, unless `headers` give a Content-Length)."""
    conn = http.client.HTTPConnection(*address(d), timeout=timeout)
    try:
        conn.request("POST", "/api/v1/events", body=chunks, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def private_mb(pid: int) -> float:
    """Resident memory of a process less its shared memory: a matcher pool's rings count in RSS as
    they are first written, up to their fixed size, whatever the input."""
    kb = processes.memory_kb(pid)
    return (kb["VmRSS"] - kb.get("RssShmem", 0)) / 1024


class PeakMemory:
    """The highest `private_mb` of a process, sampled every 20 ms on a thread while in the block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, private_mb(self.pid))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


def short_lines(count: int, every: int = 1000) -> Iterator[bytes]:
    """`count` short NDJSON lines (one in `every` matches the whoami rule), in chunks of 4,000 lines."""
    for start in range(0, count, 4000):
        yield b"".join(
            b'{"CommandLine":"cmd /c whoami","seq":%d}\n' % i
            if i % every == 0
            else b'{"CommandLine":"notepad.exe","seq":%d}\n' % i
            for i in range(start, min(count, start + 4000))
        )


@pytest.fixture
def http_daemon(daemon, rules_dir, tmp_path):
    def start(*extra: str, **options: Any) -> Any:
        out = tmp_path / "out.ndjson"
        d = daemon("-r", rules_dir, "--input", "http", "--output", f"file://{out}", *extra, **options)
        d.out = out
        return d

    return start


# ---- a large POST ---------------------------------------------------------------------------


def test_large_post_of_short_lines_keeps_memory_bounded(http_daemon, jsonl):
    """20 MiB of 40-byte lines: the daemon's memory grows by a few MB, not by the body's size several
    times over (it buffered the body and split it in memory: +103 MB for 32 MiB), and every line is
    evaluated."""
    d = http_daemon("--batch-size", "512")
    d.post_events({"CommandLine": "warm up"})  # first-request allocations are not the body's
    d.wait_processed(1)
    count = 520_000
    size = sum(len(chunk) for chunk in short_lines(count))
    assert size > 20 << 20
    before = private_mb(d.pid)
    started = time.monotonic()
    with PeakMemory(d.pid) as memory:
        status, body = post_stream(d, short_lines(count), {**NDJSON, "Content-Length": str(size)})
        assert (status, body) == (200, {"accepted": count})
        d.wait_processed(count + 1, timeout=120)
    seconds = time.monotonic() - started
    growth = memory.peak - before
    print(
        f"\n{size / 2**20:.1f} MiB, {count} lines: daemon memory before {before:.1f} MB,"
        f" peak {memory.peak:.1f} MB (+{growth:.1f}), all evaluated in {seconds:.1f} s"
    )
    assert growth < 16, f"the daemon's memory grew by {growth:.1f} MB for a {size >> 20} MiB body"
    assert d.metric("rsigma_events_processed_total") == count + 1
    assert len(jsonl(d.out)) == len(range(0, count, 1000))


@pytest.mark.single_backend
def test_body_over_the_cap_is_413_and_says_what_was_taken(http_daemon, ev, jsonl, wait_until):
    d = http_daemon("--api-max-body-bytes", "1000")
    lines = [
        json.dumps({"CommandLine": f"cmd /c whoami #{i:02d}", "pad": "x" * 50}).encode() for i in range(30)
    ]
    assert {len(line) + 1 for line in lines} == {98}

    # Chunked (no length known up front): the 10 lines that fit whole in the first 1000 bytes are taken.
    status, body = post_stream(
        d, iter([b"\n".join(lines[:15]) + b"\n", b"\n".join(lines[15:]) + b"\n"]), NDJSON
    )
    assert status == 413
    assert body == {
        "error": "request body exceeds --api-max-body-bytes 1000",
        "max_bytes": 1000,
        "accepted": 10,
    }
    d.wait_processed(10)
    assert [r["matched_fields"][0]["value"] for r in jsonl(d.out)] == [
        f"cmd /c whoami #{i:02d}" for i in range(10)
    ]

    # A Content-Length over the cap: refused before anything is read.
    r = d.post("/api/v1/events", b"\n".join(lines[15:]) + b"\n")
    assert r.status == 413 and r.json()["accepted"] == 0
    assert d.metric("rsigma_api_requests_refused_total", reason="body_too_large") == 2
    assert d.metric("rsigma_events_processed_total") == 10
    # Under the cap, the same endpoint takes a body as before.
    assert d.post("/api/v1/events", b"\n".join(lines[20:25]) + b"\n").json() == {"accepted": 5}
    d.wait_processed(15)


@pytest.mark.single_backend
def test_oversized_line_in_a_streamed_body_goes_to_the_dlq(http_daemon, tmp_path, jsonl, wait_until):
    dlq = tmp_path / "dlq.ndjson"
    d = http_daemon("--max-event-bytes", "1000", "--dlq", f"file://{dlq}")
    huge = b'{"CommandLine":"' + b"a" * 200_000 + b'"}'
    chunks = [
        b'{"CommandLine":"cmd /c whoami #1"}\n',
        huge[:70_000],
        huge[70_000:] + b"\n",
        b'{"CommandLine":"whoami #2"}',
    ]
    assert post_stream(d, iter(chunks), NDJSON) == (200, {"accepted": 3})
    d.wait_processed(2)
    (entry,) = wait_until(lambda: jsonl(dlq), "the DLQ entry")
    assert entry["error"] == f"line of {len(huge)} bytes exceeds --max-event-bytes 1000"
    assert entry["original_event"].endswith(f"...[{len(huge) - 1000} more bytes]")
    assert [r["matched_fields"][0]["value"] for r in jsonl(d.out)] == ["cmd /c whoami #1", "whoami #2"]


# ---- browser requests from other origins ----------------------------------------------------


@pytest.mark.single_backend
def test_cross_origin_and_simple_content_type_posts_are_refused(http_daemon, ev, rules_dir):
    """What a web page on the same host could send (a form, a no-cors fetch) ingests nothing and
    reloads nothing; curl-style requests with the right content type still work."""
    d = http_daemon()
    body = ev.ndjson(ev.whoami(1))
    evil = {"Origin": "http://evil.example"}
    for headers, status in [
        ({**evil, "Content-Type": "text/plain"}, 403),
        ({**evil, **NDJSON}, 403),
        ({"Origin": "http://127.0.0.1:1", **NDJSON}, 403),  # another port on this host
        ({"Origin": "null", **NDJSON}, 403),
        ({"Sec-Fetch-Site": "cross-site", **NDJSON}, 403),
        ({"Sec-Fetch-Site": "same-site", **NDJSON}, 403),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415),
    ]:
        r = d.post("/api/v1/events", body, headers=headers)
        assert r.status == status, (headers, r.status, r.body)
        assert "error" in r.json()
    for headers, status in [
        ({**evil, "Content-Type": "text/plain"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ]:
        r = d.post("/api/v1/reload", b"x=1", headers=headers)
        assert r.status == status, (headers, r.status, r.body)
    assert d.metric("rsigma_reloads_total") == 0
    assert d.metric("rsigma_api_requests_refused_total", reason="cross_origin") == 8
    assert d.metric("rsigma_api_requests_refused_total", reason="unsupported_media_type") == 4

    # The daemon's own origin, and clients that send no Origin (curl), are served.
    own = {"Origin": f"http://{d.api}", "Sec-Fetch-Site": "same-origin"}
    assert d.post("/api/v1/events", ev.ndjson(ev.whoami(2)), headers={**own, **NDJSON}).json() == {
        "accepted": 1
    }
    assert (
        d.post("/api/v1/events", ev.ndjson(ev.whoami(3)), headers={"Content-Type": "application/json"}).status
        == 200
    )
    d.wait_processed(2)
    assert d.metric("rsigma_events_processed_total") == 2
    assert d.post("/api/v1/reload").status == 200
    assert d.post("/api/v1/reload", b"{}", headers={"Content-Type": "application/json"}).status == 200
    assert d.metric("rsigma_reloads_total") == 2


# ---- bearer token ---------------------------------------------------------------------------


@pytest.mark.single_backend
def test_token_required_for_ingest_and_reload_when_set(http_daemon, ev):
    d = http_daemon("--api-token-env", "RSIGMA_TEST_API_TOKEN", env={"RSIGMA_TEST_API_TOKEN": "s3cret-token"})
    body = ev.ndjson(ev.whoami(1))
    for path in ("/api/v1/events", "/api/v1/reload"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0LXRva2Vu"}):
            r = d.post(path, body if path.endswith("events") else b"", headers=headers)
            assert r.status == 401, (path, headers, r.status)
            assert r.headers["WWW-Authenticate"] == "Bearer"
            assert r.json() == {"error": "missing or invalid bearer token"}
    assert d.metric("rsigma_api_auth_failures_total", reason="unauthorized") == 6
    assert d.metric("rsigma_events_processed_total") == 0
    assert d.metric("rsigma_reloads_total") == 0
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/status", "/api/v1/rules"):
        assert d.get(path).status == 200, path

    token = {"Authorization": "Bearer s3cret-token"}
    assert d.post("/api/v1/events", body, headers=token).json() == {"accepted": 1}
    assert d.post("/api/v1/reload", headers=token).status == 200
    d.wait_processed(1)


@pytest.mark.single_backend
def test_token_variable_unset_is_a_startup_error(run_daemon, rules_dir):
    result = run_daemon("-r", rules_dir, "--input", "http", "--api-token-env", "RSIGMA_TEST_NO_SUCH_VARIABLE")
    assert result.returncode == 3
    assert "--api-token-env RSIGMA_TEST_NO_SUCH_VARIABLE: the variable is unset or empty" in result.stderr


# ---- slow clients ---------------------------------------------------------------------------


def trickle(d: Any, head: bytes, data: bytes, interval: float, result: dict[str, Any]) -> None:
    """Send `head` at once, then `data` a byte at a time, until the server answers or closes; record
    the answer (b"" for a close without one) and when it came."""
    started = time.monotonic()
    try:
        with socket.create_connection(address(d), timeout=30) as s:
            s.sendall(head)
            for byte in data:
                if select.select([s], [], [], 0)[0]:
                    break
                s.sendall(bytes([byte]))
                time.sleep(interval)
            result["answer"] = s.recv(65536)
    except OSError as e:
        result["error"] = e
    result["seconds"] = time.monotonic() - started


def events_head(d: Any, length: int = 100_000) -> bytes:
    return (
        f"POST /api/v1/events HTTP/1.1\r\nHost: {d.api}\r\nContent-Type: application/x-ndjson\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.single_backend
def test_slow_headers_are_cut_off(http_daemon):
    """A client that sends its request head a byte every 0.2 s is disconnected after --api-read-timeout."""
    d = http_daemon("--api-read-timeout", "1")
    result: dict[str, Any] = {}
    trickle(d, b"", events_head(d), 0.2, result)
    print(f"\nslow headers cut off after {result['seconds']:.1f} s")
    assert result.get("answer", b"") == b"" or "error" in result
    assert result["seconds"] < 5, result


@pytest.mark.single_backend
def test_stalled_or_trickling_body_is_408_and_keeps_what_came(http_daemon, ev, jsonl, wait_until):
    d = http_daemon("--api-read-timeout", "1")
    stalled: dict[str, Any] = {}
    trickle(d, events_head(d) + ev.ndjson(ev.whoami(1), ev.whoami(2)) + b'{"Comm', b"", 0, stalled)
    assert stalled["answer"].startswith(b"HTTP/1.1 408 "), stalled
    assert stalled["answer"].endswith(
        b'{"error": "request body stalled: nothing received for 1 s", "accepted": 2}'
    )

    slow: dict[str, Any] = {}  # 10 bytes a second: never idle for 1 s, but far too slow
    trickle(d, events_head(d), ev.ndjson(ev.whoami(3)) * 5, 0.1, slow)
    assert slow["answer"].startswith(b"HTTP/1.1 408 "), slow
    assert b"request body too slow" in slow["answer"] and slow["answer"].endswith(b'"accepted": 0}')
    print(f"\nbody trickling at 10 B/s cut off after {slow['seconds']:.1f} s")
    assert slow["seconds"] < 5
    assert d.metric("rsigma_api_requests_refused_total", reason="read_timeout") == 2
    d.wait_processed(2)
    assert [r["matched_fields"][0]["value"] for r in jsonl(d.out)] == ["cmd /c whoami #1", "cmd /c whoami #2"]


def test_sigterm_with_slow_clients_connected_exits_within_the_drain_timeout(http_daemon, ev):
    """SIGTERM while one client trickles its headers and another its body (a byte every 0.5 s, with the
    default 10 s read timeout): the daemon exits within --drain-timeout plus a small margin (it waited
    for the body to finish, up to 60 s), and the events accepted before are evaluated."""
    d = http_daemon("--drain-timeout", "2")
    clients = []
    for head, data in [
        (b"", events_head(d)),
        (events_head(d) + ev.ndjson(ev.whoami(1)), ev.ndjson(ev.whoami(2))),
    ]:
        result: dict[str, Any] = {}
        thread = threading.Thread(target=trickle, args=(d, head, data, 0.5, result), daemon=True)
        thread.start()
        clients.append((thread, result))
    d.wait_processed(1)
    time.sleep(0.5)
    started = time.monotonic()
    code = d.terminate(timeout=30)
    seconds = time.monotonic() - started
    print(f"\nSIGTERM to exit with two slow clients connected: {seconds:.1f} s (--drain-timeout 2)")
    assert code == 0
    assert seconds < 2 + 3, f"{seconds:.1f} s from SIGTERM to exit"
    assert not processes.pid_alive(d.pid)
    for thread, _ in clients:
        thread.join(30)
    assert d.find_log("daemon stopped")["events_processed"] == 1


@pytest.mark.single_backend
def test_client_gone_mid_body_keeps_the_lines_it_sent(http_daemon, ev, jsonl, wait_until):
    """A client that closes its connection halfway through a body: its whole lines are evaluated, the
    partial one is not, and the log says how many were taken (a warning, not an error trace)."""
    d = http_daemon()
    with socket.create_connection(address(d)) as s:
        s.sendall(events_head(d) + ev.ndjson(ev.whoami(1)) + b'{"CommandLine": "cmd /c who')
    record = wait_until(
        lambda: d.find_log(
            "ingest request cut short: the client closed the connection before the end of its body"
        ),
        "the warning about the lost connection",
    )
    assert record["accepted"] == 1 and record["level"] == "warning"
    d.wait_processed(1)
    assert [r["matched_fields"][0]["value"] for r in jsonl(d.out)] == ["cmd /c whoami #1"]
    assert not [r for r in d.logs() if r.get("level") in ("error", "critical")]
