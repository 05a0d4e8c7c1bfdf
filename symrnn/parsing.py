r"""Read equations and expressions from strings with a whitelist parser.

Strings from the command line and from model files become SymPy objects here.  The text is never
evaluated: :func:`ast.parse` turns it into a syntax tree, and only arithmetic (``+ - * / **``,
unary ``-``/``+``), numbers, names and calls of plain names are turned into SymPy objects; every
other construct is refused with a one-line :class:`~symrnn.errors.ParseError`.  Sizes have
stated limits (:data:`MAX_TEXT`, :data:`MAX_DEPTH`, :data:`MAX_TERMS`, :data:`MAX_ARGS`,
:data:`MAX_NUMBER_DIGITS`, :data:`MAX_EXPONENT`, :data:`MAX_EXPONENT_DIGITS`,
:data:`MAX_ARGUMENT_DIGITS`); an input beyond one raises :class:`~symrnn.errors.LimitError`
before any expensive work is done.

What a name means:

* ``t`` is the time index :data:`symrnn.notation.t` and ``pi`` is :math:`\pi`;
* other bare names are looked up in ``names`` and are otherwise real symbols (``theta`` prints
  as :math:`\theta`);
* a call ``h(t-1)``, ``x(t)``, ``s(3)`` of an unknown name with one argument in ``t`` (or an
  integer) is a time-indexed quantity, :func:`symrnn.notation.time_function`;
* ``tanh``, ``sigmoid``, ``exp`` … are the functions of :data:`KNOWN_FUNCTIONS` (``Max`` and
  ``Min`` of symbolic arguments stay unevaluated: comparing them costs SymPy seconds);
* names listed in ``functions`` are abstract update functions, like the lecture's ``f`` in
  :math:`s^{(t)} = f(s^{(t-1)}; \theta)`, and take any arguments.

With vectors and matrices in ``names`` (:func:`symrnn.vector`, :func:`symrnn.matrix`), as in
model files with ``vectors`` and ``matrices``: ``@`` is the matrix product; ``*`` between two
vectors is the elementwise (Hadamard) product, and a matrix times a vector or matrix is the matrix
product, as SymPy prints it (``W*h(t - 1)``); ``**`` and the known functions apply elementwise;
``W.T`` is the transpose (the only attribute, and only of a matrix or vector); a scalar added to a
vector is broadcast (``1 - z(t)`` is
:math:`\mathbf{1} - \mathbf{z}^{(t)}`).  Shapes are checked as the text is read; a mismatch
raises a one-line :class:`~symrnn.errors.ShapeError` naming the equation, the terms and both
shapes.

>>> from symrnn.matrices import matrix, vector
>>> n = {"h": vector("h", 3), "z": vector("z", 3), "W": matrix("W", 3, 3)}
>>> parse_expression("(1 - z(t)) * tanh(W.T @ h(t-1))", names=n).shape
(3, 1)

>>> parse_equation("h(t) = tanh(w*h(t-1) + u*x(t) + b)")
Eq(h(t), tanh(b + u*x(t) + w*h(t - 1)))
>>> parse_equations("s(t) = f(s(t-1), theta)  # the lecture's first example", functions=["f"])
[Eq(s(t), f(s(t - 1), theta))]
>>> parse_expression("0.5*x**2")
x**2/2
"""

from __future__ import annotations

import ast
import math
import operator
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from functools import reduce
from types import MappingProxyType
from typing import Any, NoReturn

import sympy as sp

from . import functions as fn
from .errors import LimitError, ParseError, ShapeError, SymrnnError
from .matrices import TimeVector, is_matrix
from .notation import t, time_function

__all__ = [
    "parse_expression",
    "parse_equation",
    "parse_equations",
    "parse_in_scope",
    "check_magnitudes",
    "MAX_MAGNITUDE",
    "KNOWN_FUNCTIONS",
    "MAX_TEXT",
    "MAX_DEPTH",
    "MAX_TERMS",
    "MAX_ARGS",
    "MAX_NUMBER_DIGITS",
    "MAX_EXPONENT",
    "MAX_EXPONENT_DIGITS",
    "MAX_ARGUMENT_DIGITS",
]

#: Characters in one input (for :func:`parse_equations`, in all its strings together).
MAX_TEXT = 100_000
#: Nesting depth: brackets, and calls, powers, unary signs and sums/products in the tree.
MAX_DEPTH = 100
#: Terms of one flat sum ``a + b - c …`` or factors of one flat product ``a*b/c …``.
MAX_TERMS = 1_000
#: Arguments of one call.
MAX_ARGS = 32
#: Digits of one number literal.
MAX_NUMBER_DIGITS = 1_000
#: Absolute value of a numeric exponent, whatever the base (``x**100000`` is refused).
MAX_EXPONENT = 10_000
#: Decimal digits of a number computed while reading (a power, product or sum of numbers).
#: Below Python's default limit of 4,300 digits for printing an int (see
#: :func:`sys.set_int_max_str_digits`), so that every result can be printed and turned into code.
MAX_EXPONENT_DIGITS = 4_000
#: Largest absolute value of a number in a recurrence or a loss to compute with (checked by
#: :func:`check_magnitudes` where a recurrence is built and where code is generated, not while
#: reading: a formula may hold larger numbers).  symrnn computes in float64 (largest about
#: 1.8e308); a larger constant would overflow at the first evaluation.
MAX_MAGNITUDE = 10**300
#: Digits of a number inside a call of a known function (``tanh``, ``exp``, ``sqrt`` …) or under
#: a root (``x**0.5``): SymPy's simplification (it factors numbers under roots) and printing (it
#: evaluates ``exp(-n)`` to sort terms) of such numbers slow down steeply with their length.
MAX_ARGUMENT_DIGITS = 100

_EXAMPLE_EXPRESSION = "tanh(w*h(t-1) + x(t))"
_EXAMPLE_EQUATION = "h(t) = tanh(w*h(t-1) + x(t))"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_MAX_NAME = 64
_LONG_NUMBER = re.compile(f"[0-9]{{{MAX_NUMBER_DIGITS + 1}}}")
_NUMBER_BOUND = 10**MAX_NUMBER_DIGITS
_QUOTE_CHARS = 60


