"""Raw payloads in, per-event outcomes out: the one evaluation path of `engine eval`, the daemon's
in-process backend and the matcher processes, so all of them treat every payload alike.

A payload is one event, or, with `--jq`/`--jsonpath` (`rsigma.formats.extract`), the events
extracted from its JSON document: all of them are evaluated and their results merge into the
payload's one outcome, so its source acknowledges it once.

An event's outcome is one of:
- nothing to send (no visible result; its source can acknowledge it at once),
- a dead-letter reason (not a line of its `--input-format`: not JSON or not an object, not CEF; its
  extraction failed or found something other than objects; too large, too deeply nested, or its
  backtracking regex searches ran past their budget, see `rsigma/engine/regex.py`), or
- its result lines, serialised once, with the labels each result is counted by.

Correlation happens either here (`evaluate_payloads` without `hits`: the evaluator's own windows, as
one process does) or at the windows' owners (with `hits`: a matcher of a pool collects the events'
level-1 hits, and the pool's correlation rounds apply them, see `rsigma/correlation/sharding.py`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import orjson

from rsigma.correlation.engine import CorrelationResult, Hit
from rsigma.engine.engine import Detection
from rsigma.engine.regex import BacktrackingBudgetExceeded
from rsigma.evaluator import Evaluator
from rsigma.formats import JSON_STARTS, InputFormat, extract_json, line_parser, parse_json, starts_as_json
from rsigma.formats.extract import Extraction, extractor

#: (rule title, level or "unknown", correlation type or None): the labels results are counted by.
RuleKey = tuple[str, str, str | None]
#: An event's results: one JSON line each, and the labels each is counted by.
Lines = tuple[list[bytes], list[RuleKey]]
#: An event's outcome: its results, the reason it cannot be used, or None (nothing to send).
Outcome = Lines | str | None

#: The dead-letter reason for an event whose nesting is too deep for the engine.
TOO_DEEP_TO_EVALUATE = "event nested too deeply to evaluate"
#: The dead-letter reason for results that cannot be written (see `result_lines`).
TOO_DEEP_TO_WRITE = "event nested too deeply to write its results"


@dataclass(frozen=True, slots=True)
class PayloadOptions:
    """What shapes an outcome: the largest event accepted, whether results carry their event, the
    format of the input lines and the extraction of events from JSON documents (None: a line is one
    event)."""

    max_event_bytes: int
    include_event: bool = False
    input_format: InputFormat = InputFormat()
    extraction: Extraction | None = None


class BatchResult(NamedTuple):
    """A batch's outcomes, one per payload in order, as every evaluation backend returns them."""

    outcomes: list[Outcome]
    evaluated: int  # events decoded and evaluated (the others were dead-lettered)
    busy_s: float  # evaluation time of the batch
    #: With `collect_hits`: each payload's level-1 hits, not applied (their position: the event's place
    #: among its payload's events), and the correlation keys their indexes refer to.
    hits: list[list[Hit]] | None = None
    keys: Sequence[str] = ()


def too_large(payload: bytes, max_event_bytes: int) -> str:
    """The dead-letter reason for a payload longer than --max-event-bytes."""
    return f"event of {len(payload)} bytes exceeds --max-event-bytes {max_event_bytes}"


def decode_event(payload: bytes, max_event_bytes: int) -> dict[str, Any] | str:
    """The event object, or the dead-letter reason for a payload that is not one."""
    if len(payload) > max_event_bytes:
        return too_large(payload, max_event_bytes)
    return parse_json(payload)


#: An event, the events extracted from a JSON document, or the dead-letter reason of its payload.
Decoded = dict[str, Any] | list[dict[str, Any]] | str
#: A payload and the largest event accepted in; what it decodes to out.
Decoder = Callable[[bytes, int], Decoded]


