r"""Notation: how time-indexed quantities are named, recognised and printed.

One module owns the names, so LaTeX, graphs and generated code agree:

* a recurrence is written with undefined functions applied to the time index :data:`t`, as
  SymPy's ``rsolve`` takes them: ``h(t)``, ``h(t - 1)``, ``x(t)``;
* unfolded quantities are the same functions at integer times: ``h(3)``, ``x(2)``;
* in LaTeX they print as in Goodfellow et al.: ``h^{(t-1)}``, ``x^{(3)}``, component ``i`` of a
  vector state as ``h_{i}^{(t)}``, parameters after a semicolon ``f(s^{(t-1)}; \theta)``;
* in generated code they are readable identifiers: ``h__3``, ``h__m1`` (time -1), ``x__t``.

>>> import sympy as sp
>>> h = time_function("h")
>>> latex_expr(h(t - 1)), latex_expr(h(3)), code_name(h(-1))
('h^{(t-1)}', 'h^{(3)}', 'h__m1')
>>> f, theta = sp.Function("f"), sp.Symbol("theta")
>>> latex_expr(f(f(h(1), theta), theta))
'f(f(h^{(1)}; \\theta); \\theta)'
"""

from __future__ import annotations

import keyword
import re
import unicodedata
from functools import lru_cache
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef, UndefinedFunction
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

__all__ = [
    "t",
    "time_function",
    "is_time_atom",
    "time_of",
    "shift_of",
    "time_atoms",
    "at_time",
    "code_name",
    "identifier",
    "latex_time",
    "latex_expr",
    "str_expr",
    "NotationLatexPrinter",
    "NotationStrPrinter",
]

#: The time index of every recurrence: ``Symbol('t', integer=True)``.
t = sp.Symbol("t", integer=True)


def time_function(name: str) -> UndefinedFunction:
    """Return the real-valued undefined function ``name`` used for a time-indexed quantity.

    Real assumptions let SymPy skip complex-number work (``conjugate``, ``re``/``im``) when
    differentiating, which makes some operations two orders of magnitude faster.
    """
    return sp.Function(name, real=True)  # type: ignore[return-value]


def is_time_atom(expr: Any) -> bool:
    """True for a time-indexed quantity ``h(t - k)`` or ``h(3)``: one argument, no nested calls.

    ``f(s(t-1), theta)`` (an abstract update function) is not a time atom.
    """
    if not isinstance(expr, AppliedUndef) or len(expr.args) != 1:
        return False
    (arg,) = expr.args
    if arg.is_Integer:
        return True
    return t in arg.free_symbols and not arg.atoms(AppliedUndef)


def time_of(atom: sp.Basic) -> sp.Expr:
    """The time argument of a time atom: ``time_of(h(t-1)) == t - 1``."""
    return atom.args[0]  # type: ignore[return-value]


def shift_of(atom: sp.Basic) -> int | None:
    """The integer k in ``h(t + k)``, or ``None`` when the argument is not of that form."""
    k = sp.expand(time_of(atom) - t)
    return int(k) if k.is_Integer else None


def time_atoms(expr: sp.Basic) -> set[sp.Basic]:
    """All time atoms in ``expr`` (including those inside abstract function calls)."""
    return {a for a in expr.atoms(AppliedUndef) if is_time_atom(a)}


def at_time(atom: sp.Basic, time: Any) -> sp.Expr:
    """The same quantity at another time: ``at_time(h(t-1), 5) == h(5)``."""
    return atom.func(time)  # type: ignore[no-any-return]


_NOT_IDENT = re.compile(r"[^0-9A-Za-z_]")


def _ascii_letter(char: str) -> str:
    # Distinct letters must stay distinct (θ and λ are both common parameter names): Greek
    # letters become their names, as SymPy spells them; other letters their code point.
    words = unicodedata.name(char, "").split()
    if words[:2] == ["GREEK", "SMALL"]:
        return words[-1].lower()
    if words[:2] == ["GREEK", "CAPITAL"]:
        return words[-1].capitalize()
    return f"u{ord(char):04x}"


def identifier(name: str) -> str:
    """A readable Python identifier for a name (Greek letters spelled out, odd characters _)."""
    return _identifier(name)


# Names generated code uses itself; a user's symbol of that name gets a prefix.
_RESERVED = frozenset(
    {"numpy", "math", "loss_value", "max", "min", "abs", "float", "len", "range", "zip", "dict"}
)


def _identifier(name: str) -> str:
    name = "".join(_ascii_letter(c) if not c.isascii() and c.isalnum() else c for c in name)
    ident = _NOT_IDENT.sub("_", name)
    if not ident or ident[0].isdigit() or ident[0] == "_" or keyword.iskeyword(ident):
        ident = "v_" + ident
    elif ident in _RESERVED or ident.startswith("dL_d"):
        ident = "v_" + ident
    return ident


