"""The suite's own layout: pytest imports test modules by basename (no ``__init__.py``
under tests/, the default import mode), so two test files with one name make collection
fail with "import file mismatch" for whoever runs the whole suite."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_module_has_a_name_of_its_own() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        by_name[path.name].append(str(path.relative_to(TESTS)))
    assert {name: paths for name, paths in by_name.items() if len(paths) > 1} == {}


def test_a_module_scoped_fixture_keeps_its_tests_on_one_worker() -> None:
    """Under pytest-xdist every worker that runs a test of the module sets a module-scoped
    fixture up again (a training run of 5-30 s): such modules carry an ``xdist_group``."""
    ungrouped = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("test_*.py")
        if 'scope="module"' in (text := path.read_text()) and "xdist_group" not in text
    ]
    assert ungrouped == []
