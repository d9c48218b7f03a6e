"""Shared paths and tiny helpers for the rsigma specification tests.

Rules are written either as YAML text or built from Python values with ``make_rule``; the latter goes
through ``yaml.safe_dump`` so the value the engine sees is exactly the Python string written in the test
(the escaping tables rely on this: the strings there are the text *after* YAML unquoting).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def make_rule(detection: dict[str, Any], title: str = "test rule", **meta: Any) -> str:
    """One rule document: `detection` holds the search identifiers and the condition."""
    doc = {"title": title, "logsource": {"product": "test"}, **meta, "detection": detection}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=10**6)


def to_yaml(rule: str | dict[str, Any] | list[Any]) -> str:
    """YAML text as is; a dict with a `condition` is a detection; anything else is one `selection`."""
    if isinstance(rule, str):
        return textwrap.dedent(rule)
    if isinstance(rule, dict) and "condition" in rule:
        return make_rule(rule)
    return make_rule({"selection": rule, "condition": "selection"})


def detect(rule: str | dict[str, Any] | list[Any], event: dict[str, Any]) -> list[Any]:
    from rsigma.engine import Engine

    return Engine.from_yaml(to_yaml(rule)).evaluate(event)


@pytest.fixture(autouse=True, scope="session")
def _empty_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The daemon reads ~/.config/rsigma/config.yaml when there is one: every command the tests start
    gets an empty HOME, so a developer's own config file cannot change what they test, and its rule
    cache (~/.cache/rsigma/rules) is the tests' own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        patch.delenv("XDG_CACHE_HOME", raising=False)
        patch.delenv("RSIGMA_RULE_CACHE", raising=False)
        patch.delenv("RSIGMA_NO_RULE_CACHE", raising=False)
        yield


@pytest.fixture
def shared() -> Path:
    return SHARED


@pytest.fixture(name="make_rule")
def make_rule_fixture() -> Callable[..., str]:
    return make_rule


@pytest.fixture(name="detect")
def detect_fixture() -> Callable[..., list[Any]]:
    """detect(rule, event) -> list of Detection."""
    return detect


@pytest.fixture
def run() -> Callable[..., list[str]]:
    """run(rule, event) -> titles of the rules that fired, in load order."""
    return lambda rule, event: [d.rule_title for d in detect(rule, event)]


@pytest.fixture
def matches() -> Callable[..., bool]:
    """matches(selection, event) -> whether a one-selection rule fires."""
    return lambda selection, event: bool(detect(selection, event))


@pytest.fixture
def load_error() -> Callable[..., Exception]:
    """load_error(rule) -> the SigmaError raised by Engine.from_yaml (fails the test if none is raised)."""
    from rsigma.engine import Engine
    from rsigma.errors import SigmaError

    def _load_error(rule: str | dict[str, Any] | list[Any]) -> Exception:
        with pytest.raises(SigmaError) as info:
            Engine.from_yaml(to_yaml(rule))
        assert str(info.value).strip(), "a load error must say why"
        return info.value

    return _load_error
