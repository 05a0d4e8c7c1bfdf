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
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef, UndefinedFunction
from sympy.matrices.expressions.matadd import MatAdd
from sympy.matrices.expressions.matmul import MatMul
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
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
    "latex_bold",
    "lecture_text",
    "LectureTextPrinter",
    "greek",
    "greek_name",
    "latex_char",
    "adjoint_name",
    "is_adjoint_name",
    "Gradients",
    "compiled_summary",
    "init_printing",
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
    elif ident in _RESERVED or is_adjoint_name(ident):
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


_ADJOINT_PREFIX = "dL_d"


def adjoint_name(name: str) -> str:
    """The code identifier of the adjoint dL/dq of a quantity whose identifier is ``name``:
    ``adjoint_name("h__3") == "dL_dh__3"`` (user names never start with ``dL_d``)."""
    return f"{_ADJOINT_PREFIX}{name}"


def is_adjoint_name(identifier: str) -> bool:
    """Whether a code identifier names an adjoint (:func:`adjoint_name`)."""
    return identifier.startswith(_ADJOINT_PREFIX)


_GREEK_NAMES = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega"
).split()


def greek(name: str) -> str:
    """A Greek letter's name as the letter, as SymPy prints it in LaTeX: ``theta`` -> ``θ``,
    ``Sigma`` -> ``Σ`` (``lamda`` too, SymPy's spelling); other names unchanged.

    >>> greek("theta"), greek("Lambda"), greek("w")
    ('θ', 'Λ', 'w')
    """
    key = "lambda" if name.lower() == "lamda" else name.lower()
    if key not in _GREEK_NAMES:
        return name
    letter = unicodedata.lookup(f"GREEK SMALL LETTER {key.upper().replace('LAMBDA', 'LAMDA')}")
    return letter.upper() if name[0].isupper() else letter


def greek_name(letter: str) -> str | None:
    """The name of a Greek letter, the inverse of :func:`greek`: ``σ`` -> ``sigma``,
    ``Λ`` -> ``Lambda``; None for any other character.

    >>> greek_name("σ"), greek_name("Λ"), greek_name("w")
    ('sigma', 'Lambda', None)
    """
    words = unicodedata.name(letter, "").split()
    if words[:2] not in (["GREEK", "SMALL"], ["GREEK", "CAPITAL"]) or words[2:3] != ["LETTER"]:
        return None
    name = words[-1].lower().replace("lamda", "lambda")
    return name.capitalize() if words[1] == "CAPITAL" else name


#: Symbols that labels and library messages use, as LaTeX math.
_MATH_SYMBOLS = {
    "×": r"\times",
    "·": r"\cdot",
    "⊙": r"\odot",
    "∘": r"\circ",
    "→": r"\to",
    "…": r"\dots",
    "−": "-",
}


def latex_char(char: str) -> str | None:
    r"""A non-ASCII character of a label or message as LaTeX math (symbols and Greek letters);
    None for any other.

    >>> latex_char("⊙"), latex_char("λ"), latex_char("é")
    ('\\odot', '\\lambda', None)
    """
    if char in _MATH_SYMBOLS:
        return _MATH_SYMBOLS[char]
    name = greek_name(char)
    return sp.latex(sp.Symbol(name)) if name else None


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


def _time_key(time: Any) -> tuple[int, Any]:
    """Times in order: integers by value, then ``t + k`` by k, then anything else by name."""
    time = sp.sympify(time, strict=True)
    if time.is_Integer:
        return (0, int(time))
    k = sp.expand(time - t)
    if k.is_Integer:
        return (1, int(k))
    return (2, str(time))


#: Classes of gradient placeholders (``Adjoint`` in diff, ``Nabla`` in matrix_form), named here
#: because notation imports nothing of symrnn.
_BACKWARD = frozenset({"Adjoint", "Nabla", "Sensitivity"})


@dataclass(frozen=True)
class _Term:
    """What ordering a term needs to know, from one walk over its tree."""

    times: tuple[tuple[int, Any], ...]  # of every time-indexed quantity (scalars and vectors)
    quantities: bool  # reads a time-indexed quantity or a vector at all
    adjoint: bool  # holds an adjoint / gradient placeholder
    derivative: bool  # holds a Derivative (the direct term of a per-step loss)
    size: int  # nodes of the tree


