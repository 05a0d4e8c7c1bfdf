"""Deriving gradients through time: symrnn's chain (BPTT) against plain SymPy.

Two models, loss L = sum_t ||h(t) - y(t)||^2 / 2, gradient with respect to all parameters:

* the lecture's one-unit tanh RNN (3 parameters), steps 10, 100, 1,000;
* a 4-unit tanh RNN, sr.cells.elman(4) (W 4x4, U 4x1, b 4x1: 24 parameters), steps 10, 50, 200.

symrnn: time to derive (unfold + bptt + gradient()), the size of the derivation as a chain of
small equations (``B.count_ops()``, "chain ops") and after common-subexpression elimination of
those equations (``sp.cse``, "cse ops"; the resolved gradients nest T levels deep, so they are
not what is counted), and the growth of each against the previous row.  Linear cost means time
and ops grow like the number of steps.

Plain SymPy: substitute the closed forms into the loss (one nested tree), ``sp.diff`` per
parameter, ``sp.lambdify``; each case in a subprocess with a time budget (60 s, 10 s with
--quick), reporting "timeout" or "RecursionError" when it does not finish.  The last column is
plain SymPy's time over symrnn's derivation time at the same number of steps.

    python benchmarks/bench_grad.py           # full
    python benchmarks/bench_grad.py --quick   # scalar 10, 100; 4-unit 10, 50; plain SymPy on
                                              # the smallest case of each model (for CI)

Prints tables; makes no assertions about time.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from dataclasses import dataclass

import sympy as sp
from sympy.core.cache import clear_cache

import symrnn as sr
from symrnn.diff import expand_chain
from symrnn.notation import time_function


# ------------------------------------------------------------------------------- the models
def scalar_model() -> tuple[sr.Recurrence, sp.Expr]:
    rec = sr.cells.rnn()
    h, y = rec.states[0], time_function("y")
    return rec, (h(sr.t) - y(sr.t)) ** 2 / 2


def vector_model() -> tuple[sr.Recurrence, sp.Expr]:
    rec = sr.cells.elman(4)
    h, y = sr.vector("h", 4), sr.vector("y", 4)
    return rec, sr.squared_error(h(sr.t), y(sr.t))


MODELS = {"scalar": scalar_model, "4-unit": vector_model}


# --------------------------------------------------------------------------------- symrnn
@dataclass
class Derivation:
    seconds: float
    chain_ops: int
    cse_ops: int | None


def derive(model: str, steps: int, repeats: int, cse: bool = True) -> Derivation:
    """Best-of-``repeats`` time of unfold + bptt + gradient(), each from a cold SymPy cache."""
    rec, per_step = MODELS[model]()
    best, B = float("inf"), None
    for _ in range(repeats):
        clear_cache()
        gc.collect()
        start = time.perf_counter()
        U = sr.unfold(rec, steps)
        B = sr.bptt(U, sr.total_loss(U, per_step))
        gradient = B.gradient()
        best = min(best, time.perf_counter() - start)
        assert len(gradient) == len(rec.params)
    assert B is not None
    cse_ops = None
    if cse:
        replacements, reduced = sp.cse([e.rhs for e in (*B.adjoints, *B.gradients)])
        cse_ops = sum(sp.count_ops(r) for _, r in replacements) + sum(
            sp.count_ops(r) for r in reduced
        )
    return Derivation(best, B.count_ops(), cse_ops)


def symrnn_table(model: str, sizes: list[int]) -> None:
    rec, _ = MODELS[model]()
    print(f"\nsymrnn, {model} tanh RNN ({len(rec.params)} parameters): {rec}")
    head = (
        f"{'steps':>7} {'derive [s]':>11} {'µs/step':>9} {'chain ops':>10} {'cse ops':>9}"
        f" {'steps x':>8} {'time x':>7} {'chain x':>8} {'cse x':>6}"
    )
    print(head)
    print("-" * len(head))
    previous: tuple[int, Derivation] | None = None
    for steps in sizes:
        d = derive(model, steps, repeats=3 if steps <= 100 else 1)
        row = (
            f"{steps:>7,} {d.seconds:>11.3f} {1e6 * d.seconds / steps:>9.0f}"
            f" {d.chain_ops:>10,} {d.cse_ops:>9,}"
        )
        if previous:
            p_steps, p = previous
            row += (
                f" {steps / p_steps:>8.1f} {d.seconds / p.seconds:>7.1f}"
                f" {d.chain_ops / p.chain_ops:>8.2f} {d.cse_ops / p.cse_ops:>6.2f}"  # type: ignore[operator]
            )
        print(row)
        previous = (steps, d)
    print("x: growth against the previous row; linear cost: time x, chain x and cse x ≈ steps x")


# ---------------------------------------------------------------------------- plain SymPy
def plain_sympy(model: str, steps: int) -> None:
    """Closed form of the loss, sp.diff per parameter, sp.lambdify (run in a subprocess).

    Prints one JSON line per finished stage, so that a timeout still tells how far it got.
    """
    rec, per_step = MODELS[model]()
    start = time.perf_counter()

    def report(stage: str) -> None:
        print(json.dumps({"stage": stage, "seconds": time.perf_counter() - start}), flush=True)

    try:
        U = sr.unfold(rec, steps)
        nested = expand_chain(U, sr.total_loss(U, per_step))
        derivatives = [sp.diff(nested, p) for p in rec.params]
        report("diff")
        args = sorted(nested.free_symbols | nested.atoms(sp.core.function.AppliedUndef), key=str)
        sp.lambdify(args, derivatives, "numpy")
        report("lambdify")
    except RecursionError:
        print(json.dumps({"stage": "RecursionError"}), flush=True)


def run_plain(model: str, steps: int, budget: float) -> tuple[dict[str, float], str]:
    """Seconds at which each stage finished, and "ok", "timeout …" or "RecursionError"."""
    cmd = [sys.executable, __file__, "--plain", model, str(steps)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=budget, check=False)
        stdout, status = out.stdout, "ok" if out.returncode == 0 else "failed"
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        status = f"timeout >{budget:.0f} s"
    stages: dict[str, float] = {}
    for line in stdout.splitlines():
        record = json.loads(line)
        if record["stage"] == "RecursionError":
            status = "RecursionError"
        else:
            stages[record["stage"]] = record["seconds"]
    if status == "failed":
        status = "failed: " + (out.stderr.strip().splitlines() or ["no output"])[-1]
    return stages, status


def plain_table(cases: list[tuple[str, int]], budget: float) -> None:
    print(f"\nplain SymPy: closed form, sp.diff per parameter, sp.lambdify ({budget:.0f} s each)")
    head = (
        f"{'model':>7} {'steps':>6} {'closed+diff [s]':>16} {'lambdify [s]':>13}"
        f" {'symrnn [s]':>11} {'plain/symrnn':>13}"
    )
    print(head)
    print("-" * len(head))
    for model, steps in cases:
        stages, status = run_plain(model, steps, budget)
        mine = derive(model, steps, repeats=3, cse=False).seconds
        diff = f"{stages['diff']:.2f}" if "diff" in stages else status
        if "lambdify" in stages:
            lam = f"{stages['lambdify'] - stages['diff']:.2f}"
        else:
            lam = status if "diff" in stages else "-"
        ratio = f"{stages['diff'] / mine:.0f}" if "diff" in stages else "-"
        print(f"{model:>7} {steps:>6} {diff:>16} {lam:>13} {mine:>11.3f} {ratio:>13}")
    print("symrnn: unfold + bptt + gradient() at the same steps; plain/symrnn: closed+diff over it")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and budgets (for CI)")
    parser.add_argument("--plain", nargs=2, metavar=("MODEL", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain:  # the subprocess of one plain-SymPy case
        plain_sympy(args.plain[0], int(args.plain[1]))
        return

    derive("scalar", 5, repeats=1)  # import-time work (printers, assumptions) out of the tables
    if args.quick:
        symrnn_table("scalar", [10, 100])
        symrnn_table("4-unit", [10, 50])
        plain_table([("scalar", 5), ("4-unit", 2)], budget=10)
    else:
        symrnn_table("scalar", [10, 100, 1_000])
        symrnn_table("4-unit", [10, 50, 200])
        plain = [("scalar", s) for s in (5, 10, 20)] + [("4-unit", s) for s in (2, 3, 5)]
        plain_table(plain, budget=60)


if __name__ == "__main__":
    main()
