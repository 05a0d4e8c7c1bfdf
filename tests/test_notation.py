"""Notation: recognising, naming and printing time-indexed quantities."""

from __future__ import annotations

import keyword

import pytest
import sympy as sp

import symrnn as sr
from symrnn.notation import (
    at_time,
    code_name,
    is_time_atom,
    latex_expr,
    latex_time,
    shift_of,
    str_expr,
    t,
    time_atoms,
    time_function,
    time_of,
)

h = time_function("h")
x = time_function("x")
f = sp.Function("f")
theta = sp.Symbol("theta")


def test_time_index_is_an_integer_symbol():
    assert t.is_integer
    assert sr.t is t


def test_time_function_is_real():
    assert h(t).is_real
    assert h(3).is_real


@pytest.mark.parametrize(
    "expr, expected",
    [
        (h(t), True),
        (h(t - 1), True),
        (h(t + 2), True),
        (h(3), True),
        (h(-1), True),
        (f(h(t - 1), theta), False),
        (h(sp.Symbol("k")), False),
        (h(h(t)), False),
        (theta, False),
    ],
)
def test_is_time_atom(expr, expected):
    assert is_time_atom(expr) is expected


@pytest.mark.parametrize(
    "atom, shift", [(h(t), 0), (h(t - 1), -1), (h(t - 3), -3), (h(t + 2), 2), (h(2 * t), None)]
)
def test_shift_of(atom, shift):
    assert shift_of(atom) == shift


def test_time_of_and_at_time_are_inverse():
    for atom in (h(t - 1), x(t), h(4)):
        assert at_time(atom, time_of(atom)) == atom
    assert at_time(h(t - 1), 5) == h(5)


def test_time_atoms_look_inside_abstract_functions():
    assert time_atoms(f(h(t - 1), x(t), theta) + h(t)) == {h(t - 1), x(t), h(t)}
    assert time_atoms(theta) == set()


@pytest.mark.parametrize(
    "time, tex", [(t, "t"), (t - 1, "t-1"), (t + 2, "t+2"), (sp.Integer(3), "3"), (-1, "-1")]
)
def test_latex_time(time, tex):
    assert latex_time(sp.sympify(time)) == tex


@pytest.mark.parametrize(
    "expr, tex",
    [
        (h(t - 1), "h^{(t-1)}"),
        (h(3), "h^{(3)}"),
        (time_function("h_1")(t), "h_{1}^{(t)}"),
        (f(h(t - 1), theta), r"f(h^{(t-1)}; \theta)"),
        (f(h(t - 1), x(t), theta), r"f(h^{(t-1)}, x^{(t)}; \theta)"),
        (f(f(h(1), theta), theta), r"f(f(h^{(1)}; \theta); \theta)"),
        (f(theta), r"f(\theta)"),
        (h(t) ** 2, r"\left(h^{(t)}\right)^{2}"),
    ],
)
def test_latex_expr_uses_the_book_notation(expr, tex):
    assert latex_expr(expr) == tex


def test_latex_expr_of_a_vector_state_is_bold():
    hv, W = sr.vector("h", 3), sr.matrix("W", 3, 3)
    assert latex_expr(hv(t - 1)) == r"\mathbf{h}^{(t-1)}"
    assert latex_expr(sr.functions.tanh(W * hv(t - 1))) == (
        r"\tanh{\left(\mathbf{W} \mathbf{h}^{(t-1)} \right)}"
    )


def test_str_expr_prints_elementwise_functions_as_calls():
    hv, W = sr.vector("h", 2), sr.matrix("W", 2, 2)
    expr = sr.functions.tanh(W * hv(t - 1))
    assert str_expr(expr) == "tanh(W*h(t - 1))"
    assert str_expr(sp.ImmutableMatrix([1, 2])) == "Matrix([[1], [2]])"


