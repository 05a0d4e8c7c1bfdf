"""The ``>>>`` examples of every page in ``docs/`` run and give the output shown."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

# Every page of the site written by hand, in any folder (the generated pages of the cell
# library and the API reference have no files; tests/test_site.py builds and checks them).
DOCS = Path(__file__).parent.parent / "docs"
PAGES = sorted(DOCS.rglob("*.md"))


def test_there_are_pages():
    assert PAGES


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_examples(page):
    result = doctest.testfile(
        str(page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    name = page.relative_to(DOCS).as_posix()
    assert result.attempted > 0, f"{name} has no >>> examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
