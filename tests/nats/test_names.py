"""NATS URLs and JetStream names, derived exactly as RSigma derives them (reference §3.1)."""

from __future__ import annotations

import pytest

from rsigma.errors import ConfigError
from rsigma.nats.names import consumer_name, parse_nats_url, stream_name


@pytest.mark.parametrize(
    ("subject", "stream"),
    [
        ("events.>", "rsigma-events"),
        ("hel.events.>", "rsigma-hel-events"),
        ("a.*.b", "rsigma-a---b"),
        ("e2e.cli.input.single", "rsigma-e2e-cli-input-single"),
        ("a-b", "rsigma-a-b"),
    ],
)
def test_stream_names(subject, stream):
    assert stream_name(subject) == stream


def test_consumer_names():
    assert consumer_name("events.>") == "rsigma-daemon-events"
    assert consumer_name("events.>", "detectors") == "detectors"


def test_parse_urls():
    url = parse_nats_url("nats://127.0.0.1:4333/events.>", "--input")
    assert (url.server, url.subject, url.has_wildcard) == ("nats://127.0.0.1:4333", "events.>", True)
    assert parse_nats_url("nats://nats.local/detections", "--output").server == "nats://nats.local:4222"


@pytest.mark.parametrize(
    ("url", "flag", "reason"),
    [
        ("nats://h:4222/events.>", "--output", "wildcard"),
        ("nats://h:4222/a.*.b", "--dlq", "wildcard"),
        ("nats://h:4222/", "--input", "not a valid subject"),
        ("nats://h:4222/a..b", "--input", "not a valid subject"),
        ("nats://h:port/x", "--input", "port"),
        ("http://h:4222/x", "--input", "expected nats://"),
    ],
)
def test_bad_urls_are_startup_errors(url, flag, reason):
    with pytest.raises(ConfigError, match=reason):
        parse_nats_url(url, flag)


def test_credentials_in_a_url_are_refused_without_echoing_them():
    with pytest.raises(ConfigError) as caught:
        parse_nats_url("nats://alice:s3cret@127.0.0.1:4222/events", "--input")
    assert "s3cret" not in str(caught.value)
    assert "--nats-user" in str(caught.value)
