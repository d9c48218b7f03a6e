"""Every example of the Sigma correlation specification v2.1.0, made runnable with events.

The correlation documents are the specification's own (section "Correlation Types", "Field Name
Aliases" and "Example"); only the base detection rules they reference are written here, since the
specification gives them by id or name only. Semantics as in docs/correlation.md.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rsigma.correlation.engine import CorrelationResult
from rsigma.engine import Detection
from rsigma.evaluator import Evaluator

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    """ISO 8601 time `seconds` after T0."""
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def load(*docs: str) -> Evaluator:
    return Evaluator.from_yaml("---\n".join(textwrap.dedent(d).strip() + "\n" for d in docs))


def feed(ev: Evaluator, events: list[dict[str, Any]]) -> list[Any]:
    return [r for e in events for r in ev.process(e)]


def correlations(results: list[Any]) -> list[CorrelationResult]:
    return [r for r in results if isinstance(r, CorrelationResult)]


def rule(title: str, selection: str, *, rule_id: str | None = None, name: str | None = None) -> str:
    head = f"title: {title}\n"
    if rule_id:
        head += f"id: {rule_id}\n"
    if name:
        head += f"name: {name}\n"
    body = textwrap.indent(textwrap.dedent(selection).strip(), " " * 8)
    return (
        head
        + f"logsource:\n    product: test\ndetection:\n    selection:\n{body}\n    condition: selection\n"
    )


# ---- event_count -----------------------------------------------------------------------------

FAILED_LOGIN_ID = "5638f7c0-ac70-491d-8465-2a65075e0d86"
FAILED_LOGIN = rule("Failed login", "EventID: 4625", rule_id=FAILED_LOGIN_ID)

MANY_FAILED_LOGINS = """
title: Many failed logins
id: 0e95725d-7320-415d-80f7-004da920fc11
correlation:
    type: event_count
    rules:
        - 5638f7c0-ac70-491d-8465-2a65075e0d86
    group-by:
        - ComputerName
    timespan: 1h
    condition:
        gte: 100
"""


def failed(host: str, t: float, user: str = "bob", workstation: str = "ws1") -> dict[str, Any]:
    return {
        "EventID": 4625,
        "ComputerName": host,
        "User": user,
        "WorkstationName": workstation,
        "@timestamp": at(t),
    }


def test_event_count_many_failed_logins_fires_at_the_hundredth_event():
    ev = load(FAILED_LOGIN, MANY_FAILED_LOGINS)
    # 99 failures on srv1 within the hour, and failures on another host that must not count.
    results = feed(ev, [failed("srv1", i * 30) for i in range(99)] + [failed("srv2", 5), failed("srv2", 6)])
    assert results == []
    (hit,) = ev.process(failed("srv1", 99 * 30))
    assert isinstance(hit, CorrelationResult)
    assert hit.to_dict() == {
        "rule_title": "Many failed logins",
        "rule_id": "0e95725d-7320-415d-80f7-004da920fc11",
        "level": None,
        "tags": [],
        "correlation_type": "event_count",
        "group_key": [["ComputerName", "srv1"]],
        "aggregated_value": 100.0,
        "timespan_secs": 3600,
    }


def test_event_count_hundred_failures_spread_over_more_than_an_hour_do_not_fire():
    ev = load(FAILED_LOGIN, MANY_FAILED_LOGINS)
    # 100 failures, 37 s apart: 3663 s from first to last, so no hour holds all of them.
    assert correlations(feed(ev, [failed("srv1", i * 37) for i in range(100)])) == []


def test_event_count_other_events_are_not_counted():
    ev = load(FAILED_LOGIN, MANY_FAILED_LOGINS)
    noise = [{"EventID": 4624, "ComputerName": "srv1", "@timestamp": at(i)} for i in range(200)]
    assert feed(ev, noise + [failed("srv1", 300 + i) for i in range(99)]) == []


# ---- value_count ------------------------------------------------------------------------------

FAILED_LOGIN_USERS = """
title: Failed login
id: 0e95725d-7320-415d-80f7-004da920fc12
correlation:
    type: value_count
    rules:
        - 5638f7c0-ac70-491d-8465-2a65075e0d86
    group-by:
        - ComputerName
        - WorkstationName
    timespan: 1d
    condition:
        field: User
        gte: 100
