"""The hand-written machinery against the SymPy routines it replaces, on random expressions.

``diff.derivative`` (the chain rule without ``Derivative`` objects) against ``sp.diff``, and the
common-subexpression elimination of ``numeric`` (``_cse``) against ``sp.cse``: equal values at
random points, for expressions from a grammar with the functions recurrences use.
"""

from __future__ import annotations

import math
import random
from typing import Any

import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import symrnn as sr
from symrnn.diff import derivative
from symrnn.functions import relu, sigmoid, softplus
from symrnn.notation import time_function
from symrnn.numeric import _cse

t = sr.t
A, B = sp.symbols("a b", real=True)
H, X = time_function("h"), time_function("x")
LEAVES = [A, B, H(t - 1), X(t), sp.Rational(1, 2), sp.Integer(3)]
VARIABLES = [A, B, H(t - 1), X(t)]

_UNARY = {
    "tanh": sp.tanh,
    "sigmoid": sigmoid,
    "softplus": softplus,
    "relu": relu,
    "sin": sp.sin,
    "exp": lambda e: sp.exp(sp.tanh(e)),
    "log": lambda e: sp.log(1 + e**2),
    "sqrt": lambda e: sp.sqrt(2 + e**2),
    "square": lambda e: e**2,
    "neg": lambda e: -e,
}
_BINARY = {
    "+": lambda p, q: p + q,
    "-": lambda p, q: p - q,
    "*": lambda p, q: p * q,
    "/": lambda p, q: p / (2 + q**2),
    "pow": lambda p, q: (2 + p**2) ** sp.tanh(q),
    "max": sp.Max,
    "min3": lambda p, q: sp.Min(p, q, sp.Rational(1, 3)),
}


def expressions(depth: int) -> st.SearchStrategy[Any]:
    leaf = st.sampled_from(LEAVES)
    if depth == 0:
        return leaf
    sub = expressions(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(st.sampled_from(sorted(_UNARY)), sub).map(lambda p: _UNARY[p[0]](p[1])),
        st.tuples(st.sampled_from(sorted(_BINARY)), sub, sub).map(
            lambda p: _BINARY[p[0]](p[1], p[2])
        ),
    )


def _point(seed: int) -> dict[Any, sp.Float]:
    rng = random.Random(seed)
    return {v: sp.Float(rng.uniform(-1.5, 1.5), 30) for v in VARIABLES}


def _numeric(expr: Any) -> sp.Float:
    """The value of an expression without symbols (symrnn's functions by their definitions)."""
    expr = expr.replace(sigmoid, lambda u: 1 / (1 + sp.exp(-u)))
    expr = expr.replace(softplus, lambda u: sp.log(1 + sp.exp(u)))
    expr = expr.replace(relu, lambda u: sp.Max(u, 0))
    return sp.N(expr, 30)


def _value(expr: Any, point: dict[Any, Any]) -> complex:
    return complex(_numeric(expr.xreplace(point)))


def _close(x: complex, y: complex) -> bool:
    return abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y))


_SETTINGS = dict(max_examples=150, deadline=None, derandomize=True)


@settings(**_SETTINGS)  # type: ignore[arg-type]
@given(expr=expressions(3), var=st.sampled_from(VARIABLES), seed=st.integers(0, 2**16))
def test_derivative_equals_sympy_diff(expr: Any, var: Any, seed: int) -> None:
    ours, theirs = derivative(expr, var), sp.diff(expr, var)
    for k in range(3):
        point = _point(seed + k)
        a, b = _value(ours, point), _value(theirs, point)
        if math.isfinite(abs(b)):
            assert _close(a, b), f"d/d{var} of {expr}: {a} vs {b} at {point}"


def _evaluate_cse(replacements: list[tuple[Any, Any]], reduced: list[Any], point: dict) -> list:
    values = dict(point)
    for symbol, e in replacements:
        values[symbol] = _numeric(e.xreplace(values))
    return [complex(_numeric(e.xreplace(values))) for e in reduced]


@settings(**_SETTINGS)  # type: ignore[arg-type]
@given(exprs=st.lists(expressions(3), min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_cse_gives_the_values_of_sympy_cse(exprs: list[Any], seed: int) -> None:
    # derivatives share many subexpressions, as the adjoint code does
    exprs = exprs + [derivative(exprs[0], A)]
    ours = _cse(exprs)
    theirs = sp.cse(exprs)
    point = _point(seed)
    direct = [_value(e, point) for e in exprs]
    for got, want, plain in zip(
        _evaluate_cse(*ours, point), _evaluate_cse(*theirs, point), direct, strict=True
    ):
        assert _close(got, want) and _close(got, plain)
    # every name stands for a compound subtree used more than once
    names = [s for s, _ in ours[0]]
    assert len(set(names)) == len(names)
