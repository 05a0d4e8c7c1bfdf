"""Property tests: ``sr.verify`` passes on random recurrences from a small grammar.

The grammar (Hypothesis strategies that build SymPy expressions directly) covers scalar states
(one or two, coupled) and vector states (n <= 3), orders 1-3, 0-2 inputs, 1-4 parameters,
+ - x /, powers, tanh, sigmoid, exp, log, sin, cos, ``Max`` and ``Min`` (of two or three
arguments), products of states, outputs and per-step losses; the generated-code test adds
finite sums (``Sum`` over an index).  Expressions stay small (depth <= 3) and bounded, so that
the random points of
``verify`` never overflow: divisions are by ``2 + e**2``, ``exp`` and ``log`` are taken of
bounded or positive arguments, and each update ends in a squashing function or a contraction.

The default (CI) run checks 200 recurrences; ``pytest --slow`` adds a run of 5,000.  Both run the
real checks: closed forms vs iteration, scan vs unrolled code vs the Python loop, reverse vs
forward mode vs ``sp.diff`` vs complex step (or central differences), and Jacobians.
``SYMRNN_PROPERTY_EXAMPLES`` overrides the CI count.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import symrnn as sr
from symrnn.errors import RecurrenceError
from symrnn.functions import sigmoid
from symrnn.notation import time_function
from symrnn.verify import verify

t = sr.t

CI_EXAMPLES = int(os.environ.get("SYMRNN_PROPERTY_EXAMPLES", "200"))
SLOW_EXAMPLES = 5000
FAST_CHECKS = ("closed_form", "codegen", "gradient", "jacobian")

_SQUASH = {
    "tanh": sp.tanh,
    "sigmoid": sigmoid,
    "sin": sp.sin,
    "cos": sp.cos,
}


# ------------------------------------------------------------------------------ expressions
def _unary(name: str, a: Any) -> Any:
    if name == "square":
        return a**2
    if name == "cube":
        return a**3
    if name == "exp":
        return sp.exp(sp.tanh(a))  # bounded argument
    if name == "gauss":
        return sp.exp(-(a**2))
    if name == "log":
        return sp.log(1 + a**2)  # positive argument
    if name == "softlog":
        return sp.log(1 + sp.exp(sp.tanh(a)))
    if name == "sqrt":
        return sp.sqrt(1 + a**2)
    if name == "neg":
        return -a
    if name == "sum":
        # a finite Sum whose terms use the index (generated code writes it out)
        return sp.Sum(a**_K / (_K + 1), (_K, 1, 2))
    return _SQUASH[name](a)


_K = sp.Symbol("k", integer=True, positive=True)
_UNARIES = ["square", "cube", "exp", "gauss", "log", "softlog", "sqrt", "neg", *_SQUASH]


def _binary(name: str, a: Any, b: Any) -> Any:
    if name == "+":
        return a + b
    if name == "-":
        return a - b
    if name == "*":
        return a * b
    if name == "max":
        return sp.Max(a, b)
    if name == "min3":
        return sp.Min(a, b, sp.Rational(1, 3))
    return a / (2 + b**2)  # denominator >= 2


def expressions(
    leaves: list[Any], depth: int, unaries: Sequence[str] = tuple(_UNARIES)
) -> st.SearchStrategy[Any]:
    """Expressions of depth <= ``depth`` over ``leaves``."""
    leaf = st.sampled_from(leaves)
    if depth == 0:
        return leaf
    sub = expressions(leaves, depth - 1, unaries)
    return st.one_of(
        leaf,
        st.tuples(st.sampled_from(list(unaries)), sub).map(lambda p: _unary(*p)),
        st.tuples(st.sampled_from(["+", "-", "*", "/", "max", "min3"]), sub, sub).map(
            lambda p: _binary(*p)
        ),
    )


# ------------------------------------------------------------------------------ recurrences
@st.composite
def scalar_recurrences(draw: Any) -> tuple[sr.Recurrence, Any]:
    n_states = draw(st.integers(1, 2))
    order = draw(st.integers(1, 3))
    n_inputs = draw(st.integers(0, 2))
    n_params = draw(st.integers(1, 4))
    states = [time_function(name) for name in ("s", "r")[:n_states]]
    inputs = [time_function(name) for name in ("x", "z")[:n_inputs]]
    params = list(sp.symbols("a b c d", real=True))[:n_params]
    constants = [sp.Rational(1, 2), sp.Integer(2)]
    lags = [s(t - j) for s in states for j in range(1, order + 1)]
    input_atoms = [x(t) for x in inputs]
    if inputs and draw(st.booleans()):
        input_atoms.append(inputs[0](t - 1))
    leaves = lags + input_atoms + params + constants
    equations = []
    for s in states:
        body = draw(expressions(leaves, draw(st.integers(1, 3))))
        p = draw(st.sampled_from(params))
        lag = s(t - draw(st.integers(1, order)))
        top = draw(st.sampled_from([*_SQUASH, "contraction"]))
        if top == "contraction":
            # |p| <= 1 and a bounded drive: values grow at most linearly over the steps.
            update = p * lag / 2 + sp.tanh(body)
        else:
            update = _SQUASH[top](body + p * lag)
        equations.append(sp.Eq(s(t), update))
    outputs = []
    if draw(st.booleans()):
        o = time_function("o")
        c = draw(st.sampled_from(params))
        drive = draw(expressions([s(t) for s in states] + params + constants, 1))
        equations.append(sp.Eq(o(t), c * states[0](t) + drive))
        outputs.append(o)
    try:
        rec = sr.Recurrence(equations, name="random")
    except RecurrenceError:
        assume(False)
    assume(len(rec.states) == n_states)
    loss = draw(_losses([*states, *outputs], list(rec.params)))
    return rec, loss


@st.composite
def vector_recurrences(draw: Any) -> tuple[sr.Recurrence, Any]:
    n = draw(st.integers(1, 3))
    order = draw(st.integers(1, 3))
    n_inputs = draw(st.integers(0, 2))
    h = sr.vector("h", n)
    pre = sr.matrix("W", n, n) * h(t - 1)
    if order > 1:
        pre = pre + sr.matrix("V", n, n) * h(t - order)
    if n_inputs:
        x = sr.vector("x", n_inputs)
        pre = pre + sr.matrix("U", n, n_inputs) * x(t)
    if draw(st.booleans()):
        pre = pre + sr.matrix("b", n)
    if draw(st.booleans()):  # a product of states
        pre = pre + sp.HadamardProduct(h(t - 1), h(t - order))
    squash = draw(st.sampled_from([sr.functions.tanh, sigmoid, sr.functions.sin, sr.functions.cos]))
    equations = [sp.Eq(h(t), squash(pre))]
    quantities = list(h.components)
    if draw(st.booleans()):
        m = draw(st.integers(1, 2))
        o = sr.vector("o", m)
        equations.append(sp.Eq(o(t), sr.matrix("C", m, n) * h(t) + sr.matrix("c", m)))
        quantities += list(o.components)
    rec = sr.Recurrence(equations, name="random vector")
    loss = draw(_losses(quantities, list(rec.params)[:2]))
    return rec, loss


@st.composite
def _losses(draw: Any, quantities: list[Any], params: list[Any]) -> Any:
    kind = draw(st.sampled_from(["default", "target", "expression"]))
    if kind == "default":
        return None
    q = draw(st.sampled_from(quantities))
    if kind == "target":
        y = time_function("y")
        return (q(t) - y(t)) ** 2 / 2
    leaves = [f(t) for f in quantities] + params + [sp.Rational(1, 2)]
    return draw(expressions(leaves, 2)) + q(t) ** 2 / 2


recurrences = st.one_of(scalar_recurrences(), scalar_recurrences(), vector_recurrences())


def _check(case: tuple[sr.Recurrence, Any], steps: int, seed: int, checks: Any) -> None:
    rec, loss = case
    note(f"recurrence: {rec}\nloss: {loss}\nsteps: {steps}, seed: {seed}")
    report = verify(rec, steps=steps, loss=loss, seed=seed, trials=2, checks=checks)
    note(str(report))
    assert report.ok, str(report)


_SETTINGS = dict(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
    derandomize=True,
)


@settings(max_examples=CI_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(case=recurrences, steps=st.integers(2, 3), seed=st.integers(0, 2**16))
def test_verify_passes_on_random_recurrences(case: Any, steps: int, seed: int) -> None:
    _check(case, steps, seed, FAST_CHECKS)


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(case=recurrences, steps=st.integers(2, 3), seed=st.integers(0, 2**16))
def test_verify_passes_on_many_random_recurrences(case: Any, steps: int, seed: int) -> None:
    _check(case, steps, seed, FAST_CHECKS)


# ------------------------------------------------------------------- generated code alone
@st.composite
def coded_recurrences(draw: Any) -> tuple[sr.Recurrence, Any]:
    """One state, one input, Max/Min/Sum among the operations; the update stays bounded."""
    s, x = time_function("s"), time_function("x")
    a, b = sp.symbols("a b", real=True)
    leaves = [s(t - 1), x(t), a, b, sp.Rational(1, 2)]
    body = draw(expressions(leaves, draw(st.integers(1, 3)), (*_UNARIES, "sum")))
    update = a * s(t - 1) / 2 + sp.tanh(body) + b * x(t) / 4
    try:
        rec = sr.Recurrence(sp.Eq(s(t), update), params=[a, b], name="coded")
    except RecurrenceError:
        assume(False)
    assume(rec.states)
    return rec, s


def _reference(rec: sr.Recurrence, values: dict[Any, float], xs: list[float]) -> list[float]:
    """The update iterated with SymPy's own evaluation (Sum done by SymPy, floats at the end)."""
    (state,) = rec.states
    (inp,) = rec.inputs
    update = rec.update[state].doit()
    h, out = 0.0, []
    for xv in xs:
        value = update.xreplace({state(t - 1): h, inp(t): xv, **values})
        h = float(value.evalf(30))
        out.append(h)
    return out


