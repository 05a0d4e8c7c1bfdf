r"""Ready-made recurrences: the lecture's examples and the common RNN cells.

One module holds the canonical systems that the tests, the docs, the demo and users share.
Functions with ``n=None`` give the scalar (one-unit) cell; with ``n`` an integer they give the
vector cell in matrix form, with parameter matrices of explicit size.

>>> import symrnn as sr
>>> print(sr.cells.rnn())
rnn: h(t) = tanh(b + w*h(t - 1) + u*x(t))
>>> sr.cells.gru().intermediates
(r, z)
>>> sr.cells.elman(3).states[:2]
(h_1, h_2)
"""

from __future__ import annotations

import sympy as sp

from .functions import sigmoid, tanh
from .matrices import matrix, vector
from .notation import t, time_function
from .recurrence import Recurrence

__all__ = [
    "autonomous",
    "driven",
    "rnn",
    "elman",
    "jordan",
    "linear",
    "gru",
    "lstm",
    "fibonacci",
    "second_order",
    "coupled",
]


def _sym(names: str) -> tuple[sp.Symbol, ...]:
    return tuple(sp.symbols(names, real=True, seq=True))


def autonomous() -> Recurrence:
    r"""Lecture Example 1: :math:`s^{(t)} = f(s^{(t-1)}; \theta)` with an abstract ``f``."""
    s, f, theta = time_function("s"), sp.Function("f"), sp.Symbol("theta", real=True)
    return Recurrence(sp.Eq(s(t), f(s(t - 1), theta)), name="autonomous")


def driven() -> Recurrence:
    r"""Lecture Example 2: :math:`s^{(t)} = f(s^{(t-1)}, x^{(t)}; \theta)`."""
    s, x = time_function("s"), time_function("x")
    f, theta = sp.Function("f"), sp.Symbol("theta", real=True)
    return Recurrence(sp.Eq(s(t), f(s(t - 1), x(t), theta)), name="driven")


def rnn() -> Recurrence:
    r"""The lecture's RNN with one tanh unit:
    :math:`h^{(t)} = \tanh(w h^{(t-1)} + u x^{(t)} + b)`."""
    h, x = time_function("h"), time_function("x")
    w, u, b = _sym("w u b")
    return Recurrence(sp.Eq(h(t), sp.tanh(w * h(t - 1) + u * x(t) + b)), name="rnn")


def elman(n: int | None = None, inputs: int = 1, outputs: int | None = None) -> Recurrence:
    r"""Elman network: :math:`h^{(t)} = \tanh(W h^{(t-1)} + U x^{(t)} + b)`, optionally with
    outputs :math:`o^{(t)} = c + V h^{(t)}` (Goodfellow et al. eq. 10.8–10.10)."""
    if n is None:
        h, x, o = time_function("h"), time_function("x"), time_function("o")
        w, u, b, c, v = _sym("w u b c v")
        eqs = [sp.Eq(h(t), sp.tanh(w * h(t - 1) + u * x(t) + b))]
        if outputs:
            eqs.append(sp.Eq(o(t), c + v * h(t)))
        return Recurrence(eqs, name="elman")
    hv, xv = vector("h", n), vector("x", inputs)
    W, U, b = matrix("W", n, n), matrix("U", n, inputs), matrix("b", n)
    eqs = [sp.Eq(hv(t), tanh(W * hv(t - 1) + U * xv(t) + b))]
    if outputs:
        ov, V, c = vector("o", outputs), matrix("V", outputs, n), matrix("c", outputs)
        eqs.append(sp.Eq(ov(t), c + V * hv(t)))
    return Recurrence(eqs, name="elman")


