"""Unfolding: the lecture's three examples, closed forms against the chain, views, limits."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import symrnn as sr
from symrnn.functions import sigmoid
from symrnn.notation import latex_expr, latex_time, t, time_atoms, time_function, time_of
from symrnn.unfold import MAX_CLOSED_FORM_STEPS, MAX_STEPS

GOLDEN = Path(__file__).parent / "golden"


def _golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/<name>``; SYMRNN_UPDATE_GOLDEN=1 rewrites the file."""
    path = GOLDEN / name
    if os.environ.get("SYMRNN_UPDATE_GOLDEN") == "1":
        path.write_text(text + "\n", encoding="utf-8")
    assert path.exists(), f"golden file {path} is missing; run with SYMRNN_UPDATE_GOLDEN=1"
    assert text + "\n" == path.read_text(encoding="utf-8")


# ------------------------------------------------------------------ numeric reference routes


def random_point(U, rng) -> dict:
    """Values in [-1, 1] for every parameter, symbolic initial state and input of the chain."""
    return {a: float(rng.uniform(-1, 1)) for a in (*U.params, *U.initial, *U.inputs)}


def step_by_step(U, point) -> dict:
    """Route 1: walk the chain in order, substituting numbers into each small equation."""
    values = {a: sp.Float(v) for a, v in point.items()}
    for eq in U.equations:
        values[eq.lhs] = sp.Float(float(eq.rhs.xreplace(values)))
    return values


def closed_forms_at(U, targets, point) -> np.ndarray:
    """Route 2: the closed forms g^{(k)} as one NumPy function of the initial states, inputs and
    parameters, evaluated at ``point``."""
    forms = [U.closed_form(int(time_of(a)), of=a.func) for a in targets]
    names = list(point)
    code = sp.lambdify(names, forms, modules="numpy", cse=True)
    return np.array(code(*(point[n] for n in names)), dtype=float)


AGREEMENT_CELLS = {
    "rnn": sr.cells.rnn,
    "elman(3, inputs=2, outputs=2)": lambda: sr.cells.elman(3, inputs=2, outputs=2),
    "coupled": sr.cells.coupled,
    "second_order": sr.cells.second_order,
    "fibonacci": sr.cells.fibonacci,
    "gru": sr.cells.gru,
    "gru(2)": lambda: sr.cells.gru(2),
    "lstm": sr.cells.lstm,
    "lstm(2)": lambda: sr.cells.lstm(2),
    "jordan": sr.cells.jordan,
    "linear(3)": lambda: sr.cells.linear(3),
}


@pytest.mark.parametrize("make", AGREEMENT_CELLS.values(), ids=AGREEMENT_CELLS.keys())
def test_closed_form_agrees_with_the_chain(make, rng):
    rec = make()
    steps = 4
    U = sr.unfold(rec, steps)
    point = random_point(U, rng)
    chain = step_by_step(U, point)
    # Every defined quantity (states, gates, outputs) at every step k = 1..4.
    targets = [f(k) for k in range(1, steps + 1) for f in rec.defined]
    got = closed_forms_at(U, targets, point)
    want = np.array([float(chain[a]) for a in targets])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


# ------------------------------------------------------------------------------ the lecture


def _lecture_chain(U, k: int = 3) -> str:
    r"""The lecture's ``s^{(3)} = f(s^{(2)}; \theta) = f(f(s^{(1)}; \theta); \theta)``."""
    (state,) = U.recurrence.states
    forms = (state(k), U.nested(k, levels=1), U.nested(k, levels=2))
    return " = ".join(latex_expr(form) for form in forms)


def _recurrence_line(rec) -> str:
    (eq,) = rec.display
    return f"{latex_expr(eq.lhs)} = {latex_expr(eq.rhs)}"


def test_lecture_example_1_in_sympy():
    rec = sr.cells.autonomous()
    (s,) = rec.states
    (theta,) = rec.params
    f = rec.update[s].func
    U = sr.unfold(rec, 3)
    assert U.nested(3, levels=1) == f(s(2), theta)
    assert U.nested(3, levels=2) == f(f(s(1), theta), theta)
    assert U.nested(3) == f(f(f(s(0), theta), theta), theta)
    assert U.closed_form(3) == U.nested(3)  # the update is already abstract
    assert U.state(3) == sp.Eq(s(3), f(s(2), theta))


