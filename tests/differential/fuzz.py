"""Differential fuzzing of the engine against RSigma and pySigma's sqlite backend (`make fuzz`).

    python -m tests.differential.fuzz [--seed N] [--rules DIR] [--sample N] [--no-sqlite]

Builds a positive event and near-misses for every rule (tests/differential/generate.py), evaluates
every event against the whole rule set on our engine and on rsigma-bench, and the event's own rule on
pySigma's sqlite backend; prints the seed, the disagreements per class (classify.py) and examples of
the unexplained ones. Exit status 1 when any disagreement is unexplained, so a seed that finds one
can be replayed with --seed.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsigma.engine import Engine
from rsigma.rules import load_rules
from tests.differential import oracles
from tests.differential.classify import INDEX, UNEXPLAINED, classify, features, without_lookalikes
from tests.differential.generate import Case, cases_for, rule_key

DEFAULT_RULES = oracles.SHARED / "corpus" / "sigmahq" / "rules"


@dataclass(slots=True)
class Disagreement:
    engine: str
    rule: str
    case: Case
    ours: bool
    theirs: bool
    cls: str


@dataclass(slots=True)
class Report:
    seed: int
    rules: int
    events: int
    sqlite_rules: int = 0
    positives: int = 0  # rules a positive event could be built for
    positives_matched: int = 0  # ... that our engine matches with that rule
    disagreements: list[Disagreement] = field(default_factory=list)

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter((d.engine, d.cls) for d in self.disagreements)

    def unexplained(self) -> list[Disagreement]:
        return [d for d in self.disagreements if d.cls in (UNEXPLAINED, INDEX)]


def rule_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def run(rules_dir: Path, seed: int, sample: int = 0, use_sqlite: bool = True) -> Report:
    """Fuzz the rules under `rules_dir` (a random `sample` of files when non-zero) with one seed."""
    rng = random.Random(seed)
    files = rule_files(rules_dir)
    with tempfile.TemporaryDirectory() as tmp:
        if sample:
            files = sorted(rng.sample(files, min(sample, len(files))))
            for i, path in enumerate(files):
                shutil.copy(path, Path(tmp) / f"{i:05d}_{path.name}")
            rules_dir = Path(tmp)
        ruleset = load_rules(rules_dir)
        engine = Engine(ruleset)
        cases: list[Case] = [c for rule in ruleset.rules for c in cases_for(rule, rng)]
        ours, exact = oracles.ours(engine, cases)
        theirs = oracles.rsigma(rules_dir, cases)
        feats = {rule_key(r): features(r) for r in ruleset.rules}  # reads the rule files
    rules = {rule_key(r): r for r in ruleset.rules}
    report = Report(seed, len(ruleset.rules), len(cases))
    for i, case in enumerate(cases):
        if case.mutation == "positive":
            report.positives += 1
            report.positives_matched += case.rule in ours[i]
        if exact[i] and case.rule not in ours[i]:
            report.disagreements.append(Disagreement("index", case.rule, case, False, True, INDEX))
        diff = ours[i] ^ theirs[i]
        plain: set[str] | None = None
        for key in diff:
            if key not in feats:
                continue
            mine = key in ours[i]
            if case.mutation == "fold" and plain is None:
                plain = {d.rule_id or d.rule_title for d in engine.evaluate(without_lookalikes(case.event))}
            folds_alike = plain is not None and (key in plain) == mine
            sound = feats[key].regex and oracles.regex_items_agree_with_re2(rules[key], case.event)
            cls = classify(
                "rsigma", case.mutation, case.event, feats[key], mine, not mine, folds_alike, sound
            )
            report.disagreements.append(Disagreement("rsigma", key, case, mine, not mine, cls))
    if use_sqlite:
        _compare_sqlite(report, files, cases, ours, feats)
    return report


def _compare_sqlite(
    report: Report, files: list[Path], cases: list[Case], ours: list[set[str]], feats: dict[str, Any]
) -> None:
    queries = oracles.sqlite_queries(files)
    report.sqlite_rules = len(queries)
    by_rule: dict[str, list[int]] = {}
    for i, case in enumerate(cases):
        if case.rule in queries:
            by_rule.setdefault(case.rule, []).append(i)
    for key, indexes in by_rule.items():
        answers = oracles.sqlite_matches(queries[key], [cases[i].event for i in indexes])
        for i, answer in zip(indexes, answers, strict=True):
            mine = key in ours[i]
            if answer is None or answer == mine:
                continue
            cls = classify("pysigma", cases[i].mutation, cases[i].event, feats[key], mine, answer)
            report.disagreements.append(Disagreement("pysigma", key, cases[i], mine, answer, cls))


def print_report(report: Report, examples: int, out: Any = sys.stdout) -> None:
    print(f"seed {report.seed}: {report.rules} rules, {report.events} events", file=out)
    print(
        f"positive events built for {report.positives} rules, "
        f"{report.positives_matched} of them matched by their rule",
        file=out,
    )
    print(f"pySigma sqlite converted {report.sqlite_rules} rules", file=out)
    counts = report.counts()
    if not counts:
        print("no disagreements", file=out)
    for (engine, cls), n in sorted(counts.items()):
        print(f"  {engine:8} {n:6}  {cls}", file=out)
    for d in report.unexplained()[:examples]:
        print(
            f"UNEXPLAINED {d.engine}: rule {d.rule} ours={d.ours} theirs={d.theirs} "
            f"mutation={d.case.mutation} (built from {d.case.rule}) event={d.case.event!r}",
            file=out,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--sample", type=int, default=0, help="fuzz this many random rule files (0: all)")
    parser.add_argument("--no-sqlite", action="store_true", help="skip pySigma's sqlite backend")
    parser.add_argument("--examples", type=int, default=20, help="unexplained disagreements to print")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"seed {seed} (replay: make fuzz SEED={seed})", flush=True)
    started = time.monotonic()
    report = run(args.rules, seed, args.sample, not args.no_sqlite)
    print_report(report, args.examples)
    print(f"{time.monotonic() - started:.1f} s")
    return 1 if report.unexplained() else 0


if __name__ == "__main__":
    sys.exit(main())