def _time_code(time: sp.Expr) -> str:
    if time.is_Integer:
        return str(time) if time >= 0 else f"m{-time}"
    k = sp.expand(time - t)
    if k == 0:
        return "t"
    if k.is_Integer:
        return f"tp{k}" if k > 0 else f"tm{-k}"
    return _identifier(str(time))


@lru_cache(maxsize=1 << 16)
def code_name(expr: sp.Basic) -> str:
    """A readable Python identifier for a symbol or time atom: ``h(3)`` -> ``h__3``."""
    if is_time_atom(expr):
        return f"{_identifier(expr.func.__name__)}__{_time_code(time_of(expr))}"
    if isinstance(expr, sp.Symbol):
        return _identifier(expr.name)
    raise TypeError(f"code_name needs a symbol or time atom, got {expr!r}")


def latex_time(time: sp.Expr) -> str:
    """Time argument as the book writes it: ``t-1``, ``t+1``, ``3`` (no spaces)."""
    if time.is_Integer:
        return str(time)
    k = sp.expand(time - t)
    if k.is_Integer:
        return "t" if k == 0 else (f"t+{k}" if k > 0 else f"t-{-k}")
    return sp.latex(time)


def _depends_on_time(expr: sp.Basic) -> bool:
    return bool(time_atoms(expr)) or t in expr.free_symbols


class NotationLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with the book's notation for time-indexed quantities."""

    def _deal_with_super_sub(self, string: str, style: str = "plain") -> str:
        # SymPy reads a name ending in "scr" (wscr) as \mathscr{w}, which needs the mathrsfs
        # package that notes do not load (nor does TeX Live's base); print the name as written.
        text = super()._deal_with_super_sub(string, style)
        return re.sub(r"\\mathscr\{([^{}]*)\}", r"{\1}scr", text)  # type: ignore[no-any-return]

    def _print_Function(self, expr: Any, exp: Any = None) -> str:  # noqa: N802 (SymPy hook)
        if isinstance(expr, AppliedUndef):
            if is_time_atom(expr):
                body = self._print(sp.Symbol(expr.func.__name__))
                tex = f"{body}^{{({latex_time(time_of(expr))})}}"
                return f"\\left({tex}\\right)^{{{exp}}}" if exp is not None else tex
            return self._print_abstract(expr, exp)
        return super()._print_Function(expr, exp)  # type: ignore[no-any-return]

    def _print_abstract(self, expr: Any, exp: Any) -> str:
        # The lecture's f(s^{(t-1)}, x^{(t)}; \theta): time-varying arguments, then parameters.
        varying = [a for a in expr.args if _depends_on_time(a)]
        fixed = [a for a in expr.args if not _depends_on_time(a)]
        inner = ", ".join(self._print(a) for a in varying)
        if fixed:
            inner = (inner + "; " if inner else "") + ", ".join(self._print(a) for a in fixed)
        name = self._print(sp.Symbol(expr.func.__name__))
        tex = f"{name}({inner})"
        return f"{tex}^{{{exp}}}" if exp is not None else tex

    def _print_Derivative(self, expr: Any) -> str:  # noqa: N802 (SymPy hook)
        # The book's \frac{\partial L^{(t)}}{\partial h^{(t)}} for a quantity by a quantity.
        (var, count), *rest = expr.variable_count
        if not rest and count == 1 and (expr.expr.is_Symbol or is_time_atom(expr.expr)):
            return f"\\frac{{\\partial {self._print(expr.expr)}}}{{\\partial {self._print(var)}}}"
        return super()._print_Derivative(expr)  # type: ignore[no-any-return]

    def _print_ElementwiseApplyFunction(self, expr: Any) -> str:  # noqa: N802
        # tanh applied elementwise to a vector prints as \tanh(W h + b), as in the book.
        slot = sp.Dummy("slot")
        return self._print(expr.function(slot)).replace(self._print(slot), self._print(expr.expr))


class NotationStrPrinter(StrPrinter):
    """SymPy's str printer, with elementwise functions of vectors printed as ``tanh(W*h(t-1))``."""

    def _print_ElementwiseApplyFunction(self, expr: Any) -> str:  # noqa: N802 (SymPy hook)
        slot = sp.Dummy("slot")
        return self._print(expr.function(slot)).replace(self._print(slot), self._print(expr.expr))

    def _print_MatrixBase(self, expr: Any) -> str:  # noqa: N802
        return f"Matrix({self._print(expr.tolist())})"  # one line, for one-line equations


def str_expr(expr: Any) -> str:
    """Plain text for any SymPy object, as ``str`` gives it but readable for vector recurrences."""
    return NotationStrPrinter().doprint(expr)  # type: ignore[no-any-return]


def latex_expr(expr: Any, **settings: Any) -> str:
    """LaTeX for any SymPy object in symrnn's notation."""
    return NotationLatexPrinter(settings).doprint(expr)  # type: ignore[no-any-return]