def test_lecture_example_1_in_latex():
    rec = sr.cells.autonomous()
    _golden("lecture_example1_recurrence.tex", _recurrence_line(rec))
    _golden("lecture_example1.tex", _lecture_chain(sr.unfold(rec, 3)))


def test_lecture_example_2_in_sympy():
    rec = sr.cells.driven()
    (s,), (x,), (theta,) = rec.states, rec.inputs, rec.params
    f = rec.update[s].func
    U = sr.unfold(rec, 3)
    assert U.nested(3, levels=1) == f(s(2), x(3), theta)
    assert U.nested(3, levels=2) == f(f(s(1), x(2), theta), x(3), theta)
    assert U.closed_form(3) == f(f(f(s(0), x(1), theta), x(2), theta), x(3), theta)


def test_lecture_example_2_in_latex():
    rec = sr.cells.driven()
    _golden("lecture_example2_recurrence.tex", _recurrence_line(rec))
    _golden("lecture_example2.tex", _lecture_chain(sr.unfold(rec, 3)))


def _g_of_inputs(U, k) -> str:
    """``g^{(k)}(x^{(k)}, …, x^{(1)})`` with the inputs the closed form really depends on."""
    inputs = sorted(
        (a for a in time_atoms(U.closed_form(k)) if a.func in U.recurrence.inputs),
        key=lambda a: -int(time_of(a)),
    )
    return f"g^{{({k})}}({', '.join(latex_expr(a) for a in inputs)})"


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_lecture_rnn_closed_form_depends_on_exactly_the_inputs(k):
    rec = sr.cells.rnn()
    (h,), (x,) = rec.states, rec.inputs
    g = sr.unfold(rec, k).closed_form(k)
    assert time_atoms(g) == {h(0), *(x(i) for i in range(1, k + 1))}
    assert g.free_symbols == set(rec.params)


def test_lecture_rnn_in_sympy():
    rec = sr.cells.rnn()
    (h,), (x,) = rec.states, rec.inputs
    U = sr.unfold(rec, 3)
    f = U.nested(3, levels=1).func
    theta = U.nested(3, levels=1).args[-1]
    assert U.nested(3, levels=1) == f(h(2), x(3), theta)
    assert U.nested(3, levels=2) == f(f(h(1), x(2), theta), x(3), theta)
    # The closed form is the update substituted into itself.
    update = rec.update[h]
    step = {k: update.xreplace({h(t - 1): h(k - 1), x(t): x(k)}) for k in (1, 2, 3)}
    assert U.closed_form(3) == step[3].xreplace({h(2): step[2].xreplace({h(1): step[1]})})


def test_lecture_rnn_in_latex():
    rec = sr.cells.rnn()
    (h,), (x,) = rec.states, rec.inputs
    f, theta = sp.Function("f"), sp.Symbol("theta")
    arguments = [
        latex_expr(x(t)),
        latex_expr(x(t - 1)),
        r"\dots",
        latex_expr(x(2)),
        latex_expr(x(1)),
    ]
    template = (
        f"\\begin{{aligned}} {latex_expr(h(t))} &= g^{{({latex_time(t)})}}({', '.join(arguments)})"
        f" \\\\ &= {latex_expr(f(h(t - 1), x(t), theta))} \\end{{aligned}}"
    )
    _golden("lecture_rnn.tex", template)
    U = sr.unfold(rec, 3)
    unfolded = " = ".join(
        [
            latex_expr(h(3)),
            _g_of_inputs(U, 3),
            latex_expr(U.nested(3, levels=1)),
            latex_expr(U.closed_form(3)),
        ]
    )
    _golden("lecture_rnn_unfolded.tex", unfolded)


# --------------------------------------------------------------------------- the chain


