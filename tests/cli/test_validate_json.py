"""`rsigma rule validate --format json`: one document a CI job can read, with the text format's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import BROKEN, NOMETA, WHOAMI, rsigma, write


def validate_json(*paths: Path) -> tuple[int, dict]:
    proc = rsigma("rule", "validate", "--format", "json", *paths)
    return proc.returncode, json.loads(proc.stdout)  # the whole of stdout is one document


def test_a_tree_with_broken_files_lists_every_file_error_and_warning(tmp_path):
    rules = tmp_path / "rules"
    good = write(rules / "good.yml", WHOAMI)
    evil = write(rules / "evil.yml", NOMETA)
    copy = write(rules / "later" / "whoami_again.yml", WHOAMI)
    bad_modifier = write(rules / "bad" / "modifier.yml", BROKEN)
    bad_yaml = write(rules / "yaml.yml", NOMETA.replace("Evil", "Other") + "---\ntitle: [unclosed\n")
    hidden = write(rules / ".drafts" / "draft.yml", WHOAMI)

    code, report = validate_json(rules)

    assert code == 1
    assert {f["file"]: f["status"] for f in report["files"]} == {
        str(good): "ok",
        str(evil): "ok",
        str(copy): "warning",
        str(bad_modifier): "error",
        str(bad_yaml): "error",
    }
    modifier, yaml = report["errors"]
    assert (modifier["file"], modifier["rule"]) == (str(bad_modifier), "Broken Rule")
    assert "bogusmod" in modifier["message"]
    assert (yaml["file"], yaml["line"], yaml["rule"]) == (str(bad_yaml), 10, None)  # where YAML gave up
    assert "invalid YAML" in yaml["message"]
    [warning] = report["warnings"]
    assert warning["file"] == str(copy)
    assert warning["rule"] == "Whoami Execution"
    assert "used again" in warning["message"]
    assert report["skipped"] == [{"file": str(hidden), "reason": "hidden"}]
    assert report["totals"] == {
        "files": 5,
        "ok": 2,
        "with_warnings": 1,
        "failed": 2,
        "skipped": 1,
        "errors": 2,
        "warnings": 1,
        "rules": 4,
        "filters": 0,
        "correlations": 0,
    }


def test_a_good_tree_exits_0_and_a_missing_path_is_a_failed_file(tmp_path):
    good = write(tmp_path / "rules" / "good.yml", WHOAMI)
    code, report = validate_json(tmp_path / "rules")
    assert code == 0
    assert report["files"] == [{"file": str(good), "status": "ok"}]
    assert report["errors"] == report["warnings"] == []

    missing = tmp_path / "nowhere"
    code, report = validate_json(tmp_path / "rules", missing)
    assert code == 1
    assert {"file": str(missing), "status": "error"} in report["files"]
    assert report["totals"]["failed"] == 1


def test_an_unknown_format_is_a_usage_error(tmp_path):
    good = write(tmp_path / "good.yml", WHOAMI)
    proc = rsigma("rule", "validate", "--format", "yaml", good)
    assert proc.returncode == 2
    assert "--format" in proc.stderr
