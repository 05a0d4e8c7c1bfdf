"""Vector states and matrix parameters: naming, printing, and explicit expansion vs NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symrnn as sr
from symrnn.functions import sigmoid, tanh
from symrnn.matrices import VectorAt, entry_symbol, explicit, is_matrix
from symrnn.notation import latex_expr, t


def _values(rng, symbols):
    return {s: float(rng.uniform(-1, 1)) for s in symbols}


def _numeric(mapping, matrix_symbol):
    """The NumPy array of a parameter matrix at the values ``mapping`` gives its entries."""
    rows, cols = (int(n) for n in matrix_symbol.shape)
    return np.array(
        [
            [mapping[entry_symbol(matrix_symbol.name, i, j, rows, cols)] for j in range(cols)]
            for i in range(rows)
        ]
    )


def _numeric_vector(mapping, vector_at):
    return np.array([[mapping[c]] for c in vector_at.components()])


def _evaluate(explicit_matrix, mapping):
    subs = {k: sp.Float(v) for k, v in mapping.items()}
    return np.array(explicit_matrix.xreplace(subs).evalf(), dtype=float)


@pytest.mark.parametrize(
    "name, i, j, rows, cols, expected",
    [
        ("W", 0, 1, 3, 3, "W_12"),
        ("b", 1, 0, 3, 1, "b_2"),
        ("A", 9, 1, 12, 10, "A_10_2"),
        ("V", 1, 2, 2, 9, "V_23"),
    ],
)
def test_entry_symbols_are_named_one_based(name, i, j, rows, cols, expected):
    symbol = entry_symbol(name, i, j, rows, cols)
    assert symbol.name == expected
    assert symbol.is_real


def test_entry_names_stay_distinct_for_large_matrices():
    entries = explicit(sr.matrix("A", 12, 11))
    assert len(set(entries)) == 12 * 11


def test_vector_components_and_time():
    hv = sr.vector("h", 3)
    at = hv(t - 1)
    assert isinstance(at, VectorAt)
    assert at.shape == (3, 1)
    assert at.time == t - 1
    assert [c.func.__name__ for c in at.components()] == ["h_1", "h_2", "h_3"]
    assert all(c.args == (t - 1,) for c in at.components())
    assert hv.components == tuple(c.func for c in at.components())
    assert explicit(at) == sp.ImmutableMatrix(at.components())
    assert at[1, 0] == at.components()[1]


def test_vector_prints_as_in_the_book():
    hv = sr.vector("h", 2)
    assert latex_expr(hv(t - 1)) == r"\mathbf{h}^{(t-1)}"
    assert latex_expr(hv(3)) == r"\mathbf{h}^{(3)}"
    assert str(hv(t - 1)) == "h(t - 1)"
    assert repr(hv) == "vector('h', 2)"


def test_time_vectors_compare_by_name_and_size():
    assert sr.vector("h", 2) == sr.vector("h", 2)
    assert sr.vector("h", 2) != sr.vector("h", 3)
    assert len({sr.vector("h", 2), sr.vector("h", 2)}) == 1


def test_matrix_is_a_matrix_symbol():
    W = sr.matrix("W", 2, 3)
    assert isinstance(W, sp.MatrixSymbol)
    assert W.shape == (2, 3)
    assert sr.matrix("b", 4).shape == (4, 1)
    assert is_matrix(W) and is_matrix(sp.Matrix([1])) and not is_matrix(sp.Symbol("w"))


@pytest.mark.parametrize(
    "make",
    [
        lambda: sr.vector("h", 0),
        lambda: sr.vector("h", 2.0),
        lambda: sr.vector("h", True),
        lambda: sr.matrix("W", 2, -1),
        lambda: sr.matrix("W", "3"),
    ],
)
def test_sizes_must_be_positive_integers(make):
    with pytest.raises(sr.ShapeError, match=r"must be positive integers.*vector\('h', 3\)"):
        make()


def test_explicit_passes_scalars_and_explicit_matrices_through():
    w = sp.Symbol("w")
    assert explicit(w) is w
    assert explicit(sp.Matrix([[1, 2]])) == sp.ImmutableMatrix([[1, 2]])


def test_explicit_matrix_vector_product_matches_numpy(rng):
    W, U, b = sr.matrix("W", 3, 3), sr.matrix("U", 3, 2), sr.matrix("b", 3)
    hv, xv = sr.vector("h", 3), sr.vector("x", 2)
    expr = W * hv(t - 1) + U * xv(t) + b
    expanded = explicit(expr)
    leaves = [*explicit(W), *explicit(U), *explicit(b)]
    values = _values(rng, leaves + [*hv(t - 1).components(), *xv(t).components()])
    want = (
        _numeric(values, W) @ _numeric_vector(values, hv(t - 1))
        + _numeric(values, U) @ _numeric_vector(values, xv(t))
        + _numeric(values, b)
    )
    np.testing.assert_allclose(_evaluate(expanded, values), want, rtol=1e-13)


def test_explicit_elementwise_and_hadamard_match_numpy(rng):
    W, hv = sr.matrix("W", 2, 2), sr.vector("h", 2)
    expr = sp.HadamardProduct(sigmoid(W * hv(t - 1)), tanh(hv(t - 1)))
    expanded = explicit(expr)
    values = _values(rng, list(explicit(W)) + list(hv(t - 1).components()))
    hn, Wn = _numeric_vector(values, hv(t - 1)), _numeric(values, W)
    want = 1 / (1 + np.exp(-(Wn @ hn))) * np.tanh(hn)
    np.testing.assert_allclose(_evaluate(expanded, values), want, rtol=1e-13)


def test_explicit_transpose_product_matches_numpy(rng):
    W = sr.matrix("W", 2, 3)
    expanded = explicit(W.T * W)
    values = _values(rng, list(explicit(W)))
    Wn = _numeric(values, W)
    assert expanded.shape == (3, 3)
    np.testing.assert_allclose(_evaluate(expanded, values), Wn.T @ Wn, rtol=1e-13)