def test_chain_is_the_template_at_each_step():
    rec = sr.cells.rnn()
    (h,), (x,) = rec.states, rec.inputs
    U = sr.unfold(rec, 5)
    assert len(U) == 5 and len(U.equations) == 5
    assert list(U) == list(U.equations)
    for k, eq in enumerate(U.equations, start=1):
        assert eq == sp.Eq(h(k), rec.update[h].xreplace({h(t - 1): h(k - 1), x(t): x(k)}))


def test_chain_of_a_system_is_in_evaluation_order():
    rec = sr.cells.gru()
    U = sr.unfold(rec, 2)
    assert [eq.lhs for eq in U.equations] == [f(k) for k in (1, 2) for f in rec.defined]


def test_chain_definitions_map_each_quantity():
    U = sr.unfold(sr.cells.coupled(), 3)
    assert U.definitions == {eq.lhs: eq.rhs for eq in U.equations}


def test_explicit_time_becomes_the_step():
    h = time_function("h")
    U = sr.unfold(sr.Recurrence(sp.Eq(h(t), h(t - 1) + t)), 3)
    assert [eq.rhs for eq in U.equations] == [h(0) + 1, h(1) + 2, h(2) + 3]
    assert U.closed_form(3) == h(0) + 6
    assert not any(t in eq.rhs.free_symbols for eq in U.equations)


def test_long_unfolding_has_no_recursion():
    U = sr.unfold(sr.cells.rnn(), 2000)
    assert len(U.equations) == 2000
    assert U.equations[-1].lhs == sr.cells.rnn().states[0](2000)
    assert str(U) and U._repr_latex_()


def test_deep_closed_form_at_the_limit_builds(rng):
    U = sr.unfold(sr.cells.linear(), MAX_CLOSED_FORM_STEPS)
    point = random_point(U, rng)
    chain = step_by_step(U, point)
    (h,) = U.recurrence.states
    k = MAX_CLOSED_FORM_STEPS
    got = float(U.closed_form(k).xreplace({a: sp.Float(v) for a, v in point.items()}))
    assert got == pytest.approx(float(chain[h(k)]), rel=1e-9)


# ------------------------------------------------------------------------ unfold arguments


@pytest.mark.parametrize("steps", [0, -1, 1.5, True, "3", None])
def test_steps_must_be_a_positive_integer(steps):
    with pytest.raises(sr.UnfoldError, match="steps must be a positive integer") as info:
        sr.unfold(sr.cells.rnn(), steps)
    assert repr(steps) in str(info.value)


@pytest.mark.parametrize("steps", [MAX_STEPS + 1, 10**30])
def test_huge_steps_hit_the_limit(steps):
    with pytest.raises(sr.LimitError, match=f"exceeds the limit of {MAX_STEPS:,}; unfold fewer"):
        sr.unfold(sr.cells.rnn(), steps)


def test_sympy_integer_steps_are_accepted():
    assert sr.unfold(sr.cells.rnn(), sp.Integer(2)).steps == 2


def test_unfold_needs_a_recurrence():
    with pytest.raises(sr.UnfoldError, match="unfold needs a Recurrence, got str"):
        sr.unfold("h(t) = h(t-1)", 3)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- init


def test_init_by_initial_atom_equals_substitution():
    rec = sr.cells.rnn()
    (h,) = rec.states
    plain, given = sr.unfold(rec, 3), sr.unfold(rec, 3, init={h(0): 0})
    assert given.initial == ()
    assert given.init == ((h(0), 0),)
    for k in (1, 2, 3):
        assert given.closed_form(k) == plain.closed_form(k).subs(h(0), 0)
    assert given.equations[1:] == plain.equations[1:]


def test_init_by_function_sets_every_initial_time():
    rec = sr.cells.second_order()
    (h,) = rec.states
    by_function = sr.unfold(rec, 3, init={h: 0})
    by_atoms = sr.unfold(rec, 3, init={h(-1): 0, h(0): 0})
    assert by_function.equations == by_atoms.equations
    assert by_function.initial == ()
    assert sr.unfold(rec, 3, init={h(0): 1}).initial == (h(-1),)


