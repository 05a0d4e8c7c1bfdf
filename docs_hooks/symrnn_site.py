r"""mkdocs hooks: the pages of the site that are generated from the package while it builds.

What is written by hand can drift from the code; these pages cannot, because they are made from
the package itself every time the site is built:

- ``cells/<name>.md``, one page per name in ``sr.cells.__all__``: the docstring, the equations
  (as printed by :func:`symrnn.latex`), the folded computational graph (:func:`symrnn.graph`, as
  SVG where Graphviz ``dot`` is installed) and the BPTT equations (:func:`symrnn.derivation`);
- ``api/<group>.md``, the API reference: every name of ``symrnn.__all__``, grouped by the
  comments of that list in ``symrnn/__init__.py``, rendered by mkdocstrings;
- the table of limits on ``limits.md`` (at the ``<!-- limits -->`` marker): every ``MAX_*``
  constant of the package's modules, its value and the ``#:`` comment that states it; and the
  table of cells on ``cells.md`` (at ``<!-- cells -->``).

Doctest examples written outside code fences (``>>>`` at the start of a line, as in
``docs/cli.md``) are shown as code blocks instead of being read as Markdown quotes.  The griffe
extension :class:`RstDocstrings` turns the docstrings' reStructuredText (roles, ``.. math::``)
into the site's Markdown for the API reference.

mkdocs loads this file by path (``hooks:`` in ``mkdocs.yml``); the tests import it the same way.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import griffe

import symrnn as sr

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "symrnn"
CELL_SECTION, API_SECTION = "Cell library", "API reference"
LIMITS_MARKER, CELLS_MARKER = "<!-- limits -->", "<!-- cells -->"
#: Steps unfolded for a cell's BPTT equations (the equations are in symbolic t; this only fixes τ).
CELL_STEPS = 2
#: Units of the vector form shown for cells that take a size ``n``.
CELL_UNITS = 2


# ===================================================================================== cells
def cell_names() -> list[str]:
    """The names that get a page in the cell library, in the order of ``sr.cells.__all__``."""
    return list(sr.cells.__all__)


def _required(fn: Any) -> list[str]:
    """Parameters of ``fn`` that have no default (a cell built from other objects has some).

    ``*layers`` counts: a function that takes any number of cells is called with some.
    """
    return [
        f"*{p.name}" if p.kind is p.VAR_POSITIONAL else p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind is p.VAR_POSITIONAL or (p.default is p.empty and p.kind is not p.VAR_KEYWORD)
    ]


#: The cell passed where a cell is built from other cells (sizes that always fit: one unit).
EXAMPLE_LAYER = "rnn"


def _example_call(fn: Any) -> tuple[str, list[Any]] | None:
    """Arguments for a call of ``fn`` with its required parameters filled, as text and values.

    Only parameters annotated ``Recurrence`` can be filled (with ``sr.cells.rnn()``, twice for
    ``*layers``); ``None`` if another parameter has no default.
    """
    texts: list[str] = []
    values: list[Any] = []
    layer = getattr(sr.cells, EXAMPLE_LAYER)
    try:  # annotations are strings under `from __future__ import annotations`
        signature = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, SyntaxError):
        signature = inspect.signature(fn)
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD or (p.kind is not p.VAR_POSITIONAL and p.default is not p.empty):
            continue
        if p.annotation not in (sr.Recurrence, "Recurrence") or p.kind is p.KEYWORD_ONLY:
            return None
        copies = 2 if p.kind is p.VAR_POSITIONAL else 1
        texts += [f"sr.cells.{EXAMPLE_LAYER}()"] * copies
        values += [layer() for _ in range(copies)]
    return ", ".join(texts), values


def cell_forms(name: str) -> list[tuple[str, sr.Recurrence]]:
    """The forms of cell ``name`` that its page shows, as (the call, the recurrence) pairs.

    A cell callable without arguments gives its default form; one that takes a size ``n`` also
    gives its vector form at ``CELL_UNITS`` units.  A cell built from other cells is built from
    ``sr.cells.rnn()``.  A name that needs other arguments (a converter), or that returns
    something other than a ``Recurrence``, gives none: its page shows its documentation only.
    """
    fn = getattr(sr.cells, name)
    call = _example_call(fn) if callable(fn) else None
    if call is None:
        return []
    text, args = call
    forms: list[tuple[str, sr.Recurrence]] = []
    default = fn(*args)
    if isinstance(default, sr.Recurrence):
        forms.append((f"sr.cells.{name}({text})", default))
    if not args and "n" in inspect.signature(fn).parameters:
        vector = fn(n=CELL_UNITS)
        if isinstance(vector, sr.Recurrence) and vector != default:
            forms.append((f"sr.cells.{name}({CELL_UNITS})", vector))
    return forms


def _quantities(rec: sr.Recurrence) -> str:
    parts = [
        ("states", rec.states),
        ("inputs", rec.inputs),
        ("outputs", rec.outputs),
        ("same-time intermediates", rec.intermediates),
    ]
    said = [f"{label} `{', '.join(map(str, items))}`" for label, items in parts if items]
    said.append(f"{len(rec.params)} scalar parameters")
    return "; ".join(said) + "."


def _section_markdown(rec: sr.Recurrence) -> str:
    """The BPTT and gradient sections of the recurrence's derivation, as Markdown."""
    derivation = sr.derivation(rec, steps=CELL_STEPS, solve=False, verify=False)
    kept = derivation.without(*(k for k in derivation.keys if k not in ("bptt", "gradients")))
    # Drop the derivation's own title: its sections go under the page's BPTT heading.
    return "\n".join(kept.to_markdown().splitlines()[1:]).strip()