"""


def test_value_count_distinct_users_per_source_and_destination():
    ev = load(FAILED_LOGIN, FAILED_LOGIN_USERS)
    # 99 distinct users, each failing three times, over most of a day.
    events = [failed("srv1", 800 * i + k, user=f"user{i}") for i in range(99) for k in range(3)]
    # The 100th distinct user from another workstation is another group.
    events.append(failed("srv1", 80000, user="user99", workstation="ws2"))
    assert feed(ev, events) == []
    (hit,) = ev.process(failed("srv1", 80001, user="user99"))
    assert hit.to_dict()["group_key"] == [["ComputerName", "srv1"], ["WorkstationName", "ws1"]]
    assert hit.aggregated_value == 100.0
    assert hit.to_dict()["correlation_type"] == "value_count"
    assert hit.to_dict()["timespan_secs"] == 86400


# ---- temporal ---------------------------------------------------------------------------------

# The recon rules also have ids, but the correlation names them (sigma-engine.md §3.5 item 2).
RECON_RULES = [
    rule(
        f"Recon {cmd}",
        f"CommandLine: {cmd}",
        rule_id=f"aaaaaaaa-0000-4000-8000-00000000000{x}",
        name=f"recon_cmd_{x}",
    )
    for x, cmd in (("a", "whoami"), ("b", "net user"), ("c", "ipconfig"))
]

RECON = """
title: Reconnaissance burst
correlation:
    type: temporal
    rules:
        - recon_cmd_a
        - recon_cmd_b
        - recon_cmd_c
    group-by:
        - ComputerName
        - User
    timespan: 5m
"""

CMD = {"a": "whoami", "b": "net user", "c": "ipconfig"}


def recon(which: str, t: float, host: str = "pc1", user: str = "eve") -> dict[str, Any]:
    return {"CommandLine": CMD[which], "ComputerName": host, "User": user, "@timestamp": at(t)}


@pytest.mark.parametrize("order", ["abc", "cab", "bca", "cba"])
def test_temporal_three_recon_rules_in_any_order_within_five_minutes(order):
    ev = load(*RECON_RULES, RECON)
    results = [ev.process(recon(which, 100 * i)) for i, which in enumerate(order)]
    # Nothing before the third rule; the base detections are not output (generate is false).
    assert results[0] == [] and results[1] == []
    (hit,) = results[2]
    assert hit.to_dict()["group_key"] == [["ComputerName", "pc1"], ["User", "eve"]]
    assert hit.aggregated_value == 3.0
    assert hit.to_dict()["correlation_type"] == "temporal"


@pytest.mark.parametrize("pair", ["ab", "bc", "ac", "aa", "cc"])
def test_temporal_without_condition_requires_all_three_rules(pair):
    """sigma-engine.md §3.5 item 1: a temporal rule without `condition` must need every rule (not gte: 1)."""
    ev = load(*RECON_RULES, RECON)
    assert feed(ev, [recon(which, i) for i, which in enumerate(pair * 3)]) == []


def test_temporal_rules_split_across_users_or_hosts_do_not_fire():
    ev = load(*RECON_RULES, RECON)
    events = [recon("a", 0), recon("b", 1), recon("c", 2, user="mallory"), recon("c", 3, host="pc2")]
    assert feed(ev, events) == []
    (hit,) = ev.process(recon("c", 4))
    assert hit.aggregated_value == 3.0


def test_temporal_rules_further_apart_than_five_minutes_do_not_fire():
    ev = load(*RECON_RULES, RECON)
    assert feed(ev, [recon("a", 0), recon("b", 200), recon("c", 301)]) == []
    # a at 0 has left the window of c at 301; a fresh a completes the set again.
    (hit,) = ev.process(recon("a", 302))
    assert hit.aggregated_value == 3.0


# ---- temporal_ordered -------------------------------------------------------------------------

MANY_FAILED_LOGINS_NAMED = """
title: Many failed logins
id: 0e95725d-7320-415d-80f7-004da920fc11
name: many_failed_logins
correlation:
    type: event_count
    rules:
        - 5638f7c0-ac70-491d-8465-2a65075e0d86
    group-by:
        - ComputerName
    timespan: 1h
    condition:
        gte: 100
