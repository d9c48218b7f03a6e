"""How the test code is put together: shared code lives in tests/support and is imported as
`tests.support`; no file under tests/ imports a test module or a conftest, or changes sys.path."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
FILES = sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def problems(path: Path) -> list[str]:
    """What is wrong with one file, each as `line: what`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            modules = [base] + [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
        for module in modules:
            parts = [p for p in module.split(".") if p]
            if any(p.startswith("test_") or p == "conftest" for p in parts):
                found.append(f"{node.lineno}: imports {module} (a test module or a conftest)")
                break
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            found.append(f"{node.lineno}: uses sys.path")
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "sys"
            and any(a.name == "path" for a in node.names)
        ):
            found.append(f"{node.lineno}: imports sys.path")
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(TESTS)))
def test_no_test_module_or_conftest_imported_and_sys_path_untouched(path):
    assert problems(path) == [], f"{path.relative_to(TESTS)}: move shared code to tests/support"


def test_the_check_catches_each_kind(tmp_path):
    cases = {
        "import test_other\n": "imports test_other",
        "from test_other import x\n": "imports test_other",
        "from . import test_other\n": "imports test_other",
        "from conftest import thing\n": "imports conftest",
        "from tests.daemon.conftest import Events\n": "imports tests.daemon.conftest",
        "import sys\nsys.path.insert(0, 'x')\n": "uses sys.path",
        "from sys import path\n": "imports sys.path",
    }
    for source, expected in cases.items():
        sample = tmp_path / "sample.py"
        sample.write_text(source)
        assert any(expected in p for p in problems(sample)), (source, problems(sample))
    clean = tmp_path / "clean.py"
    clean.write_text("import sys\nfrom tests.support import wait_until\nfrom rsigma.testing import x\n")
    assert problems(clean) == []
