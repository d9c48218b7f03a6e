"""A fixed-seed sample of the differential fuzzer (`make fuzz` runs every SigmaHQ rule with a new seed).

Every disagreement with RSigma or pySigma's sqlite backend on the sample must be a known, documented
one (a row of docs/engine.md's differences table); an unexplained one fails with the replay command.
Skipped when ../shared (the SigmaHQ corpus and rsigma-bench) is absent.
"""

from __future__ import annotations

import io

import pytest

from tests.differential import oracles
from tests.differential.classify import CLASSES
from tests.differential.fuzz import DEFAULT_RULES, print_report, run

SEED = 20261202
SAMPLE = 300


@pytest.fixture(scope="module")
def report():
    if not DEFAULT_RULES.is_dir() or not oracles.RSIGMA_BENCH.is_file():
        pytest.skip(f"SigmaHQ rules or rsigma-bench not present under {oracles.SHARED}")
    pytest.importorskip("sigma.backends.sqlite", reason="pysigma-backend-sqlite is not installed")
    return run(DEFAULT_RULES, SEED, sample=SAMPLE)


def test_the_sample_generates_events_for_most_rules(report):
    assert report.rules >= SAMPLE * 0.9
    assert report.events >= report.rules * 5
    assert report.sqlite_rules >= report.rules * 0.8
    assert report.positives_matched >= report.rules * 0.95, "the generator no longer builds matching events"


def test_every_disagreement_on_the_sample_is_documented(report):
    out = io.StringIO()
    print_report(report, examples=10, out=out)
    assert not report.unexplained(), (
        f"replay with: python -m tests.differential.fuzz --seed {SEED} --sample {SAMPLE}\n{out.getvalue()}"
    )
    assert {d.cls for d in report.disagreements} <= set(CLASSES)


def test_the_sample_finds_the_known_departures(report):
    """The fuzzer can fail: on this seed it meets RSigma's documented departures and pySigma's."""
    engines = {d.engine for d in report.disagreements}
    assert {"rsigma", "pysigma"} <= engines