"""

SUCCESSFUL_LOGIN = rule("Successful login", "EventID: 4624", name="successful_login")

FAILED_THEN_SUCCESS = """
title: Many failed logins followed by a successful login
correlation:
    type: temporal_ordered
    rules:
        - many_failed_logins
        - successful_login
    group-by:
        - User
    timespan: 1h
"""


def success(user: str, t: float, host: str = "srv1") -> dict[str, Any]:
    return {"EventID": 4624, "ComputerName": host, "User": user, "@timestamp": at(t)}


def test_temporal_ordered_failed_logins_then_success_of_the_same_user():
    """The child groups by ComputerName; the parent groups by User, read from the event that made it fire."""
    ev = load(FAILED_LOGIN, MANY_FAILED_LOGINS_NAMED, SUCCESSFUL_LOGIN, FAILED_THEN_SUCCESS)
    assert feed(ev, [failed("srv1", i, user="bob") for i in range(100)]) == []
    assert ev.process(success("alice", 200)) == []
    (hit,) = ev.process(success("bob", 201))
    assert hit.to_dict()["rule_title"] == "Many failed logins followed by a successful login"
    assert hit.to_dict()["group_key"] == [["User", "bob"]]
    assert hit.aggregated_value == 2.0
    assert hit.to_dict()["correlation_type"] == "temporal_ordered"


def test_temporal_ordered_success_before_the_failures_does_not_fire():
    ev = load(FAILED_LOGIN, MANY_FAILED_LOGINS_NAMED, SUCCESSFUL_LOGIN, FAILED_THEN_SUCCESS)
    events = [success("bob", 0)] + [failed("srv1", 1 + i, user="bob") for i in range(120)]
    assert feed(ev, events) == []


def test_temporal_ordered_success_more_than_an_hour_after_the_failures_does_not_fire():
    ev = load(FAILED_LOGIN, MANY_FAILED_LOGINS_NAMED, SUCCESSFUL_LOGIN, FAILED_THEN_SUCCESS)
    # The child fires at t=99; the success at t=3700 is 3601 s later.
    assert feed(ev, [failed("srv1", i, user="bob") for i in range(100)] + [success("bob", 3700)]) == []


# ---- value_sum / value_avg / value_percentile -------------------------------------------------

WEBSITE_ACCESS = rule("Website access", "EventType: http_request", name="website_access")

EXFILTRATION = """
title: Possible Exfiltration to Website
correlation:
    type: value_sum
    rules:
        - website_access
    group-by:
        - SourceIP
        - User
    timespan: 1h
    condition:
        field: bytes_sent
        gt: 1000000
"""


def http(t: float, sent: Any, ip: str = "10.1.1.1", user: str = "bob", field: str = "bytes_sent") -> dict:
    return {"EventType": "http_request", "SourceIP": ip, "User": user, field: sent, "@timestamp": at(t)}


def test_value_sum_exfiltration_fires_above_one_million_bytes():
    ev = load(WEBSITE_ACCESS, EXFILTRATION)
    events = [http(0, 400000), http(60, 400000), http(120, 999999, ip="10.9.9.9"), http(180, 200000)]
    assert feed(ev, events) == []  # exactly 1,000,000 is not greater than 1,000,000
    (hit,) = ev.process(http(240, 1))
    assert hit.to_dict()["group_key"] == [["SourceIP", "10.1.1.1"], ["User", "bob"]]
    assert hit.aggregated_value == 1000001.0
    assert hit.to_dict()["correlation_type"] == "value_sum"


def test_value_sum_exfiltration_bytes_older_than_an_hour_leave_the_sum():
    ev = load(WEBSITE_ACCESS, EXFILTRATION)
    assert feed(ev, [http(0, 900000), http(3601, 200000)]) == []
    (hit,) = ev.process(http(3602, 900000))
    assert hit.aggregated_value == 1100000.0


AVERAGE_TRAFFIC = """
title: Suspicious average network traffic
correlation:
    type: value_avg
    rules:
        - rule_a_id
    group-by:
        - SourceIP
        - User
    timespan: 24h
    condition:
        field: BytesOut
        gt: 500
