r"""Goodfellow, Bengio & Courville, *Deep Learning*, §10.2.2: the BPTT equations 10.18–10.26.

The vanilla RNN of the book (tanh hidden units, softmax outputs, cross-entropy against class
labels), τ = 4 steps, 3 hidden units, 2 inputs, 3 classes:

    a(t) = b + W h(t-1) + U x(t),  h(t) = tanh(a(t)),  o(t) = c + V h(t),  ŷ(t) = softmax(o(t))
    L = Σ_t L(t),  L(t) = -log ŷ(t)[y(t)]

Two routes, compared equation by equation at random parameters, inputs and one-hot targets:

* the **book route**: each equation typed from the book into NumPy, by hand;
* the **machinery route**: symrnn's general component BPTT (``sr.bptt(...).resolved()``,
  ``sr.grad``) and its matrix-form view (``symrnn.matrix_form.matrix_bptt``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pytest
import sympy as sp
from sympy.core.function import AppliedUndef

import symrnn as sr
from symrnn.diff import Adjoint
from symrnn.matrices import explicit
from symrnn.matrix_form import Diag, Nabla, components, matrix_bptt
from symrnn.notation import latex_expr, t, time_function

TAU, N, INPUTS, CLASSES = 4, 3, 2, 3
RTOL = 1e-10


# --------------------------------------------------------------------- numeric evaluation
_FUNCTIONS: dict[Any, Callable[[float], float]] = {
    sp.tanh: math.tanh,
    sp.exp: math.exp,
    sp.log: math.log,
    sp.sin: math.sin,
    sp.cos: math.cos,
    sr.sigmoid: lambda v: 1 / (1 + math.exp(-v)),
}


def _number(e: Any, values: dict[Any, float], memo: dict[Any, float]) -> float:
    """Float interpreter of a SymPy tree, memoized on repeated subtrees (resolved adjoints)."""
    if e in memo:
        return memo[e]
    if e in values:
        r = values[e]
    elif e.is_Number:
        r = float(e)
    elif e.is_Add:
        r = math.fsum(_number(a, values, memo) for a in e.args)
    elif e.is_Mul:
        r = 1.0
        for a in e.args:
            r *= _number(a, values, memo)
    elif e.is_Pow:
        r = _number(e.base, values, memo) ** _number(e.exp, values, memo)
    elif e.func in _FUNCTIONS:
        r = _FUNCTIONS[e.func](_number(e.args[0], values, memo))
    else:
        raise KeyError(f"no value for {e}")
    memo[e] = r
    return r


def evaluate(m: Any, values: dict[Any, float]) -> np.ndarray:
    """A scalar or an explicit matrix of expressions as floats."""
    memo: dict[Any, float] = {}
    if isinstance(m, sp.MatrixBase):
        return np.array([[_number(e, values, memo) for e in row] for row in m.tolist()])
    return np.array(_number(sp.sympify(m), values, memo))


def comps(name: str, size: int) -> list[Any]:
    return list(sr.vector(name, size).components)


# ------------------------------------------------------------------------------ the setup
@dataclass(frozen=True)
class Book:
    """Random parameters, inputs and class labels, and the forward pass typed from the book."""

    W: np.ndarray
    U: np.ndarray
    b: np.ndarray
    V: np.ndarray
    c: np.ndarray
    h0: np.ndarray
    x: dict[int, np.ndarray]
    label: dict[int, int]

    @classmethod
    def random(cls, seed: int) -> Book:
        rng = np.random.default_rng(seed)
        return cls(
            W=rng.normal(0, 0.6, (N, N)),
            U=rng.normal(0, 0.6, (N, INPUTS)),
            b=rng.normal(0, 0.3, N),
            V=rng.normal(0, 0.6, (CLASSES, N)),
            c=rng.normal(0, 0.3, CLASSES),
            h0=rng.normal(0, 0.5, N),
            x={k: rng.normal(0, 1.0, INPUTS) for k in range(1, TAU + 1)},
            label={k: int(rng.integers(CLASSES)) for k in range(1, TAU + 1)},
        )

    def onehot(self, k: int) -> np.ndarray:
        return np.eye(CLASSES)[self.label[k]]

    @cached_property
    def h(self) -> dict[int, np.ndarray]:  # eq. 10.8-10.9
        h = {0: self.h0}
        for k in range(1, TAU + 1):
            h[k] = np.tanh(self.b + self.W @ h[k - 1] + self.U @ self.x[k])
        return h

    @cached_property
    def o(self) -> dict[int, np.ndarray]:  # eq. 10.10
        return {k: self.c + self.V @ self.h[k] for k in range(1, TAU + 1)}

    @cached_property
    def yhat(self) -> dict[int, np.ndarray]:  # eq. 10.11
        return {k: np.exp(o) / np.exp(o).sum() for k, o in self.o.items()}

    @cached_property
    def loss(self) -> float:  # eq. 10.12-10.14
        return float(sum(-np.log(self.yhat[k][self.label[k]]) for k in self.yhat))

    # -------------------------------------------------------- backward, equation by equation
    @cached_property
    def grad_o(self) -> dict[int, np.ndarray]:  # eq. 10.19 (with 10.18: dL/dL(t) = 1)
        return {k: 1.0 * (self.yhat[k] - self.onehot(k)) for k in self.yhat}

    @cached_property
    def grad_h(self) -> dict[int, np.ndarray]:
        g = {TAU: self.V.T @ self.grad_o[TAU]}  # eq. 10.20
        for k in range(TAU - 1, 0, -1):  # eq. 10.21
            g[k] = self.W.T @ np.diag(1 - self.h[k + 1] ** 2) @ g[k + 1] + self.V.T @ self.grad_o[k]
        return g

    def _dh(self, k: int) -> np.ndarray:
        return np.diag(1 - self.h[k] ** 2) @ self.grad_h[k]

    def grad_params(self) -> dict[str, np.ndarray]:
        steps = range(1, TAU + 1)
        return {
            "c": sum(self.grad_o[k] for k in steps),  # eq. 10.22
            "b": sum(self._dh(k) for k in steps),  # eq. 10.23
            "V": sum(np.outer(self.grad_o[k], self.h[k]) for k in steps),  # eq. 10.24
            "W": sum(np.outer(self._dh(k), self.h[k - 1]) for k in steps),  # eq. 10.25
            "U": sum(np.outer(self._dh(k), self.x[k]) for k in steps),  # eq. 10.26
        }

    def values(self) -> dict[Any, float]:
        """The book's numbers keyed by symrnn's scalar quantities (params, inputs, targets)."""
        v: dict[Any, float] = {}
        for name, arr in [
            ("W", self.W),
            ("U", self.U),
            ("b", self.b),
            ("V", self.V),
            ("c", self.c),
        ]:
            m = sr.matrix(name, *(arr.shape if arr.ndim == 2 else (arr.shape[0], 1)))
            v.update(zip(explicit(m), np.ravel(arr), strict=True))
        v.update(zip(explicit(sr.vector("h", N)(0)), self.h0, strict=True))
        for k in range(1, TAU + 1):
            v.update(zip(explicit(sr.vector("x", INPUTS)(k)), self.x[k], strict=True))
            v.update(zip(explicit(sr.vector("y", CLASSES)(k)), self.onehot(k), strict=True))
        return v


@dataclass(frozen=True)
class Machinery:
    """symrnn's general route: unfold the cell, build the loss, run BPTT."""

    U: sr.Unfolded
    loss: Any
    B: sr.BPTT
    resolved: dict[Any, Any]
    values: dict[Any, float]  # forward quantities at the book's point

    @classmethod
    def at(cls, book: Book) -> Machinery:
        rec = sr.cells.elman(N, inputs=INPUTS, outputs=CLASSES)
        U = sr.unfold(rec, TAU)
        o, y = sr.vector("o", CLASSES), sr.vector("y", CLASSES)
        loss = sr.total_loss(U, sr.softmax_cross_entropy(o(t), y(t)))
        B = sr.bptt(U, loss)
        values = book.values()
        for eq in U.equations:  # the forward pass through the chain
            values[eq.lhs] = float(evaluate(eq.rhs, values))
        return cls(U, loss, B, B.resolved(), values)

    def adjoint(self, name: str, size: int, k: int) -> np.ndarray:
        entries = sp.Matrix([self.resolved.get(Adjoint(f(k)), 0) for f in comps(name, size)])
        return evaluate(entries, self.values)[:, 0]