def test_init_with_an_expression():
    rec = sr.cells.rnn()
    (h,) = rec.states
    h0 = sp.Symbol("h_0")
    U = sr.unfold(rec, 2, init={h(0): h0})
    assert U.closed_form(2) == sr.unfold(rec, 2).closed_form(2).subs(h(0), h0)


@pytest.mark.parametrize(
    "init",
    [
        {sr.vector("h", 3)(0): sp.Matrix([1, 2, 3])},
        {sr.vector("h", 3): sp.Matrix([1, 2, 3])},
    ],
    ids=["vector atom", "vector function"],
)
def test_vector_init(init):
    rec = sr.cells.linear(3)
    U = sr.unfold(rec, 2, init=init)
    plain = sr.unfold(rec, 2)
    values = dict(zip(sr.vector("h", 3)(0).components(), (1, 2, 3), strict=True))
    assert dict(U.init) == values
    assert U.initial == ()
    assert U.closed_form(2) == plain.closed_form(2).subs(values)


def test_vector_init_with_one_value_for_all_components():
    U = sr.unfold(sr.cells.linear(3), 1, init={sr.vector("h", 3): 0})
    assert dict(U.init) == {c: 0 for c in sr.vector("h", 3)(0).components()}


@pytest.mark.parametrize(
    "init, fragments",
    [
        ({sr.vector("h", 3)(0): sp.Matrix([1, 2])}, ["has 2 entries, expected 3"]),
        ({sr.vector("h", 3): sp.Matrix([1, 2])}, ["has 2 entries, expected 3"]),
        ({sr.vector("h", 3)(1): sp.Matrix([1, 2, 3])}, ["h_1(1) is not an initial state", "h(0)"]),
        ({sp.Symbol("w"): 1}, ["w is not an initial state"]),
        ({sr.vector("q", 3): 0}, ["vector('q', 3) is not a state", "use one of h_1, h_2, h_3"]),
        ({time_function("x"): 0}, ["x is not a state", "use one of"]),
    ],
)
def test_init_errors(init, fragments):
    with pytest.raises(sr.UnfoldError) as info:
        sr.unfold(sr.cells.linear(3), 2, init=init)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


# ------------------------------------------------------------------------------- views


def test_state_and_getitem():
    rec = sr.cells.rnn()
    (h,) = rec.states
    U = sr.unfold(rec, 3)
    for k in (1, 2, 3):
        assert U.state(k) == U.equations[k - 1]
        assert U[k] == U.state(k)
        assert U.state(sp.Integer(k)) == U.state(k)


def test_state_of_a_vector_is_a_matrix_equation():
    rec = sr.cells.elman(3)
    U = sr.unfold(rec, 2)
    eq = U.state(2)
    assert eq.lhs == sp.ImmutableMatrix(sr.vector("h", 3)(2).components())
    assert eq.rhs == sp.ImmutableMatrix([U.definitions[a] for a in eq.lhs])


def test_closed_form_of_by_name_function_and_vector():
    rec = sr.cells.elman(3, inputs=2, outputs=2)
    U = sr.unfold(rec, 2)
    hv = sr.vector("h", 3)
    by_name, by_vector, by_at = (U.closed_form(2, of=o) for o in ("h", hv, hv(2)))
    assert by_name.shape == (3, 1)
    assert by_name == by_vector == by_at == U.closed_form(2)
    h_2 = hv.components[1]
    assert U.closed_form(2, of=h_2) == by_name[1]
    assert U.closed_form(2, of="h_2") == by_name[1]
    outputs = U.closed_form(2, of="o")
    assert outputs.shape == (2, 1)
    assert not any(
        a.func in rec.outputs + rec.states for a in time_atoms(outputs) if time_of(a) > 0
    )


def test_closed_form_of_outputs_and_gates_uses_only_initial_states_and_inputs():
    rec = sr.cells.gru()
    U = sr.unfold(rec, 3)
    for f in rec.defined:
        g = U.closed_form(3, of=f)
        assert {a for a in time_atoms(g)} <= set(U.initial) | set(U.inputs)