#: Functions a string may call: name -> (SymPy callable, least and most number of arguments).
KNOWN_FUNCTIONS: Mapping[str, tuple[Callable[..., Any], int, int]] = MappingProxyType(
    {
        "tanh": (fn.tanh, 1, 1),
        "sigmoid": (fn.sigmoid, 1, 1),
        "relu": (fn.relu, 1, 1),
        "softplus": (fn.softplus, 1, 1),
        "exp": (fn.exp, 1, 1),
        "log": (fn.log, 1, 1),
        "sqrt": (fn.sqrt, 1, 1),
        "sin": (fn.sin, 1, 1),
        "cos": (fn.cos, 1, 1),
        "tan": (fn.elementwise(sp.tan), 1, 1),
        "sinh": (fn.elementwise(sp.sinh), 1, 1),
        "cosh": (fn.elementwise(sp.cosh), 1, 1),
        "atan": (fn.elementwise(sp.atan), 1, 1),
        "asinh": (fn.elementwise(sp.asinh), 1, 1),
        "erf": (fn.elementwise(sp.erf), 1, 1),
        "Abs": (fn.elementwise(sp.Abs), 1, 1),
        "abs": (fn.elementwise(sp.Abs), 1, 1),
        "Max": (sp.Max, 2, MAX_ARGS),
        "Min": (sp.Min, 2, MAX_ARGS),
    }
)

_CONSTRUCTS: dict[type, str] = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "indexing is not allowed",
    ast.Slice: "slices are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "'and'/'or' are not allowed",
    ast.IfExp: "conditional expressions (a if c else b) are not allowed",
    ast.Starred: "starred arguments are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.List: "lists are not allowed",
    ast.Tuple: "tuples (a comma outside a call) are not allowed",
    ast.Set: "sets are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}

_OPERATORS: dict[type, str] = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.Not: "not",
    ast.Invert: "~",
}

_SUM = (ast.Add, ast.Sub)
_PRODUCT = (ast.Mult, ast.Div)


def parse_expression(
    text: str, *, names: Mapping[str, Any] | None = None, functions: Iterable[str] = ()
) -> sp.Expr:
    """Read one expression.

    Parameters
    ----------
    text : str
        Python-like arithmetic such as ``"tanh(w*h(t-1) + u*x(t) + b)"``.
    names : mapping, optional
        What a name stands for instead of a new real symbol: a SymPy object or a number for
        a bare name, a callable (an undefined function, a ``Lambda``, a
        :func:`symrnn.matrices.vector`) for a name that is called.  ``t`` and ``pi`` are
        fixed and not looked up.
    functions : iterable of str
        Names of abstract update functions, like ``f`` in ``f(s(t-1), theta)``.

    Returns
    -------
    sympy.Expr
        The expression (a matrix expression if ``names`` supplies matrices).

    Raises
    ------
    ParseError
        The text is not an allowed expression; the one-line message says why and what to write.
    LimitError
        The text exceeds one of the module's limits.
    ShapeError
        Vectors or matrices from ``names`` are combined with shapes that do not agree.

    Examples
    --------
    >>> parse_expression("sigmoid(w*h(t-1) + 0.25)")
    sigmoid(w*h(t - 1) + 1/4)
    """
    return _Reader(_check_text(text), names, functions).read()


def parse_equation(
    text: str, *, names: Mapping[str, Any] | None = None, functions: Iterable[str] = ()
) -> sp.Eq:
    """Read one equation ``lhs = rhs``.

    The text must contain exactly one ``=`` outside brackets that is not part of ``==``,
    ``<=``, ``>=``, ``!=`` or ``:=``.  Both sides are read as by :func:`parse_expression`.

    Parameters
    ----------
    text : str
        For example ``"o(t) = c + v*h(t)"``.
    names, functions
        As for :func:`parse_expression`.

    Returns
    -------
    sympy.Eq
        ``Eq(lhs, rhs, evaluate=False)``, so that ``x = x`` stays an equation.

    Raises
    ------
    ParseError, LimitError
        As for :func:`parse_expression`, and when the number of ``=`` is not one.

    Examples
    --------
    >>> parse_equation("s(t) = s(t-1) + s(t-2)")
    Eq(s(t), s(t - 2) + s(t - 1))
    """
    text = _check_text(text)
    if not text.strip():
        raise ParseError(f"empty equation; write e.g. {_EXAMPLE_EQUATION}")
    lhs, rhs = _split_equation(text)
    known = _check_functions(functions)
    left = _Reader(lhs, names, known, side="left-hand side", equation=text).read()
    right = _Reader(rhs, names, known, side="right-hand side", equation=text).read()
    if is_matrix(left) or is_matrix(right):
        shapes = [_shape(side.shape) if is_matrix(side) else "scalar" for side in (left, right)]
        if shapes[0] != shapes[1]:
            raise ShapeError(
                f"in the equation {_quote(text)}: the left side {_quote(lhs)} has shape "
                f"{shapes[0]} but the right side {_quote(rhs)} has shape {shapes[1]}; make the "
                "shapes agree (check the sizes in vectors and matrices)"
            )
    try:
        return sp.Eq(left, right, evaluate=False)
    except SymrnnError:
        raise
    except Exception as exc:  # SymPy refuses some pairs, e.g. a matrix equal to a scalar
        raise ParseError(
            f"cannot read {_quote(text)}: SymPy cannot equate the two sides ({_one_line(exc)}); "
            "make both sides scalars or both matrices of the same shape"
        ) from exc


