"""Unfolding time against the number of steps, for the lecture's one-unit tanh RNN.

The chain holds one small equation per step, so unfolding should grow linearly: about 10 times
the time per decade of steps, a constant time per step.  Naive SymPy (one nested expression)
dies with RecursionError around 50 steps; here 10,000 steps are ordinary work.

    python benchmarks/bench_unfold.py           # steps 10, 100, 1,000, 10,000
    python benchmarks/bench_unfold.py --quick   # steps 10, 100, 1,000 (for CI)

Prints a table; makes no assertions about time.
"""

from __future__ import annotations

import argparse
import gc
import time

from sympy.core.cache import clear_cache

import symrnn as sr


def best_time(rec: sr.Recurrence, steps: int, repeats: int) -> float:
    """The fastest of ``repeats`` unfoldings, in seconds, each from a cold SymPy cache.

    SymPy caches constructed expressions (1,000 by default): without clearing it, repeats of short
    chains would be served from the cache and look faster per step than long ones.
    """
    best = float("inf")
    for _ in range(repeats):
        clear_cache()
        gc.collect()
        start = time.perf_counter()
        U = sr.unfold(rec, steps)
        best = min(best, time.perf_counter() - start)
        assert len(U.equations) == steps
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 10, 100 and 1,000 steps")
    args = parser.parse_args(argv)
    sizes = [10, 100, 1_000] if args.quick else [10, 100, 1_000, 10_000]

    rec = sr.cells.rnn()
    sr.unfold(rec, 10)  # import-time work (SymPy's printers, assumptions) out of the first row
    print(f"unfold: {rec}")
    print(f"{'steps':>8} {'time [s]':>10} {'per step [µs]':>14} {'ratio':>7}")
    previous = None
    for steps in sizes:
        seconds = best_time(rec, steps, repeats=5 if steps <= 100 else 3 if steps <= 1_000 else 1)
        ratio = f"{seconds / previous:7.1f}" if previous else f"{'':>7}"
        print(f"{steps:>8,} {seconds:>10.4f} {1e6 * seconds / steps:>14.1f} {ratio}")
        previous = seconds
    print("ratio: time against the previous row; linear growth gives about 10 per decade")


if __name__ == "__main__":
    main()
