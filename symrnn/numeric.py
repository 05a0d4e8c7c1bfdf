r"""NumPy code from recurrences: forward pass, loss and exact gradient, scan or unrolled.

:func:`lambdify` turns a recurrence (and a per-step loss) into NumPy callables; :func:`codegen`
writes the same code as a standalone module that imports only NumPy.  Both come from one
generator: tables describing the recurrence, step functions printed from SymPy with common
subexpressions eliminated, and a fixed runtime (``scan_runtime.py``) that loops over time.

Two evaluation strategies share one interface:

``mode="scan"`` (default)
    The step function :math:`f`, the per-step loss and the adjoint step of BPTT are generated
    once, whatever T, and looped over time like ``lax.scan``; sequences in a batch are a leading
    axis and are computed together.  Reference semantics::

        h = init
        for k in range(1, T + 1):
            h = step(params, h, x[k])            # h^{(k)} = f(h^{(k-1)}, x^{(k)}; θ)
        # backward: for k = T, ..., 1, adjoint_step gives ∂L/∂h^{(k-1)} and ∂L^{(k)}/∂θ

``mode="unrolled"``
    Straight-line code for a fixed T from the unfolded chain and its BPTT equations, common
    subexpressions shared across steps.

>>> import numpy as np, sympy as sp, symrnn as sr
>>> rnn = sr.cells.rnn()
>>> h, y = rnn.states[0], sp.Function("y", real=True)
>>> F = sr.lambdify(rnn, loss=(h(sr.t) - y(sr.t))**2 / 2)
>>> params = {"w": 0.5, "u": 1.0, "b": 0.1}
>>> xs, ys = np.linspace(-1, 1, 5), np.zeros(5)
>>> F.forward(params, {"x": xs})["h"].shape
(5,)
>>> value, g = F.value_and_grad(params, {"x": xs, "y": ys})
>>> sorted(g)
['b', 'u', 'w']
"""

from __future__ import annotations

import ast
import re
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import PythonCodePrinter

from .diff import (
    Adjoint,
    bptt,
    classify_loss,
    loss_only_symbols,
    step_derivatives,
    total_loss,
)
from .errors import LimitError, ShapeError, SymrnnError
from .functions import relu, sigmoid, softplus
from .losses import vector_names
from .matrices import VectorAt
from .matrix_code import Unsupported, _spec, generate_matrix_source
from .notation import (
    adjoint_name,
    code_name,
    compiled_summary,
    identifier,
    is_adjoint_name,
    is_time_atom,
    t,
    time_atoms,
    time_of,
)
from .parsing import check_magnitudes, parse_in_scope
from .recurrence import Recurrence
from .unfold import Unfolded, unfold

__all__ = ["lambdify", "codegen", "Compiled", "generate_source"]

_RUNTIME = (Path(__file__).with_name("scan_runtime.py")).read_text()

#: Code levels: whole vectors (BLAS over the batch) or one variable per component; "auto"
#: takes the matrix level for vector recurrences in scan mode, components otherwise.
LEVELS = ("auto", "matrix", "components")


# ----------------------------------------------------------------------------- emitting code
class _Printer(NumPyPrinter):
    """NumPy printer with fully qualified names (the generated module imports ``numpy``)."""

    def __init__(self) -> None:
        super().__init__(
            {"fully_qualified_modules": True, "allow_unknown_functions": False, "order": "none"}
        )


class _ScalarPrinter(PythonCodePrinter):
    """``math``-module printer for one sequence of Python floats (no array overhead)."""

    def __init__(self) -> None:
        super().__init__(
            {"fully_qualified_modules": True, "allow_unknown_functions": False, "order": "none"}
        )

    def _print_Heaviside(self, expr: Any) -> str:  # noqa: N802 (SymPy hook)
        x = self._print(expr.args[0])
        at0 = self._print(expr.args[1]) if len(expr.args) > 1 else "0.5"
        return f"(1.0 if ({x}) > 0 else ({at0} if ({x}) == 0 else 0.0))"


class _Unprintable(SymrnnError):
    pass


def _fallback(printer: Any, expr: sp.Expr) -> str:
    text = printer.doprint(expr)
    if "# Not supported" in text or "\n" in text:
        raise _Unprintable(f"cannot print {expr} as Python code")
    return str(text)


# Precedence levels of Python's operators, for the parentheses the printer needs.
_ADD, _MUL, _POW, _ATOM = 1, 2, 3, 4
_SAME_NAME = (sp.tanh, sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.sinh, sp.cosh, sp.sqrt)


def _print(printer: Any, expr: sp.Expr) -> str:
    """Python source for ``expr``: a small printer for the node types generated code uses.

    SymPy's printers are general and slow (~0.2 ms a node, most of an unrolled compile); this
    one handles sums, products, powers, numbers and the common functions, and hands any other
    subexpression to ``printer``.  Parentheses follow Python's precedence.
    """
    module = "math" if isinstance(printer, _ScalarPrinter) else "numpy"

    def go(e: Any) -> tuple[str, int]:
        if e.is_Symbol:
            return e.name, _ATOM
        if e.is_Integer:
            return str(e.p), _ATOM if e.p >= 0 else _MUL
        if e.is_Rational:
            return f"{e.p}/{e.q}", _MUL
        if e.is_Float:
            value = float(e)
            return repr(value), _ATOM if value >= 0 else _MUL
        if e.is_Add:
            parts = [go(a)[0] for a in e.args]
            text = parts[0]
            for part in parts[1:]:
                text += f" - {part[1:]}" if part.startswith("-") else f" + {part}"
            return text, _ADD
        if e.is_Mul:
            return mul(e), _MUL
        if e.is_Pow:
            return power(e)
        if type(e) in _SAME_NAME:
            return f"{module}.{type(e).__name__}({go(e.args[0])[0]})", _ATOM
        if isinstance(e, sigmoid):
            return f"1/(1 + {module}.exp(-{wrap(e.args[0], _POW)}))", _MUL
        if isinstance(e, softplus):
            return f"{module}.log1p({module}.exp({go(e.args[0])[0]}))", _ATOM
        if isinstance(e, relu):
            name = "max" if module == "math" else "numpy.maximum"
            return f"{name}({go(e.args[0])[0]}, 0.0)", _ATOM
        if isinstance(e, sp.Heaviside):
            # SymPy's NumPy printer rewrites Heaviside(Min(...)) as a Piecewise that stacks
            # parameters with batch arrays; numpy.heaviside broadcasts them.
            x = go(e.args[0])[0]
            at0 = go(e.args[1])[0] if len(e.args) > 1 else "0.5"
            if module == "math":
                return f"(1.0 if ({x}) > 0 else ({at0} if ({x}) == 0 else 0.0))", _ATOM
            return f"numpy.heaviside({x}, {at0})", _ATOM
        if isinstance(e, sp.Piecewise):
            return piecewise(e), _ATOM
        if isinstance(e, (sp.Max, sp.Min)):
            args = [go(a)[0] for a in e.args]
            if module == "math":
                return f"{type(e).__name__.lower()}({', '.join(args)})", _ATOM
            # numpy.maximum takes two arrays; nest for more (numpy.amax would stack them).
            name = "numpy.maximum" if isinstance(e, sp.Max) else "numpy.minimum"
            text = args[-1]
            for a in reversed(args[:-1]):
                text = f"{name}({a}, {text})"
            return text, _ATOM
        return _fallback(printer, e), _ATOM if not e.is_Add else _ADD

    def condition(c: Any) -> str:
        # Elementwise for NumPy (a parameter compared with a batch broadcasts), plain for math.
        if c is sp.true or c is sp.false:
            return str(bool(c))
        if isinstance(c, sp.core.relational.Relational):
            return f"({go(c.lhs)[0]} {c.rel_op} {go(c.rhs)[0]})"
        parts = [condition(a) for a in c.args]
        if isinstance(c, sp.Not):
            return f"(not {parts[0]})" if module == "math" else f"numpy.logical_not({parts[0]})"
        if not isinstance(c, (sp.And, sp.Or)):
            raise _Unprintable(f"cannot print the condition {c} as Python code")
        if module == "math":
            return "(" + (" and " if isinstance(c, sp.And) else " or ").join(parts) + ")"
        name = "numpy.logical_and" if isinstance(c, sp.And) else "numpy.logical_or"
        text = parts[-1]
        for part in reversed(parts[:-1]):
            text = f"{name}({part}, {text})"
        return text

    def piecewise(e: Any) -> str:
        pieces = list(e.args)
        last_value, last_cond = pieces[-1]
        text = go(last_value)[0] if last_cond is sp.true else "float('nan')"
        if last_cond is sp.true:
            pieces = pieces[:-1]
        for value, cond in reversed(pieces):
            if module == "math":
                text = f"({go(value)[0]} if {condition(cond)} else {text})"
            else:
                text = f"numpy.where({condition(cond)}, {go(value)[0]}, {text})"
        return text

    def wrap(e: Any, level: int) -> str:
        text, prec = go(e)
        return f"({text})" if prec < level else text

    def mul(e: Any) -> str:
        coeff, factors = e.as_coeff_mul()
        num = [f for f in factors if not (f.is_Pow and f.exp.is_Integer and f.exp < 0)]
        den = [f.base**-f.exp for f in factors if f not in num]
        top = "*".join(wrap(f, _MUL) for f in num) if num else "1"
        if den:
            bottom = "*".join(wrap(f, _MUL) for f in den)
            top += f"/({bottom})" if len(den) > 1 else f"/{wrap(den[0], _POW)}"
        if coeff == 1:
            return top
        if coeff == -1:
            return f"-{top}" if num or den else "-1"
        c = go(coeff)[0]
        c = f"({c})" if coeff.is_Rational and not coeff.is_Integer else c
        return f"{c}*{top}"

    def power(e: Any) -> tuple[str, int]:
        base, exp = e.args
        if exp == sp.S.Half:
            return f"{module}.sqrt({go(base)[0]})", _ATOM
        if exp.is_Integer and exp < 0:
            return f"1/{wrap(base**-exp, _POW)}", _MUL
        return f"{wrap(base, _POW + 1)}**{wrap(exp, _ATOM)}", _POW

    return go(expr)[0]


