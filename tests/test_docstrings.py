"""The ``>>>`` examples in the docstrings of every symrnn module run and give the output shown."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import symrnn

# scan_runtime and matrix_runtime are the text of generated modules (their names come from the
# generated tables); __main__ runs the command line when imported.
MODULES = sorted(
    info.name
    for info in pkgutil.iter_modules(symrnn.__path__)
    if info.name not in ("__main__", "scan_runtime", "matrix_runtime")
)
#: Modules with nothing to show by example.
WITHOUT_EXAMPLES = {"errors"}


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name: str) -> None:
    module = importlib.import_module(f"symrnn.{name}")
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
    assert (result.attempted > 0) == (name not in WITHOUT_EXAMPLES)