@pytest.mark.parametrize(
    "expr, name",
    [
        (h(3), "h__3"),
        (h(0), "h__0"),
        (h(-1), "h__m1"),
        (h(t), "h__t"),
        (h(t - 1), "h__tm1"),
        (h(t + 2), "h__tp2"),
        (time_function("h_1")(2), "h_1__2"),
        (sp.Symbol("w"), "w"),
        (sp.Symbol("W_11"), "W_11"),
        (sp.Symbol("lambda"), "v_lambda"),
        (sp.Symbol("class"), "v_class"),
        (sp.Symbol("1a"), "v_1a"),
        (sp.Symbol("x.y"), "x_y"),
        (sp.Symbol("θ"), "theta"),
        (sp.Symbol("Σ"), "Sigma"),
        (time_function("θ")(1), "theta__1"),
    ],
)
def test_code_name(expr, name):
    assert code_name(expr) == name


@pytest.mark.parametrize("name", ["α", "β", "θ", "λ", "é", "ü", "²", "a b", "", "def", "x-1"])
def test_code_name_is_an_ascii_identifier(name):
    ident = code_name(sp.Symbol(name))
    assert ident.isidentifier() and ident.isascii() and not keyword.iskeyword(ident)


def test_code_name_keeps_greek_letters_apart():
    letters = "αβγδεθλμσ"
    assert len({code_name(sp.Symbol(c)) for c in letters}) == len(letters)


@pytest.mark.parametrize("bad", [sp.Integer(3), h(t) + 1, f(h(t - 1), theta)])
def test_code_name_rejects_other_expressions(bad):
    with pytest.raises(TypeError, match="needs a symbol or time atom"):
        code_name(bad)


# ------------------------------------------------------------------------------- notebooks


@pytest.fixture
def shell():
    """An IPython shell whose display formatter the tests call, as Jupyter does."""
    interactive = pytest.importorskip("IPython.core.interactiveshell")
    ip = interactive.InteractiveShell.instance()
    yield ip
    interactive.InteractiveShell.clear_instance()


def test_init_printing_shows_the_books_notation_in_ipython(shell):
    U = sr.unfold(sr.cells.rnn(), 2)
    closed = U.closed_form(2)
    before = shell.display_formatter.format(closed)[0]
    sr.init_printing(ip=shell)
    data, _ = shell.display_formatter.format(closed)
    assert r"h^{(0)}" in data["text/latex"] and r"x^{(2)}" in data["text/latex"]
    assert r"h{\left(0 \right)}" not in data["text/latex"]  # SymPy's own notation is gone
    assert data["text/latex"].startswith("$\\displaystyle ")
    assert data["text/plain"] == str_expr(closed)
    assert data != before
    vector = shell.display_formatter.format(sr.vector("h", 3)(t - 1))[0]
    assert r"\mathbf{h}^{(t-1)}" in vector["text/latex"]


def test_gradients_display_as_a_table_and_stay_a_dict(shell):
    from symrnn.notation import Gradients

    rnn = sr.cells.rnn()
    (h,) = rnn.states
    U = sr.unfold(rnn, 2)
    plain = sr.grad(U, sr.total_loss(U, h(t) ** 2 / 2))
    table = Gradients(plain)
    assert table == plain and dict(table) == plain and repr(table) == repr(plain)
    data, _ = shell.display_formatter.format(table)
    latex = data["text/latex"]
    assert latex.count("&=&") == len(plain) and r"\begin{array}{rcl}" in latex
    for wrt in plain:
        assert f"\\frac{{\\partial L}}{{\\partial {latex_expr(wrt)}}}" in latex
    assert data["text/plain"] == shell.display_formatter.format(plain)[0]["text/plain"]


def test_compiled_summary_is_short():
    from symrnn.notation import compiled_summary

    compiled = sr.lambdify(sr.cells.elman(3, inputs=2))
    summary = compiled_summary(compiled)
    assert len(summary) < 200 < len(compiled.source)
    assert "'elman'" in summary and "W (3, 3)" in summary and "inputs x" in summary
    assert f".source has {len(compiled.source.splitlines())} lines" in summary


def test_compiled_displays_its_summary_in_ipython(shell):
    from symrnn.notation import compiled_summary

    compiled = sr.lambdify(sr.cells.elman(3, inputs=2))
    data, _ = shell.display_formatter.format(compiled)
    assert data["text/plain"] == compiled_summary(compiled)
    assert len(data["text/plain"]) < 200 and "def " not in data["text/plain"]
