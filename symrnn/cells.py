r"""Ready-made recurrences: the lecture's examples and the common RNN cells.

One module holds the canonical systems that the tests, the docs, the demo and users share.  Each
cell is a function returning a :class:`~symrnn.Recurrence` for given sizes: with ``n=None`` the
scalar (one-unit) cell, with ``n`` an integer the vector cell in matrix form, its parameter
matrices of explicit size.

One naming rule for every cell, the book's (Goodfellow et al., *Deep Learning*, eq. 10.8 and
10.40–10.45): :math:`W` recurrent weights, :math:`U` input weights, :math:`b` biases (lower case
``w``, ``u``, ``b`` in the scalar cells), a gate's name as subscript (``W_r``, ``U_z``,
``b_f``).  The gated cells follow PyTorch's ``nn.GRU`` and ``nn.LSTM`` exactly, with both of
PyTorch's bias vectors: ``b_<gate>`` on the input side (PyTorch ``b_i<gate>``) and ``b_h<gate>``
on the recurrent side (PyTorch ``b_h<gate>``).  :func:`from_torch` reads a PyTorch module into
the matching cell and its weights.

>>> import symrnn as sr
>>> print(sr.cells.rnn())
rnn: h(t) = tanh(b + u*x(t) + w*h(t - 1))
>>> sr.cells.gru().intermediates
(r, g, z)
>>> sr.cells.elman(3).states[:2]
(h_1, h_2)
>>> sorted(sr.cells.lstm(2).param_groups)[:4]
['U_f', 'U_g', 'U_i', 'U_o']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef

from .errors import ShapeError, SymrnnError
from .functions import relu, sigmoid, tanh
from .matrices import VectorAt, explicit, matrix, vector
from .notation import is_time_atom, t, time_function
from .recurrence import Recurrence
from .unfold import unfold

__all__ = [
    "autonomous",
    "driven",
    "rnn",
    "elman",
    "jordan",
    "output_recurrent",
    "leaky",
    "linear",
    "gru",
    "lstm",
    "mgu",
    "stacked",
    "bidirectional",
    "Bidirectional",
    "from_torch",
    "fibonacci",
    "second_order",
    "coupled",
]

# A size: a positive integer, or a positive integer symbol passed on to sr.vector / sr.matrix.
Size: TypeAlias = "int | sp.Symbol"


def _sym(names: str) -> tuple[sp.Symbol, ...]:
    return tuple(sp.symbols(names, real=True, seq=True))


class _Kit:
    """Builds one cell's quantities in the scalar form (``n=None``) or the vector form.

    The gated cells are written once against this kit: scalar products and ``1`` in the scalar
    cell become matrix products, Hadamard products and the ones vector in the vector cell, and a
    parameter ``W_r`` becomes the scalar ``w_r`` or the matrix ``W_r``.
    """

    def __init__(self, cell: str, n: Size | None, inputs: Size = 1, outputs: Size | None = None):
        self.scalar = n is None
        if self.scalar and (inputs != 1 or outputs not in (None, 0, 1)):
            raise ShapeError(
                f"cells.{cell}: the scalar cell (n=None) has one input and at most one output, "
                f"got inputs={inputs!r}, outputs={outputs!r}; give the hidden size n for vectors"
            )
        self.n: Any = n
        self.inputs = inputs

    def quantity(self, name: str, size: Size | None = None) -> Callable[[Any], Any]:
        """A quantity of time: ``h`` as a scalar time function or a vector of ``size`` (or n)."""
        if self.scalar:
            return time_function(name)
        return vector(name, self.n if size is None else size)

    def param(self, name: str, rows: Size | None = None, cols: Size = 1) -> Any:
        """A parameter: the scalar ``w_r`` (``name`` with a lower-case initial) or the matrix."""
        if self.scalar:
            return sp.Symbol(name[0].lower() + name[1:], real=True)
        return matrix(name, self.n if rows is None else rows, cols)

    def had(self, a: Any, b: Any) -> Any:
        """Elementwise product."""
        return a * b if self.scalar else sp.HadamardProduct(a, b)

    @property
    def one(self) -> Any:
        """The number 1 or the ones vector (kept symbolic so symbolic sizes pass through)."""
        return sp.S.One if self.scalar else sp.OneMatrix(self.n, 1)

    def affine(self, gate: str, x: Any, h: Any) -> Any:
        r""":math:`U_{gate} x + b_{gate} + W_{gate} h` (the input and recurrent terms of a gate)."""
        return (
            self.param(f"U_{gate}", cols=self.inputs) * x
            + self.param(f"b_{gate}")
            + self.param(f"W_{gate}", cols=self.n) * h
        )


# ----------------------------------------------------------------------------- the lecture
def autonomous() -> Recurrence:
    r"""Lecture Example 1: :math:`s^{(t)} = f(s^{(t-1)}; \theta)` with an abstract ``f``.

    >>> print(autonomous())
    autonomous: s(t) = f(s(t - 1), theta)
    """
    s, f, theta = time_function("s"), sp.Function("f"), sp.Symbol("theta", real=True)
    return Recurrence(sp.Eq(s(t), f(s(t - 1), theta)), name="autonomous")


def driven() -> Recurrence:
    r"""Lecture Example 2: :math:`s^{(t)} = f(s^{(t-1)}, x^{(t)}; \theta)` with an abstract ``f``.

    >>> driven().inputs
    (x,)
    """
    s, x = time_function("s"), time_function("x")
    f, theta = sp.Function("f"), sp.Symbol("theta", real=True)
    return Recurrence(sp.Eq(s(t), f(s(t - 1), x(t), theta)), name="driven")


def rnn() -> Recurrence:
    r"""The lecture's RNN with one tanh unit:
    :math:`h^{(t)} = \tanh(w h^{(t-1)} + u x^{(t)} + b)`.

    >>> rnn().params
    (b, u, w)
    """
    h, x = time_function("h"), time_function("x")
    w, u, b = _sym("w u b")
    return Recurrence(sp.Eq(h(t), sp.tanh(w * h(t - 1) + u * x(t) + b)), name="rnn")


def fibonacci() -> Recurrence:
    r"""The second-order recurrence :math:`s^{(t)} = s^{(t-1)} + s^{(t-2)}`.

    >>> fibonacci().order
    2
    """
    s = time_function("s")
    return Recurrence(sp.Eq(s(t), s(t - 1) + s(t - 2)), name="fibonacci")


def second_order() -> Recurrence:
    r"""A driven nonlinear second-order cell:
    :math:`h^{(t)} = \tanh(a h^{(t-1)} + c h^{(t-2)} + u x^{(t)})`.

    >>> second_order().params
    (a, c, u)
    """
    h, x = time_function("h"), time_function("x")
    a, c, u = _sym("a c u")
    return Recurrence(
        sp.Eq(h(t), sp.tanh(a * h(t - 1) + c * h(t - 2) + u * x(t))), name="second_order"
    )


def coupled() -> Recurrence:
    r"""Two coupled states: :math:`p^{(t)} = \tanh(a p^{(t-1)} + b q^{(t-1)} + x^{(t)})`,
    :math:`q^{(t)} = \sigma(c p^{(t-1)} q^{(t-1)} + d)`.

    >>> coupled().states
    (p, q)
    """
    p, q, x = time_function("p"), time_function("q"), time_function("x")
    a, b, c, d = _sym("a b c d")
    return Recurrence(
        [
            sp.Eq(p(t), sp.tanh(a * p(t - 1) + b * q(t - 1) + x(t))),
            sp.Eq(q(t), sigmoid(c * p(t - 1) * q(t - 1) + d)),
        ],
        name="coupled",
    )


# ----------------------------------------------------------------------------- plain RNNs
_ACTIVATIONS = {"tanh": tanh, "relu": relu}


def elman(
    n: Size | None = None,
    inputs: Size = 1,
    outputs: Size | None = None,
    nonlinearity: str = "tanh",
) -> Recurrence:
    r"""Elman network, the book's RNN (Goodfellow et al. eq. 10.8–10.11; PyTorch ``nn.RNN``):

    .. math::
        h^{(t)} = \tanh\big(b + W h^{(t-1)} + U x^{(t)}\big), \qquad
        o^{(t)} = c + V h^{(t)} \quad \text{(with ``outputs``)}.

    Parameters ``W`` (n×n), ``U`` (n×inputs), ``b`` (n), and with outputs ``V`` (outputs×n),
    ``c`` (outputs); ``w``, ``u``, ``b``, ``v``, ``c`` in the scalar cell.  ``nonlinearity``
    is ``"tanh"`` or ``"relu"`` (as ``nn.RNN``; PyTorch's two biases add up to ``b``).

    >>> rec = elman(3, inputs=2, outputs=2)
    >>> print(rec)
    elman: h(t) = tanh(U*x(t) + W*h(t - 1) + b)
           o(t) = V*h(t) + c
    >>> {name: m.shape for name, m in rec.param_groups.items()}["U"]
    (3, 2)
    """
    if nonlinearity not in _ACTIVATIONS:
        raise SymrnnError(
            f"cells.elman: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
        )
    k = _Kit("elman", n, inputs, outputs)
    h, x = k.quantity("h"), k.quantity("x", inputs)
    act = sp.tanh if (k.scalar and nonlinearity == "tanh") else _ACTIVATIONS[nonlinearity]
    W, U, b = k.param("W", cols=n), k.param("U", cols=inputs), k.param("b")
    eqs = [sp.Eq(h(t), act(b + W * h(t - 1) + U * x(t)))]
    if outputs:
        o, V, c = k.quantity("o", outputs), k.param("V", outputs, n), k.param("c", outputs)
        eqs.append(sp.Eq(o(t), c + V * h(t)))
    return Recurrence(eqs, name="elman")


def _output_fed(cell: str, n: Size | None, inputs: Size, outputs: Size) -> Recurrence:
    k = _Kit(cell, n, inputs, outputs)
    h, x, o = k.quantity("h"), k.quantity("x", inputs), k.quantity("o", outputs)
    W, U, b = k.param("W", cols=outputs), k.param("U", cols=inputs), k.param("b")
    V, c = k.param("V", outputs, n), k.param("c", outputs)
    eqs = [sp.Eq(h(t), tanh(b + W * o(t - 1) + U * x(t))), sp.Eq(o(t), c + V * h(t))]
    return Recurrence(eqs, name=cell)


def jordan(n: Size | None = None, inputs: Size = 1, outputs: Size = 1) -> Recurrence:
    r"""Jordan network (Jordan 1986): the previous *output* is fed back to the hidden units,

    .. math::
        h^{(t)} = \tanh\big(b + W o^{(t-1)} + U x^{(t)}\big), \qquad o^{(t)} = c + V h^{(t)}.

    Parameters ``W`` (n×outputs), ``U`` (n×inputs), ``b`` (n), ``V`` (outputs×n), ``c``
    (outputs).  The state is ``o``; ``h`` is a same-time intermediate.

    >>> jordan().states, jordan().intermediates
    ((o,), (h,))
    """
    return _output_fed("jordan", n, inputs, outputs)


def output_recurrent(n: Size | None = None, inputs: Size = 1, outputs: Size = 1) -> Recurrence:
    r"""The RNN of Goodfellow et al. Fig. 10.4 whose only recurrence is output to hidden:

    .. math::
        h^{(t)} = \tanh\big(b + W o^{(t-1)} + U x^{(t)}\big), \qquad o^{(t)} = c + V h^{(t)},

    the equations of :func:`jordan` under the book's name.  Parameters ``W`` (n×outputs),
    ``U`` (n×inputs), ``b`` (n), ``V`` (outputs×n), ``c`` (outputs).

    >>> output_recurrent(2, inputs=3, outputs=2).states
    (o_1, o_2)
    """
    return _output_fed("output_recurrent", n, inputs, outputs)


def leaky(n: Size | None = None, inputs: Size = 1, alpha: float | None = None) -> Recurrence:
    r"""Leaky units (Goodfellow et al. §10.9.2): a running average with time constants α,

    .. math::
        h^{(t)} = \alpha \odot h^{(t-1)}
                  + (1 - \alpha) \odot \tanh\big(b + W h^{(t-1)} + U x^{(t)}\big).

    α near 1 remembers the past for long; ``alpha`` a number fixes it, ``None`` (default) makes
    it a parameter ``alpha`` (a vector of n time constants, learned like the weights).  The other
    parameters are those of :func:`elman`: ``W`` (n×n), ``U`` (n×inputs), ``b`` (n).

    >>> print(leaky(alpha=0.9))
    leaky: h(t) = 0.9*h(t - 1) + 0.1*tanh(b + u*x(t) + w*h(t - 1))
    """
    k = _Kit("leaky", n, inputs)
    h, x = k.quantity("h"), k.quantity("x", inputs)
    W, U, b = k.param("W", cols=n), k.param("U", cols=inputs), k.param("b")
    act = tanh(b + W * h(t - 1) + U * x(t))
    if alpha is None:
        a = k.param("alpha")
        update = k.had(a, h(t - 1)) + k.had(k.one - a, act)
    else:
        a = sp.Float(alpha)
        update = a * h(t - 1) + (1 - a) * act
    return Recurrence(sp.Eq(h(t), update), name="leaky")


def linear(n: Size | None = None, inputs: Size = 1) -> Recurrence:
    r"""Linear recurrence :math:`h^{(t)} = a h^{(t-1)} + u x^{(t)} + b` (scalar) or
    :math:`h^{(t)} = A h^{(t-1)} + B x^{(t)}` (vector, a linear state-space model).

    >>> print(linear())
    linear: h(t) = a*h(t - 1) + b + u*x(t)
    """
    if n is None:
        _Kit("linear", n, inputs)
        h, x = time_function("h"), time_function("x")
        a, u, b = _sym("a u b")
        return Recurrence(sp.Eq(h(t), a * h(t - 1) + u * x(t) + b), name="linear")
    hv, xv = vector("h", n), vector("x", inputs)
    A, B = matrix("A", n, n), matrix("B", n, inputs)
    return Recurrence(sp.Eq(hv(t), A * hv(t - 1) + B * xv(t)), name="linear")


# ----------------------------------------------------------------------------- gated cells
def gru(n: Size | None = None, inputs: Size = 1, variant: str = "pytorch") -> Recurrence:
    r"""Gated recurrent unit, exactly as PyTorch documents ``nn.GRU`` (reset r, update z,
    candidate g):

    .. math::
        r^{(t)} &= \sigma\big(U_r x^{(t)} + b_r + W_r h^{(t-1)} + b_{hr}\big) \\
        z^{(t)} &= \sigma\big(U_z x^{(t)} + b_z + W_z h^{(t-1)} + b_{hz}\big) \\
        g^{(t)} &= \tanh\big(U_g x^{(t)} + b_g + r^{(t)} \odot (W_g h^{(t-1)} + b_{hg})\big) \\
        h^{(t)} &= (1 - z^{(t)}) \odot g^{(t)} + z^{(t)} \odot h^{(t-1)}

    Parameters ``U_r``, ``U_z``, ``U_g`` (n×inputs), ``W_r``, ``W_z``, ``W_g`` (n×n), ``b_r``,
    ``b_z``, ``b_g``, ``b_hr``, ``b_hz``, ``b_hg`` (n); lower-case ``u_r``, … in the scalar cell.
    PyTorch's ``W_i*``, ``W_h*``, ``b_i*``, ``b_h*`` are ``U_*``, ``W_*``, ``b_*``, ``b_h*``
    here (PyTorch's candidate n is g).  ``variant="cho"`` gives Cho et al. (2014) eq. 5–8 and
    Goodfellow et al. eq. 10.45–10.47: the reset gate applied before the recurrent product and
    one bias per gate,

    .. math::
        g^{(t)} = \tanh\big(U_g x^{(t)} + b_g + W_g (r^{(t)} \odot h^{(t-1)})\big),

    the gates as above without :math:`b_{hr}, b_{hz}` (the book writes σ for the candidate's
    squashing; Cho et al. and every library use tanh, as here).

    >>> print(gru())
    gru: r(t) = sigmoid(b_hr + b_r + u_r*x(t) + w_r*h(t - 1))
         z(t) = sigmoid(b_hz + b_z + u_z*x(t) + w_z*h(t - 1))
         g(t) = tanh(b_g + u_g*x(t) + (b_hg + w_g*h(t - 1))*r(t))
         h(t) = (1 - z(t))*g(t) + h(t - 1)*z(t)
    >>> sorted(gru(3, inputs=2, variant="cho").param_groups)
    ['U_g', 'U_r', 'U_z', 'W_g', 'W_r', 'W_z', 'b_g', 'b_r', 'b_z']
    """
    if variant not in ("pytorch", "cho"):
        raise SymrnnError(f"cells.gru: variant must be 'pytorch' or 'cho', got {variant!r}")
    k = _Kit("gru", n, inputs)
    h, x, r, z, g = (k.quantity(q, inputs if q == "x" else None) for q in "hxrzg")
    prev = h(t - 1)
    if variant == "pytorch":
        gates = [
            sp.Eq(q(t), sigmoid(k.affine(name, x(t), prev) + k.param(f"b_h{name}")))
            for name, q in (("r", r), ("z", z))
        ]
        recurrent = k.had(r(t), k.param("W_g", cols=n) * prev + k.param("b_hg"))
        candidate = k.param("U_g", cols=inputs) * x(t) + k.param("b_g") + recurrent
        new = k.had(k.one - z(t), g(t)) + k.had(z(t), prev)
    else:
        gates = [
            sp.Eq(q(t), sigmoid(k.affine(name, x(t), prev))) for name, q in (("r", r), ("z", z))
        ]
        candidate = k.affine("g", x(t), k.had(r(t), prev))
        new = k.had(z(t), prev) + k.had(k.one - z(t), g(t))
    eqs = [*gates, sp.Eq(g(t), tanh(candidate)), sp.Eq(h(t), new)]
    return Recurrence(eqs, name="gru")


def lstm(n: Size | None = None, inputs: Size = 1, peepholes: bool = False) -> Recurrence:
    r"""Long short-term memory, exactly as PyTorch documents ``nn.LSTM`` (input gate i,
    forget gate f, cell input g, output gate o; states h and c):

    .. math::
        i^{(t)} &= \sigma\big(U_i x^{(t)} + b_i + W_i h^{(t-1)} + b_{hi}\big) \\
        f^{(t)} &= \sigma\big(U_f x^{(t)} + b_f + W_f h^{(t-1)} + b_{hf}\big) \\
        g^{(t)} &= \tanh\big(U_g x^{(t)} + b_g + W_g h^{(t-1)} + b_{hg}\big) \\
        o^{(t)} &= \sigma\big(U_o x^{(t)} + b_o + W_o h^{(t-1)} + b_{ho}\big) \\
        c^{(t)} &= f^{(t)} \odot c^{(t-1)} + i^{(t)} \odot g^{(t)}, \qquad
        h^{(t)} = o^{(t)} \odot \tanh(c^{(t)})

    Parameters ``U_i``, ``U_f``, ``U_g``, ``U_o`` (n×inputs), ``W_*`` (n×n), ``b_*`` and ``b_h*``
    (n); lower-case ``u_i``, … in the scalar cell.  PyTorch's ``W_i*``, ``W_h*``, ``b_i*``,
    ``b_h*`` are ``U_*``, ``W_*``, ``b_*``, ``b_h*`` here.

    ``peepholes=True`` gives Goodfellow et al. eq. 10.40–10.44 (one bias per gate) with the cell
    state fed into the three gates, as the book's Fig. 10.16 allows (Gers & Schmidhuber 2000):
    :math:`P_i \odot c^{(t-1)}` and :math:`P_f \odot c^{(t-1)}` added inside i and f,
    :math:`P_o \odot c^{(t)}` inside o, with peephole weight vectors ``P_i``, ``P_f``, ``P_o``
    (``p_i``, … in the scalar cell).  The book's names map as s = c, g (input gate) = i,
    q = o; it writes σ for the cell input's squashing where libraries use tanh, as here.

    >>> rec = lstm(2, inputs=3)
    >>> rec.states, rec.intermediates
    ((c_1, c_2, h_1, h_2), (f_1, g_1, i_1, f_2, g_2, i_2, o_1, o_2))
    >>> sorted(lstm(peepholes=True).params, key=str)[:6]
    [b_f, b_g, b_i, b_o, p_f, p_i]
    """
    k = _Kit("lstm", n, inputs)
    h, c, x = k.quantity("h"), k.quantity("c"), k.quantity("x", inputs)
    gate = {name: k.quantity(name) for name in "ifgo"}

    def pre(name: str, peep: Any = None) -> Any:
        total = k.affine(name, x(t), h(t - 1))
        if not peepholes:
            return total + k.param(f"b_h{name}")
        return total if peep is None else total + k.had(k.param(f"P_{name}"), peep)

    eqs = [
        sp.Eq(gate["i"](t), sigmoid(pre("i", c(t - 1)))),
        sp.Eq(gate["f"](t), sigmoid(pre("f", c(t - 1)))),
        sp.Eq(gate["g"](t), tanh(pre("g"))),
        sp.Eq(c(t), k.had(gate["f"](t), c(t - 1)) + k.had(gate["i"](t), gate["g"](t))),
        sp.Eq(gate["o"](t), sigmoid(pre("o", c(t)))),
        sp.Eq(h(t), k.had(gate["o"](t), tanh(c(t)))),
    ]
    return Recurrence(eqs, name="lstm")


def mgu(n: Size | None = None, inputs: Size = 1) -> Recurrence:
    r"""Minimal gated unit (Zhou, Wu, Zhang and Zhou 2016): a GRU whose one forget gate f also
    resets,

    .. math::
        f^{(t)} &= \sigma\big(U_f x^{(t)} + b_f + W_f h^{(t-1)}\big) \\
        g^{(t)} &= \tanh\big(U_g x^{(t)} + b_g + W_g (f^{(t)} \odot h^{(t-1)})\big) \\
        h^{(t)} &= (1 - f^{(t)}) \odot h^{(t-1)} + f^{(t)} \odot g^{(t)}

    Parameters ``U_f``, ``U_g`` (n×inputs), ``W_f``, ``W_g`` (n×n), ``b_f``, ``b_g`` (n).

    >>> mgu(2).intermediates
    (f_1, f_2, g_1, g_2)
    """
    k = _Kit("mgu", n, inputs)
    h, x, f, g = (k.quantity(q, inputs if q == "x" else None) for q in "hxfg")
    prev = h(t - 1)
    eqs = [
        sp.Eq(f(t), sigmoid(k.affine("f", x(t), prev))),
        sp.Eq(g(t), tanh(k.affine("g", x(t), k.had(f(t), prev)))),
        sp.Eq(h(t), k.had(k.one - f(t), prev) + k.had(f(t), g(t))),
    ]
    return Recurrence(eqs, name="mgu")


# ----------------------------------------------------------------------------- combining
def _names(funcs: Iterable[Any]) -> list[str]:
    """Names of quantities at matrix level (a vector is one quantity)."""
    return [f.__name__ for f in funcs]


def _renamed(rec: Recurrence, suffix: str, keep: Sequence[str] = ()) -> list[Any]:
    """The equations of ``rec`` as written, ``suffix`` added to every quantity and parameter
    name (not to those in ``keep``)."""

    def rename(name: str) -> str:
        return name + suffix

    scalars = {p for p in rec.blocks.params if isinstance(p, sp.Symbol)}
    mapping: dict[Any, Any] = {}
    for eq in rec.display:
        for side in (eq.lhs, eq.rhs):
            for atom in side.atoms(VectorAt, sp.MatrixSymbol, AppliedUndef, sp.Symbol):
                if isinstance(atom, VectorAt):
                    if atom.name not in keep:
                        mapping[atom] = VectorAt(rename(atom.name), atom.time, atom.args[2])
                elif isinstance(atom, sp.MatrixSymbol):
                    mapping[atom] = sp.MatrixSymbol(rename(atom.name), *atom.shape)
                elif isinstance(atom, AppliedUndef):
                    name = atom.func.__name__
                    if is_time_atom(atom) and name not in keep:
                        mapping[atom] = time_function(rename(name))(*atom.args)
                elif atom in scalars:
                    mapping[atom] = sp.Symbol(rename(atom.name), **atom.assumptions0)
    return [
        sp.Eq(eq.lhs.xreplace(mapping), eq.rhs.xreplace(mapping), evaluate=False)
        for eq in rec.display
    ]


def _feed(rec: Recurrence, caller: str) -> str:
    """What a layer passes up: its output, else its state named h, else its only state."""
    outputs, states = _names(rec.blocks.outputs), _names(rec.blocks.states)
    if len(outputs) == 1:
        return outputs[0]
    if not outputs and "h" in states:
        return "h"
    if not outputs and len(states) == 1:
        return states[0]
    raise SymrnnError(
        f"cells.{caller}: cannot tell what cell {rec.name!r} passes on (outputs {outputs}, "
        f"states {states}); give it one output or a state named h"
    )


def _size(rec: Recurrence, name: str) -> Any:
    """The size of vector ``name`` (a number or a size symbol), None for a scalar."""
    vec = dict(rec.blocks.vectors).get(name)
    return None if vec is None else vec.shape[0]


def stacked(*layers: Recurrence, name: str = "stacked") -> Recurrence:
    r"""A deep RNN (Goodfellow et al. §10.5, Fig. 10.13a): each layer reads the one below.

    .. math::
        h_1^{(t)} = f_1(h_1^{(t-1)}, x^{(t)}; \theta_1), \quad
        h_l^{(t)} = f_l(h_l^{(t-1)}, h_{l-1}^{(t)}; \theta_l), \quad l = 2, \dots, L.

    Layer l's quantities and parameters get the suffix l (``h`` → ``h1``, ``W_r`` →
    ``W_r1``, ``b_hr`` → ``b_hr2``); layer 1 keeps its input ``x``.  A layer passes up its
    output if it has one, else its state ``h`` (the LSTM's h, not c), else its only state; the
    next layer must have one input of that size.

    >>> print(stacked(rnn(), rnn()))
    stacked: h1(t) = tanh(b1 + u1*x(t) + w1*h1(t - 1))
             h2(t) = tanh(b2 + u2*h1(t) + w2*h2(t - 1))
    """
    if not layers:
        raise SymrnnError("cells.stacked needs at least one layer, e.g. stacked(gru(3), gru(3))")
    equations: list[Any] = []
    below: tuple[str, int | None] | None = None
    for level, layer in enumerate(layers, start=1):
        if not isinstance(layer, Recurrence):
            raise SymrnnError(
                f"cells.stacked: layer {level} is {type(layer).__name__}, not a Recurrence; "
                "pass cells such as gru(3)"
            )
        inputs = _names(layer.blocks.inputs)
        if len(inputs) != 1:
            raise SymrnnError(
                f"cells.stacked: layer {level} ({layer.name}) has inputs {inputs}; each layer "
                "needs exactly one input"
            )
        (inp,) = inputs
        eqs = _renamed(layer, str(level), keep=(inp,))
        if below is None:
            equations += eqs
        else:
            feed, size = below
            if _size(layer, inp) != size:
                raise ShapeError(
                    f"cells.stacked: layer {level} ({layer.name}) reads {inp} of size "
                    f"{_size(layer, inp) or 'scalar'} but layer {level - 1} passes up {feed} "
                    f"of size {size or 'scalar'}; make the sizes agree"
                )
            equations += [_substitute_input(eq, inp, feed) for eq in eqs]
        feed = _feed(layer, "stacked")
        below = (f"{feed}{level}", _size(layer, feed))
    deep = Recurrence(equations, name=name)
    if len(deep.blocks.params) != sum(len(layer.blocks.params) for layer in layers):
        raise SymrnnError(
            "cells.stacked: two layers' parameters got the same name (a name ending in a digit, "
            "such as W1 in layer 1 and W in layer 11); rename the parameters of one layer"
        )
    return deep


def _substitute_input(eq: Any, old: str, new: str) -> Any:
    """``eq`` with the input ``old`` (any time) read from the quantity ``new`` instead."""
    mapping: dict[Any, Any] = {}
    for atom in eq.rhs.atoms(VectorAt, AppliedUndef):
        if isinstance(atom, VectorAt) and atom.name == old:
            mapping[atom] = VectorAt(new, atom.time, atom.args[2])
        elif isinstance(atom, AppliedUndef) and atom.func.__name__ == old:
            mapping[atom] = time_function(new)(*atom.args)
    return sp.Eq(eq.lhs, eq.rhs.xreplace(mapping), evaluate=False)


@dataclass(frozen=True)
class Bidirectional:
    r"""A bidirectional RNN (Goodfellow et al. §10.3, Fig. 10.11): two recurrences and an output.

    ``forward`` runs from t = 1 to T over :math:`x^{(t)}`; ``backward`` is a recurrence of its
    own that reads the sequence reversed (its step τ reads :math:`x^{(T+1-τ)}`), so that in the
    original time its state :math:`g^{(t)}` summarises :math:`x^{(t)}, \dots, x^{(T)}`;
    ``output`` combines both at each t.  Each direction is a :class:`~symrnn.Recurrence`
    (unfold, differentiate, verify it as any other); :meth:`equations` gives the whole chain
    for T steps in the original time.
    """

    forward: Recurrence
    backward: Recurrence
    output: tuple[Any, ...]
    name: str = "bidirectional"

    def equations(self, steps: int) -> tuple[sp.Equality, ...]:
        r"""The chain for T = ``steps`` in the original time: the forward states
        :math:`h^{(1)} \dots h^{(T)}` from :math:`h^{(0)}`, the backward states
        :math:`g^{(T)} \dots g^{(1)}` from :math:`g^{(T+1)}`, then the outputs at t = 1 … T.

        >>> B = bidirectional(rnn())
        >>> for eq in B.equations(2)[2:]:
        ...     print(eq)
        Eq(h_rev(2), tanh(b_rev + u_rev*x(2) + w_rev*h_rev(3)))
        Eq(h_rev(1), tanh(b_rev + u_rev*x(1) + w_rev*h_rev(2)))
        Eq(o(1), c + v*h(1) + v_rev*h_rev(1))
        Eq(o(2), c + v*h(2) + v_rev*h_rev(2))
        """
        ahead = unfold(self.forward, steps).equations
        back = unfold(self.backward, steps).equations

        def reverse(expr: Any) -> Any:
            return expr.xreplace(
                {
                    a: a.func(steps + 1 - a.args[0])
                    for a in expr.atoms(AppliedUndef)
                    if is_time_atom(a) and a.args[0].is_Integer
                }
            )

        back = tuple(sp.Eq(reverse(e.lhs), reverse(e.rhs), evaluate=False) for e in back)
        scalar = [
            (lhs, rhs)
            for eq in self.output
            for lhs, rhs in (
                zip(explicit(eq.lhs), explicit(eq.rhs), strict=True)
                if isinstance(eq.lhs, VectorAt)
                else [(eq.lhs, eq.rhs)]
            )
        ]
        outs = tuple(
            sp.Eq(lhs.subs(t, k), rhs.subs(t, k), evaluate=False)
            for k in range(1, steps + 1)
            for lhs, rhs in scalar
        )
        return (*ahead, *back, *outs)

    def __str__(self) -> str:
        parts = [str(self.forward), str(self.backward)]
        parts += [f"{self.name}: {eq.lhs} = {eq.rhs}" for eq in self.output]
        return "\n".join(parts)


def bidirectional(cell: Recurrence, outputs: Size | None = 1) -> Bidirectional:
    r"""A bidirectional RNN of any cell (Goodfellow et al. §10.3, Fig. 10.11).

    .. math::
        h^{(t)} = f(h^{(t-1)}, x^{(t)}; \theta), \qquad
        g^{(t)} = f(g^{(t+1)}, x^{(t)}; \theta_{rev}), \qquad
        o^{(t)} = c + V h^{(t)} + V_{rev}\, g^{(t)}.

    The backward direction is ``cell`` with every quantity and parameter renamed with the suffix
    ``_rev`` (PyTorch's ``_reverse``): its state :math:`g` is ``h_rev``.  ``outputs`` is the size
    of o for vector cells (ignored for scalar ones); ``None`` leaves the output out.

    >>> B = bidirectional(elman(3, inputs=2), outputs=2)
    >>> print(B.output[0])
    Eq(o(t), V*h(t) + V_rev*h_rev(t) + c)
    >>> sorted(B.backward.param_groups)
    ['U_rev', 'W_rev', 'b_rev']
    """
    if not isinstance(cell, Recurrence):
        raise SymrnnError(
            f"cells.bidirectional: cell is {type(cell).__name__}, not a Recurrence; "
            "pass a cell such as elman(3)"
        )
    inputs = _names(cell.blocks.inputs)
    feed = _feed(cell, "bidirectional")
    backward = Recurrence(_renamed(cell, "_rev", keep=inputs), name=f"{cell.name}_rev")
    size = _size(cell, feed)
    output: tuple[Any, ...] = ()
    if outputs:
        k = _Kit("bidirectional", size, outputs=outputs if size else None)
        o = k.quantity("o", outputs)
        ahead, back = k.quantity(feed), k.quantity(f"{feed}_rev")
        V, V_rev = k.param("V", outputs, size), k.param("V_rev", outputs, size)
        output = (sp.Eq(o(t), k.param("c", outputs) + V * ahead(t) + V_rev * back(t)),)
    return Bidirectional(cell, backward, output)


# ----------------------------------------------------------------------------- PyTorch
_TORCH_CELLS = {"RNN": ("",), "GRU": ("r", "z", "g"), "LSTM": ("i", "f", "g", "o")}


def _array(tensor: Any) -> np.ndarray:
    """A float64 NumPy copy of a tensor (``detach``, ``cpu`` and ``numpy`` where it has them)."""
    for step in ("detach", "cpu", "numpy"):
        if hasattr(tensor, step):
            tensor = getattr(tensor, step)()
    return np.array(tensor, dtype=np.float64)


def _torch_layer(
    kind: str, n: int, inputs: int, weights: dict[str, np.ndarray], nonlinearity: str
) -> tuple[Recurrence, dict[str, np.ndarray]]:
    """One layer's cell and its parameters by symrnn's names (PyTorch's weights split by gate)."""
    gates = _TORCH_CELLS[kind]
    if kind == "RNN":
        rec = elman(n, inputs=inputs, nonlinearity=nonlinearity)
    else:
        rec = gru(n, inputs=inputs) if kind == "GRU" else lstm(n, inputs=inputs)
    params: dict[str, np.ndarray] = {}
    for k, gate in enumerate(gates):
        rows = slice(k * n, (k + 1) * n)
        sub = f"_{gate}" if gate else ""
        params[f"U{sub}"] = weights["weight_ih"][rows]
        params[f"W{sub}"] = weights["weight_hh"][rows]
        if "bias_ih" in weights:
            b_in, b_rec = weights["bias_ih"][rows], weights["bias_hh"][rows]
            if kind == "RNN":
                params["b"] = b_in + b_rec  # nn.RNN adds two biases that only act as their sum
            else:
                params[f"b{sub}"], params[f"b_h{gate}"] = b_in, b_rec
    if "bias_ih" not in weights:
        zeros = {
            m: sp.zeros(*m.shape)
            for m in (sp.MatrixSymbol(name, n, 1) for name in rec.param_groups)
            if m.name.startswith("b")
        }
        rec = rec.with_params(zeros)
    return rec, params


def from_torch(module: Any) -> tuple[Recurrence, dict[str, np.ndarray]]:
    r"""The cell and the weights of a PyTorch ``nn.RNN``, ``nn.GRU`` or ``nn.LSTM``.

    Returns ``(rec, params)``: ``rec`` is :func:`elman`, :func:`gru` or :func:`lstm` at the
    module's sizes (several layers through :func:`stacked`, layer l's names ending in l), and
    ``params`` maps symrnn's parameter names to float64 NumPy arrays, as
    :meth:`symrnn.Compiled.value_and_grad` takes them.  The state is ``h`` (and ``c``), the input
    ``x``.  PyTorch is not needed to call this: the module is read through
    ``named_parameters()`` and its size attributes.

    PyTorch's ``weight_ih`` rows are the gates' input weights ``U_*`` and ``weight_hh`` rows the
    recurrent weights ``W_*``, in PyTorch's gate order (r, z, n → r, z, g; i, f, g, o);
    ``bias_ih`` gives ``b_*`` and ``bias_hh`` gives ``b_h*``, and ``nn.RNN``'s two biases are
    summed into ``b``.  ``bias=False`` fixes the biases at zero; ``batch_first`` is a layout of
    PyTorch's arrays only.  Bidirectional modules, ``proj_size`` and dropout in training mode
    are refused.

    >>> import numpy as np
    >>> class Param:                       # anything with detach/numpy works, e.g. torch tensors
    ...     def __init__(self, value): self.value = np.asarray(value, dtype=float)
    ...     def detach(self): return self.value
    >>> class RNN:                         # stands in for torch.nn.RNN(2, 3)
    ...     input_size, hidden_size, num_layers, nonlinearity = 2, 3, 1, "tanh"
    ...     bias, bidirectional, dropout, training = True, False, 0.0, False
    ...     def named_parameters(self):
    ...         yield from [("weight_ih_l0", Param(np.ones((3, 2)))),
    ...                     ("weight_hh_l0", Param(np.eye(3))),
    ...                     ("bias_ih_l0", Param([1, 2, 3])), ("bias_hh_l0", Param([1, 1, 1]))]
    >>> rec, params = from_torch(RNN())
    >>> print(rec)
    elman: h(t) = tanh(U*x(t) + W*h(t - 1) + b)
    >>> params["b"]
    array([2., 3., 4.])
    """
    kind = type(module).__name__
    if kind not in _TORCH_CELLS or not hasattr(module, "named_parameters"):
        raise SymrnnError(
            f"from_torch reads torch.nn.RNN, nn.GRU or nn.LSTM, got {kind}; for a cell of your "
            "own write its equations as a Recurrence"
        )
    if getattr(module, "bidirectional", False):
        raise SymrnnError(
            f"from_torch: bidirectional {kind} is not supported; read each direction as its own "
            f"{kind} or build one with sr.cells.bidirectional"
        )
    if getattr(module, "proj_size", 0):
        raise SymrnnError(
            f"from_torch: LSTM with proj_size={module.proj_size} is not supported; use proj_size=0"
        )
    layers = int(module.num_layers)
    if layers > 1 and float(getattr(module, "dropout", 0)) and bool(getattr(module, "training", 0)):
        raise SymrnnError(
            f"from_torch: {kind} applies dropout={module.dropout} between layers in training "
            "mode, which is random; call module.eval() first"
        )
    nonlinearity = getattr(module, "nonlinearity", "tanh")
    if nonlinearity not in _ACTIVATIONS:
        raise SymrnnError(
            f"from_torch: nonlinearity {nonlinearity!r} is not supported; use 'tanh' or 'relu'"
        )
    weights: dict[int, dict[str, np.ndarray]] = {}
    for full, tensor in module.named_parameters():
        base, _, layer = full.rpartition("_l")
        if not layer.isdigit():
            raise SymrnnError(f"from_torch: unexpected parameter {full!r} in {kind}")
        weights.setdefault(int(layer), {})[base] = _array(tensor)
    n, size = int(module.hidden_size), int(module.input_size)
    cells, params = [], {}
    for level in range(layers):
        rec, layer_params = _torch_layer(
            kind, n, size if level == 0 else n, weights[level], nonlinearity
        )
        cells.append(rec)
        suffix = "" if layers == 1 else str(level + 1)
        params.update({f"{name}{suffix}": value for name, value in layer_params.items()})
    rec = cells[0] if layers == 1 else stacked(*cells, name=kind.lower())
    return rec, params