@lru_cache(maxsize=1 << 14)
def _term(expr: Any) -> _Term:
    times: list[tuple[int, Any]] = []
    quantities = adjoint = derivative = False
    size = 0
    for node in sp.preorder_traversal(expr):
        size += 1
        if isinstance(node, AppliedUndef):
            quantities = True
            if is_time_atom(node):
                times.append(_time_key(time_of(node)))
        elif hasattr(node, "components") and hasattr(node, "time"):  # a VectorAt
            quantities = True
            times.append(_time_key(node.time))
        elif isinstance(node, sp.Derivative):
            derivative = True
        adjoint = adjoint or type(node).__name__ in _BACKWARD
    return _Term(tuple(times), quantities, adjoint, derivative, size)


def book_order(terms: Iterable[Any]) -> list[Any]:
    r"""Terms of a sum in the book's order.

    Forward quantities: constants first (a negative number last), then by the latest time they
    read, as in
    :math:`\mathbf{b} + \mathbf{W} \mathbf{h}^{(t-1)} + \mathbf{U} \mathbf{x}^{(t)}`
    (Goodfellow et al. eq. 10.8) and :math:`1 - z`.  Gradients run backwards: the terms from
    later steps first and the direct term of the per-step loss last (eq. 10.21).  Terms at the
    same time keep SymPy's order, shorter ones first.

    >>> h, x = time_function("h"), time_function("x")
    >>> b, u, w = sp.symbols("b u w")
    >>> book_order([u * x(t), w * h(t - 1), b])
    [b, w*h(t - 1), u*x(t)]
    """
    terms = list(terms)
    info = [_term(term) for term in terms]
    backward = [i.adjoint or i.derivative for i in info]
    keyed = []
    for i, (term, about) in enumerate(zip(terms, info, strict=True)):
        latest = max(about.times, default=(3, 0))
        if any(backward) and not backward[i]:
            # a direct term already written out (h - y): last, after the terms from later steps
            rank: tuple[Any, ...] = (3, latest)
        elif term.is_Number and term.is_negative:
            rank = (4,)  # h - 1, not -1 + h
        elif not about.quantities:
            rank = (0,)
        elif backward[i]:
            direct = about.derivative and not about.adjoint
            rank = (3,) if direct else (2, -latest[0], _negate(latest[1]))
        else:
            rank = (1, latest)
        keyed.append((rank, about.size if rank != (0,) else 0, i, term))
    keyed.sort(key=lambda k: k[:3])
    return [k[3] for k in keyed]


def hadamard_order(factors: Iterable[Any]) -> list[Any]:
    r"""Factors of a Hadamard product as the book writes them: the gate first, the value after.

    The latest time first (:math:`\mathbf{z}^{(t)} \odot \mathbf{h}^{(t-1)}`), and among
    factors at the same time the plain vector before an elementwise function
    (:math:`\mathbf{o}^{(t)} \odot \tanh(\mathbf{c}^{(t)})`).
    """
    keyed = []
    for i, f in enumerate(factors):
        about = _term(f)
        latest = max(about.times, default=(-1, 0))
        keyed.append(((-latest[0], _negate(latest[1])), about.size, i, f))
    keyed.sort(key=lambda k: k[:3])
    return [k[3] for k in keyed]


def is_negative_term(term: Any) -> bool:
    """True when a term of a sum prints with a minus sign (``-W h``, ``-2 x``).

    For products of matrices only a leading negative number counts: SymPy's own test negates
    and simplifies the whole product, which costs more than printing it.
    """
    if isinstance(term, MatMul):
        first = term.args[0]
        return bool(first.is_Number and first.is_negative)
    return bool(term.could_extract_minus_sign())


def _negate(value: Any) -> Any:
    return -value if isinstance(value, int) else value