@pytest.fixture(scope="module", params=[0, 1], ids=["seed0", "seed1"])
def routes(request: pytest.FixtureRequest) -> tuple[Book, Machinery]:
    book = Book.random(request.param)
    return book, Machinery.at(book)


# ------------------------------------------------------------------- the model is the book's
def test_elman_cell_is_the_books_vanilla_rnn() -> None:
    """sr.cells.elman uses W, U, b (hidden) and V, c (output) with the book's meaning."""
    rec = sr.cells.elman(N, inputs=INPUTS, outputs=CLASSES)
    h, x = sr.vector("h", N), sr.vector("x", INPUTS)
    W, U, b = sr.matrix("W", N, N), sr.matrix("U", N, INPUTS), sr.matrix("b", N)
    V, c = sr.matrix("V", CLASSES, N), sr.matrix("c", CLASSES)
    by_lhs = {str(e.lhs): e.rhs for e in rec.display}
    a = b + W * h(t - 1) + U * x(t)  # eq. 10.8
    assert explicit(by_lhs["h(t)"]) == explicit(a).applyfunc(sp.tanh)  # eq. 10.9
    assert explicit(by_lhs["o(t)"]) == explicit(c + V * h(t))  # eq. 10.10


def test_forward_pass_and_loss_agree(routes: tuple[Book, Machinery]) -> None:
    book, mach = routes
    for k in range(1, TAU + 1):
        h = [mach.values[f(k)] for f in comps("h", N)]
        np.testing.assert_allclose(h, book.h[k], rtol=1e-13)
    np.testing.assert_allclose(float(evaluate(mach.loss, mach.values)), book.loss, rtol=1e-13)