def _rebuild(expr: Any, args: list[Any]) -> Any:
    """``expr`` with new arguments, unevaluated: the parts are already in canonical form."""
    if isinstance(expr, (sp.Add, sp.Mul, sp.Pow, sp.Max, sp.Min)) or (
        isinstance(expr, sp.Function) and not isinstance(expr, AppliedUndef)
    ):
        return expr.func(*args, evaluate=False)
    return expr.func(*args)


def _cse(exprs: Sequence[sp.Expr]) -> tuple[list[tuple[sp.Symbol, sp.Expr]], list[sp.Expr]]:
    """Common subexpression elimination: every compound subtree used twice gets a name.

    Like SymPy's ``cse`` without its rewriting pre-pass, and it rebuilds without evaluating
    (evaluation re-runs ``tanh.eval`` and assumption queries on every node), so it stays fast
    on the thousands of small expressions of an unrolled chain.
    """
    counts: dict[Any, int] = {}
    stack = list(exprs)
    while stack:
        e = stack.pop()
        if not e.args or e.is_Atom:
            continue
        counts[e] = counts.get(e, 0) + 1
        if counts[e] == 1:
            stack.extend(e.args)
    repeated = {
        e
        for e, c in counts.items()
        if c > 1 and not (e.is_Mul and e.args[0] == -1 and len(e.args) == 2)
    }
    names = sp.numbered_symbols("_c")
    replacements: list[tuple[sp.Symbol, sp.Expr]] = []
    memo: dict[Any, Any] = {}

    def rebuild(e: Any) -> Any:
        if not e.args or e.is_Atom:
            return e
        if e in memo:
            return memo[e]
        new = _rebuild(e, [rebuild(a) for a in e.args])
        if e in repeated:
            name = next(names)
            replacements.append((name, new))
            new = name
        memo[e] = new
        return new

    return replacements, [rebuild(e) for e in exprs]


#: Rounds of :func:`_regroup`; each can nest a shared pair one level deeper.
_REGROUP_ROUNDS = 3


def _regroup(exprs: Sequence[sp.Expr]) -> list[sp.Expr]:
    r"""Nest flat sums and products so that argument pairs they share become one node.

    Tree CSE names whole subtrees only: in the flattened products ``W_11*a*c`` and ``a*c*h``
    neither holds the node ``a*c``.  Regrouped as ``W_11*(a*c)`` and ``(a*c)*h``, ``_cse``
    computes ``a*c`` once; in the adjoint step that is BPTT's
    :math:`\partial L/\partial h_i \, f'(z_i)`, used by every row of the Jacobian and every
    parameter gradient.  Each round gives every sum or product the operand pair that the most
    distinct nodes share (numbers stay outside the pair).  Only the fixed-size scan step
    functions use this, so its cost does not grow with T.
    """
    out = list(exprs)
    for _ in range(_REGROUP_ROUNDS):
        counts = _pair_counts(out)
        if not any(c > 1 for c in counts.values()):
            break
        regrouped = _regroup_round(out, counts)
        if regrouped == out:
            break
        out = regrouped
    return out


def _regroup_round(
    exprs: Sequence[sp.Expr], counts: dict[tuple[Any, Any, Any], int]
) -> list[sp.Expr]:
    memo: dict[Any, Any] = {}

    def rebuild(e: Any) -> Any:
        if e.is_Atom:
            return e
        if e not in memo:
            new = _rebuild(e, [rebuild(a) for a in e.args])
            memo[e] = _nest_best_pair(e, new, counts) if e.is_Add or e.is_Mul else new
        return memo[e]

    return [rebuild(e) for e in exprs]


def _operands(e: Any) -> list[int]:
    """Positions of the arguments of a sum or product that are not numbers."""
    return [i for i, a in enumerate(e.args) if not a.is_Number]


def _pair_counts(exprs: Sequence[sp.Expr]) -> dict[tuple[Any, Any, Any], int]:
    """For each (Add or Mul, a, b): how many distinct nodes have both a and b as operands."""
    nodes: dict[Any, None] = {}
    stack = list(exprs)
    while stack:
        e = stack.pop()
        if not e.is_Atom and e not in nodes:
            nodes[e] = None
            stack.extend(e.args)
    counts: dict[tuple[Any, Any, Any], int] = {}
    for e in nodes:
        if e.is_Add or e.is_Mul:
            ops = [e.args[i] for i in _operands(e)]
            for i, a in enumerate(ops):
                for b in ops[i + 1 :]:
                    counts[e.func, a, b] = counts.get((e.func, a, b), 0) + 1
    return counts