def is_ones_vector(expr: Any) -> bool:
    """True for a column of ones: ``OneMatrix(n, 1)`` or an explicit ``ones(n, 1)``, n > 1."""
    if isinstance(expr, sp.OneMatrix):
        return bool(expr.shape[1] == 1)
    return (
        isinstance(expr, sp.MatrixBase)
        and expr.shape[1] == 1
        and expr.shape[0] > 1
        and all(e == 1 for e in expr)
    )


def _ordered_terms(printer: Any, expr: Any, order: Any) -> list[Any]:
    """Terms of a sum in the book's order; with ``order="none"`` a sum of matrices keeps the
    order it was built in (scalar sums inside it are still in the book's order)."""
    order = order or printer._settings.get("order")
    if order == "none":
        return list(expr.args) if isinstance(expr, MatAdd) else book_order(expr.args)
    return book_order(printer._as_ordered_terms(expr, order=order))


class NotationLatexPrinter(LatexPrinter):
    r"""SymPy's LaTeX printer with the book's notation.

    Time-indexed quantities as :math:`h^{(t-1)}`; vectors and parameter matrices bold
    (:math:`\mathbf{W}`, :math:`\mathbf{b}`); sums in the book's order
    (:math:`\mathbf{b} + \mathbf{W} \mathbf{h}^{(t-1)} + \mathbf{U} \mathbf{x}^{(t)}`, see
    :func:`book_order`; ``order="none"`` keeps the order of the arguments); Hadamard products as
    :math:`\odot`; a column of ones as :math:`\mathbf{1}`; transposes as :math:`^\top`.
    """

    _default_settings = {**LatexPrinter._default_settings, "mat_symbol_style": "bold"}

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
        tex = _abstract_call(expr, self._print)
        return f"{tex}^{{{exp}}}" if exp is not None else tex

    def _print_Add(self, expr: Any, order: Any = None) -> str:  # noqa: N802 (SymPy hook)
        tex = ""
        terms = _ordered_terms(self, expr, order)
        for i, term in enumerate(terms):
            if i > 0:
                if is_negative_term(term):
                    tex += " - "
                    term = -term
                else:
                    tex += " + "
            elif is_negative_term(term) and not term.is_Number:
                tex += "- "
                term = -term
            term_tex = self._print(term)
            if self._needs_add_brackets(term):
                term_tex = f"\\left({term_tex}\\right)"
            tex += term_tex
        return tex

    def _print_MatrixBase(self, expr: Any) -> str:  # noqa: N802 (SymPy hook)
        if is_ones_vector(expr):
            return "\\mathbf{1}"
        return super()._print_MatrixBase(expr)  # type: ignore[no-any-return]

    _print_ImmutableMatrix = _print_ImmutableDenseMatrix = _print_MatrixBase  # noqa: N815
    _print_Matrix = _print_MutableDenseMatrix = _print_MatrixBase  # noqa: N815

    def _print_HadamardProduct(self, expr: Any) -> str:  # noqa: N802 (SymPy hook)
        prec = PRECEDENCE["Mul"]
        return " \\odot ".join(
            self.parenthesize(a, prec, strict=True) for a in hadamard_order(expr.args)
        )

    def _print_MatMul(self, expr: Any) -> str:  # noqa: N802 (SymPy hook)
        # The book's W^T (\nabla_{h} L) h^T: a gradient inside a product stands in parentheses.
        text = super()._print_MatMul(expr)
        if len(expr.args) < 2:
            return text  # type: ignore[no-any-return]
        for arg in expr.args:
            if getattr(arg, "parenthesized_in_products", False):
                tex = self._print(arg)
                text = text.replace(tex, f"\\left({tex}\\right)")
        return text  # type: ignore[no-any-return]

    def _print_Transpose(self, expr: Any) -> str:  # noqa: N802 (SymPy hook)
        # The book's h^{(t)\top}: the transpose joins the superscript of a time-indexed vector.
        tex = self._print(expr.arg)
        if tex.endswith(")}") and "^{(" in tex and not tex.startswith("\\left"):
            return tex[:-1] + "\\top}"
        if getattr(expr.arg, "is_symbol", False) or isinstance(expr.arg, sp.MatrixSymbol):
            return f"{tex}^{{\\top}}"
        return f"\\left({tex}\\right)^{{\\top}}"

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
    """SymPy's str printer in the book's notation: elementwise functions of vectors as
    ``tanh(W*h(t-1))``, sums in the book's order, Hadamard products as ``⊙``, a column of ones
    as ``1``."""

    def _print_Add(self, expr: Any, order: Any = None) -> str:  # noqa: N802 (SymPy hook)
        terms = _ordered_terms(self, expr, order)
        out = ""
        for i, term in enumerate(terms):
            negative = is_negative_term(term) and not (i == 0 and term.is_Number)
            text = self.parenthesize(-term if negative else term, PRECEDENCE["Add"])
            if i == 0:
                out = f"-{text}" if negative else text
            else:
                out += f" - {text}" if negative else f" + {text}"
        return out

    def _print_HadamardProduct(self, expr: Any) -> str:  # noqa: N802 (SymPy hook)
        prec = PRECEDENCE["Mul"]
        factors = hadamard_order(expr.args)
        return " ⊙ ".join(self.parenthesize(a, prec, strict=True) for a in factors)

    def _print_ElementwiseApplyFunction(self, expr: Any) -> str:  # noqa: N802 (SymPy hook)
        slot = sp.Dummy("slot")
        return self._print(expr.function(slot)).replace(self._print(slot), self._print(expr.expr))

    def _print_MatrixBase(self, expr: Any) -> str:  # noqa: N802
        if is_ones_vector(expr):
            return "1"
        return f"Matrix({self._print(expr.tolist())})"  # one line, for one-line equations

    def _print_OneMatrix(self, expr: Any) -> str:  # noqa: N802
        return "1" if expr.shape[1] == 1 else super()._print_OneMatrix(expr)


