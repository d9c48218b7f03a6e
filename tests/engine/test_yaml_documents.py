"""Rule files read as PyYAML's safe loader reads them (YAML 1.1 types), whichever parser reads them.

Most files are read by yaml-rs, which types some plain scalars otherwise than YAML 1.1; each case
below is one such difference, or one thing it is not trusted with, and must still read as PyYAML
reads it, with the document's first line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rsigma.rules import load_rules
from rsigma.rules.yaml_documents import iter_documents

CASES = {
    "plain rule": "title: t\nlogsource: {product: windows}\ndetection:\n  sel: {Image: '\\x.exe'}\n",
    "booleans 1.1 and 1.2 read apart": "a: [yes, no, on, off, y, n, Yes, NO, true, 'yes']\n",
    "octal and leading zeros": "a: [010, 08, 0o17, -0o7, 00, 0X1F, 0x1F, 0b101]\n",
    "underscores in numbers": "a: [1_000, 1__0, 0x1_F]\n",
    "an int key with a leading zero": "010: x\n11: y\n",
    "sexagesimal": "a: [1:30, 190:20:30, '1:30']\n",
    "floats": "a: [1e3, 1.5e3, .5, 5., .NaN, .inf, -.Inf]\n",
    "nulls and empty strings": "a: [~, null, Null, '', \"\", 'null']\nb:\n",
    "timestamps": "date: 2023-01-01\nmodified: 2023-1-1\nwhen: 2001-12-14t21:59:43.10-05:00\n",
    "quoted lookalikes": "EventID: ['4688', '0x10', 'true', '~', '*', '1e3']\n",
    "merge keys": "base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n",
    "a quoted merge key": "m:\n  '<<': not a merge\n",
    "the value key, which PyYAML cannot construct": "a: =\n",
    "tags": "a: !!str 12\nb: !!int '7'\n",
    "comments and blank lines first": "# a comment\n\n   # another\ntitle: t\n",
    "document markers": "---\ntitle: t\n...\n",
    "a directive": "%YAML 1.1\n---\ntitle: t\n",
    "several documents": "title: a\n---\ntitle: b\n",
    "a tab in a value": "a: x\tb\n",
    "a tab after the colon": "a:\tb\n",
    "NEL, a line break in YAML 1.1": 'a: "x\u0085y"\n',
    "block scalars": "a: |\n  x\n  y\nb: >-\n  x\n  y\nc: x\n  y\n",
    "a list at the root": "- a\n- b\n",
    "a scalar at the root": "just text\n",
    "an empty file": "",
    "only a comment": "# nothing\n",
    "non-ASCII": "title: 'Ünïcödé ✓'\nv: [ſ, 𝔘]\n",
}


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_each_document_reads_as_pyyaml_safe_load_reads_it(text):
    try:
        expected = list(yaml.load_all(text, Loader=yaml.CSafeLoader))
    except yaml.YAMLError:
        with pytest.raises(yaml.YAMLError):
            list(iter_documents(text))
        return
    got = list(iter_documents(text))
    assert [doc for _, doc in got] == expected
    assert [type(v) for v in _scalars([doc for _, doc in got])] == [type(v) for v in _scalars(expected)]
    if len(expected) == 1 and expected[0] is not None:
        node = yaml.compose(text, Loader=yaml.CSafeLoader)
        assert got[0][0] == node.start_mark.line + 1


def _scalars(node):
    """Every scalar, keys included, in order: `1 == True` and `0 == 0.0` hide a type in ==."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _scalars(k)
            yield from _scalars(v)
    elif isinstance(node, list):
        for v in node:
            yield from _scalars(v)
    else:
        yield node


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "title: t\ndate: 2023-13-01\n",
            "line 2: invalid YAML, column 7: '2023-13-01' is not a valid timestamp",
        ),
        ("title: t\nx: [\n", "line 3: invalid YAML, column 1: did not find expected node content"),
        ("a: 1\na: 2\n", None),
    ],
    ids=["a date with no such month", "a syntax error", "a duplicate key (the last one holds, as in PyYAML)"],
)
def test_a_file_yaml_rs_refuses_or_cannot_type_gets_pyyamls_reading(tmp_path: Path, text, problem):
    path = tmp_path / "rule.yml"
    path.write_text(text, encoding="utf-8")
    rs = load_rules(path)
    if problem is None:
        assert [doc for _, doc in iter_documents(text)] == [yaml.safe_load(text)]
        return
    (error,) = rs.errors
    assert "rule.yml" in str(error)
    assert problem in str(error).replace(f"{path}:", "line "), str(error)
