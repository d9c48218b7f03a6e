"""The forkserver's compiled rules go only to matchers of a pool that builds them the same way.

The forkserver outlives a pool, so a second pool of the process (other correlation options, another
match detail) forks from a server holding the first pool's rules: taking them by the rule set's
fingerprint alone gave its matchers the first pool's options (`--suppress` was ignored)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from rsigma.correlation.engine import CorrelationConfig
from rsigma.loading import EvaluatorSpec
from tests.support.sharding import RULES
from workers import zygote


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(RULES)
    return path


def _template(monkeypatch: pytest.MonkeyPatch, build: EvaluatorSpec) -> str:
    """Install what the forkserver would hold after compiling `build`; return its fingerprint."""
    evaluator = build()
    monkeypatch.setattr(zygote, "_template", evaluator)
    monkeypatch.setattr(zygote, "_built_by", pickle.loads(pickle.dumps(build)))
    return evaluator.fingerprint()


def test_a_matcher_of_the_same_pool_takes_the_template(monkeypatch, rules) -> None:
    build = EvaluatorSpec((rules,), CorrelationConfig(timestamp_fallback="skip"))
    fingerprint = _template(monkeypatch, build)
    taken = zygote.take(pickle.loads(pickle.dumps(build)), fingerprint)
    assert taken is not None and taken.fingerprint() == fingerprint
    assert zygote.take(build, fingerprint) is None, "a process takes the template once"


@pytest.mark.parametrize(
    "other",
    [
        {"correlation": CorrelationConfig(suppress=30.0, action="reset", timestamp_fallback="skip")},
        {"match_detail": "full"},
        {"strict": True},
    ],
    ids=["correlation-options", "match-detail", "strict"],
)
def test_a_pool_built_otherwise_compiles_its_own_even_for_the_same_rules(monkeypatch, rules, other) -> None:
    first = EvaluatorSpec((rules,), CorrelationConfig(timestamp_fallback="skip"))
    fingerprint = _template(monkeypatch, first)
    second = EvaluatorSpec(**{"rules": (rules,), "correlation": first.correlation, **other})
    assert second().fingerprint() == fingerprint, "the same rule set"
    assert zygote.take(second, fingerprint) is None


def test_changed_rules_are_not_taken(monkeypatch, rules) -> None:
    build = EvaluatorSpec((rules,), CorrelationConfig(timestamp_fallback="skip"))
    _template(monkeypatch, build)
    assert zygote.take(build, "another rule set") is None