def event_decoder(fmt: InputFormat, extraction: Extraction | None = None) -> Decoder:
    """How payloads of this format decode: `decode_event` itself for JSON without an extraction (the
    hot path stays as it was); otherwise the format's line parser on the payload read as UTF-8 (invalid
    bytes replaced, as RSigma reads NATS payloads), except `auto`'s JSON lines, which are read as bytes
    as `json` reads them. With an extraction, every JSON document (any line of `json`, `auto`'s JSON
    lines) becomes the events it finds."""
    extract = extractor(extraction) if extraction is not None else None
    read_json: Callable[[bytes], Decoded] = (
        parse_json if extract is None else partial(extract_json, extract=extract)
    )
    if fmt.name == "json":
        if extract is None:
            return decode_event

        def decode_document(payload: bytes, max_event_bytes: int) -> Decoded:
            if len(payload) > max_event_bytes:
                return too_large(payload, max_event_bytes)
            return read_json(payload)

        return decode_document
    parse = line_parser(fmt, extract)
    guess_json = fmt.name == "auto"

    def decode(payload: bytes, max_event_bytes: int) -> Decoded:
        if len(payload) > max_event_bytes:
            return too_large(payload, max_event_bytes)
        # A JSON line is read as bytes, as `json` reads it; only its first byte is looked at first.
        if guess_json and (payload[:1] in JSON_STARTS or starts_as_json(payload)):
            return read_json(payload)
        line = payload.decode("utf-8", "replace").rstrip("\r\n")
        if not line.strip():
            return "empty line"
        return parse(line)

    return decode


def result_lines(results: Sequence[Detection | CorrelationResult], include_event: bool) -> Lines:
    """The output line of each result, and the labels to count it by (RecursionError for results
    nested too deeply to write)."""
    lines: list[bytes] = []
    keys: list[RuleKey] = []
    for result in results:
        d = result.to_dict(include_event)
        try:
            line = orjson.dumps(d)
        except orjson.JSONEncodeError:
            # orjson writes at most 254 levels, but reads events up to 1,024 deep (kept whole by
            # --include-event): the standard library writes ~990; deeper raises RecursionError, which
            # the callers turn into a dead letter (TOO_DEEP_TO_WRITE) instead of dying.
            line = json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode()
        lines.append(line + b"\n")
        keys.append((d["rule_title"], d.get("level") or "unknown", d.get("correlation_type")))
    return lines, keys


def evaluate_payloads(
    evaluator: Evaluator,
    payloads: Sequence[bytes],
    options: PayloadOptions,
    *,
    hits: list[Hit] | None = None,
    origins: list[int] | None = None,
    skip: Mapping[int, str] | None = None,
    announce: Callable[[int], None] | None = None,
) -> tuple[list[tuple[int, Outcome]], int]:
    """The outcome of each payload that has one, as `(position, outcome)` in order, and how many
    events were evaluated (each event extracted from a payload counts).

    Without `hits` the evaluator correlates too. With `hits`, the events' level-1 correlation hits
    are appended to it for the windows' owners to apply, tagged with their payload's position; with
    an extraction and `origins`, tagged instead with a slot per event (an owner makes one window
    update per position, and a payload may hold several events), whose payload position `origins`
    gets at that index. `skip` maps positions not to evaluate to their dead-letter reasons, and
    `announce` is told each position before it is evaluated (a matcher re-evaluating a batch that
    killed it, see `workers/pool.py`).
    """
    engine, correlation = evaluator.engine, evaluator.correlation
    silent = correlation.silent_rules
    here = hits is None and bool(correlation.correlations)
    feeding = hits is not None and bool(correlation.correlations)
    slots = origins if feeding and options.extraction is not None else None
    include = options.include_event
    max_bytes = options.max_event_bytes
    decode = event_decoder(options.input_format, options.extraction)
    answers: list[tuple[int, Outcome]] = []
    evaluated = 0
    for position, payload in enumerate(payloads):
        if skip is not None and position in skip:
            answers.append((position, skip[position]))
            continue
        if announce is not None:
            announce(position)
        event = decode(payload, max_bytes)
        if isinstance(event, str):
            answers.append((position, event))
            continue
        if isinstance(event, list):  # the events extracted from a JSON document
            outcome, extracted_hits, count = _evaluate_events(
                evaluator, event, position, include, here, feeding, slots
            )
            evaluated += count
            if outcome is not None:
                answers.append((position, outcome))
            if extracted_hits:
                hits += extracted_hits  # type: ignore[operator]
            continue
        try:
            detections = engine.evaluate(event)
        except RecursionError:
            answers.append((position, TOO_DEEP_TO_EVALUATE))
            continue
        except BacktrackingBudgetExceeded as e:
            answers.append((position, str(e)))
            continue
        evaluated += 1
        if not detections:
            continue
        results: list[Detection | CorrelationResult] = (
            [d for d in detections if d.index not in silent] if silent else list(detections)
        )
        matched = [d.index for d in detections] if here or feeding else ()
        try:
            if here:
                results += correlation.process(event, matched)
            fed = (
                correlation.hits(event, matched, position if slots is None else _slot(slots, position))
                if feeding
                else None
            )
        except RecursionError:  # a correlation keeps its body (event mode full), which cannot be written
            answers.append((position, TOO_DEEP_TO_WRITE))
            continue
        if results:
            try:
                answers.append((position, result_lines(results, include)))
            except RecursionError:  # dead-lettered, and it feeds no correlation
                answers.append((position, TOO_DEEP_TO_WRITE))
                continue
        if fed:
            hits += fed  # type: ignore[operator]
    return answers, evaluated