def cell_page(name: str) -> tuple[str, str | None]:
    """The Markdown page of cell ``name`` and its graph as SVG (``None`` without ``dot``)."""
    fn = getattr(sr.cells, name)
    head = [
        f"# `sr.cells.{name}`",
        "",
        "*This page is generated from `sr.cells` when the site is built.*",
        "",
        f"::: symrnn.cells.{name}",
        "    options:",
        "      show_root_heading: false",
        "",
    ]
    forms = cell_forms(name)
    if not forms:
        example = _example_call(fn) if callable(fn) else None
        if example is None:
            needs = ", ".join(_required(fn)) if callable(fn) else "no call"
            why = f"takes arguments without defaults ({needs})"
        else:
            built = fn(*example[1])
            why = f"gives a `{type(built).__name__}`, not one recurrence"
        head += [
            f"`sr.cells.{name}` {why}, so this page shows its documentation; the examples in it "
            "show what it builds.",
            "",
        ]
        return "\n".join(head), None
    body = ["## Equations", ""]
    for shown, rec in forms:
        body += [f"`{shown}`: {_quantities(rec)}", "", "$$", sr.latex(rec), "$$", ""]
    call, main = forms[-1]
    graph = sr.graph(main)
    svg = graph._repr_svg_()
    body += ["## Computational graph", ""]
    if svg is None:
        body += [
            f"The folded graph of `{call}` in DOT (install Graphviz to see it drawn):",
            "",
            "```dot",
            graph.to_dot().rstrip(),
            "```",
            "",
        ]
    else:
        body += [
            f"The folded graph of `{call}` (`sr.graph`; a square marks the one-step delay):",
            "",
            f"![The computational graph of {name}]({name}.svg)",
            "",
        ]
    body += [
        f"## BPTT of `{call}`",
        "",
        "The adjoint recursion and the parameter gradients, from "
        f"`sr.derivation({call}, steps={CELL_STEPS})`.",
        "",
        _section_markdown(main),
        "",
    ]
    return "\n".join(head + body), svg


def cells_table() -> str:
    """A table of the cells: a link to each page and the first sentence of its documentation."""
    rows = ["| cell | what it is |", "|---|---|"]
    for name in cell_names():
        doc = inspect.getdoc(getattr(sr.cells, name)) or ""
        summary = " ".join(doc.split("\n\n")[0].split())
        rows.append(f"| [`{name}`](cells/{name}.md) | {rst_to_markdown(summary)} |")
    return "\n".join(rows)


# ======================================================================================= API
def api_groups() -> list[tuple[str, list[str]]]:
    """``symrnn.__all__`` in the groups that its comments in ``symrnn/__init__.py`` name.

    Raises ``ValueError`` if the groups and ``symrnn.__all__`` disagree (a name added to the list
    without a group, or a parse that missed one), so a changed ``__init__.py`` cannot silently
    drop a name from the reference.
    """
    source = (PACKAGE / "__init__.py").read_text(encoding="utf-8")
    block = re.search(r"^__all__ = \[\n(.*?)^\]", source, flags=re.S | re.M)
    if block is None:
        raise ValueError("symrnn/__init__.py has no `__all__ = [` ... `]` list")
    groups: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        comment = re.fullmatch(r"\s*#\s*(.+?)\s*", line)
        name = re.fullmatch(r'\s*"(\w+)",?\s*', line)
        if comment:
            title = comment.group(1)
            groups.append((title[0].upper() + title[1:], []))
        elif name:
            if not groups:
                groups.append(("Other", []))
            groups[-1][1].append(name.group(1))
    listed = [n for _, names in groups for n in names]
    if listed != list(sr.__all__):
        raise ValueError(
            "the groups parsed from symrnn/__init__.py do not list symrnn.__all__: "
            f"missing {sorted(set(sr.__all__) - set(listed))}, extra "
            f"{sorted(set(listed) - set(sr.__all__))}; write one name per line under a comment"
        )
    return groups