def _nest_best_pair(old: Any, new: Any, counts: dict[tuple[Any, Any, Any], int]) -> Any:
    """``new`` (``old`` with rebuilt arguments) with its most shared operand pair nested."""
    positions = _operands(old)
    if len(positions) < 3 and not (len(positions) == 2 and len(old.args) > 2):
        return new  # a bare pair is already the node to share
    best, pick = 1, None
    for n, i in enumerate(positions):
        for j in positions[n + 1 :]:
            c = counts.get((old.func, old.args[i], old.args[j]), 0)
            if c > best:
                best, pick = c, (i, j)
    if pick is None:
        return new
    args = new.args
    pair = old.func(args[pick[0]], args[pick[1]], evaluate=False)
    rest = [a for k, a in enumerate(args) if k not in pick]
    numbers = [a for a in rest if a.is_Number]
    return old.func(*numbers, pair, *[a for a in rest if not a.is_Number], evaluate=False)


def _emit(
    statements: Sequence[tuple[sp.Symbol, sp.Expr]],
    outputs: Sequence[sp.Expr],
    printer: Any,
    indent: str = "    ",
    batch_sums: tuple[int, frozenset[str]] | None = None,
    regroup: bool = False,
) -> tuple[list[str], list[str]]:
    """Lines assigning ``statements`` in order, with common subexpressions shared.

    ``_cse`` lists its replacements first; a replacement may use a variable that a later
    statement assigns, so each replacement is emitted just before the first line that needs it.
    Returns the lines and the printed ``outputs``.  ``batch_sums = (i, constants)`` prints the
    outputs from index i on summed over the batch axis (NumPy printer only); ``constants`` names
    the inputs of the function that are the same for every sequence (see
    :attr:`_Tables.batch_constants`).  ``regroup`` first
    shares operand pairs of flat sums and products (:func:`_regroup`).
    """
    exprs = [e for _, e in statements] + list(outputs)
    if regroup:
        exprs = _regroup(exprs)
    replacements, reduced = _cse(exprs)
    varying: set[Any] = set()
    if batch_sums is not None:
        targets = [name for name, _ in statements]
        definitions = replacements + list(zip(targets, reduced, strict=False))
        varying = _per_sequence(definitions, reduced[len(statements) :], batch_sums[1])
    pending = dict(replacements)
    deps = {s: e.free_symbols & pending.keys() for s, e in replacements}
    lines: list[str] = []
    done: set[Any] = set()

    def need(expr: sp.Expr) -> None:
        stack = sorted(expr.free_symbols & pending.keys() - done, key=str)
        order: list[Any] = []
        while stack:
            s = stack[-1]
            missing = [d for d in deps[s] if d not in done and d not in order]
            if missing:
                stack.extend(sorted(missing, key=str))
                continue
            stack.pop()
            if s not in done:
                done.add(s)
                order.append(s)
        for s in order:
            lines.append(f"{indent}{s} = {_print(printer, pending[s])}")

    for (target, _), expr in zip(statements, reduced, strict=False):
        need(expr)
        lines.append(f"{indent}{target} = {_print(printer, expr)}")
    printed = []
    for i, expr in enumerate(reduced[len(statements) :]):
        need(expr)
        if batch_sums is not None and i >= batch_sums[0] and isinstance(printer, _Printer):
            printed.append(_batch_sum(printer, expr, varying))
        else:
            printed.append(_print(printer, expr))
    return lines, printed


def _per_sequence(
    definitions: Sequence[tuple[sp.Symbol, sp.Expr]],
    uses: Sequence[sp.Expr],
    constants: frozenset[str],
) -> set[Any]:
    """The symbols whose values differ between the sequences of a batch.

    A symbol that ``definitions`` assigns varies when its expression reads one that varies (a
    loss linear in ``o`` gives ``dL_do__t = 1``, the same everywhere); any other symbol is an
    input of the function and varies unless ``constants`` names it.  A batch sum must know:
    a value shared by every sequence counts once per sequence.
    """
    defined = dict(definitions)
    varying = {
        s
        for e in [*defined.values(), *uses]
        for s in e.free_symbols
        if s not in defined and s.name not in constants
    }
    grown = True
    while grown:
        grown = False
        for name, e in defined.items():
            if name not in varying and e.free_symbols & varying:
                varying.add(name)
                grown = True
    return varying


def _batch_sum(printer: Any, expr: sp.Expr, varying: set[Any]) -> str:
    """Python for the sum of ``expr`` over the batch axis, without a temporary per term.

    A product of two or more per-sequence factors becomes one ``numpy.dot`` (a BLAS call);
    per-sequence sums ``numpy.add.reduce`` (``numpy.sum`` without its wrapper, which costs as
    much as the sum at these sizes); a term that is the same for every sequence is multiplied
    by the number of sequences ``_n``.
    """
    terms = []
    for term in sp.Add.make_args(expr):
        factors = sp.Mul.make_args(term)
        per_seq = [f for f in factors if f.free_symbols & varying]
        same = sp.Mul(*[f for f in factors if not f.free_symbols & varying])
        if not per_seq:
            terms.append("_n" if same == 1 else f"_n*{_wrap(printer, same)}")
            continue
        if len(per_seq) == 1:
            text = f"numpy.add.reduce({_print(printer, per_seq[0])}, None)"
        else:
            rest = _print(printer, sp.Mul(*per_seq[1:], evaluate=False))
            text = f"numpy.dot({_print(printer, per_seq[0])}, {rest})"
        terms.append(text if same == 1 else f"{_wrap(printer, same)}*{text}")
    return " + ".join(terms) if terms else "0.0"


def _wrap(printer: Any, expr: sp.Expr) -> str:
    text = _print(printer, expr)
    return text if expr.is_Atom and not (expr.is_Number and expr < 0) else f"({text})"


def _symbol(atom: Any) -> sp.Symbol:
    """The code variable for a time atom, adjoint or parameter (``h__tm1``, ``dL_dh__3``)."""
    if isinstance(atom, Adjoint):
        return sp.Symbol(adjoint_name(code_name(atom.args[0])), real=True)
    return sp.Symbol(code_name(atom), real=True)


class _CodeVar(sp.Symbol):
    """A variable symrnn names in generated code (an adjoint carry), never a user's symbol."""


#: Terms a ``Sum`` in an update or loss may expand to in generated code.
MAX_SUM_TERMS = 1_000


def _expand_sum(e: sp.Sum) -> sp.Expr:
    """A ``Sum`` with integer limits written out term by term (generated code has no loops)."""
    body, count = e.function, 1
    for k, a, b in e.limits:
        if not (a.is_Integer and b.is_Integer):
            raise SymrnnError(
                f"cannot generate code for {e}: the limits of {k} are not integers; "
                "give numeric limits or write the terms out"
            )
        count *= max(int(b) - int(a) + 1, 0)
        if count > MAX_SUM_TERMS:
            raise LimitError(
                f"cannot generate code for {e}: it has more than {MAX_SUM_TERMS:,} terms; "
                "write it in closed form"
            )
        body = sp.Add(*[body.xreplace({k: sp.Integer(i)}) for i in range(int(a), int(b) + 1)])
    return body


