"""The correlation rules and event streams of the sharding tests (tests/correlation/test_sharding.py)
and of the pool-equivalence tests (tests/workers/test_pool_equivalence.py)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
EPOCH0 = T0.timestamp()
CLOCK = EPOCH0 + 400.0  # the "wall clock" of events without a time: fixed, so runs are comparable

# Every correlation type; group-by on one and two fields; no group-by; aliases keyed by name and by
# id; an event matching two rules of one correlation (r-h1); chains three levels deep, a correlation
# fed both by rules and by a correlation (c-ordered, c-mixed), value fields and group fields read
# from the event through a chain (c-chain2, c-sum-chain); `generate` making an intermediate visible.
RULES = """
title: Login failure
id: r-fail
name: login_fail
logsource: {product: test}
detection: {sel: {action: fail}, condition: sel}
---
title: Login success
name: login_ok
logsource: {product: test}
detection: {sel: {action: ok}, condition: sel}
---
title: File transfer
id: r-xfer
name: transfer
logsource: {product: test}
detection: {sel: {action: xfer}, condition: sel}
---
title: Recon command
id: r-recon
logsource: {product: test}
detection: {sel: {action: recon}, condition: sel}
---
title: Activity on h1
id: r-h1
logsource: {product: test}
detection: {sel: {Host: h1, action: [fail, xfer]}, condition: sel}
---
title: Repeated failures
id: c-count
name: repeated_failures
generate: true
correlation:
    type: event_count
    rules: [login_fail, r-h1]
    group-by: [User]
    timespan: 60s
    condition: {gte: 3}
---
title: Users per host
name: users_per_host
correlation:
    type: value_count
    rules: [login_fail, login_ok]
    group-by: [Host]
    timespan: 120s
    condition: {field: User, gte: 2}
---
title: Recon and transfer
id: c-temporal
correlation:
    type: temporal
    rules: [r-recon, transfer]
    group-by: [Host, User]
    timespan: 90s
---
title: Failures then success
id: c-ordered
correlation:
    type: temporal_ordered
    rules: [repeated_failures, login_ok]
    group-by: [User]
    timespan: 120s
---
title: Bytes out
id: c-sum
name: bytes_out
correlation:
    type: value_sum
    rules: [transfer]
    group-by: [User]
    timespan: 90s
    condition: {field: bytes, gt: 1500}
---
title: Average transfer
id: c-avg
correlation:
    type: value_avg
    rules: [r-xfer, r-h1]
    group-by: [Host, Site]
    timespan: 60s
    condition: {field: bytes, gte: 400, lt: 800}
---
title: Transfer percentile
id: c-pct
correlation:
    type: value_percentile
    rules: [transfer]
    timespan: 100s
    condition: {field: bytes, percentile: 75, gt: 600}
---
title: Median per account
id: c-median
correlation:
    type: value_median
    rules: [transfer, login_fail]
    group-by: [account]
    aliases: {account: {transfer: Target, login_fail: User}}
    timespan: 120s
    condition: {field: bytes, gte: 300}
---
title: Account failed then moved
id: c-alias
correlation:
    type: temporal
    rules: [login_fail, transfer]
    group-by: [account]
    aliases: {account: {login_fail: User, r-xfer: Target}}
    timespan: 60s
---
title: Busy host
id: c-chain
name: busy_host
correlation:
    type: event_count
    rules: [users_per_host]
    group-by: [Host]
    timespan: 300s
    condition: {gte: 2}
---
title: Sites of busy hosts
id: c-chain2
generate: true
correlation:
    type: value_count
    rules: [busy_host]
    group-by: [Site]
    timespan: 300s
    condition: {field: User, gte: 2}
---
title: Failures or big transfers per person
id: c-mixed
correlation:
    type: event_count
    rules: [repeated_failures, bytes_out, login_ok]
    group-by: [person, Host]
    aliases: {person: {repeated_failures: User, bytes_out: User, login_ok: User}}
    timespan: 200s
    condition: {gte: 2}
---
title: Bytes of failing users
id: c-sum-chain
correlation:
    type: value_sum
    rules: [repeated_failures]
    group-by: [User]
    timespan: 300s
    condition: {field: bytes, gte: 100}
"""


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


# ---- event streams ------------------------------------------------------------------------------

ACTIONS = ["fail", "fail", "fail", "ok", "xfer", "xfer", "recon", "noise"]
USERS = ["alice", "bob", "carol", None]
BYTES: list[Any] = [None, 50, 350, 700, 1100, "900", "n/a", 450.5]

EventSpec = tuple[str, str, Any, str, Any, Any, int, int, int]


def build(specs: Sequence[EventSpec]) -> list[dict[str, Any]]:
    """Events from (action, host, user, site, target, bytes, gap, back, time format) tuples."""
    t = EPOCH0
    events = []
    for action, host, user, site, target, nbytes, gap, back, fmt in specs:
        t += gap
        when = t - back  # out of order: within the windows, or too late
        event: dict[str, Any] = {"action": action, "Host": host, "Site": site}
        if user is not None:
            event["User"] = user
        if target is not None:
            event["Target"] = target
        if nbytes is not None:
            event["bytes"] = nbytes
        if fmt == 0:
            event["@timestamp"] = at(when - EPOCH0)
        elif fmt == 1:
            event["timestamp"] = when
        elif fmt == 2:
            event["@timestamp"] = int(when * 1000)
        # fmt 3: no time (wallclock fallback, or skipped)
        events.append(event)
    return events


event_specs = st.tuples(
    st.sampled_from(ACTIONS),
    st.sampled_from(["h1", "h2", "h3"]),
    st.sampled_from(USERS),
    st.sampled_from(["s1", "s2"]),
    st.sampled_from(["alice", "bob", None]),
    st.sampled_from(BYTES),
    st.sampled_from([0, 0, 1, 3, 7, 15, 25]),
    st.sampled_from([0] * 10 + [5, 40, 150]),
    st.sampled_from([0, 0, 1, 2, 3]),
)


def random_specs(rng: random.Random, n: int) -> list[EventSpec]:
    return [
        (
            rng.choice(ACTIONS),
            rng.choice(["h1", "h2", "h3"]),
            rng.choice(USERS),
            rng.choice(["s1", "s2"]),
            rng.choice(["alice", "bob", None]),
            rng.choice(BYTES),
            rng.choice([0, 0, 1, 3, 7, 15, 25]),
            rng.choice([0] * 10 + [5, 40, 150]),
            rng.choice([0, 0, 1, 2, 3]),
        )
        for _ in range(n)
    ]
