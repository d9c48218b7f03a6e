"""Building an evaluator from rule paths, pipelines and routing maps, for every command, the daemon's
reloads and the matcher processes; rules that fail are reported, not dropped silently."""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rsigma.correlation.engine import CorrelationConfig
from rsigma.engine import Engine
from rsigma.errors import SigmaError
from rsigma.evaluator import Evaluator, RuleSummary
from rsigma.exit_codes import EXIT_CONFIG_ERROR, EXIT_RULE_ERROR
from rsigma.gc_pause import gc_paused
from rsigma.pipelines import Pipeline, apply_pipelines, parse_pipeline_text, read_pipeline
from rsigma.routing import LogsourceRouter, load_routers
from rsigma.rule_cache import RuleCache, cache_key
from rsigma.rules import RuleSet, SigmaRule
from rsigma.rules.loader import parse_sources, read_sources

log = logging.getLogger("rsigma.daemon")


def duplicate_ids(ruleset: RuleSet) -> list[str]:
    """A rule id used by more than one rule: every copy is loaded and matches, so each event that
    matches one gives a detection per copy (a directory copied twice, or mounted with its copies)."""
    return [warning for _, warning in duplicate_rules(ruleset)]


def duplicate_rules(ruleset: RuleSet) -> list[tuple[SigmaRule, str]]:
    """Each rule whose id an earlier rule has, with the warning `duplicate_ids` gives for it."""
    first: dict[str, SigmaRule] = {}
    found = []
    for rule in ruleset.rules:
        if not rule.id:
            continue
        seen = first.setdefault(rule.id, rule)
        if seen is not rule:
            found.append(
                (rule, f"rule id {rule.id} is used again at {rule.location} (first at {seen.location})")
            )
    return found


def refuse_dropped_rules(running: RuleSummary, fresh: RuleSummary) -> None:
    """RuleLoadFailed if `fresh` leaves out rules the running ones did not: a reload that drops a
    rule (an editor saving a typo, say) must fail, not turn the detection off quietly."""
    known = set(running.skipped)
    dropped = [reason for reason in fresh.skipped if reason not in known]
    if dropped:
        raise RuleLoadFailed("rules would be left out: " + "; ".join(dropped))


def build_beside(build: Callable[[], Evaluator], running: RuleSummary) -> tuple[Evaluator, RuleSummary]:
    """Rules built afresh for a reload, and their summary; RuleLoadFailed if they cannot be used or
    would leave out a rule the running ones (`running`) did not (`refuse_dropped_rules`)."""
    fresh = build()
    summary = fresh.summary()
    refuse_dropped_rules(running, summary)
    return fresh, summary


class RuleLoadFailed(Exception):
    """Rules given on the command line cannot be used; each problem says why, without a prefix (a
    terminal shows each as `error: ...`, a JSON log has the level for that)."""

    exit_code = EXIT_RULE_ERROR

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class PipelineLoadFailed(RuleLoadFailed):
    """A pipeline or routing map cannot be used: a configuration error (exit 3), as in RSigma."""

    exit_code = EXIT_CONFIG_ERROR


def load_evaluator(
    paths: list[Path],
    config: CorrelationConfig | None = None,
    pipelines: list[str] | None = None,
    routing_maps: list[str] | None = None,
    report: Callable[[str], None] | None = None,
    *,
    strict: bool = False,
    match_detail: str = "off",
    rule_cache: Path | None = None,
) -> Evaluator:
    """Load and compile rules and correlations; broken files inside a directory are skipped with a
    warning, or with `strict` refused like a file named on the command line, which must load.

    `report` takes each warning without a prefix (a logger's `warning`, whose records carry the
    level); without it they go to stderr as `warning: ...`, followed by what was loaded. With
    `rule_cache` (a directory), the parsed rule set is taken from there when nothing it depends on
    changed, and stored there otherwise (`rsigma.rule_cache`); what is reported is the same."""
    # The cyclic GC stays off for the whole load: the millions of objects it builds all survive, and
    # a full collection over them as soon as it is back on would cost a tenth of a cached load.
    with gc_paused():
        evaluator = _load_evaluator(
            paths, config, pipelines, routing_maps, report, strict, match_detail, rule_cache
        )
        # The compiled rules live as long as the process: keep the cyclic GC from rescanning their
        # millions of objects on every full collection (a third of per-event time in the daemon).
        gc.freeze()
    return evaluator


