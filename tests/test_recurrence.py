"""Recurrence: writing one, inference of its parts, every error, printing."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp

import symrnn as sr
from symrnn.functions import tanh
from symrnn.matrices import explicit
from symrnn.notation import latex_expr, t, time_function

h, x, o, a, b, s = (time_function(n) for n in ("h", "x", "o", "a", "b", "s"))
w, u, c, k = sp.symbols("w u c k", real=True)


def _raises(error, make, *fragments):
    """``make()`` raises ``error`` with a one-line message containing every fragment."""
    with pytest.raises(error) as info:
        make()
    message = str(info.value)
    assert "\n" not in message, f"message is not one line: {message!r}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# ------------------------------------------------------------------------------- errors

ERRORS = {
    "lhs at a lag": (
        lambda: sr.Recurrence(sp.Eq(h(t - 1), w * h(t - 2))),
        [
            "left side",
            "h(t - 1)",
            "not a quantity at time t",
            "write the defined quantity as name(t)",
        ],
    ),
    "lhs a plain symbol": (
        lambda: sr.Recurrence(sp.Eq(w, h(t - 1))),
        ["left side", "is w,", "name(t)"],
    ),
    "lhs a product": (
        lambda: sr.Recurrence(sp.Eq(2 * h(t), h(t - 1))),
        ["left side", "2*h(t)", "name(t)"],
    ),
    "fractional lag": (
        lambda: sr.Recurrence(sp.Eq(h(t), h(t - sp.Rational(1, 2)))),
        ["h(t - 1/2)", "not t - k for a constant integer k", "write lags as t - 1, t - 2"],
    ),
    "symbolic lag": (
        lambda: sr.Recurrence(sp.Eq(h(t), h(t - k))),
        ["h(-k + t)", "not t - k for a constant integer k", "write lags as t - 1"],
    ),
    "future": (
        lambda: sr.Recurrence(sp.Eq(h(t), h(t + 1))),
        ["h(t + 1)", "refers to the future", "only use the present and the past"],
    ),
    "defined twice": (
        lambda: sr.Recurrence([sp.Eq(h(t), h(t - 1)), sp.Eq(h(t), w * h(t - 1))]),
        ["defines h(t) twice", "give each quantity one equation"],
    ),
    "implicit": (
        lambda: sr.Recurrence(sp.Eq(h(t), w * h(t) + h(t - 1))),
        ["h(t) appears on the right of its own equation", "implicit", "use h(t-1)"],
    ),
    "scaled time": (
        lambda: sr.Recurrence(sp.Eq(h(t), h(2 * t))),
        ["h(2*t)", "time argument 2*t", "write lags as t - 1"],
    ),
    "fixed time of a state": (
        lambda: sr.Recurrence(sp.Eq(h(t), h(t - 1) + h(3))),
        ["h(3)", "time argument 3", "write lags as t - 1"],
    ),
    "fixed time of an input": (
        lambda: sr.Recurrence(sp.Eq(h(t), h(t - 1) + x(3))),
        ["x(3)", "time argument 3", "write lags as t - 1"],
    ),
    "time argument without t": (
        lambda: sr.Recurrence(sp.Eq(h(t), h(t - 1) + x(w))),
        ["x(w)", "time argument w", "write lags as t - 1"],
    ),
    "no state": (
        lambda: sr.Recurrence(sp.Eq(o(t), x(t))),
        ["has no state", "o(t)", "used with a lag", "h(t) = f(h(t-1), x(t))"],
    ),
    "same-time cycle": (
        lambda: sr.Recurrence([sp.Eq(a(t), b(t) + h(t - 1)), sp.Eq(b(t), a(t)), sp.Eq(h(t), a(t))]),
        ["cycle a(t) -> b(t) -> a(t)", "must use a lagged value", "a(t-1)"],
    ),
    "empty list": (lambda: sr.Recurrence([]), ["no equations", "Eq(h(t), "]),
    "not an Eq": (
        lambda: sr.Recurrence([h(t) - h(t - 1)]),
        ["must be sympy.Eq(lhs, rhs)", "h(t) - h(t - 1)"],
    ),
    "a string": (
        lambda: sr.Recurrence(["h(t) = h(t-1)"]),
        ["must be sympy.Eq(lhs, rhs)", "h(t) = h(t-1)"],
    ),
    "not a sequence": (lambda: sr.Recurrence(5), ["needs an equation", "got 5"]),
    "Eq evaluated to True": (
        lambda: sr.Recurrence(sp.Eq(h(t), h(t))),
        ["evaluated to True/False", "evaluate=False"],
    ),
    "Eq evaluated to True in a list": (
        lambda: sr.Recurrence([sp.Eq(h(t), w * h(t - 1)), sp.Eq(o(t), o(t))]),
        ["evaluated to True/False", "evaluate=False"],
    ),
    "missing parameter": (
        lambda: sr.Recurrence(sp.Eq(h(t), w * h(t - 1) + u * x(t) + c), params=[w, u]),
        ["uses c,", "neither a state, an input nor a listed parameter", "add it to params"],
    ),
    "matrix equals scalar": (
        lambda: sr.Recurrence(sp.Eq(sr.vector("h", 2)(t), w, evaluate=False)),
        ["one side is a matrix and the other a scalar", "same shape"],
    ),
    "shapes differ": (
        lambda: sr.Recurrence(
            sp.Eq(
                sr.vector("h", 2)(t),
                sr.matrix("W", 3, 2) * sr.vector("h", 2)(t - 1),
                evaluate=False,
            )
        ),
        ["left side has shape (2, 1)", "(3, 1)", "make the shapes agree"],
    ),
    "shapes differ, Eq evaluated": (
        lambda: sr.Recurrence(sp.Eq(sr.vector("h", 2)(t), sr.vector("h", 3)(t - 1))),
        ["evaluated to True/False", "different shapes", "evaluate=False"],
    ),
}


@pytest.mark.parametrize("make, fragments", ERRORS.values(), ids=ERRORS.keys())
def test_errors_name_the_fault_and_the_remedy(make, fragments):
    _raises(sr.RecurrenceError, make, *fragments)


def test_named_recurrence_is_named_in_messages():
    _raises(
        sr.RecurrenceError,
        lambda: sr.Recurrence(sp.Eq(h(t), w * h(t - 1) + c), params=[w], name="elman"),
        "Recurrence 'elman' uses c",
    )


def test_errors_are_symrnn_errors_and_value_errors():
    assert issubclass(sr.RecurrenceError, sr.SymrnnError)
    assert issubclass(sr.SymrnnError, ValueError)


def test_eq_not_evaluated_is_accepted_as_an_implicit_equation():
    # Eq(h(t), h(t)) with evaluate=False reaches symrnn, which names the real problem.
    _raises(
        sr.RecurrenceError,
        lambda: sr.Recurrence(sp.Eq(h(t), h(t), evaluate=False)),
        "appears on the right of its own equation",
    )


# ---------------------------------------------------------------------------- inference


def test_inference_of_the_lecture_rnn():
    rec = sr.Recurrence(sp.Eq(h(t), sp.tanh(w * h(t - 1) + u * x(t) + c)))
    assert rec.states == (h,)
    assert rec.inputs == (x,)
    assert rec.outputs == ()
    assert rec.intermediates == ()
    assert rec.params == (c, u, w)
    assert rec.order == 1
    assert rec.defined == (h,)
    assert rec.update == {h: sp.tanh(w * h(t - 1) + u * x(t) + c)}


def test_outputs_intermediates_and_evaluation_order():
    g = time_function("g")
    rec = sr.Recurrence(
        [
            sp.Eq(o(t), c + w * h(t)),  # output: uses h(t), used by nobody
            sp.Eq(h(t), sp.tanh(g(t) + h(t - 1))),
            sp.Eq(g(t), u * x(t)),  # intermediate: used at the same time by h
        ]
    )
    assert rec.states == (h,)
    assert rec.outputs == (o,)
    assert rec.intermediates == (g,)
    assert rec.defined == (g, h, o)  # same-time dependencies first
    assert [eq.lhs for eq in rec.equations] == [g(t), h(t), o(t)]


def test_lagged_inputs_set_the_input_lag():
    rec = sr.Recurrence(sp.Eq(h(t), w * h(t - 1) + x(t) + x(t - 2)))
    assert rec.inputs == (x,)
    assert rec.input_lag == 2
    assert rec.order == 1


def test_order_is_the_largest_lag():
    rec = sr.Recurrence(sp.Eq(h(t), h(t - 1) + w * h(t - 3)))
    assert rec.order == 3
    assert rec.lag(h) == 3
    assert rec.lag(x) == 0


def test_params_override_keeps_the_given_order():
    rec = sr.Recurrence(sp.Eq(h(t), sp.tanh(w * h(t - 1) + u * x(t) + c)), params=[w, u, c])
    assert rec.params == (w, u, c)


def test_params_override_may_list_extra_parameters():
    extra = sp.Symbol("unused")
    rec = sr.Recurrence(sp.Eq(h(t), w * h(t - 1)), params=[extra, w])
    assert rec.params == (extra, w)


def test_matrix_params_expand_to_their_entries():
    hv, W, bv = sr.vector("h", 2), sr.matrix("W", 2, 2), sr.matrix("b", 2)
    rec = sr.Recurrence(sp.Eq(hv(t), tanh(W * hv(t - 1) + bv)), params=[bv, W])
    assert rec.params == (*explicit(bv), *explicit(W))
    assert [p.name for p in rec.params] == ["b_1", "b_2", "W_11", "W_12", "W_21", "W_22"]


def test_a_vector_state_becomes_its_components():
    rec = sr.cells.elman(3)
    assert rec.states == sr.vector("h", 3).components
    assert rec.inputs == sr.vector("x", 1).components
    assert set(rec.vectors) == {"h", "x"}
    assert rec.vectors["h"] == sr.vector("h", 3).components
    assert len(rec.equations) == 3
    assert all(not sr.matrices.is_matrix(eq.rhs) for eq in rec.equations)


def test_vector_recurrence_keeps_display_in_matrix_form():
    rec = sr.cells.elman(3, inputs=2, outputs=2)
    assert len(rec.display) == 2
    assert rec.display[0].lhs == sr.vector("h", 3)(t)
    assert sr.matrices.is_matrix(rec.display[0].rhs)
    tex = latex_expr(rec.display[0].rhs)
    assert tex.startswith(r"\tanh{\left(")
    assert r"W \mathbf{h}^{(t-1)}" in tex and r"U \mathbf{x}^{(t)}" in tex
    assert latex_expr(rec.display[1].rhs) == r"V \mathbf{h}^{(t)} + c"


def test_scalar_equations_of_a_vector_recurrence_match_the_matrix_form(rng):
    rec = sr.cells.elman(2, inputs=2)
    W = np.array(rng.uniform(-1, 1, (2, 2)))
    U = np.array(rng.uniform(-1, 1, (2, 2)))
    bias, h_prev, x_now = (rng.uniform(-1, 1, 2) for _ in range(3))
    values = {}
    for name, array in (("W", W), ("U", U)):
        values.update(zip(explicit(sr.matrix(name, 2, 2)), array.ravel(), strict=True))
    values.update(zip(explicit(sr.matrix("b", 2)), bias, strict=True))
    values.update(zip(sr.vector("h", 2)(t - 1).components(), h_prev, strict=True))
    values.update(zip(sr.vector("x", 2)(t).components(), x_now, strict=True))
    got = [
        float(eq.rhs.xreplace({key: sp.Float(v) for key, v in values.items()}))
        for eq in rec.equations
    ]
    np.testing.assert_allclose(got, np.tanh(W @ h_prev + U @ x_now + bias), rtol=1e-14)


def test_abstract_update_function_parameters():
    rec = sr.cells.autonomous()
    (theta,) = rec.params
    assert theta.name == "theta"
    assert rec.inputs == ()
    assert rec.states == (s,)


def test_tuple_equations_are_accepted():
    assert sr.Recurrence((h(t), w * h(t - 1))) == sr.Recurrence(sp.Eq(h(t), w * h(t - 1)))
    rec = sr.Recurrence([(h(t), w * h(t - 1)), (o(t), h(t))])
    assert rec.outputs == (o,)


def test_explicit_time_dependence_is_allowed():
    rec = sr.Recurrence(sp.Eq(h(t), h(t - 1) + t))
    assert rec.params == ()
    assert rec.states == (h,)


def test_with_params_substitutes_values():
    rec = sr.cells.rnn()
    w_, u_, b_ = (next(p for p in rec.params if p.name == n) for n in "wub")
    fixed = rec.with_params({w_: sp.Rational(1, 2), b_: 0})
    assert fixed.params == (u_,)
    assert fixed.update[fixed.states[0]] == rec.update[rec.states[0]].subs(
        {w_: sp.Rational(1, 2), b_: 0}
    )


def test_with_params_accepts_matrices():
    rec = sr.cells.linear(2)
    A = sr.matrix("A", 2, 2)
    fixed = rec.with_params({A: sp.eye(2)})
    assert not set(explicit(A)) & set(fixed.params)
    assert len(fixed.params) == 2  # B_1, B_2


def test_equality_and_hash():
    one = sr.Recurrence(sp.Eq(h(t), w * h(t - 1)))
    two = sr.Recurrence(sp.Eq(h(t), w * h(t - 1)), name="other")
    assert one == two and hash(one) == hash(two)
    assert one != sr.Recurrence(sp.Eq(h(t), u * h(t - 1)))
    assert one != "h(t) = w*h(t-1)"


def test_recurrence_is_immutable():
    rec = sr.cells.rnn()
    with pytest.raises(AttributeError):
        rec.order = 2  # type: ignore[misc]


# ----------------------------------------------------------------------------- printing


def test_str_and_repr():
    rec = sr.cells.rnn()
    assert str(rec) == "rnn: h(t) = tanh(b + u*x(t) + w*h(t - 1))"
    assert repr(rec) == "Recurrence([Eq(h(t), tanh(b + u*x(t) + w*h(t - 1)))], name='rnn')"
    unnamed = sr.Recurrence(sp.Eq(h(t), w * h(t - 1)))
    assert str(unnamed) == "h(t) = w*h(t - 1)"


def test_str_of_systems_aligns_lines():
    lines = str(sr.cells.coupled()).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("coupled: p(t) = ")
    assert lines[1].startswith(" " * len("coupled: ") + "q(t) = ")


def test_str_of_vector_recurrence_is_readable():
    text = str(sr.cells.elman(3, outputs=2))
    assert "h(t) = tanh(U*x(t) + W*h(t - 1) + b)" in text
    assert "Lambda" not in text and "_d" not in text
    assert "\n" not in repr(sr.cells.gru(2))


def test_repr_latex():
    tex = sr.cells.rnn()._repr_latex_()
    assert tex.startswith("$\\begin{aligned}") and tex.endswith("\\end{aligned}$")
    assert r"h^{(t)} &= \tanh{\left(b + u x^{(t)} + w h^{(t-1)} \right)}" in tex
    vector_tex = sr.cells.elman(3)._repr_latex_()
    assert (
        r"\mathbf{h}^{(t)} &= \tanh{\left(U \mathbf{x}^{(t)} + W \mathbf{h}^{(t-1)}" in vector_tex
    )


COMBINERS = {"stacked", "bidirectional", "Bidirectional", "from_torch"}  # take cells or modules


@pytest.mark.parametrize("name", [n for n in sr.cells.__all__ if n not in COMBINERS])
def test_every_cell_prints(name):
    rec = getattr(sr.cells, name)()
    assert str(rec).startswith(f"{name}: ")
    assert repr(rec).startswith("Recurrence([Eq(")
    assert "^{(t-1)}" in rec._repr_latex_() or "^{(t-2)}" in rec._repr_latex_()


# ------------------------------------------------------------------------- from strings


def test_parse_gives_the_same_recurrence():
    pytest.importorskip("symrnn.parsing")
    parsed = sr.Recurrence.parse("h(t) = tanh(w*h(t-1) + u*x(t) + b)")
    assert parsed == sr.cells.rnn()
    assert parsed.params == sr.cells.rnn().params


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("h(t-1) = h(t-2)", ["left side", "name(t)"]),
        ("h(t) = h(t+1)", ["refers to the future"]),
        ("o(t) = x(t)", ["has no state"]),
    ],
)
def test_parse_reports_recurrence_errors(text, fragments):
    pytest.importorskip("symrnn.parsing")
    _raises(sr.SymrnnError, lambda: sr.Recurrence.parse(text), *fragments)


def test_message_helper_catches_multiline_messages():
    def bad():
        raise sr.RecurrenceError("first line\nsecond line")

    with pytest.raises(AssertionError, match=re.escape("not one line")):
        _raises(sr.RecurrenceError, bad)


def test_vector_display_prints_the_book_form():
    hv, W, bv = sr.vector("h", 3), sr.matrix("W", 3, 3), sr.matrix("b", 3)
    rec = sr.Recurrence(sp.Eq(hv(t), tanh(W * hv(t - 1) + bv)))
    assert latex_expr(rec.display[0].rhs).startswith(r"\tanh{\left(W \mathbf{h}^{(t-1)} + ")
    assert latex_expr(rec.display[0].lhs) == r"\mathbf{h}^{(t)}"


def test_with_params_keeps_the_matrix_form_and_the_other_parameters():
    rec = sr.cells.linear(2)
    A = sr.matrix("A", 2, 2)
    values = sp.Matrix([[sp.Rational(1, 2), 0], [1, sp.Rational(9, 10)]])
    fixed = rec.with_params({A: values})
    assert fixed.vectors.keys() == rec.vectors.keys()
    assert [str(p) for p in fixed.params] == ["B_1", "B_2"]
    assert "Matrix" in str(fixed) and "h(t - 1)" in str(fixed)  # still one matrix equation
    # The scalar equations are the old ones with the values substituted.
    mapping = dict(zip(sr.matrices.explicit(A), values, strict=True))
    want = [eq.rhs.xreplace(mapping) for eq in rec.equations]
    assert [sp.expand(eq.rhs - w) for eq, w in zip(fixed.equations, want, strict=True)] == [0, 0]
    w = sp.Symbol("w", real=True)
    scalar = sr.cells.rnn().with_params({w: 2})
    assert w not in scalar.params and len(scalar.params) == 2