class LectureTextPrinter(NotationStrPrinter):
    """Plain text in the lecture's notation: ``s^{(3)} = f(f(s^{(1)}; θ); θ)``.

    Time-indexed quantities as ``h^{(t-1)}``, an abstract update as ``f(time-varying; fixed)``
    (the same rule as :class:`NotationLatexPrinter`), Greek names as letters.
    """

    def _print_Function(self, expr: Any) -> str:  # noqa: N802 (SymPy hook)
        if isinstance(expr, AppliedUndef):
            if is_time_atom(expr):
                return f"{expr.func.__name__}^{{({latex_time(time_of(expr))})}}"
            return _abstract_call(expr, self._print)
        return super()._print_Function(expr)  # type: ignore[no-any-return]

    def _print_Symbol(self, expr: Any) -> str:  # noqa: N802 (SymPy hook)
        return greek(expr.name)


def _abstract_call(expr: Any, show: Any) -> str:
    """The lecture's ``f(s^{(t-1)}, x^{(t)}; θ)``: time-varying arguments, then parameters."""
    varying = [a for a in expr.args if _depends_on_time(a)]
    fixed = [a for a in expr.args if not _depends_on_time(a)]
    inner = ", ".join(show(a) for a in varying)
    if fixed:
        inner = (inner + "; " if inner else "") + ", ".join(show(a) for a in fixed)
    return f"{show(sp.Symbol(expr.func.__name__))}({inner})"


def lecture_text(expr: Any) -> str:
    """Plain text in the lecture's notation (:class:`LectureTextPrinter`).

    >>> s, f, theta = time_function("s"), sp.Function("f"), sp.Symbol("theta")
    >>> lecture_text(f(f(s(1), theta), theta))
    'f(f(s^{(1)}; θ); θ)'
    """
    return LectureTextPrinter().doprint(expr)  # type: ignore[no-any-return]


def str_expr(expr: Any, **settings: Any) -> str:
    """Plain text for any SymPy object, as ``str`` gives it but readable for vector recurrences
    (``order="none"`` keeps the order of the terms as built)."""
    return NotationStrPrinter(settings).doprint(expr)  # type: ignore[no-any-return]


def latex_bold(name: str) -> str:
    r"""The name of a vector or matrix in bold, its subscript upright: ``W_z`` ->
    ``\mathbf{W}_{z}``, as the printer writes parameter matrices.

    >>> latex_bold("W_z"), latex_bold("h")
    ('\\mathbf{W}_{z}', '\\mathbf{h}')
    """
    return latex_expr(sp.MatrixSymbol(name, 2, 2))