def _load_evaluator(
    paths: list[Path],
    config: CorrelationConfig | None,
    pipelines: list[str] | None,
    routing_maps: list[str] | None,
    report: Callable[[str], None] | None,
    strict: bool,
    match_detail: str,
    rule_cache: Path | None,
) -> Evaluator:
    started = time.perf_counter()
    warn = report or _warn_on_stderr
    loaded = []  # each pipeline as read (path, text: the cache key hashes them) and parsed
    for name in pipelines or ():
        try:
            read = read_pipeline(name)
            loaded.append((read, parse_pipeline_text(*read)))
        except SigmaError as e:
            raise PipelineLoadFailed(f"loading pipeline: {e}") from None
    try:
        router = load_routers(routing_maps or None) if routing_maps is not None else None
    except SigmaError as e:
        raise PipelineLoadFailed(f"loading routing maps: {e}") from None
    cache = RuleCache(rule_cache, warn) if rule_cache is not None else None
    engine, cached = load_engine(paths, loaded, router, match_detail, cache)
    ruleset = engine.ruleset
    evaluator = Evaluator(ruleset, config, engine=engine)
    errors: list[SigmaError] = ruleset.errors + evaluator.errors
    direct = {p.resolve() for p in paths if p.is_file() or not p.exists()}
    fatal = [e for e in errors if strict or (e.path is not None and Path(e.path).resolve() in direct)]
    if fatal:
        raise RuleLoadFailed(*map(str, fatal))
    evaluator.skipped = errors
    for e in errors:
        warn(f"skipped {e}")
    for w in evaluator.engine.warnings:
        warn(str(w))
    for w in duplicate_ids(ruleset):
        warn(w)
    rules = len(evaluator.engine.rules)
    correlations = len(evaluator.correlation.correlations)
    if not rules:
        raise RuleLoadFailed(f"no rules loaded from {', '.join(map(str, paths))}")
    seconds = time.perf_counter() - started
    if report is None:
        skipped = f", {len(errors)} skipped" if errors else ""
        how = f"; {cached}" if cached else ""
        print(
            f"loaded {rules} rules and {correlations} correlations from {ruleset.files} files{skipped}"
            f" in {seconds:.2f} s{how}",
            file=sys.stderr,
        )
    elif cached:
        log.info(cached, extra={"load_seconds": round(seconds, 3)})
    return evaluator


def load_engine(
    paths: list[Path],
    pipelines: list[tuple[tuple[Path, str], Pipeline]] | None = None,
    router: LogsourceRouter | None = None,
    match_detail: str = "off",
    cache: RuleCache | None = None,
) -> tuple[Engine, str]:
    """The engine of the rules below `paths` after `pipelines` (each read, as (path, text), and
    parsed), from `cache` when it holds them, else parsed and compiled (and stored in `cache`); and
    what the cache did: `rule cache hit <entry>`, `rule cache miss, stored <entry>` or ''."""
    pipelines = pipelines or []
    sources = read_sources(*paths)
    if cache is not None:
        key = cache_key(sources, [read for read, _ in pipelines])
        image = cache.load(key)
        if image is not None:
            return Engine.from_image(image, router=router, match_detail=match_detail), (
                f"rule cache hit {cache.entry(key)}"
            )
    ruleset = parse_sources(sources)
    if pipelines:
        ruleset = apply_pipelines(ruleset, [pipeline for _, pipeline in pipelines])
    engine = Engine(ruleset, router=router, match_detail=match_detail)
    stored = cache.store(key, engine.image()) if cache is not None else None
    return engine, f"rule cache miss, stored {stored}" if stored is not None else ""


@dataclass(frozen=True, slots=True)
class EvaluatorSpec:
    """How to build the evaluator (rules, pipelines, routing, correlation options): called at startup
    and on every reload, and pickled to the worker pool's matcher processes, which compile their own."""

    rules: tuple[Path, ...]
    correlation: CorrelationConfig
    pipelines: tuple[str, ...] = ()
    routing_maps: tuple[str, ...] | None = None
    strict: bool = False  # --strict-rules: any rule file that fails to load fails the whole load
    match_detail: str = "off"  # --match-detail: off, summary or full
    rule_cache: Path | None = None  # --rule-cache: where parsed rule sets are kept (None: nowhere)

    def __call__(self) -> Evaluator:
        routing = list(self.routing_maps) if self.routing_maps is not None else None
        return load_evaluator(
            list(self.rules),
            self.correlation,
            list(self.pipelines),
            routing,
            report=log.warning,
            strict=self.strict,
            match_detail=self.match_detail,
            rule_cache=self.rule_cache,
        )


def _warn_on_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