@pytest.mark.parametrize("k", [0, -1, 4, 1.5, True, "2", None])
def test_step_out_of_range(k):
    U = sr.unfold(sr.cells.rnn(), 3)
    for view in (U.state, U.closed_form, U.nested, U.__getitem__):
        with pytest.raises(sr.UnfoldError, match=r"step .* (outside|not an integer)") as info:
            view(k)
        assert "1..3" in str(info.value)


def test_step_beyond_the_unfolding_suggests_unfolding_further():
    with pytest.raises(sr.UnfoldError, match=r"unfold further with sr.unfold\(rec, 4\)"):
        sr.unfold(sr.cells.rnn(), 3).state(4)


def test_step_before_the_start_points_to_initial():
    with pytest.raises(sr.UnfoldError, match="U.initial"):
        sr.unfold(sr.cells.rnn(), 3).state(0)


@pytest.mark.parametrize("of", ["zz", time_function("q"), sr.vector("q", 2)])
def test_closed_form_of_unknown(of):
    U = sr.unfold(sr.cells.rnn(), 2)
    with pytest.raises(sr.UnfoldError, match="is not defined by the recurrence; choose one of h"):
        U.closed_form(2, of=of)


@pytest.mark.parametrize("make, names", [(sr.cells.coupled, "p, q"), (sr.cells.lstm, "c, h")])
def test_several_states_need_of(make, names):
    U = sr.unfold(make(), 2)
    for view in (U.state, U.closed_form, U.nested):
        with pytest.raises(
            sr.UnfoldError, match=rf"several states \({names}\); say which one with of="
        ):
            view(2)


def test_closed_form_beyond_the_limit():
    U = sr.unfold(sr.cells.rnn(), MAX_CLOSED_FORM_STEPS + 1)
    with pytest.raises(sr.LimitError) as info:
        U.closed_form(MAX_CLOSED_FORM_STEPS + 1)
    message = str(info.value)
    assert f"limit {MAX_CLOSED_FORM_STEPS}" in message and "U.equations" in message


@pytest.mark.parametrize("levels", [0, -1, 1.5, True, "1"])
def test_nested_levels_must_be_positive_integers(levels):
    with pytest.raises(sr.UnfoldError, match="levels must be a positive integer"):
        sr.unfold(sr.cells.rnn(), 3).nested(3, levels=levels)


def test_nested_levels_beyond_the_start_stop_at_the_initial_state():
    U = sr.unfold(sr.cells.autonomous(), 3)
    assert U.nested(3, levels=10) == U.nested(3) == U.nested(3, levels=3)


def test_nested_of_a_system_uses_one_function_per_quantity():
    U = sr.unfold(sr.cells.coupled(), 2)
    p, q = U.recurrence.states
    nested = U.nested(2, of=p, levels=1)
    assert nested.func.__name__ == "f_p"
    assert set(nested.args[:-1]) == {p(1), q(1), U.recurrence.inputs[0](2)}


def test_initial_and_inputs():
    rnn = sr.unfold(sr.cells.rnn(), 3)
    (h,), (x,) = rnn.recurrence.states, rnn.recurrence.inputs
    assert rnn.initial == (h(0),)
    assert rnn.inputs == (x(1), x(2), x(3))
    second = sr.unfold(sr.cells.second_order(), 3)
    (h2,) = second.recurrence.states
    assert second.initial == (h2(-1), h2(0))
    fib = sr.unfold(sr.cells.fibonacci(), 3)
    assert fib.inputs == ()
    assert fib.params == ()


def test_lagged_inputs_include_earlier_times():
    h, x = time_function("h"), time_function("x")
    U = sr.unfold(sr.Recurrence(sp.Eq(h(t), h(t - 1) + x(t - 1))), 2)
    assert U.inputs == (x(0), x(1))


def test_vector_initial_and_inputs():
    U = sr.unfold(sr.cells.elman(3, inputs=2), 2)
    assert U.initial == sr.vector("h", 3)(0).components()
    assert set(U.inputs) == {c for k in (1, 2) for c in sr.vector("x", 2)(k).components()}


def test_unfolded_is_immutable():
    U = sr.unfold(sr.cells.rnn(), 2)
    with pytest.raises(AttributeError):
        U.steps = 3  # type: ignore[misc]


