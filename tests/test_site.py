"""The documentation site builds in strict mode, and the pages it generates say what the code does.

The site needs the ``docs`` extra (``pip install -e ".[docs]"``); without it these tests skip.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import symrnn as sr

pytest.importorskip("mkdocs", reason="the docs extra is not installed")
pytest.importorskip("mkdocstrings", reason="the docs extra is not installed")
pytest.importorskip("material", reason="the docs extra is not installed")
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).parent.parent
#: Strict builds of the whole site take about 5 s here; a minute means something is wrong.
BUILD_TIMEOUT = 120


def _hooks() -> ModuleType:
    # mkdocs loads the hooks file by path; so do the tests.
    spec = importlib.util.spec_from_file_location(
        "symrnn_site", ROOT / "docs_hooks" / "symrnn_site.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _hooks()


def _build(config_dir: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=config_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = _build(ROOT, out)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}"
    return out


def _text(site: Path, page: str) -> str:
    return (site / page / "index.html").read_text(encoding="utf-8")


def test_site_builds_with_every_nav_page(site):
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]

    def pages(entries):
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            yield from pages(value) if isinstance(value, list) else [value]

    listed = set(pages(nav))
    written = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert written <= listed, f"pages missing from mkdocs.yml's nav: {sorted(written - listed)}"
    for page in listed:
        built = "index.html" if page == "index.md" else f"{page.removesuffix('.md')}/index.html"
        assert (site / built).exists(), page


def test_every_cell_has_a_generated_page(site):
    for name in sr.cells.__all__:
        html = _text(site, f"cells/{name}")
        assert f"sr.cells.{name}" in html
        forms = hooks.cell_forms(name)
        if forms:
            assert "BPTT of" in html and "Back-propagation through time" in html
            if shutil.which("dot"):
                assert (site / "cells" / f"{name}.svg").read_text().lstrip().startswith("<")
    overview = _text(site, "cells")
    assert all(f'href="{name}/"' in overview for name in sr.cells.__all__)


def test_the_api_reference_documents_every_public_name(site):
    groups = hooks.api_groups()
    for title, names in groups:
        html = _text(site, f"api/{hooks.slug(title)}")
        for name in names:
            # mkdocstrings gives every documented object an anchor named by its path.
            assert f'id="{hooks.api_identifier(name)}"' in html, (title, name)


def test_the_limits_page_shows_the_values_in_force(site):
    html = _text(site, "limits")
    from symrnn.parsing import MAX_DEPTH
    from symrnn.unfold import MAX_STEPS

    assert f"{MAX_STEPS:,}" in html and f"{MAX_DEPTH:,}" in html
    assert "<!-- limits -->" not in html


def test_a_broken_reference_fails_the_strict_build(tmp_path):
    # The same site with one page that names an object that does not exist.
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    (project / "docs_hooks").symlink_to(ROOT / "docs_hooks")
    (project / "symrnn").symlink_to(ROOT / "symrnn")
    (project / "docs" / "api.md").write_text("# API\n\n::: symrnn.no_such_function\n")
    result = _build(project, tmp_path / "site")
    assert result.returncode != 0
    assert "symrnn.no_such_function" in result.stderr


# ------------------------------------------------------------------ the generators themselves
def test_api_groups_list_all_in_order_and_each_path_reaches_the_object():
    groups = hooks.api_groups()
    assert [n for _, names in groups for n in names] == list(sr.__all__)
    assert len(groups) > 1 and all(title[0].isupper() for title, _ in groups)
    for _, names in groups:
        for name in names:
            module, _, attr = hooks.api_identifier(name).rpartition(".")
            assert getattr(importlib.import_module(module), attr) is getattr(sr, name)
    # A verb that has the name of its module is not documented as `symrnn.unfold`, which a
    # static reader of the package (griffe) resolves to the module.
    assert hooks.api_identifier("unfold") != "symrnn.unfold"


def test_limits_are_every_max_constant_with_its_value():
    rows = hooks.limits()
    found = {(module, name): value for module, name, value, _ in rows}
    by_name = {name: value for (_, name), value in found.items()}
    assert by_name["MAX_STEPS"] == 1_000_000 and by_name["MAX_DEPTH"] == 100
    assert all(meaning for *_, meaning in rows)
    # Every MAX constant a module exports is in the table, read back by a second route: the
    # imported modules' own __all__ and values.
    for module in {m for m, _ in found}:
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", ()):
            if "MAX" in name and not name.startswith("_"):
                assert found[(module, name)] == getattr(mod, name)


def test_limits_table_names_each_constant_by_a_path_that_reaches_it():
    table = hooks.limits_table()
    for module, name, value, _ in hooks.limits():
        path = hooks.public_path(module, name)
        assert f"| `{path}` |" in table
        namespace: dict[str, object] = {"sr": sr}
        # The path as a user types it (built from the package's own module and constant names):
        # an import statement, or an expression once the module is imported.
        if path.startswith("from "):
            exec(path, namespace)
            assert namespace[name] == value
        else:
            exec(f"import {module}", namespace)
            assert eval(path, namespace) == value
    # Where a verb has its module's name (sr.unfold and symrnn/unfold.py), attribute access finds
    # the verb: the table gives the package's re-export (sr.MAX_STEPS), else the from-import.
    for module, name, _, _ in hooks.limits():
        shadow = getattr(sr, module.rsplit(".", 1)[1], None)
        if callable(shadow) and not inspect.ismodule(shadow):
            want = f"sr.{name}" if name in sr.__all__ else f"from {module} import {name}"
            assert hooks.public_path(module, name) == want


def test_cell_pages_show_the_equations_the_cells_print():
    for name in sr.cells.__all__:
        page, _ = hooks.cell_page(name)
        assert f"::: symrnn.cells.{name}" in page
        for call, rec in hooks.cell_forms(name):
            assert isinstance(rec, sr.Recurrence)
            assert f"`{call}`" in page and sr.latex(rec) in page
    # A cell that takes a size n is shown in both forms.
    calls = [call for call, _ in hooks.cell_forms("elman")]
    assert calls == ["sr.cells.elman()", "sr.cells.elman(2)"]


def test_a_name_that_needs_arguments_gets_a_documentation_only_page(monkeypatch):
    def stack_of(*layers, name="stack"):
        """Stack cells."""
        raise AssertionError("a cell that needs arguments is not called without them")

    def from_module(module):
        """Convert a module."""
        raise AssertionError("a cell that needs arguments is not called without them")

    for fn in (stack_of, from_module):
        monkeypatch.setattr(sr.cells, fn.__name__, fn, raising=False)
    monkeypatch.setattr(sr.cells, "__all__", [*sr.cells.__all__, "stack_of", "from_module"])
    assert hooks.cell_forms("stack_of") == [] and hooks.cell_forms("from_module") == []
    page, svg = hooks.cell_page("stack_of")
    assert svg is None and "(*layers)" in page and "## Equations" not in page
    assert "(module)" in hooks.cell_page("from_module")[0]


def test_a_cell_built_from_cells_is_shown_built_from_the_scalar_rnn(monkeypatch):
    def chain(*layers: sr.Recurrence, name: str = "chain") -> sr.Recurrence:
        """The last of the layers."""
        return layers[-1]

    def pair(cell: sr.Recurrence) -> tuple[sr.Recurrence, sr.Recurrence]:
        """Two of a cell."""
        return cell, cell

    for fn in (chain, pair):
        monkeypatch.setattr(sr.cells, fn.__name__, fn, raising=False)
    monkeypatch.setattr(sr.cells, "__all__", [*sr.cells.__all__, "chain", "pair"])
    ((call, rec),) = hooks.cell_forms("chain")
    assert call == "sr.cells.chain(sr.cells.rnn(), sr.cells.rnn())"
    assert str(rec) == str(sr.cells.rnn())
    assert "## Equations" in hooks.cell_page("chain")[0]
    assert hooks.cell_forms("pair") == []
    assert "gives a `tuple`, not one recurrence" in hooks.cell_page("pair")[0]


def test_rst_docstrings_become_markdown():
    text = (
        "See :func:`~symrnn.ops.dot` and :class:`symrnn.Recurrence`, ``code``, "
        ":math:`h^{(t)}`.\n\n.. math::\n    a = b\n    + c\n\nAfter."
    )
    assert hooks.rst_to_markdown(text) == (
        "See `dot` and `symrnn.Recurrence`, `code`, $h^{(t)}$.\n\n$$\na = b\n+ c\n$$\n\nAfter."
    )


def test_rst_math_with_rows_gets_an_aligned_environment():
    text = ".. math::\n    a &= b, \\\\\n    c &= d\n"
    assert hooks.rst_to_markdown(text) == (
        "$$\n\\begin{aligned}\na &= b, \\\\\nc &= d\n\\end{aligned}\n$$\n"
    )


def test_doctests_outside_fences_are_fenced_once():
    page = "Text\n>>> 1 + 1\n2\n\n```pycon\n>>> 2\n2\n```\n"
    assert hooks.fence_doctests(page) == (
        "Text\n```pycon\n>>> 1 + 1\n2\n```\n\n```pycon\n>>> 2\n2\n```\n"
    )
    docstring = "Summary.\n\n>>> 1\n1\n\nExamples\n--------\n>>> 2\n2\n"
    fenced = hooks.fence_doctests(docstring, docstring=True)
    assert fenced.count("```pycon") == 1 and fenced.endswith("--------\n>>> 2\n2\n")


def test_cells_table_links_every_cell_with_its_summary():
    table = hooks.cells_table()
    for name in sr.cells.__all__:
        summary = inspect.getdoc(getattr(sr.cells, name)).split("\n\n")[0].split()[0]
        assert f"[`{name}`](cells/{name}.md) | {summary}" in table