def slug(title: str) -> str:
    """A file name for a group title: ``Writing recurrences`` -> ``writing-recurrences``."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def api_identifier(name: str) -> str:
    """The path mkdocstrings resolves for ``symrnn.<name>``.

    Functions and classes are named by the module that defines them: ``symrnn.unfold`` the
    function has the same name as the module ``symrnn/unfold.py``, and a static reader of the
    package (griffe) finds the module under ``symrnn.unfold``.
    """
    obj: Any = getattr(sr, name)
    if inspect.isfunction(obj) or inspect.isclass(obj):
        path = f"{obj.__module__}.{obj.__qualname__}"
        # A function made by a factory (its qualname has <locals>) is found by its public name.
        if getattr(importlib.import_module(obj.__module__), obj.__qualname__, None) is obj:
            return path
    return f"symrnn.{name}"


def api_page(title: str, names: list[str]) -> str:
    lines = [
        f"# {title}",
        "",
        "*Generated from `symrnn.__all__` when the site is built.* "
        + ", ".join(f"`sr.{n}`" for n in names),
        "",
    ]
    for name in names:
        obj = getattr(sr, name)
        lines += [f"::: {api_identifier(name)}"]
        if obj is sr.cells:
            # The cells have pages of their own, in the cell library.
            lines += [
                "    options:",
                "      members: false",
                "",
                "See the [cell library](../cells.md).",
            ]
        lines += [""]
    return "\n".join(lines)


# ==================================================================================== limits


def limits() -> list[tuple[str, str, Any, str]]:
    """Every stated limit: (module, constant, value, what it bounds), module by module.

    A limit is a module-level constant whose name contains ``MAX``; what it bounds is the
    ``#:`` comment above it, which every such constant has.
    """
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        module = f"symrnn.{path.stem}"
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.parse("\n".join(lines)).body:
            if isinstance(node, ast.Assign):
                targets, assigned = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, assigned = [node.target], node.value
            else:
                continue
            for target in targets:
                if not (isinstance(target, ast.Name) and "MAX" in target.id):
                    continue
                if target.id.startswith("_"):
                    continue
                comment: list[str] = []
                k = node.lineno - 2
                while k >= 0 and lines[k].lstrip().startswith("#:"):
                    comment.insert(0, lines[k].lstrip()[2:].strip())
                    k -= 1
                if not comment:
                    raise ValueError(f"{module}.{target.id} has no #: comment saying what it is")
                try:  # a literal needs no import (the runtime templates cannot be imported)
                    value = ast.literal_eval(assigned)
                except (ValueError, TypeError, SyntaxError):
                    value = getattr(importlib.import_module(module), target.id)
                found.append((module, target.id, value, rst_to_markdown(" ".join(comment))))
    return found


def public_path(module: str, name: str) -> str:
    """How a user reaches constant ``name`` of ``module``, written as they would type it.

    ``sr.NAME`` if the package re-exports it; ``symrnn.module.NAME`` if attribute access gets
    there; otherwise a ``from`` import, which finds the module even where a function of the
    package has its name (``symrnn.unfold`` is the verb, and ``symrnn.unfold.MAX_STEPS`` fails).
    """
    value = getattr(importlib.import_module(module), name)
    if name in sr.__all__ and getattr(sr, name) is value:
        return f"sr.{name}"
    obj: Any = sr
    for part in module.split(".")[1:]:
        obj = getattr(obj, part, None)
    if inspect.ismodule(obj) and getattr(obj, name, None) is value:
        return f"{module}.{name}"
    return f"from {module} import {name}"


def limits_table() -> str:
    rows = ["| constant | value | what it bounds |", "|---|---:|---|"]
    for module, name, value, meaning in limits():
        shown = f"{value:,}" if isinstance(value, int) else str(value)
        rows.append(f"| `{public_path(module, name)}` | {shown} | {meaning} |")
    return "\n".join(rows)


# ======================================================================== reST to Markdown
_ROLE = re.compile(r":(?:py:)?(\w+):`([^`]+)`")


def _role(match: re.Match[str]) -> str:
    role, text = match.groups()
    if role == "math":
        return f"${text}$"
    titled = re.fullmatch(r"(.+?)\s*<[^>]+>", text)
    if titled:
        return f"`{titled.group(1)}`"
    return f"`{text[1:].rsplit('.', 1)[-1]}`" if text.startswith("~") else f"`{text}`"


def _math_blocks(lines: list[str]) -> list[str]:
    """``.. math::`` directives as ``$$`` blocks at the directive's indentation."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        directive = re.fullmatch(r"(\s*)\.\. math::\s*(.*)", lines[i])
        if directive is None:
            out.append(lines[i])
            i += 1
            continue
        indent, first = directive.groups()
        body = [first] if first else []
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)
        ):
            body.append(lines[i].strip())
            i += 1
        body = [line for line in body if line]
        if any("&" in line or line.endswith("\\\\") for line in body) and not any(
            "\\begin" in line for line in body
        ):
            # As Sphinx does: rows (\\) and alignment points (&) need an environment.
            body = ["\\begin{aligned}", *body, "\\end{aligned}"]
        out += [f"{indent}$$", *(f"{indent}{line}" for line in body), f"{indent}$$", ""]
    return out


