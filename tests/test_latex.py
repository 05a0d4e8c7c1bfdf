"""LaTeX: sr.latex for every object, the lecture's unfoldings, line breaking, derivations.

Golden files (``tests/golden/latex_*.tex``, ``derivation_*``) are compared byte for byte;
``SYMRNN_UPDATE_GOLDEN=1`` rewrites them.  Verification tables hold floats that vary between
machines, so golden derivations leave that section out and it is tested by structure.  The
documents are compiled with ``pdflatex`` and page 1 is rendered with ``pdftoppm`` where those
programs are installed.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import shutil
import struct
import subprocess
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.core.function import AppliedUndef

import symrnn as sr
from symrnn.errors import SymrnnError, ToolMissing
from symrnn.latex import (
    LINE_WIDTH,
    Derivation,
    Display,
    Figure,
    Paragraph,
    Table,
    break_latex,
    derivation,
    latex,
    latex_width,
)
from symrnn.matrix_form import matrix_bptt
from symrnn.notation import is_time_atom, latex_expr, time_function

GOLDEN = Path(__file__).parent / "golden"
t = sr.t


def _golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/<name>``; SYMRNN_UPDATE_GOLDEN=1 rewrites the file."""
    path = GOLDEN / name
    if not text.endswith("\n"):
        text += "\n"
    if os.environ.get("SYMRNN_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"golden file {path} is missing; run with SYMRNN_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


def _read_golden(name: str) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8").strip()


def _flat(tex: str) -> str:
    """LaTeX with layout removed: aligned, &, \\\\, spaces (for comparing content)."""
    tex = re.sub(r"\\(begin|end)\{aligned\}", "", tex)
    return re.sub(r"\s+|&|\\\\", "", tex)


def _y():
    return time_function("y")


@dataclasses.dataclass(frozen=True)
class _Row:
    """A row as symrnn.verify makes them (the contract), for tests that need chosen values."""

    check: str
    compared: str
    max_abs: float | None
    max_rel: float | None
    where: str
    tol: str
    status: str
    detail: str


@dataclasses.dataclass(frozen=True)
class _FakeReport:
    rows: tuple[_Row, ...]

    @property
    def ok(self) -> bool:
        return all(r.status in ("pass", "skipped") for r in self.rows)


def _rnn_loss():
    (h,) = sr.cells.rnn().states
    return sr.squared_error(h(t), _y()(t))


# ------------------------------------------------------------------------- the lecture


def test_example_1_step_3_is_the_slide():
    U = sr.unfold(sr.cells.autonomous(), 3)
    assert latex(U, step=3) == _read_golden("lecture_example1.tex")
    assert latex(U, step=3) == r"s^{(3)} = f(s^{(2)}; \theta) = f(f(s^{(1)}; \theta); \theta)"


def test_example_2_step_3_is_the_slide():
    U = sr.unfold(sr.cells.driven(), 3)
    assert latex(U, step=3) == _read_golden("lecture_example2.tex")


@pytest.mark.parametrize("name", ["example1", "example2"])
def test_recurrence_equation_is_the_slide(name):
    rec = sr.cells.autonomous() if name == "example1" else sr.cells.driven()
    (eq,) = rec.display
    assert latex(eq) == _read_golden(f"lecture_{name}_recurrence.tex")
    assert _flat(latex(rec)) == _flat(_read_golden(f"lecture_{name}_recurrence.tex"))


def test_rnn_step_3_holds_every_form_of_the_slide():
    mine = latex(sr.unfold(sr.cells.rnn(), 3), step=3, width=None).split(" = ")
    slide = _read_golden("lecture_rnn_unfolded.tex").split(" = ")
    assert mine[0] == slide[0] and mine[-1] == slide[-1]
    assert set(slide) <= set(mine)
    # the lecture's order: f one level, f two levels, the update, g^{(3)}, its closed form
    assert mine[1] == r"f(h^{(2)}, x^{(3)}; \theta)"
    assert mine[2] == r"f(f(h^{(1)}, x^{(2)}; \theta), x^{(3)}; \theta)"
    assert mine[3] == r"\tanh{\left(b + w h^{(2)} + u x^{(3)} \right)}"
    assert mine[4] == "g^{(3)}(x^{(3)}, x^{(2)}, x^{(1)})"


def test_rnn_symbolic_step_is_the_slide():
    text = latex(sr.unfold(sr.cells.rnn(), 3), step=t)
    assert _flat(text).startswith(_flat(_read_golden("lecture_rnn.tex")))


@pytest.mark.parametrize(
    "name, make, step, options",
    [
        ("latex_rnn_step3.tex", sr.cells.rnn, 3, {}),
        ("latex_rnn_step_t.tex", sr.cells.rnn, t, {}),
        ("latex_gru_step3.tex", sr.cells.gru, 3, {"closed_form": False}),
        ("latex_coupled_step2.tex", sr.cells.coupled, 2, {"closed_form": False}),
        (
            "latex_elman3_step3.tex",
            lambda: sr.cells.elman(3, inputs=2, outputs=3),
            3,
            {"closed_form": False},
        ),
        ("latex_fibonacci_step3.tex", sr.cells.fibonacci, 3, {}),
    ],
)
def test_lecture_expansion_golden(name, make, step, options):
    _golden(name, latex(sr.unfold(make(), 3), step=step, **options))


def test_vector_expansion_reads_like_the_scalar_one():
    U = sr.unfold(sr.cells.elman(3, inputs=2, outputs=3), 3)
    forms = latex(U, step=3, closed_form=False, width=None).split(" = ")
    assert forms[:3] == [
        r"\mathbf{h}^{(3)}",
        r"f(\mathbf{h}^{(2)}, \mathbf{x}^{(3)}; \theta)",
        r"f(f(\mathbf{h}^{(1)}, \mathbf{x}^{(2)}; \theta), \mathbf{x}^{(3)}; \theta)",
    ]


def test_step_of_one_state_of_several():
    U = sr.unfold(sr.cells.coupled(), 2)
    (p, q) = U.recurrence.states
    both = latex(U, step=2, closed_form=False)
    assert both.startswith(r"\begin{aligned}p^{(2)} &=") and r"\\ q^{(2)} &=" in both
    only = latex(U, step=2, of=q, closed_form=False, width=None)
    assert only.startswith("q^{(2)} = f_{q}(p^{(1)}, q^{(1)}; \\theta)")
    assert latex(U, step=2, of="q", closed_form=False, width=None) == only


# ------------------------------------------------------------------------- sr.latex


def test_latex_of_expressions_is_latex_expr():
    (h,) = sr.cells.rnn().states
    e = sp.tanh(h(t - 1)) + h(3) ** 2
    assert latex(e) == latex_expr(e)
    assert latex(e, order="none") == latex_expr(e, order="none")
    assert latex(sp.Eq(h(3), e)) == f"{latex_expr(h(3))} = {latex_expr(e)}"


def test_latex_of_a_recurrence_uses_its_lines():
    rec = sr.cells.gru()
    assert latex(rec) == r"\begin{aligned}" + r" \\ ".join(rec._latex_lines()) + r"\end{aligned}"


def test_latex_of_an_unfolded_chain_elides_long_chains():
    short = latex(sr.unfold(sr.cells.rnn(), 3))
    assert short.count(":=") == 3 and r"\vdots" not in short
    long = latex(sr.unfold(sr.cells.rnn(), 50))
    assert r"\vdots" in long and "h^{(50)} &:=" in long and "h^{(20)}" not in long
    assert latex(sr.unfold(sr.cells.rnn(), 50), max_lines=60).count(":=") == 50


def test_latex_of_bptt_is_the_whole_template():
    rec = sr.cells.elman(3, inputs=2, outputs=3)
    U = sr.unfold(rec, 2)
    B = sr.bptt(U, sr.total_loss(U, sr.squared_error(sr.vector("o", 3)(t), sr.vector("y", 3)(t))))
    text = latex(B)
    assert text.count("&=") == len(B.template()) > 14  # BPTT._latex_lines stops at 14
    U = sr.unfold(sr.cells.rnn(), 2)
    _golden("latex_rnn_bptt.tex", latex(sr.bptt(U, sr.total_loss(U, _rnn_loss()))))


def test_latex_of_a_solution():
    solve = pytest.importorskip("symrnn.solve").solve
    _golden("latex_linear_solution.tex", latex(solve(sr.cells.linear())))


def test_latex_of_a_list_of_equations():
    U = sr.unfold(sr.cells.rnn(), 2)
    assert latex(list(U.equations)).count("&=") == 2


def test_latex_uses_repr_latex_of_other_objects():
    class Shape:
        def _repr_latex_(self):
            return r"$\square$"

    assert latex(Shape()) == r"\square"


def test_latex_of_a_report_is_a_tabular():
    report = _FakeReport(
        (
            _Row(
                "closed_form",
                "closed forms vs iteration",
                1e-17,
                2e-16,
                "step 1",
                "rtol 1e-9",
                "pass",
                "",
            ),
            _Row(
                "gradient",
                "reverse vs forward",
                0.5,
                0.25,
                "dL/dw_1, trial 0",
                "rtol 1e-9",
                "fail",
                "reverse 1.0 vs forward 0.5 (50% off)",
            ),
            _Row(
                "codegen",
                "scan vs loop",
                float("nan"),
                None,
                "step 2",
                "rtol 1e-9",
                "numerical problem",
                "overflow in exp",
            ),
            _Row(
                "solve",
                "sr.solve vs iteration",
                None,
                None,
                "",
                "",
                "skipped",
                "no closed form in t",
            ),
        )
    )
    text = latex(report)
    assert text.startswith(r"\begin{tabular}") and text.endswith(r"\end{tabular}")
    assert r"$1.0\times 10^{-17}$" in text and "$0.5$" in text and r"\text{nan}" in text
    assert r"$\partial L / \partial w_{1}$" in text  # prose with math, not dL/dw_1
    assert r"50\% off" in text  # text is escaped
    assert "FAIL" in text and "NUMERICAL PROBLEM" in text
    assert text.count(r"\multicolumn") == 3  # details of the rows that did not pass
    assert "tolerance" not in text  # one tolerance for all rows: said in the text instead
    mixed = _FakeReport((report.rows[0], dataclasses.replace(report.rows[1], tol="rtol 1e-5")))
    assert "tolerance" in latex(mixed)


def test_latex_of_a_real_report():
    verify = pytest.importorskip("symrnn.verify").verify
    report = verify(sr.cells.rnn(), steps=2)
    body = latex(report).split(r"\hline")[2]
    assert body.count(r" \\") == len(report.rows) + sum(
        1 for r in report.rows if r.status != "pass" and r.detail
    )


def test_latex_width_option_breaks_long_expressions():
    g = sr.unfold(sr.cells.gru(), 2).closed_form(2)
    text = latex(g, width=300)
    assert text.startswith(r"\begin{aligned}&") and text.count(r"\\") > 5
    assert latex(sp.Symbol("x"), width=300) == "x"
    _golden("latex_gru_closed_form2_width300.tex", text)


def test_latex_errors_name_the_problem():
    with pytest.raises(sr.SymrnnError, match="cannot print object objects"):
        latex(object())
    with pytest.raises(sr.SymrnnError, match="options are: step, of, closed_form"):
        latex(sr.unfold(sr.cells.rnn(), 2), steps=2)
    with pytest.raises(sr.SymrnnError, match="does not take"):
        latex(sr.cells.rnn(), step=2)
    with pytest.raises(sr.UnfoldError, match="outside the unfolding"):
        latex(sr.unfold(sr.cells.rnn(), 2), step=3)
    with pytest.raises(sr.SymrnnError, match="not a state"):
        latex(sr.unfold(sr.cells.coupled(), 2), step=2, of="x")


# ------------------------------------------------------------------------ line breaking


def _content(tex: str) -> str:
    """What a reader sees, without layout: sizes of delimiters, spacing, grouping braces."""
    tex = re.sub(r"\\(left|right|bigl|bigr|Bigl|Bigr|Biggl|Biggr)", "", tex)
    tex = re.sub(r"\\quad|\\cdot|\{\}", "", tex)
    return re.sub(r"[\s{}]", "", tex)


def _long_expressions():
    gru = sr.unfold(sr.cells.gru(), 2).closed_form(2)
    elman = sr.unfold(sr.cells.elman(3, inputs=2, outputs=3), 2).closed_form(2)
    o, y = sr.vector("o", 3), sr.vector("y", 3)
    U = sr.unfold(sr.cells.elman(3, inputs=2, outputs=3), 3)
    ce = sr.total_loss(U, sr.softmax_cross_entropy(o(t), y(t)))
    nested = sr.unfold(sr.cells.gru(), 3).nested(3, levels=2)
    return [latex_expr(e) for e in (gru, elman[0], ce, nested)]


@pytest.mark.parametrize("width", [150, 250, 400])
def test_breaking_keeps_every_symbol(width):
    for tex in _long_expressions():
        lines = break_latex(tex, width)
        assert len(lines) > 1
        assert _content(" ".join(lines)) == _content(tex)


@pytest.mark.parametrize("width", [250, 400])
def test_broken_lines_fit(width):
    for tex in _long_expressions():
        for line in break_latex(tex, width):
            assert latex_width(line) <= width, line


def test_break_latex_marks_continuations():
    assert break_latex("a + b + c", width=30) == ["a + b", r"\quad {}+ c"]
    assert break_latex("a + b", width=300) == ["a + b"]
    lines = break_latex(r"w \tanh{\left(a + b + c + d \right)}", width=60)
    assert lines[0].startswith(r"w \tanh\bigl(") and lines[-1].endswith(r"\bigr)")


_atoms = st.sampled_from(
    [
        sp.Symbol("w"),
        sp.Symbol("u"),
        sp.Symbol("b_1"),
        time_function("h")(t - 1),
        time_function("x")(3),
        sp.Integer(2),
    ]
)


def _grow(children):
    return st.one_of(
        st.lists(children, min_size=2, max_size=4).map(lambda a: sp.Add(*a)),
        st.lists(children, min_size=2, max_size=3).map(lambda a: sp.Mul(*a)),
        children.map(sp.tanh),
        children.map(lambda e: e**2),
        st.tuples(children, children).map(lambda p: time_function("f")(*p)),
    )


@settings(max_examples=40, deadline=None)
@given(st.recursive(_atoms, _grow, max_leaves=30), st.floats(min_value=40, max_value=400))
def test_breaking_random_expressions_loses_nothing(expr, width):
    tex = latex_expr(expr)
    lines = break_latex(tex, width)
    assert _content(" ".join(lines)) == _content(tex)
    assert all(line.strip() for line in lines)


def test_width_estimate_is_close_to_tex():
    # measured with pdflatex: \setbox0\hbox{$\displaystyle ...$}\the\wd0
    measured = {
        r"\tanh{\left(b + u x^{(t)} + w h^{(t-1)} \right)}": 116.8,
        r"V_{21} h_{1}^{(2)} + V_{22} h_{2}^{(2)} + V_{23} h_{3}^{(2)} + c_{2}": 137.9,
        r"\sum_{t=1}^{\tau} \left(1 - \left(h^{(t)}\right)^{2}\right) x^{(t)} "
        r"\frac{\partial L}{\partial h^{(t)}}": 121.0,
    }
    for tex, width in measured.items():
        assert 0.85 * width <= latex_width(tex) <= 1.1 * width


# --------------------------------------------------------------------------- derivations


@cache
def _derivation(name: str) -> Derivation:
    if name == "example1":
        return derivation(sr.cells.autonomous(), steps=3)
    if name == "example2":
        return derivation(sr.cells.driven(), steps=3)
    if name == "rnn":
        return derivation(sr.cells.rnn(), steps=3, loss=_rnn_loss())
    if name == "rnn2":
        return derivation(sr.cells.rnn(), steps=2, loss=_rnn_loss())
    if name == "gru":
        (h,) = sr.cells.gru().states
        return derivation(sr.cells.gru(), steps=2, loss=sr.squared_error(h(t), _y()(t)))
    if name == "elman3":
        o, y = sr.vector("o", 3), sr.vector("y", 3)
        rec = sr.cells.elman(3, inputs=2, outputs=3)
        return derivation(rec, steps=3, loss=sr.softmax_cross_entropy(o(t), y(t)))
    raise KeyError(name)


DOCUMENTS = ["example1", "example2", "rnn", "gru", "elman3"]


def test_derivation_golden_lecture_examples():
    _golden("derivation_example1.tex", _derivation("example1").to_latex())
    _golden("derivation_example2.tex", _derivation("example2").to_latex())


def test_derivation_golden_rnn_document():
    D = _derivation("rnn2").without("verification")
    _golden("derivation_rnn.tex", D.to_latex(document=True))
    _golden("derivation_rnn.md", D.to_markdown())


def test_derivation_golden_goodfellow_softmax_document():
    """Eq. 10.18-10.28 for the book's RNN (3 units, 3 classes, tau = 3), as a file to read."""
    rec = sr.cells.elman(3, inputs=3, outputs=3)
    o, y = sr.vector("o", 3), sr.vector("y", 3)
    loss = sr.softmax_cross_entropy(o(t), y(t))
    D = derivation(rec, steps=3, loss=loss, solve=False, verify=False)
    _golden("derivation_elman_softmax.tex", D.without("verification").to_latex(document=True))


#: The sections of a derivation of a concrete recurrence with a loss, in order.
ALL_SECTIONS = (
    "recurrence",
    "unfolding",
    "closed_form",
    "loss",
    "bptt",
    "gradients",
    "verification",
)


def test_derivation_sections():
    D = _derivation("rnn2")
    assert D.keys == ALL_SECTIONS
    assert D.section("loss").title == "Loss"
    assert D.without("verification", "loss").keys == (
        "recurrence",
        "unfolding",
        "closed_form",
        "bptt",
        "gradients",
    )
    with pytest.raises(sr.SymrnnError, match="no section 'nope'"):
        D.section("nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        D.steps = 3  # type: ignore[misc]
    assert D.steps == 2 and D.params == sr.cells.rnn().params
    assert latex(D) == D.to_latex() and latex(D, document=True) == D.to_latex(document=True)


def test_derivation_of_the_lecture_example_says_what_does_not_apply():
    text = _derivation("example1").to_latex()
    assert r"s^{(3)} &= f(s^{(2)}; \theta) = f(f(s^{(1)}; \theta); \theta)" in text
    assert "abstract, so there is nothing to differentiate" in text
    assert "abstract update $f$ cannot be evaluated" in text
    assert "No loss was given" in text
    assert _derivation("example1").keys == (
        "recurrence",
        "unfolding",
        "closed_form",
        "loss",
        "bptt",
        "verification",
    )


def test_derivation_of_the_rnn_has_the_lecture_forms_and_the_gradients():
    text = _derivation("rnn").to_latex()
    assert (
        r"h^{(3)} &= f(h^{(2)}, x^{(3)}; \theta) = f(f(h^{(1)}, x^{(2)}; \theta), x^{(3)}; \theta)"
        r" = \tanh{\left(b + w h^{(2)} + u x^{(3)} \right)}" in text
    )
    assert r"h^{(t)} &= g^{(t)}(x^{(t)}, x^{(t-1)}, \dots, x^{(2)}, x^{(1)}) = f(h^{(t-1)}" in text
    for k in (1, 2, 3):
        assert f"h^{{({k})}} &= g^{{({k})}}(" in text
    assert r"\frac{\partial L}{\partial w} &= \sum_{t=1}^{\tau}" in text
    # the direct term, written out
    assert r"\frac{\partial L^{(t)}}{\partial h^{(t)}} &= h^{(t)} - y^{(t)}" in text
    assert "There is no closed form in symbolic $t$" in text


def test_derivation_with_a_closed_form_in_t():
    pytest.importorskip("symrnn.solve")
    rec = sr.cells.linear()
    (h,) = rec.states
    text = derivation(rec, steps=2, loss=h(t) ** 2 / 2, verify=False).to_latex()
    assert "found by the impulse response convolved with the input" in text
    assert r"\sum_{k=1}^{t} a^{t - k}" in text


def test_derivation_of_a_vector_rnn_has_the_matrix_form():
    pytest.importorskip("symrnn.matrix_form")
    text = _derivation("elman3").to_latex()
    assert r"\nabla_{\mathbf{h}^{(t)}} L &=" in text and r"\nabla_{\mathbf{W}} L &=" in text
    assert "Component by component" in text
    # the loss reads o only, so h has no direct term
    assert r"\frac{\partial L^{(t)}}{\partial h_{1}^{(t)}}" not in text
    # the softmax output as the book writes it (eq. 10.18): y-hat - y, component i
    direct = r"\frac{\partial L^{(t)}}{\partial o_{i}^{(t)}} &= \hat{y}_{i}^{(t)} - y_{i}^{(t)}"
    assert direct in text
    assert r"\nabla_{\mathbf{o}^{(t)}} L &= \mathbf{\hat{y}}^{(t)} - \mathbf{y}^{(t)}" in text
    assert r"\mathbf{\hat{y}}^{(t)} &= \operatorname{softmax}\left(\mathbf{o}^{(t)}\right)" in text
    assert r"L^{(t)} &= - \sum_{i=1}^{3} y_{i}^{(t)} \log{\left(\hat{y}_{i}^{(t)} \right)}" in text


def test_derivation_of_a_squared_error_writes_o_minus_y():
    rec = sr.cells.elman(2, inputs=1, outputs=2)
    o, y = sr.vector("o", 2), sr.vector("y", 2)
    D = derivation(rec, steps=2, loss=sr.squared_error(o(t), y(t)), solve=False, verify=False)
    text = D.to_latex()
    assert r"\frac{\partial L^{(t)}}{\partial o_{i}^{(t)}} &= o_{i}^{(t)} - y_{i}^{(t)}" in text
    assert r"\nabla_{\mathbf{o}^{(t)}} L &= \mathbf{o}^{(t)} - \mathbf{y}^{(t)}" in text
    assert r"L^{(t)} &= \sum_{i=1}^{2} \frac{\left(o_{i}^{(t)} - y_{i}^{(t)}\right)^{2}}{2}" in text


def test_derivation_without_loss_uses_a_generic_per_step_loss():
    D = derivation(sr.cells.rnn(), steps=2, solve=False, verify=False)
    text = D.to_latex()
    assert "No loss was given" in text and r"\frac{\partial L^{(t)}}{\partial h^{(t)}}" in text
    assert "not sought" in text and "The numeric checks were not run." in text
    assert "sr." not in text and "verify=" not in text  # prose for students, no code


def test_derivation_with_a_total_loss_and_some_parameters():
    rec = sr.cells.rnn()
    (h,) = rec.states
    w = next(p for p in rec.params if p.name == "w")
    D = derivation(rec, steps=2, loss=(h(2) - 1) ** 2, params=[w], solve=False, verify=False)
    text = D.to_latex()
    assert r"L &= \left(h^{(2)} - 1\right)^{2}" in text
    assert r"\frac{\partial L}{\partial w}" in text and r"\frac{\partial L}{\partial u}" not in text


def test_derivation_of_matrix_parameters_keeps_only_those():
    rec = sr.cells.elman(2, inputs=1, outputs=2)
    o, y = sr.vector("o", 2), sr.vector("y", 2)
    W = sr.matrix("W", 2, 2)
    D = derivation(
        rec, steps=2, loss=sr.squared_error(o(t), y(t)), params=[W], solve=False, verify=False
    )
    grads = D.section("gradients").to_latex()
    assert r"\nabla_{\mathbf{W}} L" in grads and r"\nabla_{\mathbf{V}} L" not in grads
    assert r"\partial W_{12}" in grads and r"\partial V_{11}" not in grads


def test_derivation_verification_table():
    pytest.importorskip("symrnn.verify")
    section = _derivation("rnn2").section("verification")
    text = section.to_latex()
    assert "comparisons pass" in text and r"\begin{tabular}" in text
    table = next(b for b in section.blocks if isinstance(b, Table))
    assert len(table.rows) >= 5
    assert {cell.to_latex() for row in table.rows for cell in row[-1:]} <= {"pass", "skipped"}


def test_derivation_markdown():
    md = _derivation("rnn2").to_markdown()
    assert md.startswith("## Derivation: rnn\n\n### The recurrence")
    assert md.count("$$") % 2 == 0 and md.count("\\begin{aligned}") == md.count("\\end{aligned}")
    assert "\\subsection" not in md and "align*" not in md and "\\texttt" not in md
    assert "checked numerically" in md and "sr.verify" not in md
    D = _derivation("rnn2")
    assert D._repr_markdown_() == md and D._repr_latex_() == D.to_latex()


def test_derivation_write(tmp_path):
    D = _derivation("example1")
    tex = D.write(tmp_path / "notes.tex")
    assert tex.read_text().startswith(r"\documentclass")
    md = D.write(tmp_path / "notes.md")
    assert md.read_text() == D.to_markdown()
    with pytest.raises(sr.SymrnnError, match=r"\*.tex or \*.md"):
        D.write(tmp_path / "notes.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md", "notes.tex"]


def test_derivation_errors():
    with pytest.raises(sr.SymrnnError, match="needs a Recurrence"):
        derivation("h(t) = h(t-1)")
    with pytest.raises(sr.UnfoldError, match="steps must be a positive integer"):
        derivation(sr.cells.rnn(), steps=0)
    o = sr.vector("o", 2)
    with pytest.raises(sr.SymrnnError, match="loss must be a scalar"):
        derivation(sr.cells.elman(2, outputs=2), loss=o(t), verify=False)


def test_document_uses_only_base_packages():
    text = _derivation("rnn2").to_latex(document=True)
    packages = re.findall(r"\\usepackage(?:\[[^]]*\])?\{([^}]*)\}", text)
    assert packages == ["geometry", "amsmath", "amssymb"]
    assert text.rstrip().endswith(r"\end{document}")
    assert text.isascii()


def test_blocks_render_in_both_formats():
    p = Paragraph.parse("Use `sr.solve` for $h^{(t)}$ & 50% of cases_")
    assert p.to_latex() == r"Use \texttt{sr.solve} for $h^{(t)}$ \& 50\% of cases\_"
    assert p.to_markdown() == r"Use `sr.solve` for $h^{(t)}$ & 50% of cases\_"
    d = Display(("a &= b", "&= c"))
    assert d.to_latex() == "\\begin{align*}\na &= b \\\\\n&= c\n\\end{align*}"
    assert d.to_markdown().startswith("$$\n\\begin{aligned}")


# ------------------------------------------------------------------- pdflatex, pdftoppm


def _compile(tex: str, folder: Path) -> tuple[Path, str]:
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (texlive-latex-base)")
    (folder / "doc.tex").write_text(tex, encoding="utf-8")
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = (folder / "doc.log").read_text(encoding="latin-1")
    assert run.returncode == 0, log[-3000:]
    return folder / "doc.pdf", log


def _png_pixels(data: bytes) -> tuple[int, int, int, bytes]:
    """Decode an 8-bit PNG with zlib: ``(width, height, channels, pixel bytes)``."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in chunk {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    assert header is not None, "PNG without IHDR"
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0, "only 8-bit, non-interlaced PNGs are decoded"
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    stride = width * channels
    raw = zlib.decompress(idat)
    assert len(raw) == height * (stride + 1)
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        out += line
        prev = line
    return width, height, channels, bytes(out)


def _overfull(log: str) -> list[float]:
    return [float(w) for w in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)]


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_compiles_and_fits_the_page(name, tmp_path):
    pdf, log = _compile(_derivation(name).to_latex(document=True), tmp_path)
    assert pdf.exists()
    too_wide = [w for w in _overfull(log) if w > 20]
    assert not too_wide, f"lines wider than the page by {too_wide} pt"
    if name == "elman3":
        assert not _overfull(log)  # the long vector equations were broken into lines


@pytest.mark.parametrize("name", ["rnn", "elman3"])
def test_document_first_page_renders(name, tmp_path):
    pdf, _ = _compile(_derivation(name).to_latex(document=True), tmp_path)
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm is not installed (poppler-utils)")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (png,) = tmp_path.glob("page*.png")
    data = png.read_bytes()
    assert len(data) > 5_000
    width, height, channels, pixels = _png_pixels(data)
    assert 405 <= width <= 420 and 580 <= height <= 590  # A4 at 50 dpi
    dark = sum(1 for i in range(0, len(pixels), channels) if pixels[i] < 128)
    share = dark / (width * height)
    assert 0.002 < share < 0.3, f"page 1 is {share:.1%} dark: blank or garbled"


def test_line_width_leaves_room_on_a4():
    # 210 mm - 2 x 20 mm = 170 mm = 483.7 pt; the estimate may be ~8 % short
    assert LINE_WIDTH * 1.08 < 483.7


# ------------------------------------------------------------ every formula fits the page


def _cells() -> list[tuple[str, sr.Recurrence]]:
    """Every recurrence in ``sr.cells``, vector cells at 3 units."""
    out = []
    for name in sr.cells.__all__:
        make = getattr(sr.cells, name)
        parameters = inspect.signature(make).parameters if callable(make) else {}
        if "n" in parameters:
            out.append((name, make(3)))
        elif all(p.default is not p.empty for p in parameters.values()) and callable(make):
            out.append((name, make()))
        # combinators (stacked, bidirectional) and from_torch build on the cells above
    return out


def _cell_loss(rec: sr.Recurrence) -> Any:
    """A squared error on the outputs (or the first state), vectors compared as vectors."""
    if rec.vectors:
        outs = [n for n, c in rec.vectors.items() if c[0] in rec.outputs]
        name = outs[0] if outs else next(n for n, c in rec.vectors.items() if c[0] in rec.states)
        n = len(rec.vectors[name])
        return sr.squared_error(sr.vector(name, n)(t), sr.vector("y", n)(t))
    s = (rec.outputs or rec.states)[0]
    return (s(t) - sp.Function("y", real=True)(t)) ** 2 / 2


def _is_abstract(rec: sr.Recurrence) -> bool:
    return any(not is_time_atom(a) for rhs in rec.update.values() for a in rhs.atoms(AppliedUndef))


def _objects(rec: sr.Recurrence) -> dict[str, tuple[Any, dict[str, Any]]]:
    """One object of every kind sr.latex prints, for one cell (3 steps)."""
    U = sr.unfold(rec, 3)
    objects: dict[str, tuple[Any, dict[str, Any]]] = {
        "recurrence": (rec, {}),
        "equation": (rec.display[-1], {}),
        "chain": (U, {}),
        "step 3": (U, {"step": 3}),
        "step t": (U, {"step": t}),
    }
    if not _is_abstract(rec):
        objects["bptt"] = (sr.bptt(U, sr.total_loss(U, _cell_loss(rec))), {})
    if rec.vectors:
        objects["matrix bptt"] = (matrix_bptt(rec, loss=_cell_loss(rec)), {})
    return objects


def test_every_object_of_every_cell_fits_an_article(tmp_path):
    pieces = []
    for name, rec in _cells():
        for kind, (obj, options) in _objects(rec).items():
            pieces.append(f"% {name}: {kind}\n\\[\n{latex(obj, **options)}\n\\]\n")
    assert len(pieces) >= 60
    document = (
        "\\documentclass{article}\n\\usepackage{amsmath}\n\\usepackage{amssymb}\n"
        "\\begin{document}\n" + "\n".join(pieces) + "\\end{document}\n"
    )
    _, log = _compile(document, tmp_path)
    assert not _overfull(log), f"formulas wider than an article's text by {_overfull(log)} pt"


def test_the_width_option_reaches_every_object():
    rec = sr.cells.gru(3)
    for kind, (obj, options) in _objects(rec).items():
        narrow = latex(obj, width=200, **options)
        rows = narrow.removeprefix("\\begin{aligned}").removesuffix("\\end{aligned}")
        for row in rows.split(" \\\\ "):
            if "\\vdots" not in row:
                assert latex_width(row.replace("&", "")) <= 200 * 1.15, (kind, row)
        if kind != "equation":
            assert narrow != latex(obj, width=None, **options), kind


def test_derivation_of_every_cell_fits_the_page(tmp_path):
    """With the closed-form search and the checks: their messages and tables are prose too."""
    cells = [rec for _, rec in _cells()]
    cells.append(sr.cells.stacked(sr.cells.elman(3, inputs=3), sr.cells.gru(3, inputs=3)))
    parts = [derivation(rec, steps=3, loss=_cell_loss(rec)).to_latex() for rec in cells]
    document = derivation(sr.cells.rnn(), steps=1, verify=False, solve=False)
    head = document.to_latex(document=True).split("\\section*")[0]
    _, log = _compile(head + "\n\\clearpage\n".join(parts) + "\n\\end{document}\n", tmp_path)
    assert not _overfull(log), f"lines wider than the page by {_overfull(log)} pt"
    assert "Overfull \\vbox" not in log  # long blocks break across pages


def _goodfellow_document() -> str:
    rec = sr.cells.elman(3, inputs=3, outputs=3)
    o, y = sr.vector("o", 3), sr.vector("y", 3)
    D = derivation(rec, steps=3, loss=sr.softmax_cross_entropy(o(t), y(t)), solve=False)
    return D.to_latex(document=True)


def test_goodfellow_softmax_document_shows_eq_10_18_to_10_26():
    tex = _goodfellow_document()
    book = [
        r"\mathbf{\hat{y}}^{(t)} &= \operatorname{softmax}\left(\mathbf{o}^{(t)}\right)",
        r"L^{(t)} &= - \sum_{i=1}^{3} y_{i}^{(t)} \log{\left(\hat{y}_{i}^{(t)} \right)}",
        r"\nabla_{\mathbf{o}^{(t)}} L &= \mathbf{\hat{y}}^{(t)} - \mathbf{y}^{(t)}",  # 10.18
        r"\nabla_{\mathbf{h}^{(\tau)}} L &= \mathbf{V}^{\top} "
        r"\left(\nabla_{\mathbf{o}^{(\tau)}} L\right)",  # 10.19
        r"\nabla_{\mathbf{h}^{(t)}} L &= \mathbf{W}^{\top} \operatorname{diag}\left(1 - "
        r"\left(\mathbf{h}^{(t+1)}\right)^{2}\right) \left(\nabla_{\mathbf{h}^{(t+1)}} L\right) + "
        r"\mathbf{V}^{\top} \left(\nabla_{\mathbf{o}^{(t)}} L\right)",  # 10.21
        r"\nabla_{\mathbf{c}} L &= \sum_{t=1}^{\tau} \nabla_{\mathbf{o}^{(t)}} L",  # 10.22
        r"\nabla_{\mathbf{b}} L &= \sum_{t=1}^{\tau} \operatorname{diag}\left(1 - "
        r"\left(\mathbf{h}^{(t)}\right)^{2}\right) \left(\nabla_{\mathbf{h}^{(t)}} L\right)",
        r"\nabla_{\mathbf{V}} L &= \sum_{t=1}^{\tau} \left(\nabla_{\mathbf{o}^{(t)}} L\right) "
        r"\mathbf{h}^{(t)\top}",  # 10.24
        r"\nabla_{\mathbf{W}} L &= \sum_{t=1}^{\tau}",
        r"\nabla_{\mathbf{U}} L &= \sum_{t=1}^{\tau}",  # 10.26
    ]
    positions = [tex.find(line) for line in book]
    assert -1 not in positions, [line for line, p in zip(book, positions, strict=True) if p < 0]
    assert positions == sorted(positions)  # in the book's order
    assert r"\mathbf{h}^{(t-1)\top}" in tex and r"\mathbf{x}^{(t)\top}" in tex
    assert "comparisons pass" in tex and "sr." not in tex and "dL/d" not in tex
    assert r"$\partial L / \partial V_{" in tex  # the verification table, as prose


def test_goodfellow_softmax_document_renders_every_page(tmp_path):
    pdf, log = _compile(_goodfellow_document(), tmp_path)
    assert not _overfull(log) and "Overfull \\vbox" not in log
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm is not installed (poppler-utils)")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "page")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) >= 3
    for png in pages:
        width, height, channels, pixels = _png_pixels(png.read_bytes())
        dark = sum(1 for i in range(0, len(pixels), channels) if pixels[i] < 128)
        share = dark / (width * height)
        assert 0.002 < share < 0.3, f"{png.name} is {share:.1%} dark: blank or garbled"


# ----------------------------------------------------------------- figures in derivations


needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")


@needs_dot
def test_derivation_figures_draw_the_folded_unfolded_and_bptt_graphs(tmp_path):
    rec = sr.cells.elman(3, inputs=3, outputs=3)
    o, y = sr.vector("o", 3), sr.vector("y", 3)
    loss = sr.softmax_cross_entropy(o(t), y(t))
    D = derivation(rec, steps=3, loss=loss, solve=False, verify=False, figures=True)
    assert D.keys[:3] == ("recurrence", "unfolding", "graphs")
    figures = [b for b in D.section("graphs").blocks if isinstance(b, Figure)]
    assert len(figures) == 3
    folded, unfolded, backward = (f.tikz for f in figures)
    # the pictures are the graphs the library draws, in the document's fonts
    assert folded == sr.graph(rec, loss=loss).to_tikz()
    U = sr.unfold(rec, 3)
    assert unfolded == sr.graph(U, loss=sr.total_loss(U, loss)).to_tikz()
    assert "dashed" in backward and r"\partial L" in backward
    assert r"\mathbf{h}^{(0)}" in unfolded and r"L^{(3)}" in unfolded
    tex = D.to_latex(document=True)
    assert tex.count(r"\begin{figure}") == 3 and r"\usepackage{tikz}" in tex
    assert r"\usepackage{tikz}" not in derivation(rec, steps=1, verify=False).to_latex(True)
    _, log = _compile(tex, tmp_path)
    assert not _overfull(log) and "Overfull \\vbox" not in log
    markdown = D.to_markdown()
    assert markdown.count("<svg") == 3 and "<?xml" not in markdown


@needs_dot
def test_derivation_figures_of_a_wide_cell_draw_fewer_steps_scaled_to_the_page(tmp_path):
    from symrnn.latex import FIGURE_WIDTH, MIN_FIGURE_SCALE

    h, y = sr.vector("h", 3), sr.vector("y", 3)
    loss = sr.squared_error(h(t), y(t))
    D = derivation(sr.cells.lstm(3), steps=3, loss=loss, solve=False, verify=False, figures=True)
    blocks = D.section("graphs").blocks
    figures = [b for b in blocks if isinstance(b, Figure)]
    assert "first 2 steps" in figures[1].caption.to_latex()  # 3 steps are 14 in wide
    assert (
        sr.graph(sr.unfold(sr.cells.lstm(3), 3)).layout_size()[0] > FIGURE_WIDTH / MIN_FIGURE_SCALE
    )
    for figure in figures:
        scale = float(re.search(r"x=([\d.]+)in", figure.tikz).group(1))
        assert MIN_FIGURE_SCALE <= scale <= 1
        xs = [float(x) for x in re.findall(r"at \(([\d.]+),", figure.tikz)]
        assert max(xs) * scale <= FIGURE_WIDTH  # fits the text width
    prose = " ".join(b.to_latex() for b in blocks if isinstance(b, Paragraph))
    assert "--bptt" in prose  # the graph of BPTT would not fit, and the reader is told so
    _, log = _compile(D.to_latex(document=True), tmp_path)
    assert not _overfull(log)


def test_derivation_figures_need_dot(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: None if name == "dot" else real_which(name)
    )
    with pytest.raises(ToolMissing, match="'dot' is not on PATH"):
        derivation(sr.cells.rnn(), steps=2, verify=False, figures=True)


def test_a_broken_argument_list_keeps_its_commas_at_the_ends_of_lines():
    tex = latex(sr.unfold(sr.cells.gru(), 3), step=3)
    rows = tex.removeprefix("\\begin{aligned}").removesuffix("\\end{aligned}").split(" \\\\ ")
    assert len(rows) > 4
    for row in rows:
        text = row.replace("&", "").replace("\\quad", "").strip()
        assert not text.startswith((",", ";", "\\cdot ,")), row
    # a product broken between factors still marks the next factor with \cdot
    product = r"\left(a + b + c + d\right) \left(e + f + g + h\right)"
    lines = [line.replace("\\quad", "").strip() for line in break_latex(product, width=60)]
    assert any(line.startswith("\\cdot \\bigl(e") for line in lines[1:]), lines


def test_verification_table_names_numpy_entries_as_the_books_components():
    from symrnn.latex import _table_prose

    cell = _table_prose("matrix code vs component code (dL/dU_1[2, 0])").to_latex()
    assert r"\partial (U_{1})_{31}$" in cell  # an entry of layer 1's matrix

    cell = _table_prose("matrix code vs component code (dL/dV[1, 0])").to_latex()
    assert r"$\partial L / \partial V_{21}$" in cell  # row 2, column 1, counted from one
    cell = _table_prose("scan code vs one sequence (dL/dh(0)[2], trial 1)").to_latex()
    assert r"$\partial L / \partial h_{3}^{(0)}$" in cell
    assert r"\partial V_{12}" in _table_prose("dL/dV_12").to_latex()  # component names stay
    cell = _table_prose("closed forms g(k), k = 1..3, vs iteration; the solver at t = 1, 2, 7")
    assert r"$k = 1, \dots, 3$" in cell.to_latex() and "$t = 1, 2, 7$" in cell.to_latex()
    assert "$h^{(0)}$)" in _table_prose("the closed form (b, w, h(0))").to_latex()


# ------------------------------------------------------------- derivations at symbolic sizes


def test_derivation_at_symbolic_size_is_the_books_matrix_form(tmp_path):
    n = sr.size("n")
    rec = sr.cells.elman(n, outputs=n)
    o, y = sr.vector("o", n), sr.vector("y", n)
    D = derivation(rec, steps=3, loss=sr.softmax_cross_entropy(o(t), y(t)))
    assert D.keys == ALL_SECTIONS
    tex = D.to_latex(document=True)
    for line in (
        r"\mathbf{W} \in \mathbb{R}^{n \times n}",
        r"\mathbf{h}^{(2)} &:= \tanh{\left(\mathbf{b} + \mathbf{W} \mathbf{h}^{(1)} + "
        r"\mathbf{U} \mathbf{x}^{(2)} \right)}",
        r"f(f(\mathbf{h}^{(1)}, \mathbf{x}^{(2)}; \theta), \mathbf{x}^{(3)}; \theta)",
        r"\mathbf{b} + \mathbf{W} \tanh",  # g^{(2)}: the chain substituted into itself
        r"L^{(t)} &= - \sum_{i=1}^{n} y_{i}^{(t)} \log{\left(\hat{y}_{i}^{(t)} \right)}",
        r"\nabla_{\mathbf{o}^{(t)}} L &= \mathbf{\hat{y}}^{(t)} - \mathbf{y}^{(t)}",
        r"i = 1, \dots, n",
        r"\nabla_{\mathbf{W}} L &= \sum_{t=1}^{\tau}",
    ):
        assert line in tex, line
    derived = D.without("verification").to_latex()
    assert "h_{1}" not in derived and "W_{11}" not in derived  # no components at size n
    assert "all 11 comparisons pass" in tex and "$n = 3$" in tex  # checked at n = 3
    _, log = _compile(tex, tmp_path)
    assert not _overfull(log) and "Overfull \\vbox" not in log


@pytest.mark.parametrize("cell", ["gru", "lstm", "mgu"])
def test_gated_cells_derive_at_symbolic_size(cell, tmp_path):
    n, m = sr.size("n"), sr.size("m")
    rec = getattr(sr.cells, cell)(n, inputs=m)
    h, y = sr.vector("h", n), sr.vector("y", n)
    figures = shutil.which("dot") is not None and cell == "gru"
    D = derivation(rec, steps=3, loss=sr.squared_error(h(t), y(t)), figures=figures)
    tex = D.to_latex(document=True)
    assert r"\nabla_{\mathbf{h}^{(t)}} L &=" in tex and r"\nabla_{\mathbf{W}_{g}} L" in tex
    assert r"\mathbb{R}^{n \times m}" in tex and "comparisons pass" in tex
    assert ("tikzpicture" in tex) == figures
    _, log = _compile(tex, tmp_path)
    assert not _overfull(log)


def test_latex_of_a_symbolic_size_unfolding():
    n = sr.size("n")
    U = sr.unfold(sr.cells.elman(n), 2)
    chain = latex(U)
    assert chain.count(":=") == 2 and r"\mathbf{h}^{(2)} &:=" in chain
    step = latex(U, step=2, width=None)
    assert step.startswith(r"\mathbf{h}^{(2)} = f(\mathbf{h}^{(1)}, \mathbf{x}^{(2)}; \theta)")
    assert r"g^{(2)}(\mathbf{x}^{(2)}, \mathbf{x}^{(1)})" in step
    assert r"g^{(t)}(\mathbf{x}^{(t)}" in latex(U, step=t)


def test_a_loss_at_fixed_times_needs_explicit_sizes():
    n = sr.size("n")
    h, y = sr.vector("h", n), sr.vector("y", n)
    with pytest.raises(SymrnnError, match="at symbolic sizes give a per-step loss"):
        derivation(sr.cells.elman(n), steps=2, loss=sr.squared_error(h(2), y(2)), verify=False)


def test_library_messages_in_documents_are_text_pdflatex_can_set():
    from symrnn.latex import _escape, _prose

    assert _escape("λ**3 + σ … a→b") == r"$\lambda$**3 + $\sigma$ \dots{} a$\to$b"
    message = (
        "no closed form for Recurrence 'linear': the characteristic polynomial has the factor "
        "-A_11*A_22 + λ**3 of degree 3 with symbolic coefficients, whose roots are unknown; "
        "substitute numbers for the parameters"
    )
    assert _prose(message) == (
        "the characteristic polynomial has a factor of degree 3 with symbolic coefficients, "
        "whose roots are unknown."
    )