@settings(max_examples=max(CI_EXAMPLES // 5, 10), **_SETTINGS)  # type: ignore[arg-type]
@given(case=coded_recurrences(), seed=st.integers(0, 2**16))
def test_generated_code_runs_on_random_recurrences(case: Any, seed: int) -> None:
    """Scan (NumPy batch and math scalar) and unrolled code compile, run and agree with SymPy."""
    rec, s = case
    note(f"recurrence: {rec}")
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-1, 1, 3)
    a, b = rec.params
    values = {a: float(rng.uniform(-0.9, 0.9)), b: float(rng.uniform(-0.9, 0.9))}
    expected = _reference(rec, values, list(xs))
    params = {"a": values[a], "b": values[b]}
    for mode in ("scan", "unrolled"):
        c = sr.lambdify(rec, loss=s(t) ** 2 / 2, mode=mode, steps=3)
        one = c.forward(params, {"x": xs})["s"]
        batch = c.forward(params, {"x": np.stack([xs, xs], axis=1)})["s"]
        np.testing.assert_allclose(one, expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(batch[:, 1], expected, rtol=1e-9, atol=1e-12)
        value, _ = c.value_and_grad(params, {"x": xs})
        assert math.isclose(float(value), sum(v * v for v in expected) / 2, rel_tol=1e-9)