def _to_code(expr: Any, memo: dict[Any, Any] | None = None) -> Any:
    """``expr`` with time atoms, adjoints and parameters renamed to code variables.

    One pass, rebuilding unevaluated; ``memo`` may be shared across the statements of one
    function, whose subexpressions repeat.
    """
    memo = {} if memo is None else memo

    def rename(e: Any) -> Any:
        if e in memo:
            return memo[e]
        if isinstance(e, Adjoint) or (isinstance(e, AppliedUndef) and is_time_atom(e)):
            out = _symbol(e)
        elif isinstance(e, sp.Sum):
            out = rename(_expand_sum(e))
        elif isinstance(e, sp.Symbol):
            # Symbols symrnn made for the code (``dL_dh__t_later``) are already identifiers;
            # user symbols go through code_name, which keeps them off those names.
            out = e if isinstance(e, _CodeVar) else _symbol(e)
        elif not e.args:
            out = e
        else:
            out = _rebuild(e, [rename(a) for a in e.args])
        memo[e] = out
        return out

    return rename(expr)


def _check_concrete(rec: Recurrence, extra: Iterable[sp.Expr] = ()) -> None:
    for e in [*rec.update.values(), *extra]:
        for call in e.atoms(AppliedUndef):
            if not is_time_atom(call):
                raise SymrnnError(
                    f"cannot generate numeric code: {call.func} is an abstract function; "
                    "substitute a concrete update (e.g. tanh(w*s(t-1) + b)) first"
                )
        if e.atoms(sp.Derivative, sp.Subs):
            raise SymrnnError("cannot generate numeric code for unevaluated derivatives")


def _check_loss_symbols(rec: Recurrence, loss: sp.Expr) -> None:
    """The generated code takes the recurrence's parameters: the loss may not add symbols."""
    foreign = loss_only_symbols(rec, loss)
    if foreign:
        names = ", ".join(map(str, foreign))
        params = ", ".join(map(str, rec.params))
        raise SymrnnError(
            f"the loss uses {names}, which is not a parameter of the recurrence ({params}); list "
            f"it in Recurrence(..., params=[...]) to get its value and gradient, or substitute "
            "a number"
        )


# ----------------------------------------------------------------------------- model tables
def _groups(
    funcs: Sequence[Any], vectors: dict[str, tuple[Any, ...]]
) -> list[tuple[str, list[str], bool]]:
    """Group component functions as the user wrote them (vectors by name, scalars alone)."""
    out: list[tuple[str, list[str], bool]] = []
    seen: set[Any] = set()
    owner = {f: name for name, comps in vectors.items() for f in comps}
    for f in funcs:
        if f in seen:
            continue
        name = owner.get(f)
        if name is not None:
            comps = [c for c in vectors[name] if c in funcs]
            seen |= set(comps)
            out.append((name, [identifier(c.__name__) for c in comps], True))
        else:
            seen.add(f)
            out.append((identifier(f.__name__), [identifier(f.__name__)], False))
    return out


def _target_vectors(funcs: Iterable[Any], named: Iterable[str] = ()) -> dict[str, tuple[Any, ...]]:
    """Loss-only inputs named ``y_1 … y_n`` (as ``sr.vector('y', n)`` names them) form a vector:
    when there are several, or when the loss names the vector ``y`` (``named``, from
    :func:`symrnn.losses.vector_names`), so that a 1-vector stays a vector."""
    by_base: dict[str, dict[int, Any]] = {}
    funcs = list(funcs)
    taken = {f.__name__ for f in funcs}
    named = set(named)
    for f in funcs:
        base, _, index = f.__name__.rpartition("_")
        if base and index.isdigit():
            by_base.setdefault(base, {})[int(index)] = f
    return {
        base: tuple(comps[i] for i in range(1, len(comps) + 1))
        for base, comps in by_base.items()
        if (len(comps) >= 2 or base in named)
        and set(comps) == set(range(1, len(comps) + 1))
        and base not in taken
    }


@dataclass(frozen=True)
class _Tables:
    rec: Recurrence
    loss: sp.Expr | None
    targets: tuple[Any, ...]
    target_vectors: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    @cached_property
    def param_groups(self) -> list[tuple[str, tuple[int, ...], list[str]]]:
        out = []
        for name, value in self.rec.param_groups.items():
            if isinstance(value, sp.MatrixBase):
                out.append((identifier(name), tuple(value.shape), [code_name(e) for e in value]))
            else:
                out.append((identifier(name), (), [code_name(value)]))
        return out

    @cached_property
    def param_order(self) -> list[str]:
        return [c for _, _, comps in self.param_groups for c in comps]

    @cached_property
    def batch_constants(self) -> frozenset[str]:
        """Code names whose values are the same for every sequence of a batch.

        The parameters, the time index, and the quantities at t computed from those alone
        (an output ``o(t) = c**2``); states and inputs differ between sequences.
        """
        rec = self.rec
        same = {*self.param_order, str(_TIME)}
        for eq in rec.equations:  # evaluation order: what an update reads is classified first
            if eq.lhs.func not in rec.states and all(
                str(_symbol(a)) in same for a in time_atoms(eq.rhs)
            ):
                same.add(str(_symbol(eq.lhs)))
        return frozenset(same)

    def header(self) -> dict[str, Any]:
        rec = self.rec
        vectors = rec.vectors
        tv = self.target_vectors
        return {
            "INPUT_LAG": rec.input_lag,
            "QUANTITIES": [identifier(f.__name__) for f in rec.defined],
            "STATES": [(identifier(s.__name__), rec.lag(s)) for s in rec.states],
            "PARAM_GROUPS": self.param_groups,
            "PARAM_ORDER": self.param_order,
            "INPUT_GROUPS": _groups(rec.inputs, vectors) + _groups(self.targets, tv),
            "TARGET_NAMES": [g[0] for g in _groups(self.targets, tv)],
            "OUTPUT_GROUPS": _groups(rec.defined, vectors),
            "STATE_GROUPS": _groups(rec.states, vectors),
            "HAS_LOSS": self.loss is not None,
        }


def _arg_spec(atom: Any, rec: Recurrence) -> tuple[str, str, int]:
    lag = -int(sp.expand(time_of(atom) - t))
    kind = "state" if atom.func in rec.defined else "input"
    return (kind, identifier(atom.func.__name__), lag)


def _spec_order(atoms: Iterable[Any], rec: Recurrence) -> list[Any]:
    defined = {f: i for i, f in enumerate(rec.defined)}
    return sorted(
        atoms,
        key=lambda a: (
            a.func not in defined,
            defined.get(a.func, 0),
            a.func.__name__,
            -int(sp.expand(time_of(a) - t)),
        ),
    )


def _scan_source(tables: _Tables, printer: Any) -> str:
    """Source of ``step`` (and ``loss_step``, ``adjoint_step``) for one printer."""
    rec = tables.rec
    params = tables.param_order
    # Forward step: every defined quantity at t from the past, the inputs and the parameters.
    statements = [(_symbol(eq.lhs), _to_code(eq.rhs)) for eq in rec.equations]
    step_atoms = set().union(*(time_atoms(eq.rhs) for eq in rec.equations)) - set(
        eq.lhs for eq in rec.equations
    )
    order = _spec_order(step_atoms, rec)
    lines, _ = _emit(statements, [], printer, regroup=True)
    outs = ", ".join(str(s) for s, _ in statements)
    names, step_specs = _arguments(order, rec, [e for _, e in statements])
    parts = [_def("step", names, lines, f"({outs},)", params)]
    specs = {"STEP_ARGS": step_specs}
    if tables.loss is not None:
        parts.append(_loss_source(tables, printer, specs))
        parts.append(_adjoint_source(tables, printer, specs))
    tables_text = "".join(f"{k} = {v!r}\n" for k, v in specs.items())
    return tables_text + "\n\n" + "\n\n".join(parts)


