"""Where a cold load of a rule directory goes: CPU seconds per phase, median of N cold rounds.

Why: `vs_rsigma.py` times load+compile as one figure, against RSigma's; this script splits it, so
that work on the load starts from the phase that costs most and a claim such as "no phase is over
a quarter" has a figure. Phases, on the same rules (the cyclic GC off, as every rsigma command
loads): reading the files; parsing them into rule models (`parse_sources`), and within it the YAML
(`iter_documents`: yaml-rs where it reads as PyYAML, the libyaml builder otherwise, and how many
files took which); `Engine()`, and within it the witnesses and the candidate index (the rest is
filters, deciding fields and the rules that compile at load: `surely_compiles`).
Each phase runs cold, in a process forked before anything was loaded; medians of the rounds. CPU time
(`time.process_time`), not wall time: on a shared machine it moves far less.

    python benchmarks/load_phases.py [--rules DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import statistics
import time
from pathlib import Path

from rsigma.engine import Engine
from rsigma.engine.compiler import surely_compiles
from rsigma.engine.index import CandidateIndex, rule_witness
from rsigma.rules.loader import parse_sources, read_sources
from rsigma.rules.yaml_documents import _shortcut, iter_documents

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "shared/corpus/sigmahq/rules/windows/process_creation"


def timed(fn, *args):
    t0 = time.process_time()
    out = fn(*args)
    return time.process_time() - t0, out


def load(rules: Path) -> dict[str, float]:
    """The cold load as the commands run it."""
    read_s, sources = timed(read_sources, rules)
    parse_s, ruleset = timed(parse_sources, sources)
    engine_s, _ = timed(Engine, ruleset)
    return {"read": read_s, "parse": parse_s, "engine": engine_s}


def yaml_alone(rules: Path) -> dict[str, float]:
    texts = [s.data.decode("utf-8") for s in read_sources(rules) if s.data is not None]
    yaml_s, _ = timed(lambda: [list(iter_documents(t)) for t in texts])
    return {"yaml": yaml_s}


def index_alone(rules: Path) -> dict[str, float]:
    ruleset = parse_sources(read_sources(rules))
    witness_s, witnesses = timed(lambda: [rule_witness(r) for r in ruleset.rules])
    index_s, _ = timed(CandidateIndex.build, enumerate(witnesses))
    return {"witnesses": witness_s, "index": index_s}


def in_fresh_process(fn, rules: Path) -> dict[str, float]:
    """`fn(rules)` in a process forked before anything was loaded: the load's caches (atom
    probabilities, parsed conditions, YAML string checks) start empty, as in a command."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(fn, (rules,))


def one_round(rules: Path) -> dict[str, float]:
    """The load, and the YAML, witnesses and index each measured cold again in processes of their own
    (measured after the load, they would find its caches warm)."""
    return (
        in_fresh_process(load, rules)
        | in_fresh_process(yaml_alone, rules)
        | in_fresh_process(index_alone, rules)
    )


ROWS = (
    ("read files", "read", ""),
    ("parse", "parse", ""),
    ("  of which YAML", "yaml", "parse"),
    ("Engine()", "engine", ""),
    ("  of which witnesses", "witnesses", "engine"),
    ("  of which the index", "index", "engine"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES, help="rule directory (default: "
                        "SigmaHQ's rules/windows/process_creation in ../shared)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=5, metavar="N", help="rounds (default: 5)")
    args = parser.parse_args(argv)
    if not args.rules.exists():
        print(f"skipped: {args.rules} not found (SigmaHQ's corpus is in ../shared)")
        return 0
    gc.disable()
    rounds = [one_round(args.rules) for _ in range(max(1, args.repeat))]
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    total = median["read"] + median["parse"] + median["engine"]
    sources = read_sources(args.rules)
    texts = [s.data.decode("utf-8") for s in sources if s.data is not None]
    by_yaml_rs = sum(_shortcut(t) is not None for t in texts)
    ruleset = parse_sources(sources)
    lazy = sum(map(surely_compiles, ruleset.rules))
    print(f"{args.rules}: {len(texts)} files ({by_yaml_rs} read by yaml-rs), {len(ruleset.rules)} rules "
          f"({lazy} compile on first use); CPU s, median of {len(rounds)} cold rounds")  # fmt: skip
    for label, key, _ in ROWS:
        print(f"  {label:<22} {median[key]:7.3f}  {median[key] / total:4.0%} of the load")
    print(f"  {'load':<22} {total:7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