"""


def test_value_avg_fires_when_the_average_exceeds_500():
    ev = load(rule("Network traffic", "EventType: http_request", rule_id="rule_a_id"), AVERAGE_TRAFFIC)
    events = [http(0, 400, field="BytesOut"), http(3600, 600, field="BytesOut")]
    assert feed(ev, events) == []  # average 500 is not above 500
    (hit,) = ev.process(http(7200, 501, field="BytesOut"))
    assert hit.aggregated_value == pytest.approx(1501 / 3)
    assert hit.to_dict()["correlation_type"] == "value_avg"
    assert hit.to_dict()["timespan_secs"] == 86400


RARE_PROCESS = """
title: A computer spawned a processes name in the last 24h than 1% of all the processes.
correlation:
    type: value_percentile
    rules:
        - process_creation
    group-by:
        - ComputerName
    timespan: 24h
    condition:
        field: image
        lte: 1
"""

PROCESS_CREATION = rule("Process creation", "EventID: 1", name="process_creation")


def test_value_percentile_example_with_numeric_values():
    """The median (default percentile 50) of `image` compared with `lte: 1`."""
    ev = load(PROCESS_CREATION, RARE_PROCESS)

    def proc(t: float, value: Any) -> dict[str, Any]:
        return {"EventID": 1, "ComputerName": "pc1", "image": value, "@timestamp": at(t)}

    # medians: 5, 6, 5 (0.1 5 7), 2.6 (0.1 0.2 5 7): none is <= 1
    assert feed(ev, [proc(0, 5), proc(1, 7), proc(2, 0.1), proc(3, 0.2)]) == []
    (hit,) = ev.process(proc(4, 0.3))  # 0.1 0.2 0.3 5 7 -> 0.3
    assert hit.aggregated_value == pytest.approx(0.3)
    assert hit.to_dict()["correlation_type"] == "value_percentile"


def test_value_percentile_example_as_written_skips_non_numeric_image_names():
    """The specification's `image` holds process names; non-numeric values are skipped, so it never fires."""
    ev = load(PROCESS_CREATION, RARE_PROCESS)
    events = [
        {"EventID": 1, "ComputerName": "pc1", "image": name, "@timestamp": at(i)}
        for i, name in enumerate(["C:\\Windows\\cmd.exe", "C:\\rare\\evil.exe", "notepad.exe"] * 5)
    ]
    assert feed(ev, events) == []


# ---- field name aliases -----------------------------------------------------------------------

INTERNAL_ERROR = """
title: Internal server error
name: internal_error
logsource:
    category: webserver
detection:
    selection:
        http.response.status_code: 500
    condition: selection
"""

NEW_NETWORK_CONNECTION = """
title: New network connection
name: new_network_connection
logsource:
    category: network_connection
detection:
    selection:
        event.category: network
        event.type: connection
        event.outcome: success
    condition: selection
"""

ALIASES = """
title: Internal error followed by a connection back
id: 7c1a9a0e-1111-4222-8333-444455556666
correlation:
    type: temporal
    rules:
        - internal_error
        - new_network_connection
    group-by:
        - internal_ip
        - remote_ip
    timespan: 10s
    aliases:
        internal_ip:
            internal_error: destination.ip
            new_network_connection: source.ip
        remote_ip:
            internal_error: source.ip
            new_network_connection: destination.ip
"""


def error_event(src: str, dst: str, t: float) -> dict[str, Any]:
    return {
        "http": {"response": {"status_code": 500}},
        "source": {"ip": src},
        "destination": {"ip": dst},
        "@timestamp": at(t),
    }


def connection_event(src: str, dst: str, t: float) -> dict[str, Any]:
    return {
        "event.category": "network",
        "event.type": "connection",
        "event.outcome": "success",
        "source.ip": src,
        "destination.ip": dst,
        "@timestamp": at(t),
    }