# --------------------------------------------------------------- the equations one by one
def test_eq_10_18_total_loss_is_linear_in_per_step_losses() -> None:
    """∂L/∂L(t) = 1: differentiate symrnn's total loss with respect to each per-step term."""
    U = sr.unfold(sr.cells.elman(N, inputs=INPUTS, outputs=CLASSES), TAU)
    per_step = time_function("L")
    L = sr.total_loss(U, per_step(t))
    grads = sr.grad(U, L, wrt=[per_step(k) for k in range(1, TAU + 1)])
    assert all(g == 1 for g in grads.values())


def test_eq_10_19_softmax_minus_onehot(routes: tuple[Book, Machinery]) -> None:
    book, mach = routes
    for k in range(1, TAU + 1):
        np.testing.assert_allclose(mach.adjoint("o", CLASSES, k), book.grad_o[k], rtol=RTOL)


def test_eq_10_20_last_hidden_state(routes: tuple[Book, Machinery]) -> None:
    book, mach = routes
    np.testing.assert_allclose(mach.adjoint("h", N, TAU), book.grad_h[TAU], rtol=RTOL)


@pytest.mark.parametrize("k", range(1, TAU))
def test_eq_10_21_hidden_state_recursion(routes: tuple[Book, Machinery], k: int) -> None:
    book, mach = routes
    np.testing.assert_allclose(mach.adjoint("h", N, k), book.grad_h[k], rtol=RTOL)


@pytest.mark.parametrize(
    "eq,name", [("10.22", "c"), ("10.23", "b"), ("10.24", "V"), ("10.25", "W"), ("10.26", "U")]
)
def test_eq_10_22_to_10_26_parameter_gradients(
    routes: tuple[Book, Machinery], eq: str, name: str
) -> None:
    book, mach = routes
    expected = book.grad_params()[name]
    shape = expected.shape if expected.ndim == 2 else (expected.shape[0], 1)
    M = sr.matrix(name, *shape)
    g = sr.grad(mach.U, mach.loss, wrt=M)[M]
    assert g.shape == shape
    np.testing.assert_allclose(evaluate(g, mach.values), expected.reshape(shape), rtol=RTOL)
    # the same sums, read off the BPTT equations of the chain
    by_lhs = {e.lhs: e.rhs for e in mach.B.gradients}
    summed = sp.Matrix(*shape, [by_lhs[Adjoint(p)] for p in explicit(M)])
    adj = {a: evaluate(r, mach.values) for a, r in mach.resolved.items()}
    got = evaluate(summed.xreplace({a: sp.Float(v) for a, v in adj.items()}), mach.values)
    np.testing.assert_allclose(got, expected.reshape(shape), rtol=RTOL)


# ----------------------------------------------------------------- the matrix-form view
@pytest.fixture(scope="module")
def matrix_form() -> Any:
    return matrix_bptt(sr.cells.elman(N, inputs=INPUTS, outputs=CLASSES))


