r"""Derivative rules of matrix-level operations, one line each, reverse and forward side by side.

Each rule says, for an operation with value :math:`y = f(a, b, \dots)`, the vector-Jacobian
product (reverse mode, BPTT: the adjoint :math:`\bar a` from :math:`\bar y`) and the
Jacobian-vector product (forward mode, RTRL: the tangent :math:`\dot y` from :math:`\dot a`).
Values are NumPy arrays in *row layout*: a column vector of size n is an array ``(..., n)`` whose
leading axis holds the sequences of a batch, so :math:`W\mathbf{h}` is ``h @ W.T`` for every
sequence at once and :math:`\sum_b \bar{\mathbf{y}}_b \mathbf{h}_b^\top` is ``gy.T @ h``.

Elementwise functions need only their derivative, written through the argument ``a`` or,
as the book does (:math:`1 - (\mathbf{h}^{(t)})^2` for tanh), through the value ``y``:

>>> ELEMENTWISE["tanh"].derivative("a", "y")
'(1.0 - y*y)'
>>> LINEAR["matvec"].vjp[1]("g", "W", "h")
'g @ W'

The templates are Python text because the code generator prints them into step functions;
:mod:`symrnn.matrix_code` reads this table and nothing else about derivatives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Elementwise", "Linear", "ELEMENTWISE", "LINEAR"]


@dataclass(frozen=True)
class Elementwise:
    """``y = f(a)`` elementwise: its NumPy text and its derivative :math:`f'(a)`."""

    forward: Callable[[str], str]
    derivative: Callable[[str, str], str]  # (argument, value) -> f'(a)


def _sigmoid(a: str) -> str:
    # σ(a) = (1 + tanh(a/2))/2: no overflow for large |a|, unlike 1/(1 + exp(-a)).
    return f"(0.5 + 0.5*numpy.tanh(0.5*{a}))"


#: Elementwise functions: forward and derivative (VJP multiplies it into ȳ, JVP into ȧ).
ELEMENTWISE: dict[str, Elementwise] = {
    "tanh": Elementwise(lambda a: f"numpy.tanh({a})", lambda a, y: f"(1.0 - {y}*{y})"),
    "sigmoid": Elementwise(_sigmoid, lambda a, y: f"({y}*(1.0 - {y}))"),
    "exp": Elementwise(lambda a: f"numpy.exp({a})", lambda a, y: y),
    "log": Elementwise(lambda a: f"numpy.log({a})", lambda a, y: f"(1.0/{a})"),
    "relu": Elementwise(lambda a: f"numpy.maximum({a}, 0.0)", lambda a, y: f"({a} > 0.0)"),
    "softplus": Elementwise(lambda a: f"numpy.logaddexp(0.0, {a})", lambda a, y: _sigmoid(a)),
    "sin": Elementwise(lambda a: f"numpy.sin({a})", lambda a, y: f"numpy.cos({a})"),
    "cos": Elementwise(lambda a: f"numpy.cos({a})", lambda a, y: f"(-numpy.sin({a}))"),
    "sqrt": Elementwise(lambda a: f"numpy.sqrt({a})", lambda a, y: f"(0.5/{y})"),
    "square": Elementwise(lambda a: f"numpy.square({a})", lambda a, y: f"(2.0*{a})"),
}


@dataclass(frozen=True)
class Linear:
    """An operation linear in each argument: forward text, and per argument its VJP and JVP.

    ``vjp[i](g, *args)`` is the adjoint of argument i from the adjoint ``g`` of the value (for
    one sequence in row layout, before any sum over the batch); ``jvp[i](d, *args)`` is the
    tangent of the value from the tangent ``d`` of argument i.
    """

    forward: Callable[..., str]
    vjp: tuple[Callable[..., str], ...]
    jvp: tuple[Callable[..., str], ...]


#: Bilinear matrix operations in row layout (arguments: names of arrays).
LINEAR: dict[str, Linear] = {
    # y = W a  (W: matrix, a: column vector)
    "matvec": Linear(
        lambda W, a: f"{a} @ {W}.T",
        (lambda g, W, a: f"outer({g}, {a})", lambda g, W, a: f"{g} @ {W}"),
        (lambda d, W, a: f"{a} @ {d}.T", lambda d, W, a: f"{d} @ {W}.T"),
    ),
    # y = Wᵀ a
    "rmatvec": Linear(
        lambda W, a: f"{a} @ {W}",
        (lambda g, W, a: f"outer({a}, {g})", lambda g, W, a: f"{g} @ {W}.T"),
        (lambda d, W, a: f"{a} @ {d}", lambda d, W, a: f"{d} @ {W}"),
    ),
    # y = aᵀ b  (a scalar per sequence)
    "dot": Linear(
        lambda a, b: f"dot({a}, {b})",
        (lambda g, a, b: f"{g} * {b}", lambda g, a, b: f"{g} * {a}"),
        (lambda d, a, b: f"dot({d}, {b})", lambda d, a, b: f"dot({a}, {d})"),
    ),
    # y = a ⊙ b  (or a scalar times a vector)
    "mul": Linear(
        lambda a, b: f"{a} * {b}",
        (lambda g, a, b: f"{g} * {b}", lambda g, a, b: f"{g} * {a}"),
        (lambda d, a, b: f"{d} * {b}", lambda d, a, b: f"{a} * {d}"),
    ),
}