_TIME = sp.Symbol(code_name(t), real=True)  # the time index as a code variable


def _arguments(
    atoms: list[Any], rec: Recurrence, exprs: Iterable[sp.Expr]
) -> tuple[list[str], list[tuple[str, str, int]]]:
    """Argument names and runtime specs for atoms, plus the time index if the code reads it."""
    names = [str(_symbol(a)) for a in atoms]
    specs = [_arg_spec(a, rec) for a in atoms]
    if any(_TIME in e.free_symbols for e in exprs):
        names.append(str(_TIME))
        specs.append(("time", str(_TIME), 0))
    return names, specs


def _def(name: str, args: list[str], body: list[str], returns: str, params: list[str]) -> str:
    """A step function ``name(_P, *args)`` whose parameters arrive packed in the tuple ``_P``."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", "\n".join([*body, returns])))
    names = [p if p in words else "_" for p in params]
    unpack = [f"    ({', '.join(names)},) = _P"] if any(n != "_" for n in names) else []
    signature = ", ".join(["_P", *args])
    lines = [line for line in unpack + body if line.strip()]
    return (
        f"def {name}({signature}):\n"
        + "".join(f"{line}\n" for line in lines)
        + f"    return {returns}\n"
    )


def _loss_source(tables: _Tables, printer: Any, specs: dict[str, Any]) -> str:
    rec, loss = tables.rec, tables.loss
    assert loss is not None
    atoms = _spec_order(time_atoms(loss), rec)
    code = _to_code(loss)
    lines, (value,) = _emit([], [code], printer, regroup=True)
    names, specs["LOSS_ARGS"] = _arguments(atoms, rec, [code])
    return _def("loss_step", names, lines, value, tables.param_order)


def _adjoint_source(tables: _Tables, printer: Any, specs: dict[str, Any]) -> str:
    """One step of BPTT: adjoints at t from the carried adjoints and the loss at t."""
    rec, loss = tables.rec, tables.loss
    assert loss is not None
    D = step_derivatives(rec)
    carry = {s: _CodeVar(adjoint_name(code_name(s(t))) + "_later", real=True) for s in rec.states}
    adj = {f: _CodeVar(adjoint_name(code_name(f(t))), real=True) for f in rec.defined}
    statements: list[tuple[sp.Symbol, sp.Expr]] = []
    for eq in reversed(rec.equations):
        q = eq.lhs.func
        terms = [carry[q]] if q in carry else []
        terms.append(sp.diff(loss, q(t)))
        for r, parts in D.partials.items():
            terms += [adj[r] * d for a, d in parts if a == q(t)]
        statements.append((adj[q], _to_code(sp.Add(*terms))))
    out_keys: list[tuple[Any, int]] = []
    out_exprs: list[sp.Expr] = []
    for s in rec.states:
        for lag in range(1, rec.lag(s) + 1):
            terms = [
                adj[r] * d for r, parts in D.partials.items() for a, d in parts if a == s(t - lag)
            ]
            out_keys.append((identifier(s.__name__), lag))
            out_exprs.append(_to_code(sp.Add(*terms)))
    params = [p for _, _, comps in tables.param_groups for p in comps]
    by_code = {code_name(p): p for p in rec.params}
    pgrads = []
    for pc in params:
        p = by_code[pc]
        terms = [adj[r] * d for r, parts in D.param_partials.items() for q, d in parts if q == p]
        terms.append(sp.diff(loss, p))
        pgrads.append(_to_code(sp.Add(*terms)))
    value = _to_code(loss)
    # Parameter gradients leave the step summed over the batch (see _batch_sum).
    first_grad = 1 + len(out_exprs)
    batch_sums = (first_grad, tables.batch_constants)
    lines, printed = _emit(
        statements, [value, *out_exprs, *pgrads], printer, batch_sums=batch_sums, regroup=True
    )
    used = set()
    for e in [*(e for _, e in statements), value, *out_exprs, *pgrads]:
        used |= e.free_symbols
    # Arguments: every forward quantity, lag and input the expressions read, then the carries.
    atoms = set(time_atoms(loss))
    for eq in rec.equations:
        atoms |= time_atoms(eq.rhs) | {eq.lhs}
    order = [a for a in _spec_order(atoms, rec) if _symbol(a) in used]
    carries = [s for s in rec.states]
    names, arg_specs = _arguments(
        order, rec, [e for _, e in statements] + [value, *out_exprs, *pgrads]
    )
    specs["ADJ_ARGS"] = arg_specs + [("carry", identifier(s.__name__), 0) for s in carries]
    specs["ADJ_ARGS"].append(("count", "_n", 0))
    specs["ADJ_OUT"] = out_keys
    args = names + [str(carry[s]) for s in carries] + ["_n"]
    n_out = len(out_exprs)
    outs = printed[1 : 1 + n_out]
    grads = printed[1 + n_out :]
    ret = f"{printed[0]}, {_tuple(outs)}, {_tuple(grads)}"
    return _def("adjoint_step", args, lines, ret, tables.param_order)


def _tuple(items: list[str]) -> str:
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


# ----------------------------------------------------------------------------- unrolled code
def _unrolled_source(U: Unfolded, loss: sp.Expr | None, printer: Any) -> str:
    rec = U.recurrence
    leaves: set[Any] = set()
    statements = []
    memo: dict[Any, Any] = {}
    for eq in U.equations:
        rhs = _to_code(eq.rhs, memo)
        statements.append((_symbol(eq.lhs), rhs))
        leaves |= {a for a in time_atoms(eq.rhs) if a not in U.definitions}
    leaves |= set(rec.params)
    lines, _ = _emit(statements, [], printer)
    unpack = [
        f"    {_symbol(a)} = _v[{str(_symbol(a))!r}]"
        for a in sorted(leaves, key=sp.default_sort_key)
    ]
    names = ", ".join(f"{str(s)!r}: {s}" for s, _ in statements)
    parts = [
        "def unrolled_forward(_v):\n" + "\n".join(unpack + lines) + f"\n    return {{{names}}}\n"
    ]
    if loss is not None:
        wrt = list(rec.params) + list(U.initial)
        B = bptt(U, loss, wrt)
        value_sym = sp.Symbol("loss_value")
        backward = [(value_sym, _to_code(loss, memo))]
        backward += [(_symbol(eq.lhs), _to_code(eq.rhs, memo)) for eq in B.adjoints]
        backward += [(_symbol(eq.lhs), _to_code(eq.rhs, memo)) for eq in B.gradients]
        # The backward pass reads the forward values computed by unrolled_forward.
        chain_names = {str(s) for s, _ in statements}
        used: set[str] = set()
        for _, e in backward:
            used |= {str(x) for x in e.free_symbols}
        leaf_names = sorted((used - chain_names) | {str(_symbol(a)) for a in leaves} & used)
        unpack2 = ["    _f = unrolled_forward(_v)"]
        unpack2 += [f"    {n} = _f[{n!r}]" for n in sorted(used & chain_names)]
        unpack2 += [f"    {n} = _v[{n!r}]" for n in leaf_names if not is_adjoint_name(n)]
        glines, _ = _emit(backward, [], printer)
        pg = ", ".join(f"{code_name(p)!r}: {_symbol(Adjoint(p))}" for p in rec.params)
        ig = ", ".join(
            f"({identifier(a.func.__name__)!r}, {int(time_of(a))}): {_symbol(Adjoint(a))}"
            for a in U.initial
        )
        defined_adj = {eq.lhs for eq in (*B.adjoints, *B.gradients)}
        zero_lines = [
            f"    {_symbol(Adjoint(v))} = 0.0" for v in wrt if Adjoint(v) not in defined_adj
        ]
        parts.append(
            "def unrolled_value_and_grad(_v):\n"
            + "\n".join(unpack2 + glines + zero_lines)
            + f"\n    return loss_value, {{{pg}}}, {{{ig}}}\n"
        )
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------- source module
def generate_source(
    obj: Recurrence | Unfolded,
    loss: Any = None,
    mode: str = "scan",
    steps: int | None = None,
    level: str = "auto",
) -> str:
    """The complete source of a standalone NumPy module for ``obj`` (see :func:`codegen`)."""
    rec = obj.recurrence if isinstance(obj, Unfolded) else obj
    if level not in LEVELS:
        raise SymrnnError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if not isinstance(rec, Recurrence):
        raise SymrnnError(
            f"lambdify needs a Recurrence or an Unfolded chain, got {type(obj).__name__}"
        )
    if mode not in ("scan", "unrolled"):
        raise SymrnnError(f"mode must be 'scan' or 'unrolled', got {mode!r}")
    loss = parse_in_scope(loss, rec, "the loss")
    expr: Any = None
    is_template = True
    matrix = rec.is_vector and mode == "scan" and level != "components"
    if level == "matrix" and not (rec.is_vector and mode == "scan"):
        raise SymrnnError("level='matrix' needs a vector recurrence and mode='scan'")
    if loss is not None and not matrix:
        expr, is_template = classify_loss(loss)
    if isinstance(obj, Unfolded):
        steps = obj.steps if steps is None else steps
    U = obj if isinstance(obj, Unfolded) else None
    if expr is not None and not is_template and mode == "scan":
        raise SymrnnError(
            "scan mode needs the loss as a per-step template in t, e.g. (h(t) - y(t))**2/2; "
            "for a loss at fixed times use mode='unrolled'"
        )
    if matrix:
        try:
            return _matrix_module_source(rec, loss)
        except Unsupported as exc:
            if not rec.has_explicit_size or level == "matrix":
                remedy = (
                    ""
                    if "; " in str(exc)
                    else "; write the recurrence with matrix products, Hadamard products and "
                    "elementwise functions, or give explicit sizes"
                )
                raise SymrnnError(f"cannot generate matrix-level code: {exc}{remedy}") from None
            expr, is_template = classify_loss(loss) if loss is not None else (None, True)
    elif not rec.has_explicit_size:
        raise SymrnnError(
            "unrolled code lists every component and needs explicit sizes; use mode='scan' "
            "(code for any size) or rec.at_sizes(...)"
        )
    _check_concrete(rec, [expr] if expr is not None else [])
    check_magnitudes([expr], "the loss")
    if expr is not None:
        _check_loss_symbols(rec, expr)
    targets: tuple[Any, ...] = ()
    if expr is not None:
        funcs = {a.func for a in time_atoms(expr)}
        targets = tuple(
            sorted(funcs - set(rec.defined) - set(rec.inputs), key=lambda f: f.__name__)
        )
        if is_template:
            bad = [a for a in time_atoms(expr) if time_of(a) != t]
            if bad and mode == "scan":
                raise SymrnnError(
                    f"the per-step loss uses {bad[0]}; a scan loss may only use quantities at "
                    "time t (use mode='unrolled' for losses across times)"
                )
    named = vector_names(loss) if loss is not None else frozenset()
    tables = _Tables(rec, expr if is_template else None, targets, _target_vectors(targets, named))
    head = tables.header()
    if mode == "unrolled":
        if steps is None:
            raise SymrnnError("unrolled code is for a fixed T: pass steps=T or an Unfolded chain")
        if U is None or U.steps != steps:
            U = unfold(rec, steps)
        total = None
        if expr is not None:
            total = total_loss(U, expr) if is_template else expr
        head["HAS_LOSS"] = total is not None
        body = _unrolled_source(U, total, _Printer())
        scalar_body = ""
    else:
        body = _scan_source(tables, _Printer())
        try:
            scalar = _scan_source(tables, _ScalarPrinter())
            scalar_body = _rename_functions(scalar)
        except _Unprintable:
            scalar_body = ""
    head["MODE"] = mode
    head["STEPS"] = steps if mode == "unrolled" else None
    doc = _module_doc(rec, tables, mode, steps)
    table_text = "".join(f"{k} = {v!r}\n" for k, v in head.items())
    code = f"{body}\n\n{scalar_body}"
    imports = _imports(code)
    source = (
        f'"""{doc}"""\n\n{imports}\n\n{table_text}\n\n{code}\n\n{_placeholders(code)}\n\n{_RUNTIME}'
    )
    _check_identifiers(rec.params, [*rec.defined, *rec.inputs, *targets], source)
    return source


_STANDARD_MODULES = ("builtins", "functools", "math")
_MODULE_USE = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\.[A-Za-z_]")


def _imports(code: str) -> str:
    """Import lines for every module the printed code uses; only NumPy and the standard library.

    SymPy's printers may name ``functools``, ``builtins`` or ``math`` (all standard), or a
    library the generated module must not need (``scipy``, ``mpmath``): refused here, at
    generation, rather than as a NameError at the first call.
    """
    used = set(_MODULE_USE.findall(code))
    foreign = sorted(used & {"scipy", "mpmath", "sympy", "cmath", "torch"})
    if foreign:
        raise SymrnnError(
            f"cannot generate NumPy-only code: printing the recurrence needs {foreign[0]}; "
            "replace the function that needs it (e.g. by its definition)"
        )
    standard = [f"import {m}" for m in _STANDARD_MODULES if m in used]
    return "\n".join(standard) + ("\n\n" if standard else "") + "import numpy"


def _check_identifiers(params: Sequence[Any], funcs: Sequence[Any], source: str) -> None:
    """Refuse user names whose identifiers collide with each other or with generated names.

    Time-indexed quantities become ``h__tm1``, ``x__3``; parameters keep their identifier.
    A parameter whose identifier contains ``__`` or is the time index ``t`` could equal a
    quantity's variable, and one named like a module-level name of the generated module
    (``unrolled_forward``, ``forward``, ``numpy``) would shadow it.
    """
    tree = ast.parse(source)
    module_names = {"t", "numpy", *_STANDARD_MODULES}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            module_names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets_ = node.targets if isinstance(node, ast.Assign) else [node.target]
            module_names |= {
                n.id for tg in targets_ for n in ast.walk(tg) if isinstance(n, ast.Name)
            }
    seen: dict[str, str] = {}
    items = [(identifier(str(p)), f"parameter {p}", True) for p in params]
    items += [(identifier(f.__name__), f"quantity {f.__name__}", False) for f in funcs]
    for ident, what, is_param in items:
        other = seen.get(("p" if is_param else "f") + ident)
        if other is not None:
            raise SymrnnError(
                f"cannot generate code: {other} and {what} both become the identifier "
                f"{ident!r}; rename one of them"
            )
        seen[("p" if is_param else "f") + ident] = what
        if "__" in ident or (is_param and ident in module_names):
            raise SymrnnError(
                f"cannot generate code: {what} becomes the identifier {ident!r}, which the "
                "generated code uses for its own variables (names with '__' are time-indexed "
                "quantities such as h__tm1); rename it"
            )


_RUNTIME_FUNCTIONS = (
    "step",
    "step_scalar",
    "loss_step",
    "adjoint_step",
    "adjoint_step_scalar",
    "unrolled_forward",
    "unrolled_value_and_grad",
)
_RUNTIME_TABLES = ("STEP_ARGS", "LOSS_ARGS", "ADJ_ARGS", "ADJ_OUT")


def _placeholders(code: str) -> str:
    """Define what this mode does not generate, so the module is complete on its own."""
    lines = ["# Not used in this mode (the runtime below checks MODE and HAS_LOSS first):"]
    for name in _RUNTIME_FUNCTIONS:
        if f"def {name}(" not in code and f"{name} = None" not in code:
            lines.append(f"{name} = None")
    for name in _RUNTIME_TABLES:
        if f"{name} = " not in code:
            lines.append(f"{name} = []")
    return "\n".join(lines) + "\n" if len(lines) > 1 else ""


def _rename_functions(source: str) -> str:
    """The math-module twins of the step functions are called ``*_scalar``."""
    out = []
    for line in source.splitlines():
        if line.startswith("def "):
            name = line[4 : line.index("(")]
            line = f"def {name}_scalar{line[4 + len(name) :]}"
        elif line.split(" = ")[0] in ("STEP_ARGS", "LOSS_ARGS", "ADJ_ARGS", "ADJ_OUT"):
            continue  # identical tables, already defined by the NumPy version
        out.append(line)
    return "\n".join(out) + "\n"


def _module_doc(rec: Recurrence, tables: _Tables, mode: str, steps: int | None) -> str:
    from .notation import str_expr

    lines = [
        f"NumPy code generated by symrnn for {rec.name or 'a recurrence'} ({mode} mode"
        + (f", T = {steps}" if mode == "unrolled" else "")
        + ").",
        "",
        "Recurrence (t = 1, ..., T):",
    ]
    lines += [f"    {str_expr(e.lhs)} = {str_expr(e.rhs)}" for e in rec.display]
    if tables.loss is not None:
        lines += ["", "Loss: L = sum over t of", f"    {str_expr(tables.loss)}"]
        lines += ["", "Back-propagation through time (adjoint recursion):"]
        from .diff import template_equations

        for eq in template_equations(rec):
            lines.append(f"    {str_expr(eq.lhs)} = {str_expr(eq.rhs)}")
    lines += ["", "Parameters and shapes:"]
    lines += [f"    {name}: {shape}" for name, shape, _ in tables.param_groups]
    lines += [
        "",
        "Use: forward(params, inputs, init=None), loss(...), value_and_grad(...); params by",
        "name, inputs shaped (T, [batch], [n]), init shaped ([batch], [n]). Needs only NumPy.",
    ]
    return "\n".join(lines).replace('"""', "'''").replace("\\", "\\\\") + "\n"


