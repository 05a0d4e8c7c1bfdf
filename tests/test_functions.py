"""Activation functions: derivatives, numeric code, elementwise behaviour, printing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import symrnn as sr
from symrnn.functions import logsumexp, relu, sigmoid, softmax, softplus, tanh
from symrnn.notation import latex_expr
from symrnn.ops import sqr

x = sp.Symbol("x", real=True)

#: The definitions, written with the Python standard library: an oracle independent of SymPy.
REFERENCE = {
    sigmoid: lambda v: 1 / (1 + math.exp(-v)),
    relu: lambda v: max(v, 0.0),
    softplus: lambda v: math.log(1 + math.exp(v)),
}
SMOOTH = [sigmoid, softplus]


def _points(rng, n=7):
    """Random points away from 0, where relu has its kink."""
    pts = rng.uniform(-3, 3, n)
    return pts[np.abs(pts) > 1e-2]


@pytest.mark.parametrize("fn", list(REFERENCE), ids=lambda f: f.__name__)
def test_numpy_code_matches_the_definition(fn, rng):
    code = sp.lambdify(x, fn(x), modules="numpy")
    pts = rng.uniform(-5, 5, 11)
    np.testing.assert_allclose(code(pts), [REFERENCE[fn](p) for p in pts], rtol=1e-14)


@pytest.mark.parametrize("fn", list(REFERENCE), ids=lambda f: f.__name__)
def test_derivative_matches_central_differences(fn, rng):
    derivative = sp.lambdify(x, sp.diff(fn(x), x), modules="numpy")
    step = 1e-6
    for p in _points(rng):
        fd = (REFERENCE[fn](p + step) - REFERENCE[fn](p - step)) / (2 * step)
        assert derivative(p) == pytest.approx(fd, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("fn", SMOOTH, ids=lambda f: f.__name__)
def test_derivative_matches_the_exp_form(fn, rng):
    # Second route: differentiate the definition in exponentials, independent of fdiff.
    via_rule = sp.lambdify(x, sp.diff(fn(x), x), modules="numpy")
    via_exp = sp.lambdify(x, sp.diff(fn(x).rewrite(sp.exp), x), modules="numpy")
    pts = _points(rng)
    np.testing.assert_allclose(via_rule(pts), via_exp(pts), rtol=1e-13)


@pytest.mark.parametrize("fn", SMOOTH, ids=lambda f: f.__name__)
def test_derivative_matches_complex_step(fn, rng):
    # Third route for the analytic ones: the complex step, exact to rounding.
    exp_form = sp.lambdify(x, fn(x).rewrite(sp.exp), modules="numpy")
    derivative = sp.lambdify(x, sp.diff(fn(x), x), modules="numpy")
    step = 1e-30
    for p in _points(rng):
        assert derivative(p) == pytest.approx(exp_form(p + 1j * step).imag / step, rel=1e-13)


def test_second_derivative_of_sigmoid_against_differences(rng):
    second = sp.lambdify(x, sp.diff(sigmoid(x), x, 2), modules="numpy")
    first = sp.lambdify(x, sp.diff(sigmoid(x), x), modules="numpy")
    step = 1e-6
    for p in _points(rng):
        assert second(p) == pytest.approx(
            (first(p + step) - first(p - step)) / (2 * step), rel=1e-6, abs=1e-9
        )


def test_relu_derivative_is_a_step():
    derivative = sp.diff(relu(x), x)
    assert derivative == sp.Heaviside(x, 0)
    assert derivative.subs(x, 0) == 0


@pytest.mark.parametrize("fn", list(REFERENCE), ids=lambda f: f.__name__)
def test_numbers_evaluate_like_the_definition(fn, rng):
    for p in rng.uniform(-3, 3, 5):
        assert float(fn(sp.Float(p))) == pytest.approx(REFERENCE[fn](p), rel=1e-14)


def test_exact_values_agree_with_the_exp_form():
    for fn in SMOOTH:
        assert sp.simplify(fn(0) - fn(x).rewrite(sp.exp).subs(x, 0)) == 0
    assert relu(-2) == 0 and relu(sp.Rational(3, 2)) == sp.Rational(3, 2)


def test_relu_uses_sign_assumptions():
    p, n = sp.Symbol("p", positive=True), sp.Symbol("n", negative=True)
    assert relu(p) == p
    assert relu(n) == 0
    assert isinstance(relu(x), relu)


@pytest.mark.parametrize("fn", [sigmoid, relu, softplus, tanh], ids=lambda f: f.__name__)
def test_functions_map_over_explicit_vectors(fn):
    v = sp.Matrix([x, 2 * x, x + 1])
    assert sp.ImmutableMatrix(fn(v)) == sp.ImmutableMatrix([fn(e) for e in v])


@pytest.mark.parametrize("fn", [sigmoid, relu, softplus, tanh], ids=lambda f: f.__name__)
def test_functions_map_over_matrix_expressions(fn):
    W = sr.matrix("W", 2, 2)
    expanded = sr.matrices.explicit(fn(W))
    assert expanded == sp.ImmutableMatrix(2, 2, [fn(e) for e in sr.matrices.explicit(W)])


@pytest.mark.parametrize(
    "fn, tex",
    [
        (sigmoid, r"\sigma\left(x\right)"),
        (relu, r"\operatorname{relu}\left(x\right)"),
        (softplus, r"\operatorname{softplus}\left(x\right)"),
    ],
)
def test_latex(fn, tex):
    assert latex_expr(fn(x)) == tex
    assert sp.latex(fn(x)) == tex


def test_softmax_sums_to_one_symbolically():
    v = sp.Matrix(sp.symbols("v1:4", real=True))
    assert sp.simplify(sum(softmax(v)) - 1) == 0


def test_softmax_sums_to_one_numerically_and_matches_numpy(rng):
    V = sr.matrix("v", 4)
    entries = list(sr.matrices.explicit(V))
    values = rng.normal(size=4)
    code = sp.lambdify(entries, list(softmax(V)), modules="numpy")
    got = np.array(code(*values))
    assert got.sum() == pytest.approx(1.0, rel=1e-15)
    np.testing.assert_allclose(got, np.exp(values) / np.exp(values).sum(), rtol=1e-14)


def test_logsumexp_matches_numpy(rng):
    V = sr.matrix("v", 3)
    entries = list(sr.matrices.explicit(V))
    values = rng.normal(size=3)
    code = sp.lambdify(entries, logsumexp(V), modules="numpy")
    assert code(*values) == pytest.approx(np.log(np.exp(values).sum()), rel=1e-14)


def test_softmax_of_a_scalar_is_one():
    assert softmax(x) == sp.ImmutableMatrix([1])


def test_public_names():
    assert sr.sigmoid is sigmoid and sr.relu is relu and sr.softplus is softplus
    assert sr.softmax is softmax


@pytest.mark.parametrize("fn", [sigmoid, relu, softplus, tanh, sqr], ids=lambda f: f.__name__)
def test_functions_of_one_by_one_matrix_expressions(fn):
    # SymPy special-cases 1×1 arguments of elementwise functions; this once recursed forever.
    W, h = sr.matrix("W", 1, 1), sr.vector("h", 1)
    expr = fn(W * h(sr.t - 1))
    (entry,) = sr.matrices.explicit(W)
    assert sr.matrices.explicit(expr) == sp.ImmutableMatrix(
        [[fn(entry * h(sr.t - 1).components()[0])]]
    )
    assert latex_expr(expr).count("W") == 1