def latex_expr(expr: Any, **settings: Any) -> str:
    """LaTeX for any SymPy object in symrnn's notation."""
    return NotationLatexPrinter(settings).doprint(expr)  # type: ignore[no-any-return]


# ================================================================================ notebooks
class Gradients(dict):  # type: ignore[type-arg]
    r"""A dict of gradients (``wrt -> derivative``) that a notebook shows as a table.

    It is the plain dict :func:`symrnn.grad` returns (same keys, values, ``repr`` and
    equality), with ``_repr_latex_`` giving one row :math:`\partial L / \partial w = \dots` per
    entry, in the book's notation.

    >>> h, w = time_function("h"), sp.Symbol("w")
    >>> g = Gradients({w: 2 * h(1) * h(0)})
    >>> g == {w: 2 * h(1) * h(0)}, g[w]
    (True, 2*h(0)*h(1))
    >>> g.latex_rows()
    ['\\frac{\\partial L}{\\partial w} &=& 2 h^{(0)} h^{(1)}']
    """

    def latex_rows(self) -> list[str]:
        """``\\frac{\\partial L}{\\partial w} &=& value`` for every entry."""
        rows = []
        for wrt, value in self.items():
            name = latex_expr(wrt)
            rows.append(f"\\frac{{\\partial L}}{{\\partial {name}}} &=& {latex_expr(value)}")
        return rows

    def _repr_latex_(self) -> str:
        body = " \\\\ ".join(self.latex_rows())
        return f"$\\displaystyle \\begin{{array}}{{rcl}} {body} \\end{{array}}$"


def compiled_summary(compiled: Any) -> str:
    r"""A one-line summary of compiled NumPy code (``symrnn.Compiled``), for its ``repr``: the
    recurrence, mode, dtype, parameter shapes and inputs; the source is one attribute away.

    >>> from types import SimpleNamespace
    >>> c = SimpleNamespace(recurrence=SimpleNamespace(name="elman"), mode="scan",
    ...     dtype="float64", steps=None, param_shapes={"W": (3, 3), "b": (3,)},
    ...     input_names=["x"], source="def forward():\n    pass\n")
    >>> for part in compiled_summary(c).split("; "):
    ...     print(part)
    <Compiled 'elman': scan code, float64
    parameters W (3, 3), b (3,)
    inputs x
    .source has 2 lines>
    """
    name = f" {compiled.recurrence.name!r}" if getattr(compiled.recurrence, "name", "") else ""
    steps = f", {compiled.steps} steps" if getattr(compiled, "steps", None) else ""
    params = ", ".join(f"{p} {shape}" for p, shape in compiled.param_shapes.items()) or "none"
    inputs = ", ".join(compiled.input_names) or "none"
    lines = len(compiled.source.splitlines())
    return (
        f"<Compiled{name}: {compiled.mode} code{steps}, {compiled.dtype}; parameters {params}; "
        f"inputs {inputs}; .source has {lines} lines>"
    )


def _display_latex(expr: Any, **settings: Any) -> str:
    """LaTeX for IPython's display: the book's notation, in display style."""
    return f"$\\displaystyle {latex_expr(expr)}$"


def init_printing(**options: Any) -> None:
    r"""Make IPython (Jupyter) display SymPy expressions in the book's notation.

    After ``sr.init_printing()``, a closed form such as ``U.closed_form(2)`` shows as
    :math:`\tanh(b + w \tanh(b + w h^{(0)} + u x^{(1)}) + u x^{(2)})` instead of SymPy's
    ``h{\left(0 \right)}``; plain text uses :func:`str_expr`.  ``options`` go to
    :func:`sympy.init_printing` (e.g. ``ip=`` a shell).  Outside IPython this sets the
    interactive interpreter's display hook, as SymPy's own does.
    """
    options.setdefault("use_latex", "mathjax")
    options.setdefault("pretty_print", False)  # plain text as str_expr, not SymPy's 2-D art
    sp.init_printing(latex_printer=_display_latex, str_printer=str_expr, **options)