# ----------------------------------------------------------------------------- matrix level
def _matrix_module_source(rec: Recurrence, loss: Any) -> str:
    """Matrix-level module source, or :class:`Unsupported` for the component path to take over."""
    blocks = rec.blocks
    if loss is not None and (isinstance(loss, str) or not isinstance(loss, sp.Basic)):
        raise Unsupported("a loss that is not a SymPy expression")
    atoms: list[Any] = []
    if loss is not None:
        atoms = [*loss.atoms(VectorAt), *time_atoms(loss)]
        for a in atoms:
            time = a.time if isinstance(a, VectorAt) else time_of(a)
            if time != t:
                raise Unsupported(f"the per-step loss uses {a}, not a quantity at time t")
    known = {f.__name__ for f in (*blocks.defined, *blocks.inputs)}
    vectors = {name for name, _ in blocks.vectors}
    for a in atoms:
        if not isinstance(a, VectorAt) and a.func.__name__.rpartition("_")[0] in vectors:
            raise Unsupported(
                f"the loss is written in components ({a}); write it with whole vectors, e.g. "
                "sr.squared_error(o(t), y(t))"
            )
    targets: dict[str, Any] = {}
    for a in sorted(atoms, key=str):
        name = a.name if isinstance(a, VectorAt) else a.func.__name__
        if name not in known:
            targets[identifier(name)] = _spec(a.shape) if isinstance(a, VectorAt) else ()
    if loss is not None:
        names = {str(p) for p in blocks.params} | {str(s) for s in blocks.sizes}
        extra = sorted(
            str(s)
            for s in loss.free_symbols - {t}
            if isinstance(s, sp.Symbol) and str(s) not in names
        )
        if extra:
            params = ", ".join(str(p) for p in blocks.params)
            raise SymrnnError(
                f"the loss uses {', '.join(extra)}, which is not a parameter of the recurrence "
                f"({params}); list it in Recurrence(..., params=[...]) to get its value and "
                "gradient, or substitute a number"
            )
    check_magnitudes([loss], "the loss")
    source = generate_matrix_source(rec, loss, list(targets.items()), _matrix_doc(rec, loss))
    blocks_funcs = [*blocks.defined, *blocks.inputs, *(sp.Function(n) for n in targets)]
    _check_identifiers(blocks.params, blocks_funcs, source)
    return source