def parse_equations(
    text: str | Sequence[str],
    *,
    names: Mapping[str, Any] | None = None,
    functions: Iterable[str] = (),
) -> list[sp.Eq]:
    """Read several equations: one per line, or separated by ``;``.

    Blank lines and ``#`` comments are ignored; a line ending inside brackets continues on the
    next line, as in Python.  A list of strings is read string by string, and each string may
    hold several equations.

    Parameters
    ----------
    text : str or sequence of str
        The equations.  :data:`MAX_TEXT` applies to all strings together.
    names, functions
        As for :func:`parse_expression`.

    Returns
    -------
    list of sympy.Eq
        In the order written; empty when the input holds no equation.

    Raises
    ------
    ParseError, LimitError
        As for :func:`parse_equation`; the message starts with where the equation is
        (``line 3:`` or ``equations[1], line 2:``).

    Examples
    --------
    >>> parse_equations('''
    ...     h(t) = tanh(w*h(t-1) + u*x(t) + b)   # state
    ...     o(t) = c + v*h(t)                    # output
    ... ''')
    [Eq(h(t), tanh(b + u*x(t) + w*h(t - 1))), Eq(o(t), c + v*h(t))]
    """
    if isinstance(text, str):
        texts, labelled = [text], False
    elif isinstance(text, Sequence):
        texts, labelled = list(text), True
    else:
        raise ParseError(
            f"equations must be a string or a list of strings, got {type(text).__name__}; "
            f"pass e.g. ['{_EXAMPLE_EQUATION}']"
        )
    total = 0
    for i, item in enumerate(texts):
        if not isinstance(item, str):
            raise ParseError(
                f"equations[{i}] must be a string, got {type(item).__name__}; "
                f"pass e.g. ['{_EXAMPLE_EQUATION}']"
            )
        total += len(item)
    if total > MAX_TEXT:
        raise LimitError(
            f"the equations have {total:,} characters, more than the limit of {MAX_TEXT:,}; "
            "split them into smaller files or shorten them with intermediate quantities"
        )
    known = _check_functions(functions)
    equations = []
    for i, item in enumerate(texts):
        for line, statement in _statements(item):
            where = f"equations[{i}], line {line}" if labelled else f"line {line}"
            try:
                equations.append(parse_equation(statement, names=names, functions=known))
            except SymrnnError as exc:
                raise type(exc)(f"{where}: {exc}") from exc
    return equations


