"""The builtin pipelines applied by rsigma and by pySigma to SigmaHQ rules, compared rule by rule.

pySigma loads the same YAML files (`rsigma/pipelines/builtin/*.yml`) with `ProcessingPipeline.from_yaml`,
so any difference is a difference in how the two apply them. Both sides are reduced to the form of
`pysigma_oracle` (logsource triple and sorted detection items) and compared; every mismatching rule is
reported at once. pySigma is a test-only dependency: without it, or without the corpus, this is skipped.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import pytest
from pysigma_oracle import Normalized, normalize_pysigma, normalize_rsigma

from rsigma.pipelines import apply_pipelines, load_pipeline
from rsigma.rules import load_rules

ProcessingPipeline = pytest.importorskip("sigma.processing.pipeline").ProcessingPipeline
PySigmaRule = pytest.importorskip("sigma.rule").SigmaRule

pytestmark = pytest.mark.corpus

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = ROOT / "rsigma" / "pipelines" / "builtin"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT.parent / "shared"
WINDOWS = SHARED / "corpus" / "sigmahq" / "rules" / "windows"

#: Rule directories for the sysmon pipeline: generic categories it rewrites, and log sources it must
#: leave alone (service: sysmon / security rules).
SYSMON_SAMPLE = (
    "process_creation",
    "network_connection",
    "image_load",
    "file/file_event",
    "registry/registry_set",
    "registry/registry_event",
    "dns_query",
    "pipe_created",
    "create_remote_thread",
    "process_access",
    "driver_load",
    "wmi_event",
    "sysmon",
    "builtin/security",
)

#: How many mismatching rules are shown with their differences (all are named).
SHOW = 30


def corpus_dir(subdir: str) -> Path:
    directory = WINDOWS / subdir
    if not directory.is_dir():
        pytest.skip(f"SigmaHQ corpus not present at {directory}")
    return directory


def pipeline_file(name: str) -> Path:
    """A builtin pipeline by name, or a YAML file of the fixtures directory by its file name."""
    return FIXTURES / name if name.endswith(".yml") else BUILTIN / f"{name}.yml"


def pysigma_pipeline(*names: str) -> object:
    """The pipeline YAML files as pySigma pipelines, chained in priority order as pySigma's resolver does."""
    texts = [pipeline_file(n).read_text(encoding="utf-8") for n in names]
    pipelines = [ProcessingPipeline.from_yaml(t) for t in texts]
    pipelines.sort(key=lambda p: p.priority)
    combined = pipelines[0]
    for p in pipelines[1:]:
        combined = combined + p
    return combined


def pysigma_side(pipeline: object, text: str) -> Normalized | str | None:
    """The normalized rule after pySigma's pipeline, why pySigma failed, or None if it cannot read it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pySigma's own deprecation notices are not rsigma's concern
        try:
            rule = PySigmaRule.from_yaml(text)
        except Exception:  # noqa: BLE001 - a rule pySigma cannot read has nothing to compare
            return None
        try:
            pipeline.apply(rule)  # type: ignore[attr-defined]
        except Exception as e:  # noqa: BLE001 - a rule failure is a result to compare
            return f"pySigma failed: {type(e).__name__}: {e}"
    return normalize_pysigma(rule)


def rsigma_side(pipelines: list[object], path: Path) -> Normalized | str:
    """The normalized rule after rsigma's pipelines, or the reason rsigma failed."""
    ruleset = load_rules(path)
    if ruleset.errors or len(ruleset.rules) != 1:
        return f"rsigma could not load it: {[str(e) for e in ruleset.errors]}"
    processed = apply_pipelines(ruleset, pipelines)  # type: ignore[arg-type]
    if processed.errors or len(processed.rules) != 1:
        return f"rsigma failed: {[str(e) for e in processed.errors]}"
    return normalize_rsigma(processed.rules[0])


def compare(names: tuple[str, ...], files: Iterable[Path]) -> None:
    py_pipeline = pysigma_pipeline(*names)
    rs_pipelines = [load_pipeline(pipeline_file(n) if n.endswith(".yml") else n) for n in names]
    compared = 0
    mismatches: list[tuple[Path, str]] = []
    for path in files:
        expected = pysigma_side(py_pipeline, path.read_text(encoding="utf-8"))
        if expected is None:
            continue
        compared += 1
        actual = rsigma_side(rs_pipelines, path)
        if expected == actual:
            continue
        if isinstance(expected, Normalized) and isinstance(actual, Normalized):
            detail = expected.diff(actual)
        else:
            detail = f"  pySigma: {expected}\n  rsigma:  {actual}"
        mismatches.append((path, detail))
    assert compared, "no rule to compare"
    if mismatches:
        lines = [
            f"{len(mismatches)} of {compared} rules differ after {'+'.join(names)} ('-' pySigma, '+' rsigma):"
        ]
        for i, (path, detail) in enumerate(mismatches):
            rel = path.relative_to(WINDOWS)
            lines.append(f"{rel}\n{detail}" if i < SHOW else str(rel))
        pytest.fail("\n".join(lines), pytrace=False)


def test_ecs_windows_process_creation() -> None:
    compare(("ecs_windows",), sorted(corpus_dir("process_creation").glob("*.yml")))


def test_ecs_windows_other_windows_rules() -> None:
    """Every other Windows log source: service channels, per-category mappings, network.direction."""
    process_creation = corpus_dir("process_creation")
    files = sorted(p for p in WINDOWS.rglob("*.yml") if process_creation not in p.parents)
    compare(("ecs_windows",), files)


@pytest.mark.parametrize("subdir", SYSMON_SAMPLE)
def test_sysmon(subdir: str) -> None:
    compare(("sysmon",), sorted(corpus_dir(subdir).rglob("*.yml")))


def test_sysmon_then_ecs_windows() -> None:
    """Both builtins chained (sysmon runs first by priority) on every fifth process_creation rule."""
    files = sorted(corpus_dir("process_creation").glob("*.yml"))[::5]
    compare(("ecs_windows", "sysmon"), files)


def test_fibratus_windows() -> None:
    """Every SigmaHQ Windows rule: the categories it maps to Fibratus, and the log sources it leaves alone."""
    corpus_dir("process_creation")
    compare(("fibratus_windows",), sorted(WINDOWS.rglob("*.yml")))


def test_one_to_many_mapping() -> None:
    """A field mapped to two names becomes an OR of two items on both sides (fixture pipeline)."""
    files = sorted(corpus_dir("process_creation").glob("*.yml"))[::10]
    compare(("one_to_many.yml",), files)