def _matrix_doc(rec: Recurrence, loss: Any) -> str:
    from .notation import str_expr

    lines = [
        f"NumPy code generated by symrnn for {rec.name or 'a recurrence'} (matrix level, scan).",
        "",
        "Recurrence (t = 1, ..., T), one line per vector equation:",
    ]
    lines += [f"    {str_expr(e.lhs)} = {str_expr(e.rhs)}" for e in rec.display]
    if loss is not None:
        lines += ["", "Loss: L = sum over t of", f"    {str_expr(loss)}"]
        lines += ["", "adjoint_step is one step of back-propagation through time."]
    lines += ["", "Parameters and shapes (sizes are read from the arrays):"]
    lines += [
        f"    {identifier(p.name)}: {tuple(getattr(p, 'shape', ()))}" for p in rec.blocks.params
    ]
    lines += [
        "",
        "Use: forward(params, inputs, init=None), loss(...), value_and_grad(...); params by",
        "name, inputs shaped (T, [batch], [n]), init shaped ([batch], [n]). Needs only NumPy.",
    ]
    return "\n".join(lines).replace('"""', "'''").replace("\\", "\\\\") + "\n"


# ----------------------------------------------------------------------------- public API
@dataclass(frozen=True)
class Compiled:
    r"""NumPy callables for a recurrence: ``forward``, ``loss`` and ``value_and_grad``.

    Parameters are given by name (matrix parameters as arrays of their shape), inputs as arrays
    shaped ``(T, …)`` or ``(T, batch, …)`` (vector inputs have their components last), initial
    states shaped ``(…)`` or ``(batch, …)`` (default zero).  ``source`` is the generated module.
    Values must be real numbers (complex ones with a complex ``dtype``); an overflow gives inf or
    nan with NumPy's ``RuntimeWarning``, for one sequence and a batch alike.
    """

    recurrence: Recurrence
    mode: str
    source: str
    dtype: str = "float64"
    steps: int | None = None
    _module: types.ModuleType = field(repr=False, compare=False, default=None)  # type: ignore
    #: Component-level twin for one sequence of a tiny vector cell (faster there).
    _single: types.ModuleType | None = field(repr=False, compare=False, default=None)

    def __repr__(self) -> str:
        return compiled_summary(self)

    @property
    def matrix_level(self) -> bool:
        """True when the code works on whole vectors (BLAS products over the batch)."""
        return hasattr(self._module, "PARAMS")

    @property
    def param_shapes(self) -> dict[str, tuple[Any, ...]]:
        """Shape of each parameter by name (``()`` for scalars; size names for symbolic sizes)."""
        if self.matrix_level:
            return {name: tuple(shape) for name, shape in self._module.PARAMS}
        return {name: tuple(shape) for name, shape, _ in self._module.PARAM_GROUPS}

    @property
    def input_names(self) -> list[str]:
        """Names of the input arrays (recurrence inputs, then loss targets)."""
        return list(self.input_shapes)

    @property
    def input_shapes(self) -> dict[str, tuple[Any, ...]]:
        """Shape of one time step of each input (``(m,)`` for a vector, ``()`` for a scalar);
        arrays are passed shaped ``(T + input_lag, [batch], *shape)``."""
        mod = self._module
        if self.matrix_level:
            return {name: tuple(spec) for name, spec in mod.INPUTS + mod.TARGETS}
        return {name: (len(c),) if vec else () for name, c, vec in mod.INPUT_GROUPS}

    @property
    def output_shapes(self) -> dict[str, tuple[Any, ...]]:
        """Shape of one time step of each quantity :meth:`forward` returns."""
        mod = self._module
        if self.matrix_level:
            return {name: tuple(spec) for name, spec in mod.QUANTITIES}
        return {name: (len(c),) if vec else () for name, c, vec in mod.OUTPUT_GROUPS}

    @property
    def state_shapes(self) -> dict[str, tuple[int, tuple[Any, ...]]]:
        """``name -> (order, shape)`` of each state: an initial value is shaped
        ``([order,] [batch,] *shape)`` (the order axis only for order > 1)."""
        mod = self._module
        if self.matrix_level:
            return {name: (order, tuple(spec)) for name, spec, order in mod.STATES}
        out = {}
        for name, comps, vec in mod.STATE_GROUPS:
            order = max(lag for c, lag in mod.STATES if c in comps)
            out[name] = (order, (len(comps),) if vec else ())
        return out

    @property
    def input_lag(self) -> int:
        """Largest lag of an input: input arrays start at time 1 - input_lag."""
        return int(self._module.INPUT_LAG)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("dtype", self.dtype)
        module = self._module
        if self._single is not None and self._one_sequence(args[1]):
            module = self._single
        try:
            return getattr(module, name)(*args, **kwargs)
        except module.ArgumentError as exc:
            raise ShapeError(str(exc)) from None

    def _one_sequence(self, inputs: Any) -> bool:
        """True when the inputs hold one sequence (no batch axis)."""
        shapes = self.input_shapes
        for name, value in dict(inputs or {}).items():
            if name in shapes:
                return bool(np.ndim(value) == 1 + len(shapes[name]))
        return True

    def forward(
        self,
        params: dict[str, Any],
        inputs: dict[str, Any] | None = None,
        init: dict[str, Any] | None = None,
        steps: int | None = None,
    ) -> dict[str, np.ndarray]:
        """States and outputs at t = 1 … T by name, arrays shaped ``(T, [batch], [n])``."""
        return self._call("forward", params, inputs, init, steps)  # type: ignore

    __call__ = forward

    def loss(
        self,
        params: dict[str, Any],
        inputs: dict[str, Any] | None = None,
        init: dict[str, Any] | None = None,
        steps: int | None = None,
    ) -> Any:
        """The loss of each sequence (a scalar, or shaped ``(batch,)``)."""
        return self._call("loss", params, inputs, init, steps)

    def value_and_grad(
        self,
        params: dict[str, Any],
        inputs: dict[str, Any] | None = None,
        init: dict[str, Any] | None = None,
        steps: int | None = None,
        init_grad: bool = False,
    ) -> tuple[Any, dict[str, Any]]:
        """The loss summed over the batch and its exact gradient, shaped like the parameters."""
        return self._call(  # type: ignore[no-any-return]
            "value_and_grad", params, inputs, init, steps, init_grad=init_grad
        )