class _Reader:
    """Turns the syntax tree of one expression into a SymPy object."""

    def __init__(
        self,
        text: str,
        names: Mapping[str, Any] | None,
        functions: Iterable[str],
        side: str = "",
        equation: str = "",
    ) -> None:
        self.text = text
        self.source = text.strip()
        self.equation = equation
        self.names: Mapping[str, Any] = {} if names is None else names
        if not isinstance(self.names, Mapping):
            raise ParseError(
                f"names must be a mapping from names to SymPy objects, "
                f"got {type(names).__name__}; pass e.g. {{'w': sympy.Symbol('w')}}"
            )
        self.functions = _check_functions(functions)
        self.side = side

    def read(self) -> Any:
        text = self.text
        if not text.strip():
            what = f"empty {self.side}" if self.side else "empty expression"
            example = _EXAMPLE_EQUATION if self.side else _EXAMPLE_EXPRESSION
            raise ParseError(f"{what}; write e.g. {example}")
        depth = _bracket_depth(text)
        if depth > MAX_DEPTH:
            self._limit(f"brackets are nested {depth} deep, more than the limit of {MAX_DEPTH}")
        if _LONG_NUMBER.search(text):
            self._limit(f"a number has more than {MAX_NUMBER_DIGITS:,} digits")
        if not self.side and any(_equals_signs(text)):
            self._fail(
                "an expression has no '='",
                f"read an equation with parse_equation, e.g. {_EXAMPLE_EQUATION}",
            )
        source = text.strip()
        try:
            with warnings.catch_warnings():
                # "1if x else y" only warns; as an error it is a SyntaxError with a message.
                warnings.simplefilter("error")
                tree = ast.parse(source, mode="eval")
        except SyntaxError as exc:
            self._fail(f"{_one_line(exc.msg)}{_place(exc, source)}")
        except (RecursionError, MemoryError):
            self._limit(
                "it is too long or too deeply nested for Python's parser (the limits are "
                f"{MAX_TERMS:,} terms in one sum or product and {MAX_DEPTH} levels of nesting)"
            )
        except ValueError as exc:  # e.g. a NUL character
            self._fail(_one_line(exc))
        try:
            return self._build(tree.body, 1)
        except SymrnnError:
            raise
        except (RecursionError, MemoryError):
            self._limit("it is too deeply nested to build")
        except Exception as exc:  # SymPy may refuse odd but well-formed input, e.g. Max(zoo, 1)
            self._fail(f"SymPy cannot build it ({type(exc).__name__}: {_one_line(exc)})")

    # -- errors ------------------------------------------------------------------------------

    def _where(self) -> str:
        where = f"cannot read {_quote(self.text)}"
        return f"{where} ({self.side})" if self.side else where

    def _fail(self, problem: str, remedy: str = "") -> NoReturn:
        remedy = remedy or f"write an expression such as {_EXAMPLE_EXPRESSION}"
        raise ParseError(f"{self._where()}: {problem}; {remedy}")

    def _limit(self, problem: str, remedy: str = "") -> NoReturn:
        remedy = remedy or "simplify it or introduce intermediate quantities"
        raise LimitError(f"{self._where()}: {problem}; {remedy}")

    def _shape_error(self, problem: str, remedy: str) -> NoReturn:
        where = f"in the equation {_quote(self.equation)}" if self.equation else self._where()
        raise ShapeError(f"{where}: {problem}; {remedy}")

    def _segment(self, node: ast.AST) -> str:
        """The source text of ``node``, quoted and shortened, to name a term in messages."""
        return _quote(ast.get_source_segment(self.source, node) or type(node).__name__)

    # -- the tree ----------------------------------------------------------------------------

    def _build(self, node: ast.AST, depth: int) -> Any:
        if depth > MAX_DEPTH:
            self._limit(f"it is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, _SUM):
                return self._sum(node, depth)
            if isinstance(node.op, _PRODUCT):
                return self._product(node, depth)
            if isinstance(node.op, ast.Pow):
                base = self._build(node.left, depth + 1)
                return self._power(base, self._build(node.right, depth + 1), node)
            if isinstance(node.op, ast.MatMult):
                return self._matmul(node, depth)
            self._refuse_operator(node.op)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return operator.neg(self._build(node.operand, depth + 1))
            if isinstance(node.op, ast.UAdd):
                return self._build(node.operand, depth + 1)
            self._refuse_operator(node.op)
        if isinstance(node, ast.Constant):
            return self._constant(node.value)
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        if isinstance(node, ast.Attribute) and node.attr == "T":
            return self._transpose(node, depth)
        self._fail(_CONSTRUCTS.get(type(node), f"{type(node).__name__} is not allowed"))

    def _refuse_operator(self, op: ast.AST) -> NoReturn:
        symbol = _OPERATORS.get(type(op), type(op).__name__)
        remedy = "write x**2 for a power" if symbol == "^" else ""
        self._fail(f"the operator {symbol} is not allowed; use + - * / **", remedy)

    def _chain(self, node: ast.BinOp, ops: tuple[type, ...]) -> list[tuple[bool, ast.AST]]:
        """Operands of a left-deep chain ``a op b op c …``, each with 'is the op inverse'."""
        # Python parses a + b + c as ((a + b) + c): walking down .left needs no recursion.
        chain: list[tuple[bool, ast.AST]] = []
        current: ast.AST = node
        while isinstance(current, ast.BinOp) and isinstance(current.op, ops):
            chain.append((isinstance(current.op, (ast.Sub, ast.Div)), current.right))
            current = current.left
            if len(chain) >= MAX_TERMS:
                what = "terms in one sum" if ops is _SUM else "factors in one product"
                self._limit(f"it has more than {MAX_TERMS:,} {what}")
        chain.append((False, current))
        chain.reverse()
        return chain

    def _sum(self, node: ast.BinOp, depth: int) -> Any:
        terms, nodes = [], []
        for negate, operand in self._chain(node, _SUM):
            term = self._build(operand, depth + 1)
            terms.append(operator.neg(term) if negate else term)
            nodes.append(operand)
        if any(is_matrix(term) for term in terms):
            return self._matrix_sum(terms, nodes)
        self._check_sum(terms)
        return sp.Add(*terms)

    def _matrix_sum(self, terms: list[Any], nodes: list[ast.AST]) -> Any:
        """A sum with vectors or matrices: shapes must agree; scalars are broadcast."""
        first = next(i for i, term in enumerate(terms) if is_matrix(term))
        shape = terms[first].shape
        for term, operand in zip(terms, nodes, strict=True):
            if is_matrix(term) and term.shape != shape:
                self._shape_error(
                    f"the terms {self._segment(nodes[first])} (shape {_shape(shape)}) and "
                    f"{self._segment(operand)} (shape {_shape(term.shape)}) of a sum have "
                    "different shapes",
                    "make the shapes agree (check the sizes in vectors and matrices)",
                )
        # A scalar added to a vector stands for the scalar in every entry: 1 - z is 1 - z_i.
        ones = sp.OneMatrix(*shape)
        parts = [
            term if is_matrix(term) else ones if term == 1 else term * ones
            for term in terms
            if is_matrix(term) or not _is_zero(term)
        ]
        return reduce(operator.add, parts)

    def _product(self, node: ast.BinOp, depth: int) -> Any:
        factors, inverse, nodes = [], [], []
        for invert, operand in self._chain(node, _PRODUCT):
            factor = self._build(operand, depth + 1)
            if invert and _is_zero(factor):
                self._fail("it divides by zero", "remove the division or change the divisor")
            factors.append(factor)
            inverse.append(invert)
            nodes.append(operand)
        if any(is_matrix(factor) for factor in factors):
            return self._matrix_product(factors, inverse, nodes)
        self._check_product(factors)
        factors = [
            self._power(factor, sp.S.NegativeOne) if invert else factor
            for factor, invert in zip(factors, inverse, strict=True)
        ]
        result = sp.Mul(*factors)
        self._check_exponents(result)
        return result

    def _matrix_product(self, factors: list[Any], inverse: list[bool], nodes: list[Any]) -> Any:
        """``*`` and ``/`` with vectors or matrices: scalar multiples and Hadamard products."""
        result, left = factors[0], nodes[0]
        for factor, invert, operand in zip(factors[1:], inverse[1:], nodes[1:], strict=True):
            if invert and is_matrix(factor):
                self._fail(
                    f"it divides by the vector or matrix {self._segment(operand)}",
                    "divide by scalars only; multiply elementwise by a reciprocal you define",
                )
            if invert:
                result = result / factor
            elif is_matrix(result) and is_matrix(factor) and not _is_column(result, factor):
                # A matrix times a vector or matrix is SymPy's product, as it prints: W*h(t-1).
                self._check_inner(result, factor, left, operand, "*")
                result = result * factor
            elif is_matrix(result) and is_matrix(factor):
                if result.shape != factor.shape:
                    self._shape_error(
                        f"the elementwise product * of {self._segment(left)} (shape "
                        f"{_shape(result.shape)}) and {self._segment(operand)} (shape "
                        f"{_shape(factor.shape)}) needs equal shapes",
                        "make the shapes agree, or write @ for the matrix product",
                    )
                result = _hadamard(result, factor)
            else:
                result = factor * result if is_matrix(factor) else result * factor
            left = operand
        return result

    def _matmul(self, node: ast.BinOp, depth: int) -> Any:
        """``A @ B``: the matrix product of two vectors or matrices whose inner sizes agree."""
        left = self._build(node.left, depth + 1)
        right = self._build(node.right, depth + 1)
        for value, operand in ((left, node.left), (right, node.right)):
            if not is_matrix(value):
                self._fail(
                    f"{self._segment(operand)} in {self._segment(node)} is a scalar, but @ is "
                    "the matrix product of vectors and matrices",
                    "write * to multiply by a scalar, or declare the name in vectors or matrices",
                )
        self._check_inner(left, right, node.left, node.right, "@")
        return left * right

    def _check_inner(self, left: Any, right: Any, a: ast.AST, b: ast.AST, op: str) -> None:
        if left.shape[1] != right.shape[0]:
            self._shape_error(
                f"the matrix product {op} multiplies {self._segment(a)} (shape "
                f"{_shape(left.shape)}) by {self._segment(b)} (shape {_shape(right.shape)}): "
                f"the columns on the left ({left.shape[1]}) must equal the rows on the right "
                f"({right.shape[0]})",
                "check the sizes in vectors and matrices, or transpose with .T",
            )

    def _transpose(self, node: ast.Attribute, depth: int) -> Any:
        value = self._build(node.value, depth + 1)
        if not is_matrix(value):
            self._fail(
                f"{self._segment(node.value)} is a scalar, and .T transposes only vectors and "
                "matrices",
                "drop .T, or declare the name in vectors or matrices",
            )
        return value.T

    def _power(self, base: Any, exponent: Any, node: ast.AST | None = None) -> Any:
        if is_matrix(exponent):
            self._fail("an exponent is a vector or matrix", "use a scalar exponent")
        if is_matrix(base):
            if node is not None and not isinstance(exponent, sp.Number):
                self._fail(
                    f"the elementwise power {self._segment(node)} has a non-numeric exponent",
                    "use a number as the exponent of a vector, e.g. h(t)**2",
                )
            # ** on a vector is elementwise, as in NumPy: h**2 squares each entry.
            return fn.elementwise(lambda entry: self._power(entry, exponent))(base)
        if base == sp.E:  # E**x is exp(x), which has its own guard
            return self._exp(exponent)
        self._check_power(base, exponent)
        if isinstance(base, sp.exp):  # exp(a)**b becomes exp(a*b)
            self._check_exp(base.args[0] * exponent)
        result = sp.Pow(base, exponent)
        self._check_exponents(result)
        return result

    def _exp(self, arg: Any) -> Any:
        if not is_matrix(arg):
            self._check_argument("exp", arg)
            self._check_exp(arg)
        return fn.exp(arg)

    def _check_argument(self, name: str, arg: Any) -> None:
        numbers = arg.atoms(sp.Rational) if isinstance(arg, sp.Basic) else ()
        if any(sum(_rational_digits(number)) > MAX_ARGUMENT_DIGITS for number in numbers):
            self._limit(
                f"{name} is applied to a number with more than {MAX_ARGUMENT_DIGITS} digits",
                "use a shorter number",
            )

    def _check_power(self, base: Any, exponent: Any) -> None:
        """Refuse base**exponent when SymPy would compute a huge number or keep a huge power."""
        if not isinstance(exponent, sp.Number):
            return
        if abs(exponent) > MAX_EXPONENT:
            self._limit(
                f"the exponent {_short(exponent)} is larger than {MAX_EXPONENT:,} "
                "in absolute value",
                "use a smaller exponent or keep the power symbolic",
            )
        if _is_zero(base) and exponent.is_negative:
            self._fail("it divides by zero (0 to a negative power)", "change the base")
        digits = _power_digits(base, exponent)
        if digits > MAX_EXPONENT_DIGITS:
            self._limit(
                f"the power ({_short(base)})**({_short(exponent)}) would compute a number of "
                f"about {_estimate(digits)} digits, more than the limit of "
                f"{MAX_EXPONENT_DIGITS:,}",
                "use a smaller base, exponent or denominator in the exponent",
            )
        if not exponent.is_Integer and _numeric_digits(base) > MAX_ARGUMENT_DIGITS:
            self._limit(
                f"it takes a root of a number with more than {MAX_ARGUMENT_DIGITS} digits",
                "use a shorter number",
            )

    def _check_exp(self, arg: Any) -> None:
        """Refuse exp(arg) when SymPy would turn it into a huge power.

        SymPy rewrites each term c*log(b) of ``arg`` as b**c, combining sums of logs on the
        way (``logcombine``), so any number in such a term may end up in an exponent.
        """
        total = 0.0
        for term in sp.Add.make_args(arg) if isinstance(arg, sp.Expr) else ():
            logs = term.atoms(sp.log)
            if not logs:
                continue
            numbers = _numbers_outside_logs(term)
            scale = sum(max(0.0, _log10(r)) for r in numbers)  # bounds |exponent|
            roots = sum(math.log10(r.q) for r in numbers)  # bounds its denominator
            digits = sum(_numeric_digits(log.args[0]) for log in logs)
            total += digits * (10 ** min(scale, 300) + (10 ** min(roots, 300) if roots else 0))
            if scale > math.log10(MAX_EXPONENT) or total > MAX_EXPONENT_DIGITS:
                self._limit(
                    "exp of a multiple of a log would compute a power with an exponent above "
                    f"{MAX_EXPONENT:,} or a number above {MAX_EXPONENT_DIGITS:,} digits",
                    "use smaller numbers or write the power directly",
                )

    def _constant(self, value: Any) -> Any:
        if isinstance(value, bool):
            self._fail(f"{value} is not allowed", "write 1 or 0")
        if isinstance(value, int):
            if abs(value) >= _NUMBER_BOUND:
                self._limit(f"a number has more than {MAX_NUMBER_DIGITS:,} digits")
            return sp.Integer(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                self._fail("a number is too large for a float", "write a smaller number")
            exact = Fraction(repr(value))
            return sp.Rational(exact.numerator, exact.denominator)
        if value is None:
            self._fail("None is not allowed")
        if value is Ellipsis:
            self._fail("'...' is not allowed")
        if isinstance(value, complex):
            self._fail("complex numbers are not allowed", "use real quantities")
        kind = "bytes" if isinstance(value, bytes) else "string"
        self._fail(f"{kind} literals are not allowed", "write names without quotes")

    def _check_name(self, name: str) -> None:
        if not _NAME.match(name) or "__" in name or len(name) > _MAX_NAME:
            self._fail(
                f"the name {_quote(name)} is not allowed",
                f"names are ASCII letters, digits and single underscores, start with a letter "
                f"and have at most {_MAX_NAME} characters, e.g. h, W_hh, theta",
            )

    def _name(self, name: str) -> Any:
        self._check_name(name)
        if name == "t":
            return t
        if name == "pi":
            return sp.pi
        if name in self.names:
            value = self.names[name]
            if _is_function(value):
                self._fail(
                    f"{name} is a function in names but is used without arguments",
                    f"call it, e.g. {name}(t)",
                )
            if isinstance(value, sp.Basic):
                return value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return self._constant(value)
            self._fail(
                f"names[{name!r}] is a {type(value).__name__}",
                "pass SymPy objects, numbers or functions in names",
            )
        if name in self.functions or name in KNOWN_FUNCTIONS:
            self._fail(f"{name} is a function but is used without arguments", f"call it: {name}(x)")
        return sp.Symbol(name, real=True)

    def _call(self, node: ast.Call, depth: int) -> Any:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                self._fail(_CONSTRUCTS[ast.Attribute])
            self._fail("only names can be called, as in tanh(x)")
        name = node.func.id
        self._check_name(name)
        if node.keywords:
            self._fail(f"keyword arguments are not allowed in {name}(...)")
        if len(node.args) > MAX_ARGS:
            self._limit(f"{name} has {len(node.args)} arguments, more than the limit {MAX_ARGS}")
        args = [self._build(arg, depth + 1) for arg in node.args]
        value: Any = self.names.get(name)
        if isinstance(value, TimeVector) and not (len(args) == 1 and _is_time(args[0])):
            self._fail(
                f"the vector {name} takes one time argument such as t - 1, got "
                f"{self._segment(node)}",
                f"write e.g. {name}(t) or {name}(t-1)",
            )
        if _is_function(value):
            try:
                return value(*args)
            except SymrnnError:
                raise
            except Exception as exc:
                self._fail(
                    f"names[{name!r}] failed on {len(args)} argument(s) "
                    f"({type(exc).__name__}: {_one_line(exc)})",
                    "check the arguments it takes",
                )
        if value is not None:
            self._fail(
                f"{name} is given in names as a value, not a function",
                f"use it without arguments or pass a function for {name}",
            )
        if name in self.functions:
            return sp.Function(name)(*args)
        if name in KNOWN_FUNCTIONS:
            return self._known(name, args)
        if len(args) == 1 and _is_time(args[0]):
            if name in ("t", "pi"):
                self._fail(f"{name} cannot be called", "use another name for the quantity")
            return time_function(name)(args[0])
        known = ", ".join(KNOWN_FUNCTIONS)
        self._fail(
            f"unknown function {name!r}: known functions are {known}; a time-indexed quantity "
            "takes one argument in t such as h(t-1)",
            f"declare an abstract update function with functions=[{name!r}]",
        )

    def _known(self, name: str, args: list[Any]) -> Any:
        function, least, most = KNOWN_FUNCTIONS[name]
        if not least <= len(args) <= most:
            expected = f"{least}" if least == most else f"{least} to {most}"
            plural = "" if most == 1 else "s"
            self._fail(
                f"{name} takes {expected} argument{plural}, got {len(args)}",
                f"write e.g. {name}({', '.join('xyz'[: max(least, 1)])})",
            )
        if name == "exp":
            return self._exp(args[0])
        if name not in ("Max", "Min"):
            self._check_argument(name, args[0])
        if name == "sqrt" and not is_matrix(args[0]):
            return self._power(args[0], sp.S.Half)
        if name in ("Max", "Min") and any(is_matrix(arg) for arg in args):
            self._fail(f"{name} takes scalars, not vectors", f"apply {name} to scalar quantities")
        if name in ("Max", "Min") and not all(arg.is_number for arg in args):
            # Evaluating compares every pair of arguments through the assumptions system:
            # 0.1 s for 8 symbols, 1.5 s for 32.  Left unevaluated, the value is the same.
            return function(*args, evaluate=False)
        return function(*args)

    # -- numbers -----------------------------------------------------------------------------

    def _check_sum(self, terms: list[Any]) -> None:
        """Refuse a sum whose coefficients would grow too long when SymPy collects terms."""
        pairs = (
            (rest, coefficient)
            for term in _flatten(terms, sp.Add)
            if isinstance(term, sp.Expr)
            for coefficient, rest in [term.as_coeff_Mul()]
        )
        self._check_combined(pairs, "its numbers add up to", powers=False)

    def _check_product(self, factors: list[Any]) -> None:
        """Refuse a product whose numbers or combined powers would grow too long."""
        digits = 0.0
        for factor in factors:
            if isinstance(factor, sp.Add):  # SymPy distributes a number over a sum
                digits += max(_coefficient_digits(term) for term in factor.args)
            else:
                digits += _numeric_digits(factor)
        if digits > MAX_EXPONENT_DIGITS:
            self._limit(
                f"its numbers multiply to about {_estimate(digits)} digits, "
                f"more than the limit of {MAX_EXPONENT_DIGITS:,}",
                "use shorter numbers",
            )
        pairs = (
            factor.as_base_exp()
            for factor in _flatten(factors, sp.Mul)
            if isinstance(factor, sp.Expr)
        )
        self._check_combined(pairs, "the exponents of equal bases add up to", powers=True)

    def _check_combined(self, pairs: Iterable[tuple[Any, Any]], what: str, powers: bool) -> None:
        """Refuse when the rationals SymPy adds per key (like terms, equal bases) grow too long.

        The denominators of a group multiply up to their least common multiple L, and the
        numerator of the sum is at most L times the largest numerator times the count.  With
        ``powers``, keys are bases: a rational base b to the summed exponent p/q costs about
        digits(b) * (p/q + q) digits (see :func:`_power_digits`).
        """
        groups: dict[Any, list[Any]] = {}  # key -> [numerator digits, lcm of denominators, n]
        for key, number in pairs:
            if not isinstance(number, sp.Rational) or number == 0:
                continue
            group = groups.setdefault(key, [0.0, 1, 0])
            group[0] = max(group[0], math.log10(abs(number.p)))
            group[1] = math.lcm(group[1], number.q)
            group[2] += 1
            numerator = group[0] + math.log10(group[1]) + math.log10(group[2])
            denominator = math.log10(group[1])
            too_long = numerator + denominator > MAX_EXPONENT_DIGITS
            base = sum(_rational_digits(key)) if powers else 0.0
            if base > 0:  # |sum| <= 10**numerator, its denominator <= 10**denominator
                power = math.log10(base) + max(numerator, denominator) + math.log10(2)
                too_long = too_long or power > math.log10(MAX_EXPONENT_DIGITS)
            if too_long:
                self._limit(
                    f"{what} more than {MAX_EXPONENT_DIGITS:,} digits",
                    "use shorter numbers or fewer fractions",
                )

    def _check_exponents(self, result: Any) -> None:
        for factor in sp.Mul.make_args(result):
            if not (isinstance(factor, sp.Pow) and isinstance(factor.exp, sp.Number)):
                continue
            if abs(factor.exp) > MAX_EXPONENT:
                self._limit(
                    f"the powers combine to the exponent {_short(factor.exp)}, larger than "
                    f"{MAX_EXPONENT:,} in absolute value",
                    "use smaller exponents",
                )
            if sum(_rational_digits(factor.exp)) > MAX_EXPONENT_DIGITS:
                self._limit(
                    f"the powers combine to an exponent with more than "
                    f"{MAX_EXPONENT_DIGITS:,} digits",
                    "use shorter fractions in exponents",
                )


# -- helpers ----------------------------------------------------------------------------------


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise ParseError(
            f"expected a string, got {type(text).__name__}; pass text such as '{_EXAMPLE_EQUATION}'"
        )
    if len(text) > MAX_TEXT:
        raise LimitError(
            f"the text has {len(text):,} characters, more than the limit of {MAX_TEXT:,}; "
            "shorten it with intermediate quantities"
        )
    return text


def _check_functions(functions: Iterable[str]) -> frozenset[str]:
    if isinstance(functions, str):
        raise ParseError(
            f"functions must be a list of names, got the string {_quote(functions)}; "
            f"pass e.g. functions=[{functions[:_MAX_NAME]!r}]"
        )
    try:
        names = frozenset(functions)
    except TypeError as exc:
        raise ParseError(
            f"functions must be a list of names, got {type(functions).__name__}; "
            "pass e.g. functions=['f']"
        ) from exc
    for name in names:
        if (
            not isinstance(name, str)
            or not _NAME.match(name)
            or "__" in name
            or len(name) > _MAX_NAME
            or name in ("t", "pi")
        ):
            raise ParseError(
                f"functions contains {_quote(str(name))}, which is not a usable function name; "
                "use names of letters, digits and single underscores such as 'f' or 'g_h'"
            )
    return names


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth = max(depth - 1, 0)
    return deepest


def _split_equation(text: str) -> tuple[str, str]:
    signs = list(_equals_signs(text))
    if len(signs) == 1:
        (i,) = signs
        return text[:i], text[i + 1 :]
    if signs:
        problem = f"it has {len(signs)} '=' signs"
    elif "==" in text:
        problem = "it has '==' but no '='"
    else:
        problem = "it has no '='"
    raise ParseError(
        f"cannot read {_quote(text)}: {problem}, but an equation has exactly one; "
        f"write one equation such as {_EXAMPLE_EQUATION}"
    )


def _equals_signs(text: str) -> Iterator[int]:
    """Positions of '=' outside brackets that are not part of ==, <=, >=, != or :=."""
    depth = 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif char == "=" and depth == 0:
            before = text[i - 1] if i else ""
            after = text[i + 1] if i + 1 < len(text) else ""
            if before not in ("=", "<", ">", "!", ":") and after != "=":
                yield i


def _statements(text: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each statement: split at newlines and ';' outside brackets."""
    depth, line, start_line = 0, 1, 1
    current: list[str] = []
    in_comment = False
    for char in text:
        if char == "\n":
            line += 1
            in_comment = False
            if depth == 0:
                yield from _statement(start_line, current)
                current, start_line = [], line
                continue
        elif in_comment:
            continue
        elif char == "#":
            in_comment = True
            continue
        elif char == ";" and depth == 0:
            yield from _statement(start_line, current)
            current, start_line = [], line
            continue
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        current.append(char)
    yield from _statement(start_line, current)


def _statement(line: int, chars: list[str]) -> Iterator[tuple[int, str]]:
    statement = "".join(chars)
    if statement.strip():
        yield line, statement.strip()


def _is_time(arg: Any) -> bool:
    """True for an integer, or an expression in t alone without calls, e.g. t - 1."""
    if not isinstance(arg, sp.Expr) or is_matrix(arg):
        return False
    if arg.is_Integer:
        return True
    return arg.free_symbols == {t} and not arg.atoms(sp.Function)


def _is_function(value: Any) -> bool:
    """True for what a caller may pass in names to be called: not a symbol (which SymPy lets
    one call), but an undefined function, a Lambda, a vector or any Python callable."""
    return callable(value) and (not isinstance(value, sp.Basic) or isinstance(value, sp.Lambda))


def _shape(shape: tuple[Any, Any]) -> str:
    return "x".join(str(d) for d in shape)


def _is_column(a: Any, b: Any) -> bool:
    """True when both are column vectors, which ``*`` multiplies elementwise."""
    return bool(a.shape[1] == 1 and b.shape[1] == 1)


def _hadamard(a: Any, b: Any) -> Any:
    if isinstance(a, sp.MatrixBase) and isinstance(b, sp.MatrixBase):
        return sp.ImmutableMatrix(a.multiply_elementwise(b))
    return sp.HadamardProduct(a, b)


def _is_zero(value: Any) -> bool:
    return isinstance(value, sp.Expr) and value == sp.S.Zero


def _flatten(items: list[Any], kind: Any) -> Iterator[Any]:
    for item in items:
        if isinstance(item, kind):
            yield from item.args
        else:
            yield item


def _coefficient(expr: Any) -> Any:
    if isinstance(expr, sp.Expr):
        return expr.as_coeff_Mul()[0]
    return sp.S.One


def _rational_digits(number: Any) -> tuple[float, float]:
    """(log10 |numerator|, log10 denominator) of a rational, zeros for anything else."""
    if isinstance(number, sp.Rational) and number.p != 0:
        return math.log10(abs(number.p)), math.log10(number.q)
    return 0.0, 0.0


def _coefficient_digits(expr: Any) -> float:
    return sum(_rational_digits(_coefficient(expr)))


def _numeric_digits(expr: Any) -> float:
    """Digits of the number SymPy would combine out of ``expr``'s numeric factors."""
    total = 0.0
    for factor in sp.Mul.make_args(expr) if isinstance(expr, sp.Expr) else ():
        if isinstance(factor, sp.Rational):
            total += sum(_rational_digits(factor))
        elif (
            isinstance(factor, sp.Pow)
            and isinstance(factor.base, sp.Rational)
            and isinstance(factor.exp, sp.Rational)
        ):
            total += sum(_rational_digits(factor.base)) * _capped(abs(factor.exp))
    return total


def _power_digits(base: Any, exponent: sp.Rational) -> float:
    """Digits of the numbers SymPy may compute for ``base**exponent``.

    Each numeric factor (n/d)**e of ``base`` becomes (n/d)**r with r = e*exponent: about
    digits(n/d)*|r| digits.  When r = p/q is not an integer, SymPy's search for perfect roots
    also builds powers of n and d: below n**min(p, q) and d**q for r > 0 (the other way round
    for r < 0), since it writes (n/d)**(p/q) as n**(p/q) * d**(k - p/q) / d**k.
    """
    total = 0.0
    for factor in sp.Mul.make_args(base) if isinstance(base, sp.Expr) else ():
        if isinstance(factor, sp.Rational):
            number, power = factor, exponent
        elif (
            isinstance(factor, sp.Pow)
            and isinstance(factor.base, sp.Rational)
            and isinstance(factor.exp, sp.Rational)
        ):
            number, power = factor.base, factor.exp * exponent
        else:
            continue
        top, bottom = _rational_digits(number)
        if power == 0 or top + bottom == 0:
            continue
        total += (top + bottom) * _capped(abs(power))
        if not power.is_Integer:
            near, far = _capped(min(abs(power.p), power.q)), _capped(power.q)
            total += top * near + bottom * far if power > 0 else top * far + bottom * near
    return total


def _capped(number: Any) -> float:
    """A positive int or rational as a float, at most 1e300 (no OverflowError on huge ones)."""
    exponent = math.log10(number) if isinstance(number, int) else _log10(number)
    return float(10 ** min(exponent, 300.0))


def _numbers_outside_logs(expr: sp.Basic) -> list[sp.Rational]:
    numbers: list[Any] = []
    stack: list[Any] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, sp.Rational):
            if node != 0:
                numbers.append(node)
        elif not isinstance(node, sp.log):
            stack.extend(node.args)
    return numbers


def _log10(number: Any) -> float:
    top, bottom = _rational_digits(number)
    return top - bottom


def _one_line(message: Any) -> str:
    return " ".join(str(message).split())[:200]


def _place(error: SyntaxError, source: str) -> str:
    if not error.offset and error.lineno is None:
        return ""
    if (error.lineno or 1) > 1:
        return f" at line {error.lineno}, column {error.offset}"
    if not error.offset or error.offset > len(source):
        return " at the end"
    return f" at column {error.offset}"


def _quote(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _QUOTE_CHARS:
        text = text[: _QUOTE_CHARS - 3] + "..."
    return repr(text)


def _short(expr: Any) -> str:
    digits = _numeric_digits(expr)
    if digits > 20:
        return f"(a number of about {_estimate(digits)} digits)"
    text = str(expr)
    return text if len(text) <= 30 else text[:27] + "..."


def _estimate(digits: float) -> str:
    return f"{digits:,.0f}" if digits < 1e15 else f"{digits:.1e}"


def parse_in_scope(value: Any, scope: Any, what: str = "the expression") -> Any:
    """Read ``value`` with a recurrence's own quantities in scope when it is a string.

    The Python API accepts strings wherever it takes an expression (``sr.grad(U, "h(2)**2")``);
    they go through the whitelist parser, never ``sympify``, and a name means what it means in
    the recurrence: ``h`` is its state function and ``w`` its parameter, with the same SymPy
    assumptions, so that derivatives and sums see one quantity, not two of the same name.
    Anything that is not a string is returned unchanged.

    Parameters
    ----------
    value : str or any
        The text to read, or an object to pass through.
    scope : Recurrence or Unfolded
        Whose states, inputs, outputs, parameters and abstract functions the names refer to.
    what : str
        How messages call the value, e.g. ``"the loss"``.

    Returns
    -------
    sympy.Expr or the value unchanged

    Raises
    ------
    ParseError, LimitError
        The text is not an allowed expression (the message starts with ``what``).

    Examples
    --------
    >>> import symrnn as sr
    >>> rec = sr.Recurrence.parse("h(t) = tanh(w*h(t-1) + x(t))")
    >>> loss = parse_in_scope("h(2)**2", rec, "the loss")
    >>> loss.atoms(sp.Function) == {rec.states[0](2)}
    True
    """
    if not isinstance(value, str):
        return value
    rec = getattr(scope, "recurrence", scope)
    names: dict[str, Any] = {str(p): p for p in rec.params}
    names.update((f.__name__, f) for f in (*rec.defined, *rec.inputs))
    abstract = {
        call.func.__name__
        for eq in rec.equations
        for call in eq.rhs.atoms(sp.core.function.AppliedUndef)
        if call.func not in (*rec.defined, *rec.inputs)
    }
    try:
        return parse_expression(value, names=names, functions=sorted(abstract - names.keys()))
    except SymrnnError as exc:
        raise type(exc)(f"in {what}: {exc}") from exc


def check_magnitudes(exprs: Iterable[Any], where: str) -> None:
    """Refuse a number whose absolute value exceeds :data:`MAX_MAGNITUDE` (or is not finite).

    Each largest subexpression without symbols (``10**999``, ``exp(exp(exp(exp(10))))``) is
    compared: rationals exactly, others by their float value (an overflow counts as too large).

    >>> try:
    ...     check_magnitudes([sp.Integer(10) ** 400 * sp.Symbol("w")], "the update")
    ... except LimitError as exc:
    ...     print(str(exc)[:68])
    the update has the number (a number of about 400 digits), beyond the
    """
    stack = [e for e in exprs if isinstance(e, sp.Basic)]
    while stack:
        node = stack.pop()
        if not getattr(node, "is_number", False):  # matrices and booleans have no is_number
            stack.extend(a for a in node.args if isinstance(a, sp.Basic))
            continue
        if node.is_Rational:
            big = abs(node.p) > MAX_MAGNITUDE * node.q
        else:
            try:
                value = float(node)
            except OverflowError:
                big = True
            except (TypeError, ValueError):  # complex or not a plain number: not ours to bound
                continue
            else:
                big = not math.isfinite(value) or abs(value) > MAX_MAGNITUDE
        if big:
            raise LimitError(
                f"{where} has the number {_short(node)}, beyond the limit of 10**300 (symrnn "
                "computes in float64); rescale the equation"
            )
