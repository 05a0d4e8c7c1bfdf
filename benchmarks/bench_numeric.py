"""Numeric code: compile cost, speed against hand-written NumPy BPTT, and memory.

Workload (issue "Numeric code"): vanilla tanh RNN, 4 hidden units, scalar input, squared-error
loss summed over steps.  Every figure is a ratio against a baseline measured in the same run;
there are no timing assertions.  ``--quick`` runs a small version for CI.

    python benchmarks/bench_numeric.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import textwrap
import time
import tracemalloc

import numpy as np
import sympy as sp

import symrnn as sr
from symrnn import diff as sr_diff

N = 4
t = sr.t
Y = sp.Function("y", real=True)


def workload():
    rec = sr.cells.elman(N)
    loss = sp.Add(*[(s(t) - Y(t)) ** 2 / 2 for s in rec.states])
    return rec, loss


def fresh_compile(rec, loss, **kw):
    """Compile from scratch: clear symrnn's caches of step derivatives and templates."""
    sr_diff.step_derivatives.cache_clear()
    sr_diff._template_derivative.cache_clear()
    start = time.perf_counter()
    F = sr.lambdify(rec, loss=loss, **kw)
    return F, time.perf_counter() - start


def hand_value_and_grad(P, X, Y_):
    """Hand-written NumPy forward pass + BPTT for the workload (the baseline)."""
    W, U, b = P["W"], P["U"][:, 0], P["b"]
    T = X.shape[0]
    H = np.zeros((T + 1, *X.shape[1:], N))
    for k in range(T):
        H[k + 1] = np.tanh(H[k] @ W.T + X[k][..., None] * U + b)
    diff = H[1:] - Y_[..., None]
    L = 0.5 * np.sum(diff**2)
    gW, gU, gb = np.zeros_like(W), np.zeros(N), np.zeros(N)
    dh = np.zeros_like(H[0])
    for k in range(T, 0, -1):
        da = (dh + diff[k - 1]) * (1 - H[k] ** 2)
        flat = da.reshape(-1, N)
        gb += flat.sum(0)
        gW += flat.T @ H[k - 1].reshape(-1, N)
        gU += (da * X[k - 1][..., None]).reshape(-1, N).sum(0)
        dh = da @ W
    return L, {"W": gW, "U": gU[:, None], "b": gb}


def best_of(fns, repeat):
    """The best time of each function, measured in turns so that load changes hit both alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


PLAIN = textwrap.dedent(
    """
    import sys, time, sympy as sp, symrnn as sr
    T = int(sys.argv[1]); t = sr.t; Y = sp.Function("y", real=True)
    rec = sr.cells.elman(4); U = sr.unfold(rec, T)
    start = time.perf_counter()
    L = sr.diff.expand_chain(U, sr.total_loss(U, sp.Add(*[(s(t) - Y(t))**2/2 for s in rec.states])))
    grads = [sp.diff(L, p) for p in rec.params]
    args = sorted(L.free_symbols | L.atoms(sp.core.function.AppliedUndef), key=sp.default_sort_key)
    f = sp.lambdify(args, [L, *grads])
    print(time.perf_counter() - start)
    """
)


def plain_sympy(T, timeout):
    """Plain SymPy (substitute into one tree, diff, lambdify) in a subprocess with a timeout."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", PLAIN, str(T)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None, f"> {timeout:.0f} s (stopped)"
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["failed"])[-1]
        return None, "RecursionError" if "RecursionError" in last else last[:40]
    seconds = float(out.stdout.strip())
    return seconds, f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    args = parser.parse_args()
    quick = args.quick
    rec, loss = workload()
    rng = np.random.default_rng(0)
    P = {
        "W": rng.normal(0, 0.5, (N, N)),
        "U": rng.normal(0, 0.5, (N, 1)),
        "b": rng.normal(0, 0.1, N),
    }

    print("symrnn numeric benchmark: tanh RNN, 4 units, scalar input, squared error")
    print("\n1. Scan mode: derivation + compilation, then one value_and_grad, by T")
    print(f"{'T':>8} {'compile s':>10} {'first call s':>13}")
    for T in (10, 100, 1_000) if quick else (10, 100, 1_000, 10_000):
        F, seconds = fresh_compile(rec, loss)
        X, Yt = rng.normal(size=(T, 1)), rng.normal(size=T)
        start = time.perf_counter()
        F.value_and_grad(P, {"x": X, "y": Yt})
        print(f"{T:>8} {seconds:>10.3f} {time.perf_counter() - start:>13.3f}")

    print("\n2. Unrolled mode: derivation + compilation per step")
    print(f"{'T':>8} {'compile s':>10} {'ms/step':>9}")
    for T in (5, 20) if quick else (10, 50, 100, 200):
        _, seconds = fresh_compile(rec, loss, mode="unrolled", steps=T)
        print(f"{T:>8} {seconds:>10.3f} {1000 * seconds / T:>9.1f}")

    print("\n3. value_and_grad, scan mode, T = 200, against hand-written NumPy forward + BPTT")
    F = sr.lambdify(rec, loss=loss)
    T = 200
    print(f"{'batch':>8} {'symrnn s':>10} {'hand s':>10} {'ratio':>7}  (ratio < 1: symrnn faster)")
    for batch in (1, 1024):
        shape = (T,) if batch == 1 else (T, batch)
        X, Yt = rng.normal(size=shape), 0.5 * rng.normal(size=shape)
        inputs = {"x": X[..., None], "y": Yt}
        value, grads = F.value_and_grad(P, inputs)
        hv, hg = hand_value_and_grad(P, X, Yt)
        # The baseline must compute the same thing before it is timed.
        assert abs(value - hv) <= 1e-9 * abs(hv)
        for name in grads:
            np.testing.assert_allclose(grads[name], hg[name], rtol=1e-9, atol=1e-9)
        ours, theirs = best_of(
            [
                lambda inputs=inputs: F.value_and_grad(P, inputs),
                lambda X=X, Yt=Yt: hand_value_and_grad(P, X, Yt),
            ],
            3 if quick else 15,
        )
        print(f"{batch:>8} {ours:>10.4f} {theirs:>10.4f} {ours / theirs:>7.2f}")

    print("\n4. Plain SymPy (substitute into one tree, diff, lambdify), 4 units")
    print(f"{'T':>8} {'plain SymPy':>16} {'symrnn s':>10} {'ratio':>8}")
    for T in (2, 3) if quick else (2, 3, 5, 10):
        plain, text = plain_sympy(T, 20 if quick else 150)
        _, ours = fresh_compile(rec, loss, mode="unrolled", steps=T)
        ratio = f"{plain / ours:8.1f}" if plain else "       -"
        print(f"{T:>8} {text:>16} {ours:>10.3f} {ratio}")

    T, batch = (1_000, 128) if quick else (10_000, 1_024)
    print(f"\n5. Peak memory of value_and_grad, T = {T:,}, batch = {batch:,}")
    X, Yt = rng.normal(size=(T, batch, 1)), rng.normal(size=(T, batch))
    inputs = {"x": X, "y": Yt}
    gc.collect()
    tracemalloc.start()
    F.value_and_grad(P, inputs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    needed = T * batch * N * 8
    print(f"   states BPTT must store (T x batch x n x 8 bytes): {needed / 2**20:,.1f} MiB")
    print(f"   peak traced allocation:                          {peak / 2**20:,.1f} MiB")
    print(f"   ratio: {peak / needed:.2f}")


if __name__ == "__main__":
    main()
