"""``sr.solve`` on constant-coefficient recurrences of order 3 and 4, against a 2 s target.

The recurrences of issue 13: Tribonacci, Padovan, Perrin, h(t) = h(t-1) - h(t-2) - h(t-3) +
h(t-4), SymPy issue 17990's 46 h(t) = -6 h(t-1) - 4 h(t-2) + 10 h(t-3), and each with an input
``+ x(t)``.  Before the characteristic-root solver these took 16 s to more than 14 minutes, or
hung in ``radsimp``.  Each row times ``solve`` (from a cold SymPy cache) and the exact value
``Solution.at(40)``; then (untimed) every ``Solution.at(k)``, k = 1 … 40, is compared with exact
rational iteration.

    python benchmarks/bench_solve.py           # best of 3 per row
    python benchmarks/bench_solve.py --quick   # one run per row (for CI)

Prints a table; asserts only that every value is exact, not how long it took.
"""

from __future__ import annotations

import argparse
import gc
import time
from fractions import Fraction

import sympy as sp
from sympy.core.cache import clear_cache

import symrnn as sr

TARGET = 2.0  # seconds per recurrence: solve and the exact value at t = 40
STEPS = 40
RECURRENCES = {  # coefficients of h(t-1), h(t-2), …; initial values h(1-order) … h(0)
    "tribonacci": ([1, 1, 1], [0, 0, 1]),
    "padovan": ([0, 1, 1], [1, 1, 1]),
    "perrin": ([0, 1, 1], [3, 0, 2]),
    "order-4": ([1, -1, -1, 1], [2, -1, 3, 5]),
    "issue-17990": ([Fraction(-6, 46), Fraction(-4, 46), Fraction(10, 46)], [1, -2, 3]),
}


def iterate(coeffs: list, first: list, drive: list[int]) -> list[Fraction]:
    """h(1) … h(STEPS) in exact rationals."""
    values = [Fraction(v) for v in first]
    for k in range(1, STEPS + 1):
        step = sum(Fraction(c) * values[-1 - i] for i, c in enumerate(coeffs))
        values.append(step + drive[k - 1])
    return values[len(first) :]


def run(coeffs: list, first: list, with_input: bool) -> tuple[float, float, str]:
    """Seconds for solve, seconds for ``at(STEPS)``, and the method; checks every value."""
    t = sr.t
    h, x = sp.Function("h"), sp.Function("x")
    rhs = sp.Add(*[sp.Rational(str(c)) * h(t - 1 - i) for i, c in enumerate(coeffs)])
    rec = sr.Recurrence(sp.Eq(h(t), rhs + (x(t) if with_input else 0)))
    drive = [(-1) ** k * k if with_input else 0 for k in range(1, STEPS + 1)]
    values = {h(k): v for k, v in zip(range(1 - len(first), 1), first, strict=True)}
    values.update({x(k): d for k, d in zip(range(1, STEPS + 1), drive, strict=True)})
    clear_cache()
    gc.collect()
    start = time.perf_counter()
    sol = sr.solve(rec)
    solved = time.perf_counter()
    last = sol.at(STEPS).xreplace(values)
    done = time.perf_counter()
    got = [sol.at(k).xreplace(values) for k in range(1, STEPS)] + [last]
    want = iterate(coeffs, first, drive)
    assert got == [sp.Rational(w.numerator, w.denominator) for w in want], "not exact"
    return solved - start, done - solved, sol.method


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run per row instead of 3")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 3

    run([1], [1], with_input=False)  # import-time work out of the first row
    print(f"sr.solve, then Solution.at({STEPS}) exact; target {TARGET:g} s per row")
    header = (
        f"{'recurrence':<22} {'method':<15} {'solve [s]':>10} {'at(40) [s]':>11} {'total':>7}"
        "  within 2 s"
    )
    print(header)
    for name, (coeffs, first) in RECURRENCES.items():
        for with_input in (False, True):
            best = min(
                (run(coeffs, first, with_input) for _ in range(repeats)),
                key=lambda row: row[0] + row[1],
            )
            solve_s, at_s, method = best
            total = solve_s + at_s
            label = name + (" + x(t)" if with_input else "")
            ok = "yes" if total <= TARGET else "no"
            print(f"{label:<22} {method:<15} {solve_s:>10.3f} {at_s:>11.3f} {total:>7.3f}  {ok}")
    print("every value equals exact rational iteration for t = 1 … 40")


if __name__ == "__main__":
    main()