def jordan(n: int | None = None, inputs: int = 1, outputs: int = 1) -> Recurrence:
    r"""Jordan network: the previous *output* is fed back,
    :math:`h^{(t)} = \tanh(W o^{(t-1)} + U x^{(t)} + b)`, :math:`o^{(t)} = c + V h^{(t)}`."""
    if n is None:
        h, x, o = time_function("h"), time_function("x"), time_function("o")
        w, u, b, c, v = _sym("w u b c v")
        return Recurrence(
            [sp.Eq(h(t), sp.tanh(w * o(t - 1) + u * x(t) + b)), sp.Eq(o(t), c + v * h(t))],
            name="jordan",
        )
    hv, xv, ov = vector("h", n), vector("x", inputs), vector("o", outputs)
    W, U, b = matrix("W", n, outputs), matrix("U", n, inputs), matrix("b", n)
    V, c = matrix("V", outputs, n), matrix("c", outputs)
    return Recurrence(
        [sp.Eq(hv(t), tanh(W * ov(t - 1) + U * xv(t) + b)), sp.Eq(ov(t), c + V * hv(t))],
        name="jordan",
    )


def linear(n: int | None = None, inputs: int = 1) -> Recurrence:
    r"""Linear recurrence :math:`h^{(t)} = a h^{(t-1)} + u x^{(t)} + b` (scalar) or
    :math:`h^{(t)} = A h^{(t-1)} + B x^{(t)}` (vector, a linear state-space model)."""
    if n is None:
        h, x = time_function("h"), time_function("x")
        a, u, b = _sym("a u b")
        return Recurrence(sp.Eq(h(t), a * h(t - 1) + u * x(t) + b), name="linear")
    hv, xv = vector("h", n), vector("x", inputs)
    A, B = matrix("A", n, n), matrix("B", n, inputs)
    return Recurrence(sp.Eq(hv(t), A * hv(t - 1) + B * xv(t)), name="linear")


def gru(n: int | None = None, inputs: int = 1) -> Recurrence:
    r"""Gated recurrent unit (Cho et al. 2014) with same-time gates :math:`r^{(t)}, z^{(t)}`:

    .. math::
        z^{(t)} = \sigma(W_z x^{(t)} + U_z h^{(t-1)} + b_z),\quad
        r^{(t)} = \sigma(W_r x^{(t)} + U_r h^{(t-1)} + b_r),\\
        h^{(t)} = (1 - z^{(t)}) \odot h^{(t-1)}
                  + z^{(t)} \odot \tanh(W_h x^{(t)} + U_h (r^{(t)} \odot h^{(t-1)}) + b_h)
    """
    if n is None:
        h, x, r, z = (time_function(c) for c in "hxrz")
        wz, uz, bz, wr, ur, br, wh, uh, bh = _sym("w_z u_z b_z w_r u_r b_r w_h u_h b_h")
        return Recurrence(
            [
                sp.Eq(z(t), sigmoid(wz * x(t) + uz * h(t - 1) + bz)),
                sp.Eq(r(t), sigmoid(wr * x(t) + ur * h(t - 1) + br)),
                sp.Eq(
                    h(t),
                    (1 - z(t)) * h(t - 1) + z(t) * sp.tanh(wh * x(t) + uh * r(t) * h(t - 1) + bh),
                ),
            ],
            name="gru",
        )
    hv, xv, rv, zv = vector("h", n), vector("x", inputs), vector("r", n), vector("z", n)
    W = {g: matrix(f"W_{g}", n, inputs) for g in "zrh"}
    U = {g: matrix(f"U_{g}", n, n) for g in "zrh"}
    b = {g: matrix(f"b_{g}", n) for g in "zrh"}
    ones = sp.ones(n, 1)
    candidate = tanh(W["h"] * xv(t) + U["h"] * sp.HadamardProduct(rv(t), hv(t - 1)) + b["h"])
    return Recurrence(
        [
            sp.Eq(zv(t), sigmoid(W["z"] * xv(t) + U["z"] * hv(t - 1) + b["z"])),
            sp.Eq(rv(t), sigmoid(W["r"] * xv(t) + U["r"] * hv(t - 1) + b["r"])),
            sp.Eq(
                hv(t),
                sp.HadamardProduct(ones - zv(t), hv(t - 1)) + sp.HadamardProduct(zv(t), candidate),
            ),
        ],
        name="gru",
    )


