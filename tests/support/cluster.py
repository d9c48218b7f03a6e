"""What the `--cluster` daemon tests share: the rules (two correlations over logons), the events,
reading a stream's stored messages, and starting members and comparing their output with one plain
daemon's."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from typing import Any

import nats

from tests.support.daemon import DaemonProcess, Daemons
from tests.support.nats_client import ack_floor, stored
from tests.support.nats_server import NatsServer
from tests.support.waiting import wait_until

RULES = """
title: Whoami
id: 11111111-1111-4111-8111-111111111111
level: high
logsource: {product: test}
detection:
    selection:
        CommandLine|contains: whoami
    condition: selection
---
title: Failed logon
id: 22222222-2222-4222-8222-222222222222
name: failed_logon
level: low
logsource: {product: test}
detection:
    selection:
        EventID: 4625
    condition: selection
---
title: Logon
id: 55555555-5555-4555-8555-555555555555
name: logon
level: low
logsource: {product: test}
detection:
    selection:
        EventID: 4624
    condition: selection
---
title: Brute force
id: 33333333-3333-4333-8333-333333333333
level: critical
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [User]
    timespan: 10m
    condition: {gte: 3}
---
title: Failed then logon
id: 66666666-6666-4666-8666-666666666666
level: high
correlation:
    type: temporal
    rules: [failed_logon, logon]
    group-by: [User]
    timespan: 5m
"""

CONSUMER = "c1"  # --cluster c1 implies the consumer group c1


def event(event_id: int, user: str, minute: float, command: str = "notepad") -> bytes:
    seconds = int(minute * 60)
    stamp = f"2024-01-01T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"
    return json.dumps(
        {"EventID": event_id, "User": user, "CommandLine": command, "@timestamp": stamp}
    ).encode()


def random_stream(seed: int, count: int, start_minute: float = 0.0) -> list[bytes]:
    """Failed logons, logons and others of several users: brute-force counts and temporal pairs."""
    rng = random.Random(seed)
    users = [f"user{i}" for i in range(10)]
    return [
        event(rng.choice([4625, 4625, 4624, 0]), rng.choice(users), start_minute + i * 0.2, "whoami")
        for i in range(count)
    ]


def stored_data(url: str, stream: str) -> list[bytes]:
    return [data for data, _ in stored(url, stream)]


PARTITIONS = 64
HEARTBEAT = "0.5"  # a member key lives ceil(3 x 0.5) = 2 s
TTL_S = 2.0
OUTPUT = "results"


def member(
    daemons: Daemons, server: NatsServer, *args: Any, wait: bool = True, **options: Any
) -> DaemonProcess:
    """A member of cluster c1 reading `events`, writing to `results`; `options` as `Daemons.start`'s
    (command="serve", workers=2 for a pool)."""
    return daemons.start(
        *("--input", f"{server.url}/events", "--cluster", "c1", "--output", f"{server.url}/{OUTPUT}"),
        *("--cluster-heartbeat", HEARTBEAT, "--nats-ack-wait", "2"),
        *args,
        wait=wait,
        **options,
    )


def lines(d: DaemonProcess) -> Counter[str]:
    return Counter(json.dumps(r, sort_keys=True) for r in d.results())


def output_stream(url: str) -> Counter[str]:
    messages = stored_data(url, f"rsigma-{OUTPUT}")
    return Counter(json.dumps(json.loads(data), sort_keys=True) for data in messages)


def duplicate_window_s(url: str, stream: str) -> float:
    async def go() -> float:
        nc = await nats.connect(url)
        try:
            return float((await nc.jetstream().stream_info(stream)).config.duplicate_window)
        finally:
            await nc.close()

    return asyncio.run(go())


def wait_output(url: str, expected: Counter[str], started: float) -> None:
    """The output stream ends up with each result once; its duplicate window covers the whole test,
    so a result sent again (a replay, a redelivered event) is kept once."""
    wait_until(lambda: output_stream(url) == expected, "the output stream holds the one-daemon results")
    assert duplicate_window_s(url, f"rsigma-{OUTPUT}") > time.monotonic() - started


def owned(members: list[DaemonProcess]) -> list[set[int]]:
    return [set(m.status()["cluster"]["owned_partitions"]) for m in members]


def split(members: list[DaemonProcess]) -> bool:
    """Every member sees them all, and their owned sets are disjoint and cover every partition."""
    statuses = [m.status()["cluster"] for m in members]
    if any(len(s["members"]) != len(members) or s["partitions_replaying"] for s in statuses):
        return False
    sets = [set(s["owned_partitions"]) for s in statuses]
    return all(sets) and sum(map(len, sets)) == PARTITIONS and set().union(*sets) == set(range(PARTITIONS))


def all_acked(url: str, events: int) -> None:
    wait_until(lambda: ack_floor(url, "rsigma-events", CONSUMER) == events, "acked by members", timeout=60)


def one_daemon_results(daemons: Daemons, server: NatsServer, events: int, *args: Any) -> Counter[str]:
    """The results of one plain daemon (no `--cluster`, `--workers 0`) reading the whole stream in order."""
    plain = daemons.start("--input", f"{server.url}/events", "--consumer-group", "plain", *args)
    wait_until(lambda: ack_floor(server.url, "rsigma-events", "plain") == events, "acked by the plain daemon")
    return lines(plain)


def correlation_kinds(results: Counter[str]) -> Counter[str]:
    """How many results of each correlation type (None: detections)."""
    return Counter(json.loads(line).get("correlation_type") for line in results.elements())


#: The property tests' rules: the four correlation types the issue names, over three detections, with
#: two group keys (User, SourceIp), so windows of one event land in several partitions.
PROPERTY_RULES = """
title: Failed logon
id: 22222222-2222-4222-8222-222222222222
name: failed_logon
level: low
logsource: {product: test}
detection:
    selection:
        EventID: 4625
    condition: selection