def test_aliases_crossed_addresses_fire():
    ev = load(INTERNAL_ERROR, NEW_NETWORK_CONNECTION, ALIASES)
    # A client 203.0.113.7 gets an error from the internal server 10.0.0.1, which then connects back.
    assert ev.process(error_event("203.0.113.7", "10.0.0.1", 0)) == []
    (hit,) = ev.process(connection_event("10.0.0.1", "203.0.113.7", 5))
    assert hit.to_dict()["group_key"] == [["internal_ip", "10.0.0.1"], ["remote_ip", "203.0.113.7"]]
    assert hit.aggregated_value == 2.0


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        pytest.param("203.0.113.7", "10.0.0.1", id="same-direction-not-crossed"),
        pytest.param("10.0.0.2", "203.0.113.7", id="other-internal-host"),
        pytest.param("10.0.0.1", "198.51.100.1", id="other-remote-host"),
    ],
)
def test_aliases_different_addresses_do_not_fire(src, dst):
    ev = load(INTERNAL_ERROR, NEW_NETWORK_CONNECTION, ALIASES)
    assert feed(ev, [error_event("203.0.113.7", "10.0.0.1", 0), connection_event(src, dst, 5)]) == []


def test_aliases_connection_after_the_ten_second_timespan_does_not_fire():
    ev = load(INTERNAL_ERROR, NEW_NETWORK_CONNECTION, ALIASES)
    events = [error_event("203.0.113.7", "10.0.0.1", 0), connection_event("10.0.0.1", "203.0.113.7", 10.5)]
    assert feed(ev, events) == []


# ---- the full example: failed logins followed by a successful login ---------------------------

FULL_EXAMPLE = """
title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
status: experimental
description: Detects multiple failed logins by a single user followed by a successful login of that user
references:
    - https://reference.com
author: Florian Roth (Nextron Systems)
date: 2023-06-16
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed_login
        - successful_login
    group-by:
        - User
    timespan: 10m
falsepositives:
    - Unlikely
level: high
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
description: Detects multiple failed logins within a certain amount of time
name: multiple_failed_login
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 10
---
title: Single failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 529
            - 4625
    condition: selection
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
description: Detects a successful login
name: successful_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 528
            - 4624
    condition: selection
"""


def logon(event_id: int, user: str, t: float) -> dict[str, Any]:
    return {"EventID": event_id, "User": user, "Computer": "dc1", "@timestamp": at(t)}


def test_full_example_brute_force_gives_exactly_one_result():
    """sigma-engine.md §3.5 items 2, 4, 5: references by name to rules that have ids; chained output."""
    ev = load(FULL_EXAMPLE)
    events = [logon(4625 if i % 2 else 529, "alice", 20 * i) for i in range(12)]
    events += [logon(4625, "bob", 250), logon(4624, "bob", 260), logon(528, "alice", 300)]
    results = feed(ev, events)
    assert not [r for r in results if isinstance(r, Detection)]
    assert [r.to_dict() for r in results] == [
        {
            "rule_title": "Correlation - Multiple Failed Logins Followed by Successful Login",
            "rule_id": "b180ead8-d58f-40b2-ae54-c8940995b9b6",
            "level": "high",
            "tags": [],
            "correlation_type": "temporal_ordered",
            "group_key": [["User", "alice"]],
            "aggregated_value": 2.0,
            "timespan_secs": 600,
        }
    ]


def test_full_example_nine_failures_are_not_enough():
    ev = load(FULL_EXAMPLE)
    events = [logon(4625, "alice", 20 * i) for i in range(9)] + [logon(4624, "alice", 200)]
    assert feed(ev, events) == []


def test_full_example_success_of_another_user_does_not_fire():
    ev = load(FULL_EXAMPLE)
    events = [logon(4625, "alice", 20 * i) for i in range(10)] + [logon(4624, "bob", 200)]
    assert feed(ev, events) == []


def test_full_example_failures_spread_over_more_than_ten_minutes_do_not_fire():
    ev = load(FULL_EXAMPLE)
    # Ten failures over 630 s: no ten-minute window holds all of them.
    events = [logon(4625, "alice", 70 * i) for i in range(10)] + [logon(4624, "alice", 640)]
    assert feed(ev, events) == []