def lstm(n: int | None = None, inputs: int = 1) -> Recurrence:
    r"""Long short-term memory cell with states :math:`h, c` and gates :math:`i, f, o`:

    .. math::
        c^{(t)} = f^{(t)} \odot c^{(t-1)} + i^{(t)} \odot \tanh(W_g x^{(t)} + U_g h^{(t-1)} + b_g),
        \quad h^{(t)} = o^{(t)} \odot \tanh(c^{(t)})
    """
    gates = ("i", "f", "o")
    if n is None:
        h, c, x = time_function("h"), time_function("c"), time_function("x")
        g = {k: time_function(k) for k in gates}
        p = {k: _sym(f"w_{k} u_{k} b_{k}") for k in (*gates, "g")}

        def pre(k: str) -> sp.Expr:
            w, u, b = p[k]
            return w * x(t) + u * h(t - 1) + b

        eqs = [sp.Eq(g[k](t), sigmoid(pre(k))) for k in gates]
        eqs.append(sp.Eq(c(t), g["f"](t) * c(t - 1) + g["i"](t) * sp.tanh(pre("g"))))
        eqs.append(sp.Eq(h(t), g["o"](t) * sp.tanh(c(t))))
        return Recurrence(eqs, name="lstm")
    hv, cv, xv = vector("h", n), vector("c", n), vector("x", inputs)
    gv = {k: vector(k, n) for k in gates}

    def pre_v(k: str) -> sp.MatrixExpr:
        return (
            matrix(f"W_{k}", n, inputs) * xv(t)
            + matrix(f"U_{k}", n, n) * hv(t - 1)
            + matrix(f"b_{k}", n)
        )

    eqs = [sp.Eq(gv[k](t), sigmoid(pre_v(k))) for k in gates]
    eqs.append(
        sp.Eq(
            cv(t),
            sp.HadamardProduct(gv["f"](t), cv(t - 1))
            + sp.HadamardProduct(gv["i"](t), tanh(pre_v("g"))),
        )
    )
    eqs.append(sp.Eq(hv(t), sp.HadamardProduct(gv["o"](t), tanh(cv(t)))))
    return Recurrence(eqs, name="lstm")


def fibonacci() -> Recurrence:
    r"""The second-order recurrence :math:`s^{(t)} = s^{(t-1)} + s^{(t-2)}`."""
    s = time_function("s")
    return Recurrence(sp.Eq(s(t), s(t - 1) + s(t - 2)), name="fibonacci")


def second_order() -> Recurrence:
    r"""A driven nonlinear second-order cell:
    :math:`h^{(t)} = \tanh(a h^{(t-1)} + c h^{(t-2)} + u x^{(t)})`."""
    h, x = time_function("h"), time_function("x")
    a, c, u = _sym("a c u")
    return Recurrence(
        sp.Eq(h(t), sp.tanh(a * h(t - 1) + c * h(t - 2) + u * x(t))), name="second_order"
    )


def coupled() -> Recurrence:
    r"""Two coupled states: :math:`p^{(t)} = \tanh(a p^{(t-1)} + b q^{(t-1)} + x^{(t)})`,
    :math:`q^{(t)} = \sigma(c p^{(t-1)} q^{(t-1)} + d)`."""
    p, q, x = time_function("p"), time_function("q"), time_function("x")
    a, b, c, d = _sym("a b c d")
    return Recurrence(
        [
            sp.Eq(p(t), sp.tanh(a * p(t - 1) + b * q(t - 1) + x(t))),
            sp.Eq(q(t), sigmoid(c * p(t - 1) * q(t - 1) + d)),
        ],
        name="coupled",
    )