def lambdify(
    obj: Recurrence | Unfolded,
    loss: Any = None,
    mode: str = "scan",
    steps: int | None = None,
    dtype: str = "float64",
    level: str = "auto",
) -> Compiled:
    r"""NumPy callables for the forward pass, the loss and its exact gradient.

    Parameters
    ----------
    obj : Recurrence or Unfolded
    loss : sympy.Expr, optional
        A per-step loss template in ``t`` (summed over t = 1 … T), e.g. ``(o(t) - y(t))**2/2``;
        functions of time it uses that the recurrence does not define or read (``y``) become
        inputs.  In ``mode="unrolled"`` it may instead be an expression at fixed times.
    mode : {"scan", "unrolled"}
        Loop a step function over any T, or straight-line code for ``steps`` (or ``obj.steps``).
    dtype : str
        ``"float64"`` (default), ``"float32"``, or a complex type for complex-step checks.

    Returns
    -------
    Compiled
        With ``forward``, ``loss``, ``value_and_grad`` and the generated ``source``.
    """
    source = generate_source(obj, loss, mode, steps, level)
    module = _load(source, f"symrnn_generated_{mode}")
    rec = obj.recurrence if isinstance(obj, Unfolded) else obj
    single = None
    if level == "auto" and hasattr(module, "PARAMS") and _tiny(rec):
        single = _load(generate_source(obj, loss, mode, steps, "components"), "symrnn_single")
    return Compiled(rec, mode, source, str(np.dtype(dtype)), module.STEPS, module, single)


#: Vector cells with at most this many scalar parameters run one sequence component-wise: with
#: no batch to amortise them, a few NumPy calls on tiny arrays cost more than scalar arithmetic
#: (benchmarks/bench_numeric.py, n = 4).
TINY_PARAMETERS = 64


def _tiny(rec: Recurrence) -> bool:
    if not rec.has_explicit_size:
        return False
    count = sum(int(sp.Mul(*getattr(p, "shape", (1, 1)))) for p in rec.blocks.params)
    return count <= TINY_PARAMETERS


def _load(source: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    # The source is generated by symrnn from SymPy printers and sanitised identifiers; no user
    # string reaches it unparsed.
    exec(compile(source, module.__name__, "exec"), module.__dict__)  # noqa: S102
    return module


def codegen(
    obj: Recurrence | Unfolded,
    path: str | Path | None = None,
    loss: Any = None,
    mode: str = "scan",
    steps: int | None = None,
    level: str = "auto",
) -> str:
    """Write (or return) a standalone Python module that imports only NumPy.

    The module defines ``forward``, ``loss`` and ``value_and_grad`` with the same signatures as
    :class:`Compiled`, and carries the recurrence, the adjoint equations and the parameter
    shapes in its docstring.  The file is written atomically.
    """
    source = generate_source(obj, loss, mode, steps, level)
    if path is not None:
        from .files import write_atomic

        write_atomic(Path(path), source)
    return source
