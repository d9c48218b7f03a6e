"""The nats-py internals check: a nats-py without them gets the public-API path, which delivers the
same events end to end (slower), with one warning naming what is missing and the nats-py version."""

from __future__ import annotations

import asyncio
import json
import logging
import os

import nats
from nats.aio.client import Client

from rsigma.nats import internals
from rsigma.nats.internals import NATS_PY_VERSION, lean_path, missing_internal, parse_commands
from tests.support import wait_until
from tests.support.nats_client import WHOAMI, consumer_pending, publish, stored, stream_messages


class WithoutFlushQueue(Client):
    """A nats-py client as a version that renamed `_flush_queue` would look to the check."""

    def __getattribute__(self, name: str):  # type: ignore[no-untyped-def]
        if name == "_flush_queue":
            raise AttributeError(name)
        return super().__getattribute__(name)


def test_the_check_passes_on_the_installed_nats_py_and_names_what_is_missing(nats_server, caplog):
    async def scenario() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            assert missing_internal(nc) is None
            assert lean_path(nc)
        finally:
            await nc.close()
        odd = WithoutFlushQueue()
        assert missing_internal(odd) == "Client._flush_queue"
        with caplog.at_level(logging.WARNING, logger="rsigma.nats"):
            assert not lean_path(odd)
            assert not lean_path(WithoutFlushQueue())  # checked once per client class
        (warning,) = [r for r in caplog.records if "public API" in r.getMessage()]
        assert warning.missing == "Client._flush_queue"  # type: ignore[attr-defined]
        assert warning.nats_py_version == NATS_PY_VERSION  # type: ignore[attr-defined]

    asyncio.run(scenario())
    assert missing_internal(Client()) == "Client._flush_queue (a Queue)"  # set by connect() only


def test_parse_commands_reads_back_what_the_lean_path_writes():
    header = b"NATS/1.0\r\nNats-Msg-Id: s:1:0\r\n\r\n"  # as AsyncPublisher writes it
    data = (
        b"PUB $JS.ACK.s.c.1.2.3.4.0 4\r\n+ACK\r\n"
        b"PUB $JS.API.CONSUMER.MSG.NEXT.s.c _INBOX.x.1 2\r\n{}\r\n"
        b"HPUB detections _INBOX.y.7 %d %d\r\n%shello\r\n" % (len(header), len(header) + 5, header)
    )
    assert parse_commands(data) == [
        ("$JS.ACK.s.c.1.2.3.4.0", "", None, b"+ACK"),
        ("$JS.API.CONSUMER.MSG.NEXT.s.c", "_INBOX.x.1", None, b"{}"),
        ("detections", "_INBOX.y.7", {"Nats-Msg-Id": "s:1:0"}, b"hello"),
    ]


def test_the_public_api_path_delivers_end_to_end(nats_server, daemons, tmp_path):
    """The daemon in a subprocess whose check demands an attribute no nats-py has."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "from rsigma.nats import internals\ninternals.CLIENT_INTERNALS['_not_in_any_nats_py'] = None\n"
    )
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    url = nats_server.url
    d = daemons.start(
        "--input", f"{url}/events.>", "--output", f"{url}/detections", "--dlq", f"{url}/dlq",
        env={"PYTHONPATH": path},
    )  # fmt: skip
    try:
        publish(url, "events.win", [json.dumps(WHOAMI).encode()] * 20 + [b"{not json"])
        wait_until(
            lambda: consumer_pending(url, "rsigma-events", "rsigma-daemon-events") == (0, 0), "all acked"
        )
        detections = [json.loads(m)["rule_title"] for m in stream_messages(url, "rsigma-detections")]
        assert detections == ["Whoami"] * 20
        assert [h["Nats-Msg-Id"] for _, h in stored(url, "rsigma-detections")][:2] == [
            "rsigma-events:1:0",
            "rsigma-events:2:0",
        ]
        assert [json.loads(m)["original_event"] for m in stream_messages(url, "rsigma-dlq")] == ["{not json"]
    finally:
        assert d.terminate() == 0, d.stderr()
    warnings = [r for r in d.logs() if "public API" in r["message"]]
    assert len(warnings) == 1, warnings  # once, though three connections use it
    assert warnings[0]["missing"] == "Client._not_in_any_nats_py"
    assert warnings[0]["nats_py_version"] == NATS_PY_VERSION
    assert internals.CLIENT_INTERNALS.get("_not_in_any_nats_py") is None  # this process is untouched
