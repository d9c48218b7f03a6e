"""The rule cache in the daemon: the daemon (with a pool, its throwaway loader process) fills it, the
forkserver the matchers are forked from and the matchers at a reload load from it, as `engine eval`
does, and the results never change."""

from __future__ import annotations

from pathlib import Path


def events(ev) -> bytes:
    return ev.ndjson(
        ev.whoami(1), ev.quiet(2), ev.failed("u", 0), ev.failed("u", 1), ev.netcat(3), ev.failed("u", 2)
    )


def cache_logs(d, outcome: str) -> list[dict]:
    return d.find_logs(f"rule cache {outcome}")


def test_the_daemon_and_its_matchers_load_from_the_cache_with_the_same_results(
    daemon, daemon_workers, rules_dir, ev, tmp_path
):
    cache = tmp_path / "cache"
    without = daemon("-r", rules_dir, "--no-rule-cache", stdin=events(ev))
    assert without.wait_exit() == 0, without.stderr()
    assert cache_logs(without, "") == []
    expected = without.results()
    assert [r["rule_title"] for r in expected] == ["Whoami", "Brute force"]

    first = daemon("-r", rules_dir, "--rule-cache", cache, stdin=events(ev))
    assert first.wait_exit() == 0, first.stderr()
    [entry] = cache.glob("*.rules")
    [stored] = cache_logs(first, "miss")
    assert stored["message"] == f"rule cache miss, stored {entry}"
    assert len(cache_logs(first, "hit")) == min(daemon_workers, 1)  # the matchers' forkserver loads it
    assert first.results() == expected

    second = daemon("-r", rules_dir, "--rule-cache", cache, stdin=events(ev))
    assert second.wait_exit() == 0, second.stderr()
    hits = cache_logs(second, "hit")
    assert [h["message"] for h in hits] == [f"rule cache hit {entry}"] * (min(daemon_workers, 1) + 1)
    assert all(isinstance(h["load_seconds"], float) for h in hits)
    assert cache_logs(second, "miss") == []
    assert second.results() == expected


def test_a_reload_after_an_edit_loads_the_edited_rules_and_caches_them(
    daemon, daemon_workers, rules_dir, netcat_rule, ev, tmp_path, jsonl
):
    cache = tmp_path / "cache"
    out = tmp_path / "out.ndjson"
    d = daemon("-r", rules_dir, "--rule-cache", cache, "--input", "http", "--output", f"file://{out}")
    d.post_events(ev.netcat(1))
    d.wait_processed(1)
    assert jsonl(out) == []

    (rules_dir / "netcat.yml").write_text(netcat_rule)
    r = d.post("/api/v1/reload")
    assert r.status == 200, r.body
    assert r.json()["status"] == "reloaded"
    assert len(cache_logs(d, "miss")) == 2  # at startup, and the edited rule set at the reload
    assert len(list(Path(cache).glob("*.rules"))) == 2
    d.post_events(ev.netcat(2))
    d.wait_processed(2)
    assert [r["rule_title"] for r in jsonl(out)] == ["Netcat"]
    if daemon_workers:
        # the forkserver at startup, then each matcher the reloaded rules from the entry just stored
        assert len(cache_logs(d, "hit")) == 1 + daemon_workers