def rst_to_markdown(text: str) -> str:
    """The reStructuredText of the package's docstrings, as the site's Markdown.

    Roles become code (``:func:`~symrnn.ops.dot``` -> `` `dot` ``) or math (``:math:`x``` ->
    ``$x$``), ``.. math::`` directives become ``$$`` blocks, double backquotes single ones.
    """
    text = "\n".join(_math_blocks(text.splitlines()))
    return _ROLE.sub(_role, text).replace("``", "`")


class RstDocstrings(griffe.Extension):
    """A griffe extension (``extensions:`` in ``mkdocs.yml``) that converts every docstring.

    It also fences ``>>>`` examples outside an ``Examples`` section, which Markdown would read
    as nested quotes; inside one, griffe's NumPy parser makes them code itself.
    """

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(rst_to_markdown(obj.docstring.value), True)


# ================================================================================= doctests
def fence_doctests(markdown: str, docstring: bool = False) -> str:
    """Put ``>>>`` examples that stand outside code fences into ``pycon`` code fences.

    An example starts at a line beginning with ``>>>`` and runs to the next blank line, which is
    how doctest reads it too.  In a ``docstring``, examples under a NumPy ``Examples`` heading
    are left to griffe's parser.
    """
    out: list[str] = []
    fenced = in_example = in_examples_section = False
    indent = ""
    lines = markdown.splitlines()
    for k, line in enumerate(lines):
        if docstring and k + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[k + 1].strip()):
            in_examples_section = line.strip() in ("Examples", "Example")
        if in_example and not line.strip():
            out.append(f"{indent}```")
            in_example = False
        elif not in_example and line.lstrip().startswith("```"):
            fenced = not fenced
        elif not (fenced or in_example or in_examples_section) and line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}```pycon")
            in_example = True
        out.append(line)
    if in_example:
        out.append(f"{indent}```")
    return "\n".join(out) + "\n"


# ===================================================================================== hooks
def _section(nav: list[Any], title: str) -> list[Any]:
    for entry in nav:
        if isinstance(entry, dict) and title in entry:
            return entry[title]
    raise ValueError(f"mkdocs.yml's nav has no section {title!r} for the generated pages")


def on_config(config: Any) -> Any:
    _section(config["nav"], CELL_SECTION).extend(
        {f"sr.cells.{name}": f"cells/{name}.md"} for name in cell_names()
    )
    _section(config["nav"], API_SECTION).extend(
        {title: f"api/{slug(title)}.md"} for title, _ in api_groups()
    )
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for name in cell_names():
        page, svg = cell_page(name)
        files.append(File.generated(config, f"cells/{name}.md", content=page))
        if svg is not None:
            files.append(File.generated(config, f"cells/{name}.svg", content=svg))
    for title, names in api_groups():
        page = api_page(title, names)
        files.append(File.generated(config, f"api/{slug(title)}.md", content=page))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if LIMITS_MARKER in markdown:
        markdown = markdown.replace(LIMITS_MARKER, limits_table())
    if CELLS_MARKER in markdown:
        markdown = markdown.replace(CELLS_MARKER, cells_table())
    return fence_doctests(markdown)