def _substitutions(mach: Machinery, e: Any) -> dict[Any, Any]:
    """Numbers for the ∇ components (symrnn's adjoints) and per-step direct terms."""
    reps: dict[Any, Any] = {}
    grads = {Adjoint(p): g for p, g in mach.B.gradient().items()}
    for a in e.atoms(Adjoint):
        r = mach.resolved.get(a, grads.get(a))
        reps[a] = sp.Float(float(evaluate(r, mach.values))) if r is not None else sp.S.Zero
    for d in e.atoms(sp.Derivative):
        (var,) = d.variables  # ∂L(k)/∂o_i(k): the loss reads o(k) only at step k
        reps[d] = sp.Float(float(evaluate(sp.diff(mach.loss, var), mach.values)))
    return reps


def _check(mach: Machinery, eq: sp.Equality, at: int | None = None) -> None:
    c = components(eq, at=at, steps=TAU)
    lhs, rhs = c.lhs, c.rhs
    lhs_n = evaluate(lhs.xreplace(_substitutions(mach, lhs)), mach.values)
    rhs_n = evaluate(rhs.xreplace(_substitutions(mach, rhs)), mach.values)
    np.testing.assert_allclose(rhs_n, lhs_n, rtol=RTOL, atol=1e-14)


def test_matrix_form_recursion_matches_component_adjoints(
    routes: tuple[Book, Machinery], matrix_form: Any
) -> None:
    _, mach = routes
    for eq in matrix_form.adjoints:
        for k in range(1, TAU + 1):  # at k = τ the terms from τ + 1 are zero
            _check(mach, eq, at=k)
    for eq in matrix_form.boundary:
        _check(mach, eq)


def test_matrix_form_reaches_the_initial_state(
    routes: tuple[Book, Machinery], matrix_form: Any
) -> None:
    _, mach = routes
    h0 = sr.vector("h", N)(0)
    g = sr.grad(mach.U, mach.loss, wrt=h0)[h0]
    c = components(matrix_form.equation(sr.vector("h", N)(t)).rhs, at=0)
    got = evaluate(c.xreplace(_substitutions(mach, c)), mach.values)
    np.testing.assert_allclose(got, evaluate(g, mach.values), rtol=RTOL)


def test_matrix_form_gradients_match_component_gradients(
    routes: tuple[Book, Machinery], matrix_form: Any
) -> None:
    book, mach = routes
    for eq in matrix_form.gradients:
        _check(mach, eq)
        name = eq.lhs.arg.name
        c = components(eq.rhs, steps=TAU)
        got = evaluate(c.xreplace(_substitutions(mach, c)), mach.values)
        expected = book.grad_params()[name]
        np.testing.assert_allclose(got, expected.reshape(got.shape), rtol=RTOL)


def test_matrix_form_has_the_books_shape(matrix_form: Any) -> None:
    h, o, x = sr.vector("h", N), sr.vector("o", CLASSES), sr.vector("x", INPUTS)
    W, V = sr.matrix("W", N, N), sr.matrix("V", CLASSES, N)
    s = sp.Dummy("s")
    eq = matrix_form.equation(h(t))  # eq. 10.21
    terms = sp.MatAdd.make_args(eq.rhs)
    assert len(terms) == 2
    recur, out = terms
    assert out == sp.MatMul(V.T, Nabla(o(t)))
    assert recur.args[0] == W.T and recur.args[2] == Nabla(h(t + 1))
    diag = recur.args[1]
    assert isinstance(diag, Diag) and diag.vector == h(t + 1)
    assert sp.expand(diag.function(s) - (1 - s**2)) == 0  # tanh' = 1 - h**2
    assert matrix_form.equation(h(sp.Symbol("tau", integer=True, positive=True))).rhs == sp.MatMul(
        V.T, Nabla(o(sp.Symbol("tau", integer=True, positive=True)))
    )  # eq. 10.20
    grad_u = matrix_form.equation(sr.matrix("U", N, INPUTS)).rhs  # eq. 10.26
    assert isinstance(grad_u, sp.Sum) and grad_u.function.args[-1] == x(t).T


def test_matrix_form_latex(matrix_form: Any) -> None:
    tex = matrix_form.latex()
    h_eq = latex_expr(matrix_form.equation(sr.vector("h", N)(t)).rhs)
    assert "\\mathbf{W}^{\\top}" in h_eq and "\\mathbf{V}^{\\top}" in h_eq
    assert "\\operatorname{diag}\\left(1 - \\left(\\mathbf{h}^{(t+1)}\\right)^{2}\\right)" in h_eq
    assert "\\left(\\nabla_{\\mathbf{h}^{(t+1)}} L\\right)" in h_eq  # the book's (∇ L)
    assert "\\nabla_{\\mathbf{o}^{(t)}} L^{(t)}" in tex
    assert "\\sum_{t=1}^{\\tau}" in tex and "\\mathbf{h}^{(t-1)\\top}" in tex
    assert matrix_form._repr_latex_() == f"$${sr.latex(matrix_form)}$$"