# ----------------------------------------------------------------------------- printing


def test_repr_and_str():
    U = sr.unfold(sr.cells.rnn(), 3)
    assert repr(U) == "<Unfolded 'rnn': 3 steps, 3 equations>"
    assert str(U).splitlines() == [f"{eq.lhs} = {eq.rhs}" for eq in U.equations]
    gru = sr.unfold(sr.cells.gru(), 2)
    assert repr(gru) == "<Unfolded 'gru': 2 steps, 8 equations>"


def test_str_of_a_long_chain_is_shortened():
    U = sr.unfold(sr.cells.rnn(), 50)
    lines = str(U).splitlines()
    assert "..." in lines and len(lines) < 15
    assert lines[-1] == f"{U.equations[-1].lhs} = {U.equations[-1].rhs}"


def test_repr_latex_of_the_chain():
    tex = sr.unfold(sr.cells.rnn(), 3)._repr_latex_()
    assert tex.startswith("$\\begin{aligned}") and tex.endswith("\\end{aligned}$")
    assert r"h^{(2)} &:= \tanh{\left(b + u x^{(2)} + w h^{(1)} \right)}" in tex
    assert r"\vdots" not in tex


def test_repr_latex_of_a_long_chain_has_vdots():
    tex = sr.unfold(sr.cells.rnn(), 40)._repr_latex_()
    assert r"\vdots" in tex
    assert "h^{(40)} &:=" in tex and "h^{(20)} &:=" not in tex


# ----------------------------------------------------------------- property: random recurrences


@st.composite
def scalar_recurrences(draw):
    """Random scalar recurrences of order 1–3 from +, *, tanh and sigmoid of lagged states, an
    input x(t) and 1–3 parameters; the outer squashing keeps the values bounded."""
    order = draw(st.integers(1, 3))
    params = sp.symbols(f"p_1:{draw(st.integers(1, 3)) + 1}", real=True)
    h, x = time_function("h"), time_function("x")
    leaves = st.sampled_from([*(h(t - lag) for lag in range(1, order + 1)), x(t), *params])
    body = draw(
        st.recursive(
            leaves,
            lambda inner: st.one_of(
                st.tuples(inner, inner).map(lambda ab: ab[0] + ab[1]),
                st.tuples(inner, inner).map(lambda ab: ab[0] * ab[1]),
                inner.map(sp.tanh),
                inner.map(sigmoid),
            ),
            max_leaves=6,
        )
    )
    squash = draw(st.sampled_from([sp.tanh, sigmoid]))
    # The last parameter times h(t - order) fixes the order and guarantees a state.
    return sr.Recurrence(sp.Eq(h(t), squash(body + params[-1] * h(t - order)))), order


@settings(max_examples=50, deadline=None, derandomize=True)
@given(case=scalar_recurrences(), seed=st.integers(0, 2**32 - 1))
def test_random_recurrences_closed_form_equals_the_chain(case, seed):
    rec, order = case
    assert rec.order == order and len(rec.states) == 1
    steps = 4
    U = sr.unfold(rec, steps)
    assert len(U.initial) == order
    point = random_point(U, np.random.default_rng(seed))
    chain = step_by_step(U, point)
    (h,) = rec.states
    targets = [h(k) for k in range(1, steps + 1)]
    got = closed_forms_at(U, targets, point)
    for target, value in zip(targets, got, strict=True):
        assert math.isclose(value, float(chain[target]), rel_tol=1e-10, abs_tol=1e-13), target


@pytest.mark.slow
def test_ten_thousand_steps_and_the_deepest_closed_form(rng):
    U = sr.unfold(sr.cells.rnn(), 10_000)
    assert len(U.equations) == 10_000
    point = random_point(U, rng)
    chain = step_by_step(U, point)
    (h,) = U.recurrence.states
    k = MAX_CLOSED_FORM_STEPS
    got = float(U.closed_form(k).xreplace({a: sp.Float(v) for a, v in point.items()}))
    assert got == pytest.approx(float(chain[h(k)]), rel=1e-9)