---
title: Logon
id: 55555555-5555-4555-8555-555555555555
name: logon
level: low
logsource: {product: test}
detection:
    selection:
        EventID: 4624
    condition: selection
---
title: Whoami
id: 11111111-1111-4111-8111-111111111111
name: whoami_run
level: high
logsource: {product: test}
detection:
    selection:
        EventID: 4688
        CommandLine|contains: whoami
    condition: selection
---
title: Brute force
id: 33333333-3333-4333-8333-333333333333
level: critical
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [User]
    timespan: 10m
    condition: {gte: 3}
---
title: Password spray
id: 77777777-7777-4777-8777-777777777777
level: high
correlation:
    type: value_count
    rules: [failed_logon]
    group-by: [SourceIp]
    timespan: 10m
    condition: {field: User, gte: 3}
---
title: Failed then logon
id: 66666666-6666-4666-8666-666666666666
level: high
correlation:
    type: temporal
    rules: [failed_logon, logon]
    group-by: [User]
    timespan: 5m
---
title: Logon then whoami
id: 88888888-8888-4888-8888-888888888888
level: high
correlation:
    type: temporal_ordered
    rules: [logon, whoami_run]
    group-by: [User]
    timespan: 5m
"""

#: The correlation types PROPERTY_RULES hold, each of which a property stream must fire.
PROPERTY_TYPES = ("event_count", "value_count", "temporal", "temporal_ordered")


def property_stream(seed: int, count: int) -> list[bytes]:
    """Random events for PROPERTY_RULES: a random number of users and source addresses, times that
    mostly advance by up to 20 s and sometimes step back up to a minute (late events)."""
    rng = random.Random(seed)
    users = [f"user{i}" for i in range(rng.randint(3, 10))]
    addresses = [f"10.0.0.{i}" for i in range(rng.randint(2, 5))]
    second = 0.0
    out = []
    for _ in range(count):
        second = max(0.0, second - rng.uniform(0, 60)) if rng.random() < 0.1 else second + rng.uniform(0, 20)
        event_id = rng.choice([4625, 4625, 4625, 4624, 4624, 4688, 0])
        stamp = f"2024-01-01T{int(second) // 3600:02d}:{int(second) // 60 % 60:02d}:{int(second) % 60:02d}Z"
        out.append(
            json.dumps(
                {
                    "EventID": event_id,
                    "User": rng.choice(users),
                    "SourceIp": rng.choice(addresses),
                    "CommandLine": rng.choice(["whoami /all", "notepad.exe"]),
                    "@timestamp": stamp,
                }
            ).encode()
        )
    return out
