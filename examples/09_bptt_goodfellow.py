r"""Goodfellow et al., Deep Learning, eq. 10.18-10.28: BPTT for the vanilla RNN, derived.

The book's RNN (§10.2.2) has tanh hidden units and softmax outputs,

    a^{(t)} = b + W h^{(t-1)} + U x^{(t)},  h^{(t)} = tanh(a^{(t)}),
    o^{(t)} = c + V h^{(t)},               L = sum_t -log softmax(o^{(t)})_{y^{(t)}},

and derives the gradients by hand.  This script derives them with symrnn in matrix form
(``symrnn.matrix_form.matrix_bptt``), prints them next to the book's equation numbers, and checks
them with numbers three ways at random parameters, inputs and labels: the book's equations typed
into NumPy, symrnn's matrix-form equations evaluated step by step, and the component BPTT of
``sr.bptt`` (whose gradient ``sr.lambdify`` turns into NumPy code).

Usage: python examples/09_bptt_goodfellow.py [OUTPUT_DIR]
(with OUTPUT_DIR, the equations are also written to OUTPUT_DIR/bptt_vanilla_rnn.tex)
"""

import sys
from pathlib import Path

import numpy as np
import sympy as sp

import symrnn as sr
from symrnn.diff import Adjoint
from symrnn.matrix_form import TAU, components, matrix_bptt
from symrnn.notation import latex_expr

N, INPUTS, CLASSES, STEPS = 3, 2, 3, 4
t = sr.t

rec = sr.cells.elman(N, inputs=INPUTS, outputs=CLASSES)
h, o, y = sr.vector("h", N), sr.vector("o", CLASSES), sr.vector("y", CLASSES)
mats = {
    "W": sr.matrix("W", N, N),
    "U": sr.matrix("U", N, INPUTS),
    "b": sr.matrix("b", N),
    "V": sr.matrix("V", CLASSES, N),
    "c": sr.matrix("c", CLASSES),
}
print("The vanilla RNN (eq. 10.8-10.11):")
print(rec)

# ------------------------------------------------------------------------- the derivation
M = matrix_bptt(rec)
numbered = [
    ("10.19", M.equation(o(t))),
    ("10.20", M.equation(h(TAU))),
    ("10.21", M.equation(h(t))),
    ("10.22", M.equation(mats["c"])),
    ("10.23", M.equation(mats["b"])),
    ("10.24", M.equation(mats["V"])),
    ("10.25", M.equation(mats["W"])),
    ("10.26", M.equation(mats["U"])),
]
print("\nBPTT in matrix form (Goodfellow et al. eq. 10.19-10.26):")
for label, eq in numbered:
    print(f"  ({label})  {eq.lhs} = {eq.rhs}")
print("  (10.18) dL/dL(t) = 1: the loss is the sum of the per-step losses.")
print("  (10.27, 10.28) the copies W(t), U(t): each term of the sums over t above.")

tex = (
    "\\begin{align}\n"
    + " \\\\\n".join(
        f"{latex_expr(eq.lhs)} &= {latex_expr(eq.rhs, order='none')} \\tag{{{n}}}"
        for n, eq in numbered
    )
    + "\n\\end{align}\n"
)
if len(sys.argv) > 1:
    out = Path(sys.argv[1], "bptt_vanilla_rnn.tex")
    out.write_text(tex, encoding="utf-8")
    print(f"\nwrote {out}")

# ------------------------------------------------------------ the book's route, in NumPy
rng = np.random.default_rng(2016)
P = {
    "W": rng.normal(0, 0.6, (N, N)),
    "U": rng.normal(0, 0.6, (N, INPUTS)),
    "b": rng.normal(0, 0.3, N),
    "V": rng.normal(0, 0.6, (CLASSES, N)),
    "c": rng.normal(0, 0.3, CLASSES),
}
h0 = rng.normal(0, 0.5, N)
xs = rng.normal(0, 1.0, (STEPS, INPUTS))
labels = rng.integers(CLASSES, size=STEPS)
onehot = np.eye(CLASSES)[labels]

hs = {0: h0}
for k in range(1, STEPS + 1):  # eq. 10.8-10.9
    hs[k] = np.tanh(P["b"] + P["W"] @ hs[k - 1] + P["U"] @ xs[k - 1])
