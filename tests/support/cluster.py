"""What the `--cluster` daemon tests share: the rules (two correlations over logons), the events,
and reading a stream's stored messages."""

from __future__ import annotations

import json

from tests.support.nats_client import stored

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


def stored_data(url: str, stream: str) -> list[bytes]:
    return [data for data, _ in stored(url, stream)]
