"""Every matcher runs the supervisor's rules: a reload swaps them everywhere or nowhere."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from rsigma.correlation.engine import CorrelationConfig
from rsigma.loading import EvaluatorSpec
from rsigma.payloads import PayloadOptions
from workers.pool import MatcherPool

RULE = """
title: {title}
logsource: {{product: windows}}
detection:
    selection: {{CommandLine|contains: {needle}}}
    condition: selection
"""


def titles(outcomes: list) -> list[list[str]]:  # type: ignore[type-arg]
    return [[orjson.loads(line)["rule_title"] for line in o[0]] if o else [] for o in outcomes]


def test_a_reload_the_supervisor_did_not_compile_is_dropped_by_every_matcher(tmp_path: Path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "whoami.yml").write_text(RULE.format(title="Whoami", needle="whoami"))
    spec = EvaluatorSpec((rules,), CorrelationConfig(timestamp_fallback="skip"))
    running = spec().summary()
    pool = MatcherPool(
        spec,
        2,
        running,
        options=PayloadOptions(max_event_bytes=1 << 20),
    )
    events = [orjson.dumps({"CommandLine": c}) for c in ("whoami", "nc -l", "whoami")]

    async def scenario() -> None:
        await pool.start()
        try:
            (rules / "netcat.yml").write_text(RULE.format(title="Netcat", needle="nc -l"))
            await pool.load(running)
            # the files changed again after the supervisor loaded them: the matchers build other rules
            (rules / "extra.yml").write_text(RULE.format(title="Extra", needle="whoami"))
            error = await pool.reload()
            assert error is not None and "other rules than the supervisor" in error
            for _ in range(4):  # both matchers still run the old rules
                assert titles((await pool.evaluate(events)).outcomes) == [["Whoami"], [], ["Whoami"]]

            await pool.load(running)
            assert await pool.reload() is None
            for _ in range(4):
                got = titles((await pool.evaluate(events)).outcomes)
                assert got == [["Extra", "Whoami"], ["Netcat"], ["Extra", "Whoami"]]  # file order
        finally:
            await pool.stop()

    asyncio.run(asyncio.wait_for(scenario(), 120))