os_ = {k: P["c"] + P["V"] @ hs[k] for k in range(1, STEPS + 1)}  # eq. 10.10
yhat = {k: np.exp(v) / np.exp(v).sum() for k, v in os_.items()}  # eq. 10.11
book_loss = -sum(np.log(yhat[k][labels[k - 1]]) for k in yhat)  # eq. 10.12-10.14
g_o = {k: yhat[k] - onehot[k - 1] for k in yhat}  # eq. 10.19
g_h = {STEPS: P["V"].T @ g_o[STEPS]}  # eq. 10.20
for k in range(STEPS - 1, 0, -1):  # eq. 10.21
    g_h[k] = P["W"].T @ np.diag(1 - hs[k + 1] ** 2) @ g_h[k + 1] + P["V"].T @ g_o[k]
dh = {k: np.diag(1 - hs[k] ** 2) @ g_h[k] for k in g_h}
book = {
    "c": sum(g_o.values()),  # eq. 10.22
    "b": sum(dh.values()),  # eq. 10.23
    "V": sum(np.outer(g_o[k], hs[k]) for k in g_o),  # eq. 10.24
    "W": sum(np.outer(dh[k], hs[k - 1]) for k in dh),  # eq. 10.25
    "U": sum(np.outer(dh[k], xs[k - 1]) for k in dh),  # eq. 10.26
}

# ------------------------------------------------------------ symrnn's route, with numbers
U = sr.unfold(rec, STEPS)
L = sr.total_loss(U, sr.softmax_cross_entropy(o(t), y(t)))
B = sr.bptt(U, L)

values: dict = {}
for name, m in mats.items():
    values.update(zip(sr.matrices.explicit(m), np.ravel(P[name]), strict=True))
values.update(zip(sr.matrices.explicit(h(0)), h0, strict=True))
for k in range(1, STEPS + 1):
    values.update(zip(sr.matrices.explicit(sr.vector("x", INPUTS)(k)), xs[k - 1], strict=True))
    values.update(zip(sr.matrices.explicit(y(k)), onehot[k - 1], strict=True))
numbers = {a: sp.Float(v) for a, v in values.items()}
for eq in U.equations:  # the forward pass through the chain
    numbers[eq.lhs] = eq.rhs.xreplace(numbers)
for eq in (*B.adjoints, *B.gradients):  # the adjoint recursion, last step first
    numbers[eq.lhs] = eq.rhs.xreplace(numbers)


def with_numbers(e: sp.Basic) -> sp.Basic:
    """Numbers for every symbol of a component expression (∇ components: symrnn's adjoints)."""
    direct = {d: sp.diff(L, d.variables[0]).xreplace(numbers) for d in e.atoms(sp.Derivative)}
    adjoints = {a: numbers.get(a, sp.S.Zero) for a in e.atoms(Adjoint)}
    return e.xreplace({**direct, **adjoints}).xreplace(numbers)


def as_array(m: sp.Basic) -> np.ndarray:
    return np.array(with_numbers(m).tolist(), dtype=float)


worst = 0.0
for label, eq in numbered:  # each equation, at every step where it is a template in t
    times: list[int | None] = [*range(1, STEPS + 1)] if t in eq.lhs.arg.free_symbols else [None]
    for at in times:
        c = components(eq, at=at, steps=STEPS)
        assert np.allclose(as_array(c.rhs), as_array(c.lhs), rtol=1e-12, atol=1e-14), label
for k in range(1, STEPS + 1):
    assert np.allclose(as_array(sr.matrices.explicit(o(k)).applyfunc(Adjoint)), g_o[k][:, None])
    assert np.allclose(as_array(sr.matrices.explicit(h(k)).applyfunc(Adjoint)), g_h[k][:, None])
for name, m in mats.items():
    got = as_array(sr.matrices.explicit(m).applyfunc(Adjoint))
    assert np.allclose(got, book[name].reshape(got.shape), rtol=1e-12), name
    worst = max(worst, float(np.max(np.abs(got - book[name].reshape(got.shape)))))
print(f"\nbook (NumPy) vs symrnn (matrix form and components): max difference {worst:.1e}")

F = sr.lambdify(rec, loss=sr.softmax_cross_entropy(o(t), y(t)))
value, grads = F.value_and_grad(P, {"x": xs, "y": onehot}, init={"h": h0})
assert np.isclose(value, book_loss, rtol=1e-12)
for name in mats:
    assert np.allclose(grads[name], book[name], rtol=1e-10), name
print("book (NumPy) vs symrnn's generated NumPy gradient (sr.lambdify): agree")