def _slot(origins: list[int], position: int) -> int:
    """A new hit slot for an event of the payload at `position`."""
    origins.append(position)
    return len(origins) - 1


def _evaluate_events(
    evaluator: Evaluator,
    events: list[dict[str, Any]],
    position: int,
    include: bool,
    here: bool,
    feeding: bool,
    slots: list[int] | None,
) -> tuple[Outcome, list[Hit], int]:
    """One payload's extracted events: their results merged (each event's detections, then its
    correlations, event by event), their level-1 hits when `feeding` (each event in its own slot when
    `slots` is given), and how many were evaluated. All are evaluated before any correlates, so one
    that cannot be leaves the windows as they were and its payload goes to the DLQ whole.
    (`evaluate_payloads` keeps the one-event path apart: this one's extra work would cost every
    event.)"""
    engine, correlation = evaluator.engine, evaluator.correlation
    silent = correlation.silent_rules
    try:
        found = [engine.evaluate(event) for event in events]
    except RecursionError:
        return TOO_DEEP_TO_EVALUATE, [], 0
    except BacktrackingBudgetExceeded as e:
        return str(e), [], 0
    results: list[Detection | CorrelationResult] = []
    fed: list[Hit] = []
    try:
        for event, detections in zip(events, found, strict=True):
            if not detections:
                continue
            results += [d for d in detections if d.index not in silent] if silent else detections
            matched = [d.index for d in detections]
            if here:
                results += correlation.process(event, matched)
            elif feeding:
                fed += correlation.hits(event, matched, position if slots is None else _slot(slots, position))
    except RecursionError:  # a correlation keeps its body (event mode full), which cannot be written
        return TOO_DEEP_TO_WRITE, [], len(events)
    if not results:
        return None, fed, len(events)
    try:
        return result_lines(results, include), fed, len(events)
    except RecursionError:  # dead-lettered, and it feeds no correlation
        return TOO_DEEP_TO_WRITE, [], len(events)


def evaluate_batch(
    evaluator: Evaluator, payloads: Sequence[bytes], options: PayloadOptions, *, collect_hits: bool = False
) -> BatchResult:
    """Every payload's outcome, in order, evaluated and correlated in this process; with
    `collect_hits`, correlated elsewhere: each payload's hits are returned instead (`--cluster`)."""
    started = time.perf_counter()
    hits: list[Hit] | None = [] if collect_hits else None
    origins: list[int] = []
    answers, evaluated = evaluate_payloads(evaluator, payloads, options, hits=hits, origins=origins)
    outcomes: list[Outcome] = [None] * len(payloads)
    for position, outcome in answers:
        outcomes[position] = outcome
    if hits is None:
        return BatchResult(outcomes, evaluated, time.perf_counter() - started)
    per_payload = hits_per_payload(hits, origins if options.extraction is not None else None, len(payloads))
    keys = evaluator.correlation.keys
    return BatchResult(outcomes, evaluated, time.perf_counter() - started, per_payload, keys)


def hits_per_payload(hits: list[Hit], origins: list[int] | None, n: int) -> list[list[Hit]]:
    """Hits tagged with a payload position (or, with an extraction, an event slot whose payload
    `origins` gives) regrouped per payload, each tagged with its event's place among the payload's."""
    out: list[list[Hit]] = [[] for _ in range(n)]
    first_slot: dict[int, int] = {}
    for hit in hits:
        tag = hit[4]
        if origins is None:
            payload, event = tag, 0
        else:
            payload = origins[tag]
            event = tag - first_slot.setdefault(payload, tag)
        out[payload].append((hit[0], hit[1], hit[2], hit[3], event, hit[5], hit[6], hit[7]))
    return out
