"""Hits collected where events are evaluated, shipped as hit messages in any order and applied by
their owner in source order up to moving floors, give the correlation results of one evaluator
reading the stream in order: every level-1 correlation type, with and without --jq extraction."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from rsigma.cluster.applier import apply_in_order
from rsigma.cluster.hits import hit_messages
from rsigma.cluster.ordering import HitOrdering
from rsigma.correlation.engine import CorrelationConfig
from rsigma.evaluator import Evaluator
from rsigma.formats.extract import Extraction
from rsigma.payloads import PayloadOptions, evaluate_batch

RULES = """
title: Failed logon
name: failed
logsource: {product: test}
detection: {sel: {action: fail}, condition: sel}
---
title: Logon
name: logon
logsource: {product: test}
detection: {sel: {action: ok}, condition: sel}
---
title: Transfer
name: transfer
logsource: {product: test}
detection: {sel: {action: xfer}, condition: sel}
---
title: Brute force
correlation: {type: event_count, rules: [failed], group-by: [User], timespan: 60s, condition: {gte: 3}}
---
title: Failed then logon
correlation: {type: temporal_ordered, rules: [failed, logon], group-by: [User], timespan: 90s}
---
title: Either
correlation: {type: temporal, rules: [logon, transfer], group-by: [Host], timespan: 30s}
---
title: Hosts per user
correlation:
    type: value_count
    rules: [failed, logon]
    group-by: [User]
    timespan: 120s
    condition: {field: Host, gte: 3}
---
title: Bytes out
correlation:
    type: value_sum
    rules: [transfer]
    group-by: [User]
    timespan: 60s
    condition: {field: bytes, gte: 1000}
"""

PARTITIONS = 8


def events(rng: random.Random, n: int) -> list[dict]:
    out = []
    t = 1_700_000_000
    for _ in range(n):
        t += rng.choice([0, 1, 5, 20])
        out.append(
            {
                "action": rng.choice(["fail", "fail", "ok", "xfer", "noise"]),
                "User": rng.choice(["alice", "bob", "carol"]),
                "Host": rng.choice(["h1", "h2", "h3", "h4"]),
                "bytes": rng.randint(1, 600),
                "ts": t,
            }
        )
    return out


def payloads(evs: list[dict], rng: random.Random, extract: bool) -> list[bytes]:
    if not extract:
        return [json.dumps(e).encode() for e in evs]
    out, i = [], 0
    while i < len(evs):
        k = rng.randint(1, 3)
        out.append(json.dumps({"records": evs[i : i + k]}).encode())
        i += k
    return out


def correlation_lines(lines: list[bytes]) -> Counter[str]:
    return Counter(line.decode() for line in lines if b'"correlation_type"' in line)


@pytest.mark.parametrize("extract", [False, True], ids=["one-event", "jq"])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "config", [{}, {"action": "reset"}, {"suppress": 30.0}], ids=["alert", "reset", "suppress"]
)
def test_shipped_and_ordered_hits_correlate_like_one_evaluator(seed, extract, config):
    rng = random.Random(seed)
    stream = payloads(events(rng, 400), rng, extract)
    settings = CorrelationConfig(timestamp_fields=("ts",), **config)
    options = PayloadOptions(1 << 20, extraction=Extraction("jq", ".records[]") if extract else None)
    one = Evaluator.from_yaml(RULES, settings)
    evaluating = Evaluator.from_yaml(RULES, settings)  # a member evaluating events
    owner = Evaluator.from_yaml(RULES, settings)  # the member owning every partition

    expected: list[bytes] = []
    for outcome in evaluate_batch(one, stream, options).outcomes:
        if isinstance(outcome, tuple):
            expected += outcome[0]

    shipped = []
    for start in range(0, len(stream), 16):
        batch = evaluate_batch(evaluating, stream[start : start + 16], options, collect_hits=True)
        assert not any(
            b'"correlation_type"' in line for o in batch.outcomes if isinstance(o, tuple) for line in o[0]
        )
        for i, hits in enumerate(batch.hits or ()):
            if hits:
                shipped += hit_messages("s", start + i + 1, hits, batch.keys, PARTITIONS)
    arrival = shipped + rng.sample(shipped, len(shipped) // 10)  # and some copies
    rng.shuffle(arrival)

    ordering = HitOrdering(range(PARTITIONS))
    got: list[bytes] = []
    arrived: set[tuple[int, int]] = set()
    for message in arrival:
        ordering.add(message)
        arrived.add((message.sequence, message.partition))
        if rng.random() < 0.2:  # a floor read: every message at or below it has arrived
            missing = [m.sequence for m in shipped if (m.sequence, m.partition) not in arrived]
            applied, unknown = apply_in_order(
                owner.correlation, ordering.ready(min(missing, default=len(stream)) - 1), "s"
            )
            assert unknown == 0
            got += [json.dumps(a.result.to_dict(), separators=(",", ":")).encode() for a in applied]
    applied, _ = apply_in_order(owner.correlation, ordering.ready(len(stream)), "s")
    got += [json.dumps(a.result.to_dict(), separators=(",", ":")).encode() for a in applied]

    want = correlation_lines(expected)
    assert sum(want.values()) >= 5
    assert Counter(json.loads(line)["correlation_type"] for line in want.elements()).keys() >= {
        "event_count",
        "temporal_ordered",
    }
    assert correlation_lines(got) == Counter(
        {json.dumps(json.loads(k), separators=(",", ":")): v for k, v in want.items()}
    )