# ------------------------------------------------------------------ other cells and errors
@pytest.mark.parametrize(
    "make,read",
    [
        (lambda: sr.cells.gru(2), "h"),
        (lambda: sr.cells.lstm(2), "h"),
        (lambda: sr.cells.jordan(2, 1, 2), "o"),  # o is the fed-back state here
        (lambda: sr.cells.linear(2, 2), "h"),
        (lambda: _cell(sr.functions.sin), "h"),
        (lambda: _cell(sr.functions.exp), "h"),
    ],
    ids=["gru", "lstm", "jordan", "linear", "sin", "exp"],
)
def test_matrix_form_of_other_cells_matches_components(make: Callable, read: str) -> None:
    rec = make()
    M = matrix_bptt(rec, loss_on=[sr.vector(read, 2)])
    steps = 3
    U = sr.unfold(rec, steps)
    loss = sr.total_loss(U, sr.squared_error(sr.vector(read, 2)(t), sr.vector("y", 2)(t)))
    B = sr.bptt(U, loss)
    rng = np.random.default_rng(3)
    free = set().union(*(e.rhs.free_symbols | e.rhs.atoms(AppliedUndef) for e in U.equations))
    free = (free | loss.atoms(AppliedUndef)) - set(U.definitions)
    values = {v: float(rng.normal(0, 0.6)) for v in sorted(free, key=sp.default_sort_key)}
    for eq in U.equations:
        values[eq.lhs] = float(evaluate(eq.rhs, values))
    mach = Machinery(U, loss, B, B.resolved(), values)
    for eq in M.adjoints:
        for k in range(1, steps + 1):
            c = components(eq, at=k, steps=steps)
            _compare(mach, c)
    for eq in M.gradients:
        _compare(mach, components(eq, steps=steps))


def _cell(f: Callable[[Any], Any]) -> sr.Recurrence:
    """h(t) = f(W h(t-1) + U x(t)) for an elementwise f whose derivative is not a function of f."""
    h, x = sr.vector("h", 2), sr.vector("x", 1)
    W, U = sr.matrix("W", 2, 2), sr.matrix("U", 2, 1)
    return sr.Recurrence(sp.Eq(h(t), f(sp.Rational(1, 2) * W * h(t - 1) + U * x(t))))


def _compare(mach: Machinery, c: sp.Equality) -> None:
    lhs = evaluate(c.lhs.xreplace(_substitutions(mach, c.lhs)), mach.values)
    rhs = evaluate(c.rhs.xreplace(_substitutions(mach, c.rhs)), mach.values)
    np.testing.assert_allclose(rhs, lhs, rtol=RTOL, atol=1e-14)


def test_matrix_form_errors() -> None:
    with pytest.raises(sr.SymrnnError, match=r"every equation in matrix form.*h\(t\) is not"):
        matrix_bptt(sr.cells.rnn())
    h, x = sr.vector("h", 2), sr.vector("x", 1)
    W, U, gain = sr.matrix("W", 2, 2), sr.matrix("U", 2, 1), sp.Symbol("g", real=True)
    scaled = sr.Recurrence(sp.Eq(h(t), sr.functions.tanh(gain * W * h(t - 1) + U * x(t))))
    with pytest.raises(sr.SymrnnError, match=r"parameter matrices \(sr.matrix\) only.*g;"):
        matrix_bptt(scaled)
    b = sr.matrix("b", 2)
    quadratic = sr.Recurrence(sp.Eq(h(t), b * h(t - 1).T * h(t - 1)))
    with pytest.raises(
        sr.SymrnnError, match=r"cannot differentiate the product .* only a constant"
    ):
        matrix_bptt(quadratic)
    with pytest.raises(sr.SymrnnError, match=r"loss_on names z.*choose from"):
        matrix_bptt(sr.cells.elman(2), loss_on=["z"])
    with pytest.raises(sr.SymrnnError, match=r"no matrix-form BPTT equation for q\(t\)"):
        matrix_bptt(sr.cells.elman(2)).equation(sr.vector("q", 2)(t))
    with pytest.raises(sr.SymrnnError, match=r"matrix_bptt needs a Recurrence"):
        matrix_bptt("h(t) = tanh(W*h(t-1))")  # type: ignore[arg-type]
